"""The instruction prompts made in the workflow: MedInstruct-test (AlpaCare) translated by an LLM.

The paper's prompts are a German translation of MedInstruct-test, and no translation is public.
This stage translates each prompt's `instruction` and, where there is one, its `input` through the
project's LLM layer, either with the offline vLLM engine (a GPU job) or with any OpenAI-compatible
endpoint (a local rule: it needs the network):

- every text is one request: a single user turn (some chat templates reject a system turn) that
  asks for the translation only, formatting kept, nothing answered or added;
- the answer must be one JSON object {"translation": "<text>"} with a non-empty string and no other
  key; it is read with `json.loads` (control characters inside the string allowed) and nothing
  else: no text is searched for a translation. With `use_json_schema` the engine decodes under
  that schema (its grammar also refuses an empty string) and an endpoint gets it as
  `response_format`, so an answer fails the reading only when it was cut off (max_tokens) or,
  from an endpoint, empty;
- an answer that fails the reading is asked again (`max_invalid_retries`), then the text is counted
  as invalid; the offline engine asks again only when sampling (temperature > 0, with another
  seed), since greedy decoding would repeat the same answer;
- every valid answer is stored in the LLM layer's content-hash cache (key: model, messages,
  settings), so a rerun sends only what has no valid answer yet and, when every text is cached,
  starts no engine at all;
- a prompt with a text that ended without a translation is left out of the file and named in the
  result; more such texts than `max_missing_fraction` of all texts fail the stage (nothing written,
  what was translated stays cached).

Each output row holds the translation (`instruction`, `input`), the source text beside it
(`source_instruction`, `source_input`), the `difficulty` and, under `translation`, the model, the
backend and the settings that made it.
"""
from __future__ import annotations

import collections
import json
import math
import sys
import time
from typing import Any

from medadapt.io import read_jsonl, write_jsonl
from medadapt.llm import InvalidAnswer, TooManyFailures, json_object
from medadapt.llm.cache import ResponseCache, cache_key
from medadapt.llm.client import ChatClient, Endpoint, RetryPolicy

# What AlpaCare's files write where a task has no input: the key left out, an empty string,
# "<noinput>" (MedInstruct-52k, the seed tasks) or "NA" (their generation script's test).
NO_INPUT = ("", "<noinput>", "NA")
FIELDS = ("instruction", "input")

PROMPT = """Translate the text below from English into {language}.

The text is a task or question written for a medical AI assistant. Translate all of it, faithfully, \
as a native {language}-speaking physician would phrase it. Do not answer it, and do not shorten, \
explain or comment on it. Keep its formatting exactly: line breaks, lists and numbering, \
punctuation, numbers and units.

Answer only with a JSON object of the form {{"translation": "<the {language} text>"}}.

Text:
\"\"\"
{text}
\"\"\""""

SCHEMA = {"type": "object", "properties": {"translation": {"type": "string"}},
          "required": ["translation"], "additionalProperties": False}
# The engine's grammar also rules out the empty string, which a weak model would otherwise close
# at once. Endpoints get SCHEMA: strict modes (OpenAI's) refuse length constraints.
ENGINE_SCHEMA = {**SCHEMA, "properties": {"translation": {"type": "string", "minLength": 1}}}


def read_translation(text: str | None) -> str:
    """The translation in an answer that is exactly {"translation": "<non-empty string>"};
    raises InvalidAnswer (with the reason) for anything else."""
    if text is None or not text.strip():
        raise InvalidAnswer("empty answer")
    # strict=False: a raw line break (or other control character) inside the string is taken
    # as it is; the engine's JSON grammar lets a model write one where JSON wants "\n".
    obj = json_object(text, strict=False)
    if set(obj) != {"translation"}:
        raise InvalidAnswer(f"keys {sorted(obj)[:5]}, expected only 'translation'")
    value = obj["translation"]
    if not isinstance(value, str) or not value.strip():
        raise InvalidAnswer("'translation' is not a non-empty string")
    return value


def source_input(row: dict) -> str | None:
    value = row.get("input")
    if value is None:
        return None
    value = str(value)
    return None if value.strip() in NO_INPUT else value


def read_source(path: str) -> list[dict]:
    """MedInstruct-test rows {id, instruction, [input], [difficulty], ...} as {id (str),
    instruction, input (None without one), difficulty}; the reference answers are not kept."""
    rows = read_jsonl(path)
    if not rows:
        raise ValueError(f"{path}: no rows")
    out, seen = [], set()
    for n, row in enumerate(rows, 1):
        if row.get("id") is None or not str(row.get("instruction") or "").strip():
            raise ValueError(f"{path}: row {n} needs 'id' and a non-empty 'instruction' (the layout "
                             "of MedInstruct-test.jsonl: id, instruction, difficulty, answers)")
        if str(row["id"]) in seen:
            raise ValueError(f"{path}: row {n}: duplicate id {row['id']!r}")
        seen.add(str(row["id"]))
        out.append({"id": str(row["id"]), "instruction": str(row["instruction"]),
                    "input": source_input(row), "difficulty": row.get("difficulty")})
    return out


