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


def prepare_prompts(source: str, out: str) -> dict:
    """Validate the instruction prompts (JSONL: id, instruction) and copy them into results."""
    if not Path(source).exists():
        raise FileNotFoundError(f"generate.prompts: '{source}' does not exist; expected a JSONL file with "
                                "fields id and instruction (the paper: 217 German MedInstruct-test prompts)")
    rows = load_prompts(source)
    write_jsonl(out, [{**r, "id": str(r["id"])} for r in rows])
    return {"prompts": len(rows)}


def prefetch_hub_datasets(datasets: list[dict], out: str) -> dict:
    """Load each dataset once so it sits in the datasets cache (lm-eval then runs offline)."""
    import datasets as hf_datasets

    for ds in datasets:
        hf_datasets.load_dataset(ds["path"], ds.get("name"))
    Path(out).touch()
    return {"datasets": len(datasets)}


def prepare_medqa_de(source: dict, train_out: str, test_out: str, seed: int = 0) -> dict:
    """German MedQA (BioInstructQA test_german) as JSONL {question, choices, answer}.

    The first few items serve as the one-shot pool (train), the rest are the test set.
    """
    import datasets as hf_datasets

    from medadapt.mcqa import convert_bioinstructqa

    rows = hf_datasets.load_dataset(source["hub"], source.get("name"), split=source["split"])
    items = convert_bioinstructqa(list(rows))
    n_shot = 5
    write_jsonl(train_out, items[:n_shot])
    write_jsonl(test_out, items[n_shot:])
    return {"train": n_shot, "test": len(items) - n_shot}
