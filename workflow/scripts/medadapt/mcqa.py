"""One-shot multiple-choice QA with lm-eval (the paper's MCQA: plain loglikelihood, no chat template).

Tasks are YAMLs under `include_path` (workflow/tasks/): the German MMLU subsets (openGPT-X MMLUX),
German MedQA (BioMistral/BioInstructQA's German test split, converted by `convert_bioinstructqa`)
and the demo task.
Data paths inside local-file task YAMLs are relative to the working directory (the repo root).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterable

from medadapt.io import write_json

LETTERS = "ABCDEFGHIJ"


# BioMistral/BioInstructQA (the hub repository holds BioInstructQA.py, a loading script, and
# data.zip). The script reads the English splits from base/overall_{train,validation,test}+prompt.json
# and each translation from langs_processed/<Language>-full.json, which it serves whole as the
# split test_<language>: the translations are of the test split only. Every file is one JSON list of
# records; a record's corpus_name names its benchmark ("MedQA" = the 4-option USMLE questions), and a
# translated record carries question_translated and options_translated (an object letter -> text)
# beside the English question/options, and the shared correct_answer_letter.
BIOINSTRUCTQA_MEMBER = "langs_processed/German-full.json"
# MedQA (4 options) as BioInstructQA splits it: train / validation / test items (English).
MEDQA_SPLITS = {"train": 10178, "validation": 1272, "test": 1273}


def read_bioinstructqa(zip_path: str, member: str = BIOINSTRUCTQA_MEMBER,
                       corpus: str = "MedQA") -> list[dict]:
    """The records of one benchmark (`corpus_name == corpus`) from a JSON list inside data.zip, in
    the file's order."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            if member not in names:
                near = sorted(n for n in names if n.endswith(".json"))[:10]
                raise ValueError(f"{zip_path}: no member {member!r}; JSON members: {near}")
            data = json.loads(zf.read(member))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{zip_path}: not a zip archive ({exc})") from None
    if not isinstance(data, list):
        raise ValueError(f"{zip_path}:{member}: expected a JSON list of records, got {type(data).__name__}")
    bad = [k for k, r in enumerate(data) if not isinstance(r, dict) or "corpus_name" not in r]
    if bad:
        raise ValueError(f"{zip_path}:{member}: record {bad[0]} has no corpus_name")
    return [r for r in data if r["corpus_name"] == corpus]


def convert_bioinstructqa(rows: Iterable[dict], n_options: int | None = 4) -> list[dict]:
    """Translated BioInstructQA records -> {id, question, choices, answer} rows.

    Uses the translated fields: `question_translated`, `options_translated` (an object letter ->
    text, A, B, C, ...) and `correct_answer_letter`; `answer` is the 0-based index, `id` the record's
    `identifier`.
    """
    out = []
    for i, row in enumerate(rows):
        where = f"BioInstructQA record {i} ({row.get('identifier', 'no identifier')})"
        for field in ("identifier", "question_translated", "options_translated", "correct_answer_letter"):
            if row.get(field) in (None, ""):
                raise ValueError(f"{where}: missing field '{field}'")
        options = row["options_translated"]
        if not isinstance(options, dict):
            raise ValueError(f"{where}: options_translated must be an object letter -> text, "
                             f"got {type(options).__name__}")
        keys = sorted(options, key=lambda k: str(k).strip().upper())
        letters = [str(k).strip().upper() for k in keys]
        if letters != list(LETTERS[:len(letters)]):
            raise ValueError(f"{where}: options_translated keys {keys} are not A, B, C, ...")
        choices = [str(options[k]).strip() for k in keys]
        if n_options is not None and len(choices) != n_options:
            raise ValueError(f"{where}: expected {n_options} options, got {len(choices)}")
        letter = str(row["correct_answer_letter"]).strip().upper()
        if len(letter) != 1 or LETTERS.find(letter) not in range(len(choices)):
            raise ValueError(f"{where}: correct_answer_letter {row['correct_answer_letter']!r} "
                             f"is not one of {LETTERS[:len(choices)]}")
        out.append({"id": str(row["identifier"]), "question": str(row["question_translated"]).strip(),
                    "choices": choices, "answer": LETTERS.index(letter)})
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise ValueError(f"BioInstructQA: identifier {dup!r} occurs {ids.count(dup)} times")
    return out


def task_manager(include_path: str | list[str], include_defaults: bool = False):
    """lm-eval TaskManager over our task YAMLs. lm-eval's built-in tasks only on request:
    indexing them takes ~10 s, and without them a name can only mean one of ours."""
    from lm_eval.tasks import TaskManager

    paths = [include_path] if isinstance(include_path, (str, Path)) else list(include_path)
    for p in paths:
        if not Path(p).is_dir():
            raise FileNotFoundError(f"include_path: {p} is not a directory of lm-eval task YAMLs")
    return TaskManager(include_path=[str(p) for p in paths], include_defaults=include_defaults)


