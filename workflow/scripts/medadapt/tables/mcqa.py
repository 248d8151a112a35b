"""The MCQA table: accuracy per benchmark and checkpoint, with relative gains (paper eq. 1)."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import polars as pl

from medadapt.io import read_json
from medadapt.tables.common import PathLike, keyed, nonempty, size_order, variant_of
from medadapt.tables.compute import join_compute
from medadapt.tables.items import ModelItems, check_against_table
from medadapt.tables.significance import INTERVAL_COLUMNS, g_rel_intervals

MCQA_KEY = ("family", "size", "ckpt")


def mcqa_index(paths: Sequence[PathLike], keys: Sequence[str]) -> dict[tuple[str, str, str], str]:
    """{(family, size, ckpt): path} from the MCQA JSON paths and their "family/size/ckpt" keys
    (same order)."""
    return keyed(paths, keys, MCQA_KEY, "MCQA table")


def _float(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _mcqa_rows(key: tuple[str, str, str], path: PathLike) -> list[dict]:
    family, size, ckpt = key
    data = read_json(path, "MCQA JSON")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError(f"{path}: field 'tasks' must be a non-empty object {{task: {{acc, ...}}}}")
    rows = []
    for task, res in sorted(tasks.items()):
        if not isinstance(res, dict) or not isinstance(res.get("acc"), (int, float)):
            raise ValueError(f"{path}: tasks.{task}.acc must be a number")
        rows.append({"family": family, "size": size, "ckpt": ckpt, "task": task,
                     "acc": float(res["acc"]), "acc_stderr": _float(res.get("acc_stderr")),
                     "n": res.get("n")})
    # Macro average over tasks (each benchmark counts once); its stderr assumes independent tasks.
    errs = [r["acc_stderr"] for r in rows]
    rows.append({"family": family, "size": size, "ckpt": ckpt, "task": "mean",
                 "acc": sum(r["acc"] for r in rows) / len(rows),
                 "acc_stderr": (math.sqrt(sum(e * e for e in errs)) / len(errs)
                                if None not in errs else None),
                 "n": sum(r["n"] for r in rows) if all(isinstance(r["n"], int) for r in rows) else None})
    return rows


def mcqa_table(mcqa_jsons: Mapping[tuple[str, str, str], PathLike],
               pairs: Sequence[Sequence[str | None]], compute: pl.DataFrame,
               items: Mapping[tuple[str, str, str], ModelItems] | None = None, n_boot: int = 1000,
               seed: int = 0) -> pl.DataFrame:
    """Long MCQA table with relative gains (paper eq. 1: G_rel(C) = Acc(C) / Acc(M_baseline)).

    `mcqa_jsons`: {(family, size, ckpt): JSON path} (see `mcqa_index`). `pairs` lists the adapted
    sizes as (family, size, next_size or None). Columns: family, size, next_size, ckpt, variant
    (base | merged | raw), task (benchmarks + "mean"), acc, acc_stderr, n, tokens, flops, fraction,
    g_rel_source (vs (family, size, base)) and g_rel_next (vs (family, next_size, base)). Raw
    checkpoints take tokens/FLOPs of the cNN they were merged into. Baseline-only models (e.g. the
    next-larger 14b) appear as base rows with next_size null.

    `items` ({(family, size, ckpt): ModelItems}, every model's item-level results) add 95 %
    bootstrap intervals over items, paired with the baseline: g_rel_source_lo/hi, g_rel_next_lo/hi
    (`n_boot` resamples, seeded by `seed`; see `medadapt.tables.significance.g_rel_intervals`).
    Without items, or with n_boot 0, these columns are empty.
    """
    nonempty(mcqa_jsons, "MCQA table")
    rows = [r for key, path in mcqa_jsons.items() for r in _mcqa_rows(tuple(key), path)]
    df = pl.DataFrame(rows, schema={"family": pl.String, "size": pl.String, "ckpt": pl.String,
                                    "task": pl.String, "acc": pl.Float64,
                                    "acc_stderr": pl.Float64, "n": pl.Int64})
    df = df.with_columns(variant=pl.col("ckpt").map_elements(variant_of, return_dtype=pl.String),
                         _cpt=pl.col("ckpt").str.replace(r"^raw-", ""))
    df = join_compute(df, compute, "MCQA")

    nexts = _next_sizes(pairs)
    df = df.with_columns(next_size=pl.struct("family", "size").map_elements(
        lambda r: nexts.get((r["family"], r["size"])), return_dtype=pl.String))
    _check_references(df, nexts, set(mcqa_jsons))
    base = df.filter(pl.col("variant") == "base").select("family", "size", "task", "acc")
    df = (df.join(base.rename({"acc": "_src"}), on=["family", "size", "task"], how="left")
          .join(base.rename({"size": "next_size", "acc": "_next"}),
                on=["family", "next_size", "task"], how="left")
          # A baseline at 0 accuracy (possible with the demo's random models) has no defined ratio.
          .with_columns(g_rel_source=pl.when(pl.col("_src") > 0).then(pl.col("acc") / pl.col("_src")),
                        g_rel_next=pl.when(pl.col("_next") > 0).then(pl.col("acc") / pl.col("_next"))))
    if items is not None:
        check_against_table(items, df)
        ci = g_rel_intervals(items, pairs, n_boot, seed)
    else:
        ci = g_rel_intervals({}, [], 0, seed)
    df = df.join(ci, on=["family", "size", "ckpt", "task"], how="left")
    cols = ["family", "size", "next_size", "ckpt", "variant", "task", "acc", "acc_stderr", "n",
            "tokens", "flops", "fraction", "g_rel_source", "g_rel_next", *INTERVAL_COLUMNS]
    return df.select(cols).sort(["family", size_order(df), "variant", "tokens", "task"])


def _next_sizes(pairs: Sequence[Sequence[str | None]]) -> dict[tuple[str, str], str | None]:
    out = {}
    for pair in pairs:
        if len(pair) != 3:
            raise ValueError(f"pairs: expected (family, size, next_size), got {pair!r}")
        family, size, nxt = pair
        out[(str(family), str(size))] = str(nxt) if nxt not in (None, "") else None
    return out


def _check_references(df: pl.DataFrame, nexts: dict, keys: set) -> None:
    """Every adapted model needs its source result; every declared next size its base result."""
    adapted = df.filter(pl.col("variant") != "base").select("family", "size").unique().rows()
    for family, size in sorted(set(adapted) | set(nexts)):
        if (family, size, "base") not in keys:
            raise ValueError(f"MCQA table: no result for the source model ({family}, {size}, base)")
        nxt = nexts.get((family, size))
        if nxt and (family, nxt, "base") not in keys:
            raise ValueError(f"MCQA table: ({family}, {size}) names next size {nxt!r}, but there is "
                             f"no result for ({family}, {nxt}, base)")
    tasks = df.group_by("family", "size", "ckpt").agg(pl.col("task").sort().str.join(","))
    per_family = tasks.group_by("family").agg(pl.col("task").n_unique().alias("k"), pl.col("task"))
    for family, k, variants in per_family.rows():
        if k > 1:
            raise ValueError(f"MCQA table: models of family {family!r} were evaluated on different "
                             f"task sets: {sorted(set(variants))}")