def messages_for(text: str, language: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT.format(language=language, text=text)}]


def model_id(model: Any) -> str:
    """The configured model as the cache and the rows name it (a spec as sorted JSON)."""
    return model if isinstance(model, str) else json.dumps(model, sort_keys=True)


def settings_of(cfg: dict) -> dict[str, Any]:
    """The settings that can change a translation: recorded beside each row, part of the key."""
    return {"language": cfg["language"], "temperature": float(cfg["temperature"]),
            "max_tokens": int(cfg["max_tokens"]), "seed": int(cfg["seed"]),
            "use_json_schema": bool(cfg["use_json_schema"])}


def request_params(cfg: dict) -> dict[str, Any]:
    """What decides an answer besides model and messages: sent with every request to an endpoint,
    and the cache key's params for both backends (the engine's under its own grammar)."""
    params: dict[str, Any] = {"temperature": float(cfg["temperature"]),
                              "max_tokens": int(cfg["max_tokens"]), "seed": int(cfg["seed"])}
    if not cfg["use_json_schema"]:
        return params
    if cfg["backend"] == "vllm":
        return {**params, "guided_json": ENGINE_SCHEMA}
    return {**params, "response_format": {"type": "json_schema", "json_schema": {
        "name": "translation", "strict": True, "schema": SCHEMA}}}


def log(msg: str) -> None:
    print(f"[translate] {msg}", file=sys.stderr, flush=True)


class _Outcome:
    """The translation of one unique text (key), or why there is none."""

    def __init__(self, value: str | None, status: str, cache_hit: bool, reason: str | None = None):
        self.value, self.status, self.cache_hit, self.reason = value, status, cache_hit, reason


def _parse(raw: str | None) -> str | None:
    try:
        return read_translation(raw)
    except InvalidAnswer:
        return None


def _run_engine(requests: list[list[dict]], keys: list[str], cfg: dict, model_path: str,
                cache_dir: str | None, max_failed: int) -> tuple[dict[str, _Outcome], dict]:
    """The offline vLLM engine behind the same cache: started only when a text is not cached."""
    cache = ResponseCache(cache_dir)
    outcomes: dict[str, _Outcome] = {}
    todo: dict[str, list[dict]] = {}
    for key, messages in zip(keys, requests):
        if key in outcomes or key in todo:
            continue
        hit = cache.get(key, _parse)
        if hit is not None:
            outcomes[key] = _Outcome(hit[1], "valid", True)
        else:
            todo[key] = messages
    stats = {"engine_started": False, "sent": 0, "reasks": 0}
    log(f"model={model_id(cfg['model'])} backend=vllm texts={len(requests)} unique={len(set(keys))} "
        f"cached={len(outcomes)} to_translate={len(todo)}")
    if not todo:
        return outcomes, stats
    from medadapt.llm.engine import Engine

    params = request_params(cfg)
    schema = ENGINE_SCHEMA if cfg["use_json_schema"] else None
    # Greedy decoding repeats its answer: only a sampling engine gains from asking again.
    asks = 1 + (int(cfg["max_invalid_retries"]) if cfg["temperature"] > 0 else 0)
    weight = collections.Counter(keys)
    with Engine(model_path, max_model_len=cfg["max_model_len"], seed=cfg["seed"],
                tensor_parallel_size=cfg["tensor_parallel_size"]) as engine:
        stats["engine_started"] = True
        pending = list(todo)
        for attempt in range(asks):
            if attempt:
                stats["reasks"] += len(pending)
                log(f"asking again for {len(pending)} text(s) without a valid answer "
                    f"({attempt + 1}/{asks}, seed {cfg['seed'] + attempt})")
            answers = engine.chat([todo[k] for k in pending], max_tokens=params["max_tokens"],
                                  temperature=params["temperature"], seed=cfg["seed"] + attempt,
                                  json_schema=schema)
            stats["sent"] += len(pending)
            still = []
            for key, answer in zip(pending, answers, strict=True):
                try:
                    value = read_translation(answer.text)
                except InvalidAnswer as exc:
                    cut = " (cut off at max_tokens)" if answer.finish_reason == "length" else ""
                    outcomes[key] = _Outcome(None, "invalid", False, f"{exc}{cut}")
                    still.append(key)
                    continue
                outcomes[key] = _Outcome(value, "valid", False)
                cache.put(key, {"model": model_id(cfg["model"]), "params": params,
                                "raw": answer.text, "completion_tokens": answer.n_tokens}, value)
            pending = still
            if not pending:
                break
    failed = sum(weight[k] for k in pending)
    if failed > max_failed:
        reasons = collections.Counter(outcomes[k].reason for k in pending)
        example = reasons.most_common(1)[0][0]
        raise TooManyFailures(
            f"{failed} of {len(keys)} texts have no valid translation, more than the {max_failed} "
            f"allowed (generate.translate.max_missing_fraction); most common reason: {example}",
            {"requests": len(keys), "invalid": failed, "missing": 0, "unasked": 0,
             "allowed": max_failed}, example)
    return outcomes, stats


