"""Zero-shot LLM annotation of the sample: is a document medical? (paper: Mixtral-8x7B-Instruct).

Two backends behind one function: the offline vLLM engine (guided JSON decoding) for a GPU job,
or any OpenAI-compatible endpoint through the LLM client (`response_format` JSON schema; answers
cached, usage in the ledger, the client's retry policy). Both ask for {"medical": true|false}; the
raw answer is kept beside the parsed label so that unparseable answers can be inspected (they get
label null and are counted).
"""
from __future__ import annotations

import json
import re

import polars as pl

from medadapt.io import write_table
from medadapt.llm.client import ChatClient, Endpoint, RetryPolicy
from medadapt.llm.engine import Engine

# One user message (no system turn): Mixtral-Instruct's chat template rejects system messages.
PROMPT = """You are an expert annotator building a German medical text corpus. Read the web document below (German, from a web crawl) and decide whether it is a MEDICAL document.

Medical (true): the document's main subject is human health or medicine and it conveys medical content, e.g. diseases, symptoms, diagnosis, therapy, medication and its effects, anatomy or physiology, medical research or studies, clinical practice, nursing and care, mental health, prevention and public health, or health-care services explained with medical detail (e.g. a clinic or practice describing its treatments).

Not medical (false): health is only mentioned in passing or is not the main subject; advertising, shop pages or spam without real medical information; wellness, beauty, fitness or diet content without medical substance; everything else (news, politics, sports, business, technology, travel, entertainment, forums on other topics, ...).

Dokument:
\"\"\"
{document}
\"\"\"

Is this document medical? Answer only with JSON of the form {"medical": true} or {"medical": false}."""

SCHEMA = {"type": "object", "properties": {"medical": {"type": "boolean"}},
          "required": ["medical"], "additionalProperties": False}

# Re-tokenising a decoded prefix can add a few tokens (split multi-byte chars): keep a margin.
_TOKEN_MARGIN = 16
# Before tokenising, cut very long docs to this many characters per budget token (saves time).
_CHARS_PER_TOKEN_CAP = 12
# Without a tokenizer (remote model): assume this many characters per token (conservative).
_CHARS_PER_TOKEN_GUESS = 3
# The openai backend's request timeout and retries (not config keys).
_OPENAI_TIMEOUT_S = 120.0
_OPENAI_MAX_RETRIES = 5
# How long to wait for a local server (a service job starts beside its consumers).
_SERVER_WAIT_S = 1800.0


def messages_for(text: str) -> list[dict]:
    return [{"role": "user", "content": PROMPT.replace("{document}", text)}]


def parse_label(raw: str | None) -> int | None:
    """1/0 from an answer like {"medical": true}; None when it cannot be read."""
    if not raw:
        return None
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict) and isinstance(obj.get("medical"), bool):
            return int(obj["medical"])
    except json.JSONDecodeError:
        pass
    # Lenient fallback, e.g. text around the JSON from an endpoint without guided decoding.
    m = re.search(r'"medical"\s*:\s*(true|false)', raw, flags=re.IGNORECASE)
    return None if m is None else int(m.group(1).lower() == "true")


def chunk_bounds(n_rows: int, chunk: int, n_chunks: int) -> tuple[int, int]:
    """Row range [start, stop) of chunk `chunk` of `n_chunks` contiguous, near-equal chunks."""
    if n_chunks < 1 or not 0 <= chunk < n_chunks:
        raise ValueError(f"annotate: chunk must be in [0, n_chunks); got chunk={chunk}, n_chunks={n_chunks}")
    return chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks


