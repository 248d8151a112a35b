"""Where the raw inputs come from: corpus shards and evaluation data (local files or hub snapshots).

Hub downloads run in local rules (a login node with internet); everything downstream reads the
local copies, so compute jobs can run with HF_HUB_OFFLINE=1.
"""
from __future__ import annotations

import glob
from pathlib import Path

from medadapt.corpus.shards import shard_names
from medadapt.generate import load_prompts
from medadapt.io import write_json, write_jsonl


def list_shards(shards: dict, out: str) -> dict:
    """Stage `corpus_shards`: resolve the `corpus.shards` spec to {name: path}, written as JSON."""
    if "glob" in shards:
        paths = sorted(glob.glob(shards["glob"]))
        if not paths:
            raise FileNotFoundError(f"corpus.shards.glob: no file matches '{shards['glob']}'")
    else:
        from medadapt.models.fetch import fetch_dataset_files

        files = fetch_dataset_files(shards["hub"], shards["patterns"], shards["dir"])
        paths = [f for f in files if f.endswith((".parquet", ".jsonl"))]
    named = dict(zip(shard_names(paths), paths))
    write_json(out, named)
    return {"shards": len(named)}


def prepare_prompts(source: str | None, out: str, expected_count: int | None = None,
                    translated: str | None = None) -> dict:
    """Stage `eval_prompts`: validate the instruction prompts (JSONL: id, instruction, [input]) and
    copy them into results, each row whole.

    The prompts come from `source` (config generate.prompts, a user file) or, when that is null,
    from `translated` (the translation step's output); exactly one is given. `expected_count`
    (config generate.expected_count): the number of prompts the file must hold; a file with more
    or fewer fails here, before any response is generated."""
    if (source is None) == (translated is None):
        raise ValueError("eval_prompts: give either a prompts file (generate.prompts) or the "
                         f"translated prompts, not {'both' if source else 'neither'}")
    if source is not None and not Path(source).exists():
        raise FileNotFoundError(f"generate.prompts: '{source}' does not exist; expected a JSONL file with "
                                "fields id and instruction (or set it to null: the workflow then "
                                "translates MedInstruct-test, see generate.translate)")
    path = source or translated
    rows = load_prompts(path)
    _check_count(path, len(rows), expected_count)
    write_jsonl(out, [{**r, "id": str(r["id"])} for r in rows])
    return {"prompts": len(rows)}


def _check_count(path: str, n: int, expected_count: int | None) -> None:
    if expected_count is not None and n != expected_count:
        raise ValueError(f"generate.prompts: {path} holds {n} prompts, but "
                         f"generate.expected_count is {expected_count}; check the file (or set the "
                         "count it should have)")


def local_or_hub_file(source: dict, local_key: str, where: str, hub_dir: Path) -> tuple[str, dict]:
    """(path, origin) of a raw input that is either a local copy (`source[local_key]`) or one file
    of a hub dataset (`hub`, `revision`, `file`; downloaded into `hub_dir`). `where` names the
    config block in errors."""
    if source.get(local_key):
        path = source[local_key]
        if not Path(path).is_file():
            raise FileNotFoundError(f"{where}.{local_key}: '{path}' does not exist")
        return str(path), {local_key: str(path)}
    from medadapt.models.fetch import fetch_dataset_files

    files = fetch_dataset_files(source["hub"], [source["file"]], str(hub_dir), source.get("revision"))
    path = next((f for f in files if Path(f).name == Path(source["file"]).name), None)
    if path is None:
        raise FileNotFoundError(f"dataset '{source['hub']}': no {source['file']} after the download")
    return path, {"hub": source["hub"], "revision": source.get("revision") or "main",
                  "file": source["file"]}


def fetch_medinstruct(source: dict, out: str, expected_count: int | None = None) -> dict:
    """Stage `eval_medinstruct` (a local rule: it may download): MedInstruct-test as published
    (JSONL: id, instruction, difficulty and the reference answers; `input` optional), copied to
    `out` unchanged once its rows are checked.

    `source` (config generate.translate.source): a local copy (`jsonl`) or the hub dataset (`hub`,
    `revision`, `file`; downloaded beside `out`). `expected_count` (generate.expected_count) is
    checked here too, so a wrong count fails before anything is translated."""
    import hashlib
    import shutil

    from medadapt.io import atomic_path
    from medadapt.translate import read_source

    path, origin = local_or_hub_file(source, "jsonl", "generate.translate.source",
                                     Path(out).parent / "hub")
    rows = read_source(path)
    _check_count(path, len(rows), expected_count)
    with atomic_path(out) as tmp:
        shutil.copyfile(path, tmp)
    digest = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    return {**origin, "rows": len(rows), "with_input": sum(r["input"] is not None for r in rows),
            "sha256": digest}


def prefetch_hub_datasets(datasets: list[dict], out: str) -> dict:
    """Load each dataset once so it sits in the datasets cache (lm-eval then runs offline)."""
    import datasets as hf_datasets

    for ds in datasets:
        hf_datasets.load_dataset(ds["path"], ds.get("name"))
    Path(out).touch()
    return {"datasets": len(datasets)}


def prepare_medqa_de(source: dict, test_out: str, info_out: str, num_fewshot: int) -> dict:
    """Stage `eval_medqa_de`: German MedQA as JSONL {id, question, choices, answer}, and what the
    one-shot examples are (`info_out`, JSON, shown in the report).

    `source` (config mcqa.medqa_de): BioInstructQA's data.zip from the hub (`hub`, `revision`,
    `file`; downloaded beside the outputs) or a local copy (`zip`); the records of `corpus` in
    `member`. The German file holds only the translated test split, so all of it is the test set,
    checked against `test_items`. There is no translated non-test split to draw one-shot examples
    from: the task (workflow/tasks/medqa_de.yaml) takes them from the test split itself, the first
    items in file order, never the question being asked, so the pool is num_fewshot + 1 test items.
    """
    from medadapt.mcqa import MEDQA_SPLITS, convert_bioinstructqa, read_bioinstructqa

    archive, origin = local_or_hub_file(source, "zip", "mcqa.medqa_de", Path(test_out).parent / "hub")
    rows = read_bioinstructqa(archive, source["member"], source["corpus"])
    expected = source["test_items"]
    if len(rows) != expected:
        raise ValueError(
            f"{archive}:{source['member']}: {len(rows)} {source['corpus']} records, expected the "
            f"{expected} items of the translated test split (mcqa.medqa_de.test_items; MedQA has "
            f"{MEDQA_SPLITS['train']}/{MEDQA_SPLITS['validation']}/{MEDQA_SPLITS['test']} "
            "train/validation/test items): the archive's layout is not the one this converter reads")
    items = convert_bioinstructqa(rows)
    pool = items[:num_fewshot + 1] if num_fewshot > 0 else []
    info = {**origin, "member": source["member"], "corpus": source["corpus"],
            "test_items": len(items), "fewshot_split": "test", "num_fewshot": num_fewshot,
            "fewshot_pool_items": len(pool), "fewshot_pool_ids": [r["id"] for r in pool],
            "note": ("the data has no translated non-test split; each question's one-shot example "
                     "is the first test item that is not the question itself")}
    write_jsonl(test_out, items)
    write_json(info_out, info)
    return {"test": len(items), "fewshot_pool_items": len(pool)}