def _run_endpoint(requests: list[list[dict]], keys: list[str], cfg: dict, cache_dir: str | None,
                  ledger: str | None, job: str, max_failed: int) -> tuple[dict[str, _Outcome], dict]:
    """Any OpenAI-compatible endpoint, through the LLM client (its retries, cache and ledger)."""
    endpoint = Endpoint(model=cfg["model"], base_url=cfg["base_url"], api_key_env=cfg["api_key_env"],
                        timeout_s=cfg["timeout_s"], max_concurrency=cfg["max_concurrency"])
    client = ChatClient(endpoint, RetryPolicy(max_retries=cfg["max_retries"]),
                        what="generate.translate", stage="translate", cache_dir=cache_dir, ledger=ledger,
                        invalid_retries=cfg["max_invalid_retries"])
    run = client.run(requests, request_params(cfg), read_translation, job=job, max_failed=max_failed)
    outcomes = {r.key: _Outcome(r.value, r.status, r.cache_hit, r.reason) for r in run.results}
    return outcomes, {"engine_started": False, "sent": run.usage["sent"],
                      "reasks": run.usage["reasks"]}


def translate_prompts(source: str, out: str, translate: dict, model: str | None = None,
                      cache_dir: str | None = None, ledger: str | None = None) -> dict:
    """Stage `eval_translate`: translate MedInstruct-test (`source`, JSONL) and write the prompts
    JSONL `out` (see the module docstring for the rows and the rules).

    `translate`: the resolved `generate.translate` block; `model`: the model directory the workflow
    built or fetched for the vllm backend (None: `translate.model`, a name or path as it is).
    `cache_dir`, `ledger`: the answer cache and (endpoint) usage ledger; None: none.
    """
    cfg = translate
    if cfg["backend"] not in ("vllm", "openai"):
        raise ValueError(f"generate.translate.backend: expected vllm or openai, got {cfg['backend']!r}")
    rows = read_source(source)
    texts = [(i, field, row[field]) for i, row in enumerate(rows) for field in FIELDS
             if row[field] is not None]
    name = model_id(cfg["model"])
    requests = [messages_for(text, cfg["language"]) for _, _, text in texts]
    params = request_params(cfg)
    keys = [cache_key(name, messages, params) for messages in requests]
    max_failed = math.floor(cfg["max_missing_fraction"] * len(texts))
    start = time.time()
    if cfg["backend"] == "vllm":
        path = model or cfg["model"]
        if not isinstance(path, str):
            raise ValueError("generate.translate.model: a model spec needs the model directory the "
                             "workflow builds (input `model`)")
        outcomes, stats = _run_engine(requests, keys, cfg, path, cache_dir, max_failed)
    else:
        if not isinstance(cfg["model"], str):
            raise ValueError("generate.translate.model: the openai backend takes the endpoint's model "
                             f"name, got the spec {cfg['model']!r}")
        outcomes, stats = _run_endpoint(requests, keys, cfg, cache_dir, ledger, out, max_failed)
    seconds = time.time() - start

    translated: dict[tuple[int, str], str] = {}
    failures: dict[str, str] = {}
    for (i, field, _), key in zip(texts, keys):
        outcome = outcomes[key]
        if outcome.status == "valid":
            translated[(i, field)] = outcome.value
        else:
            failures.setdefault(rows[i]["id"], f"{field}: {outcome.status} ({outcome.reason})")
    settings = settings_of(cfg)
    written = []
    for i, row in enumerate(rows):
        if row["id"] in failures:
            continue
        item = {"id": row["id"], "instruction": translated[(i, "instruction")]}
        if row["input"] is not None:
            item["input"] = translated[(i, "input")]
        item |= {"difficulty": row["difficulty"], "source_instruction": row["instruction"],
                 "source_input": row["input"],
                 "translation": {"model": cfg["model"], "backend": cfg["backend"], **settings}}
        written.append(item)
    for pid, why in failures.items():
        log(f"prompt {pid} left out: {why}")
    write_jsonl(out, written)
    unchanged = sum(1 for (i, field), value in translated.items()
                    if value.strip() == rows[i][field].strip())
    unique = set(keys)
    summary = {"prompts": len(written), "source_rows": len(rows), "texts": len(texts),
               "unique_texts": len(unique),
               "cache_hits": sum(1 for k in unique if outcomes[k].cache_hit),
               "translated": sum(1 for k in unique if outcomes[k].status == "valid"
                                 and not outcomes[k].cache_hit),
               "failed": sum(1 for k in keys if outcomes[k].status != "valid"),
               "untranslated": dict(sorted(failures.items())), "unchanged": unchanged,
               "backend": cfg["backend"], "model": cfg["model"], "seconds": round(seconds, 2),
               **stats}
    log(f"done: {summary}")
    return summary