def _prompt_overhead(tokenizer) -> int:
    ids = tokenizer.apply_chat_template(messages_for(""), tokenize=True, add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


def truncate_texts(texts: list[str], tokenizer, max_model_len: int, max_tokens: int
                   ) -> tuple[list[str], int]:
    """Cut documents so that prompt + document + answer fit max_model_len. Returns (texts, n cut)."""
    overhead = _prompt_overhead(tokenizer) if tokenizer is not None else len(PROMPT) // _CHARS_PER_TOKEN_GUESS
    budget = max_model_len - max_tokens - overhead - _TOKEN_MARGIN
    if budget <= 0:
        raise ValueError(f"annotator: max_model_len {max_model_len} leaves no room for a document "
                         f"(prompt {overhead} + max_tokens {max_tokens} + margin {_TOKEN_MARGIN} tokens)")
    if tokenizer is None:
        cap = budget * _CHARS_PER_TOKEN_GUESS
        return [t[:cap] for t in texts], sum(len(t) > cap for t in texts)
    cut = [t[: budget * _CHARS_PER_TOKEN_CAP] for t in texts]
    ids = tokenizer(cut, add_special_tokens=False)["input_ids"]
    out, n_cut = [], 0
    for text, short, tok_ids in zip(texts, cut, ids):
        if len(tok_ids) > budget:
            out.append(tokenizer.decode(tok_ids[:budget]))
            n_cut += 1
        else:
            out.append(short)
            n_cut += len(short) < len(text)
    return out, n_cut


def _run_vllm(texts: list[str], cfg: dict) -> tuple[list[str], int]:
    with Engine(cfg["model"], max_model_len=cfg["max_model_len"], seed=cfg["seed"],
                tensor_parallel_size=cfg["tensor_parallel_size"]) as engine:
        texts, n_cut = truncate_texts(texts, engine.tokenizer(), cfg["max_model_len"], cfg["max_tokens"])
        outputs = engine.chat([messages_for(t) for t in texts], max_tokens=cfg["max_tokens"],
                              temperature=cfg["temperature"], json_schema=SCHEMA)
    return [o.text for o in outputs], n_cut


def _run_openai(texts: list[str], cfg: dict, cache_dir: str | None, ledger: str | None,
                out: str) -> tuple[list[str], int]:
    if not cfg["base_url"]:
        raise ValueError("annotator.base_url is required for the openai backend")
    # Without the model's tokenizer: a conservative characters-per-token cut.
    texts, n_cut = truncate_texts(texts, None, cfg["max_model_len"], cfg["max_tokens"])
    endpoint = Endpoint(model=cfg["model"], base_url=cfg["base_url"], api_key_env=cfg["api_key_env"],
                        timeout_s=_OPENAI_TIMEOUT_S, max_concurrency=cfg["max_concurrency"])
    client = ChatClient(endpoint, RetryPolicy(max_retries=_OPENAI_MAX_RETRIES), what="annotator",
                        stage="annotate", cache_dir=cache_dir, ledger=ledger)
    params = {"temperature": cfg["temperature"], "max_tokens": cfg["max_tokens"],
              "response_format": {"type": "json_schema", "json_schema": {
                  "name": "medical_label", "schema": SCHEMA, "strict": True}}}
    run = client.run([messages_for(t) for t in texts], params, parse_label, job=out)
    # "" for an empty answer, as the vllm backend's text would be: one column type.
    return [r.raw or "" for r in run.results], n_cut


def annotate(sample: str, out: str, chunk: int, n_chunks: int, annotator: dict,
             cache_dir: str | None = None, ledger: str | None = None,
             server_file: str | None = None) -> dict:
    """Annotate rows of chunk `chunk`/`n_chunks` of `sample`; write parquet id, label, raw.

    `annotator`: the resolved `corpus.annotator` block. `cache_dir`, `ledger`: the answer cache and
    usage ledger of the openai backend (None: none). `server_file`: the marker JSON of a local
    server (a Snakemake service job, e.g. the demo's stand-in annotator), whose base_url and model
    replace the configured ones (openai backend; waits for the server).
    """
    backend = annotator["backend"]
    if backend not in ("vllm", "openai"):
        raise ValueError(f"annotator.backend: expected one of ['openai', 'vllm'], got {backend!r}")
    if server_file:
        if backend != "openai":
            raise ValueError("annotate: a local server is reached over HTTP: annotator.backend openai")
        from medadapt.llm.servers import wait_for_server_file

        info = wait_for_server_file(server_file, _SERVER_WAIT_S)
        annotator = {**annotator, "base_url": info["base_url"], "model": info["model"]}
    import pyarrow.parquet as pq

    start, stop = chunk_bounds(pq.ParquetFile(sample).metadata.num_rows, chunk, n_chunks)
    df = pl.scan_parquet(sample).select("id", "text").slice(start, stop - start).collect()
    texts = df["text"].to_list()
    if not texts:
        raws, n_cut = [], 0
    elif backend == "vllm":
        raws, n_cut = _run_vllm(texts, annotator)
    else:
        raws, n_cut = _run_openai(texts, annotator, cache_dir, ledger, out)
    labels = [parse_label(r) for r in raws]
    result = pl.DataFrame({"id": df["id"], "label": pl.Series(labels, dtype=pl.Int64),
                           "raw": pl.Series(raws, dtype=pl.String)})
    write_table(out, result)
    summary = {"rows": [start, stop], "docs": df.height, "truncated": n_cut,
               "medical": sum(1 for x in labels if x == 1), "not_medical": sum(1 for x in labels if x == 0),
               "unparseable": sum(1 for x in labels if x is None), "backend": backend}
    print(f"[annotate] chunk {chunk}/{n_chunks} rows {start}:{stop}: {summary}", flush=True)
    return summary
