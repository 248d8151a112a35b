"""Item-level MCQA results (the mcqa stage's `.items.parquet`, one row per task and item), read and
paired across models.

Two models are compared item by item, so their items must be the same: the same tasks, the same
positions (doc_id) in each test split, and at each position the same item (lm-eval's doc_hash).
Anything else (a different `mcqa.limit`, changed task data) fails and names both models.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import polars as pl

from medadapt.io import read_parquet
from medadapt.tables.common import PathLike, keyed

ITEM_KEY = ("family", "size", "ckpt")
REQUIRED = ["task", "doc_id", "doc_hash", "correct"]
POOLED = "pooled"  # every item of every task, as one sample


def items_index(paths: Sequence[PathLike], keys: Sequence[str]) -> dict[tuple[str, str, str], str]:
    """{(family, size, ckpt): path} from the item parquets and their "family/size/ckpt" keys."""
    return keyed(paths, keys, ITEM_KEY, "MCQA items")


class ModelItems:
    """One model's items: per task, doc ids, doc hashes and correctness, sorted by doc id."""

    def __init__(self, name: str, df: pl.DataFrame):
        self.name = name
        self.tasks: dict[str, dict[str, np.ndarray]] = {}
        for (task,), part in df.sort("task", "doc_id").group_by("task", maintain_order=True):
            ids = part["doc_id"].to_numpy()
            if len(np.unique(ids)) != len(ids):
                raise ValueError(f"MCQA items of {name}: task {task} lists a doc_id twice")
            self.tasks[task] = {"doc_id": ids, "doc_hash": part["doc_hash"].to_numpy(),
                                "correct": part["correct"].to_numpy().astype(bool)}

    def correct(self, task: str) -> np.ndarray:
        """Correctness over the task's items; `POOLED`: all tasks' items, tasks in sorted order."""
        if task == POOLED:
            return np.concatenate([self.tasks[t]["correct"] for t in sorted(self.tasks)])
        return self.tasks[task]["correct"]

    def accuracy(self) -> dict[str, tuple[float, int]]:
        return {t: (float(v["correct"].mean()), len(v["correct"])) for t, v in self.tasks.items()}


def read_items(path: PathLike, name: str) -> ModelItems:
    df = read_parquet(path, REQUIRED, "MCQA items")
    if df.is_empty():
        raise ValueError(f"{path}: no items")
    return ModelItems(name, df.select(REQUIRED))


def load_items(index: Mapping[tuple[str, str, str], PathLike]) -> dict[tuple[str, str, str], ModelItems]:
    return {key: read_items(path, "/".join(key)) for key, path in index.items()}


def check_against_table(items: Mapping[tuple[str, str, str], ModelItems], mcqa: pl.DataFrame) -> None:
    """Each model's items give the accuracy and item count of its MCQA JSON, task by task (the
    two files come from the same lm-eval run)."""
    rows = mcqa.filter(pl.col("task") != "mean").select("family", "size", "ckpt", "task", "acc", "n")
    table = {(f, s, c, t): (acc, n) for f, s, c, t, acc, n in rows.rows()}
    models = {k[:3] for k in table}
    if set(items) != models:
        extra, absent = sorted(set(items) - models), sorted(models - set(items))
        raise ValueError(f"MCQA items: models with items but no MCQA JSON {extra[:3]}, with an "
                         f"MCQA JSON but no items {absent[:3]}")
    for key, model in items.items():
        name = "/".join(key)
        tasks = {k[3] for k in table if k[:3] == key}
        if set(model.tasks) != tasks:
            raise ValueError(f"MCQA items of {name}: tasks {sorted(model.tasks)}, but its "
                             f"MCQA JSON has {sorted(tasks)}")
        for task, (acc, n) in model.accuracy().items():
            j_acc, j_n = table[(*key, task)]
            if abs(acc - j_acc) > 1e-9 or (j_n is not None and j_n != n):
                raise ValueError(f"MCQA items of {name}, task {task}: {n} items, accuracy "
                                 f"{acc:.6g}; its MCQA JSON says n={j_n}, acc={j_acc:.6g}")


def check_paired(a: ModelItems, b: ModelItems) -> None:
    """The two models answered the same items (same tasks, doc ids and doc hashes)."""
    if set(a.tasks) != set(b.tasks):
        raise ValueError(f"MCQA items: {a.name} has tasks {sorted(a.tasks)}, {b.name} has "
                         f"{sorted(b.tasks)}; paired tests need the same items")
    for task in sorted(a.tasks):
        x, y = a.tasks[task], b.tasks[task]
        if len(x["doc_id"]) != len(y["doc_id"]) or not np.array_equal(x["doc_id"], y["doc_id"]):
            raise ValueError(f"MCQA items, task {task}: {a.name} has {len(x['doc_id'])} items, "
                             f"{b.name} {len(y['doc_id'])}, or other doc ids; paired tests need "
                             f"the same items")
        differ = np.flatnonzero(x["doc_hash"] != y["doc_hash"])
        if differ.size:
            raise ValueError(f"MCQA items, task {task}: doc_id {x['doc_id'][differ[0]]} is another "
                             f"item for {a.name} than for {b.name} (doc_hash differs)")
