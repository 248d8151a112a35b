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


def prepare_prompts(source: str, out: str, expected_count: int | None = None) -> dict:
    """Validate the instruction prompts (JSONL: id, instruction) and copy them into results.

    `expected_count` (config generate.expected_count): the number of prompts the file must hold
    (the paper: 217); a file with more or fewer fails here, before any response is generated."""
    if not Path(source).exists():
        raise FileNotFoundError(f"generate.prompts: '{source}' does not exist; expected a JSONL file with "
                                "fields id and instruction (the paper: 217 German MedInstruct-test prompts)")
    rows = load_prompts(source)
    if expected_count is not None and len(rows) != expected_count:
        raise ValueError(f"generate.prompts: {source} holds {len(rows)} prompts, but "
                         f"generate.expected_count is {expected_count}; check the file (or set the "
                         "count it should have)")
    write_jsonl(out, [{**r, "id": str(r["id"])} for r in rows])
    return {"prompts": len(rows)}


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

    if source.get("zip"):
        archive = source["zip"]
        if not Path(archive).is_file():
            raise FileNotFoundError(f"mcqa.medqa_de.zip: '{archive}' does not exist")
        origin = {"zip": str(archive)}
    else:
        from medadapt.models.fetch import fetch_dataset_files

        hub_dir = Path(test_out).parent / "hub"
        files = fetch_dataset_files(source["hub"], [source["file"]], str(hub_dir), source.get("revision"))
        archive = next((f for f in files if Path(f).name == Path(source["file"]).name), None)
        if archive is None:
            raise FileNotFoundError(f"dataset '{source['hub']}': no {source['file']} after the download")
        origin = {"hub": source["hub"], "revision": source.get("revision") or "main",
                  "file": source["file"]}
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