def resolve_tasks(tm, tasks: list[str], include_path) -> list[str]:
    """Check task names against the index; expand tags (e.g. `mmlux_de_medical`) to their tasks."""
    subtasks, out, unknown = set(tm.all_subtasks), [], []
    for name in tasks:
        if name in subtasks:
            out.append(name)
        elif name in tm.all_tags:
            out += sorted(n for n, e in tm.task_index.items() if name in (e.tags or ()) and n in subtasks)
        else:
            unknown.append(name)
    if unknown:
        roots = [Path(p).resolve() for p in ([include_path] if isinstance(include_path, (str, Path))
                                             else include_path)]
        found = sorted(n for n, e in tm.task_index.items()
                       if e.yaml_path and any(Path(e.yaml_path).resolve().is_relative_to(r) for r in roots))
        raise ValueError(f"unknown lm-eval task(s) {unknown}; tasks found under {include_path}: "
                         f"{found or 'none'}")
    return list(dict.fromkeys(out))


def _model_args(backend: str, model: str, device: str, extra: dict | None) -> dict:
    if backend == "hf":
        args: dict[str, Any] = {"pretrained": model}
    elif backend == "vllm":
        args = {"pretrained": model, "enforce_eager": True}
    else:
        raise ValueError(f"backend={backend!r}: expected 'hf' or 'vllm'")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r}: expected 'cpu' or 'cuda'")
    args.update(extra or {})
    if backend == "vllm":
        from medadapt.llm.engine import engine_defaults  # CPU: a fixed KV cache, see there

        args = engine_defaults(args)
    return args


def _float(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def summarize(res: dict, tasks: list[str]) -> dict:
    """Per-task acc / stderr / n from a `simple_evaluate` result, and the unweighted mean."""
    per_task = {}
    for t in tasks:
        r = res["results"].get(t)
        if r is None or "acc,none" not in r:
            raise RuntimeError(f"lm-eval returned no 'acc' for task {t} (results: {sorted(res['results'])})")
        n = res.get("n-samples", {}).get(t, {})
        per_task[t] = {"acc": float(r["acc,none"]), "acc_stderr": _float(r.get("acc_stderr,none")),
                       "n": int(n.get("effective", n.get("original", 0)))}
    return {"tasks": per_task,
            "mean_acc": sum(v["acc"] for v in per_task.values()) / len(per_task),
            "versions": {t: res.get("versions", {}).get(t) for t in tasks}}


def evaluate(model: str, tasks: list[str], include_path: str, out: str, num_fewshot: int,
             backend: str, batch_size: int, limit: int | None, device: str,
             model_args_extra: dict | None, meta: dict, *, include_defaults: bool = False) -> dict:
    """Stage `mcqa`: evaluate `model` (HF dir or hub id) on `tasks`; write the mcqa JSON to `out`.

    `meta` (family/size/ckpt) is copied to the top level of the JSON; `model_args_extra` goes to the
    lm-eval model (e.g. a dtype on GPUs).
    """
    import lm_eval

    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ValueError("tasks: expected at least one lm-eval task name")
    tm = task_manager(include_path, include_defaults)
    tasks = resolve_tasks(tm, tasks, include_path)
    model_args = _model_args(backend, model, device, model_args_extra)

    start = time.time()
    res = lm_eval.simple_evaluate(
        model=backend, model_args=model_args, tasks=tasks, num_fewshot=num_fewshot,
        batch_size=batch_size, device=device, limit=limit, task_manager=tm,
        # The paper's MCQA: plain one-shot loglikelihood prompts (defaults changed across 0.4.x).
        apply_chat_template=False, fewshot_as_multiturn=False,
        log_samples=False, bootstrap_iters=1000,
    )
    seconds = time.time() - start
    summary = summarize(res, tasks)
    record = {
        **meta,
        "model": model,
        "num_fewshot": num_fewshot,
        **summary,
        "config": {"backend": backend, "model_args": model_args, "batch_size": batch_size,
                   "limit": limit, "device": device, "include_path": include_path,
                   "apply_chat_template": False, "fewshot_as_multiturn": False,
                   "lm_eval": res.get("config", {}), "task_configs": res.get("configs", {}),
                   "seconds": round(seconds, 2)},
    }
    write_json(out, record)
    return {"mean_acc": summary["mean_acc"], "n": {t: v["n"] for t, v in summary["tasks"].items()},
            "seconds": round(seconds, 2)}
