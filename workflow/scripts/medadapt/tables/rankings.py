"""The rankings table: the Davidson fits of all comparisons, placed on the tokens/FLOPs axes."""
from __future__ import annotations

from typing import Sequence

import polars as pl

from medadapt.tables.common import PathLike, nonempty, read_csv, size_order, variant_of
from medadapt.tables.compute import join_compute

FIT_COLUMNS = ["family", "size", "baseline", "baseline_model", "ckpt", "wins", "ties", "losses",
               "strength", "score", "score_lo", "score_hi", "nu"]


def ranking_table(fit_csvs: Sequence[PathLike], compute: pl.DataFrame) -> pl.DataFrame:
    """Davidson fits of all comparisons with tokens/FLOPs: one row per (family, size, baseline, ckpt)."""
    nonempty(fit_csvs, "ranking table")
    frames = []
    for path in fit_csvs:
        df = read_csv(path, FIT_COLUMNS).select(FIT_COLUMNS)
        if df.is_empty():
            raise ValueError(f"{path}: no rows")
        for c in df["ckpt"].to_list():
            if variant_of(c) == "raw":
                raise ValueError(f"{path}: ckpt {c!r}: rankings are of merged checkpoints (cNN, base)")
        frames.append(df.with_columns(pl.col(c).cast(pl.Float64) for c in
                                      ("strength", "score", "score_lo", "score_hi", "nu"))
                      .with_columns(pl.col(c).cast(pl.Int64) for c in ("wins", "ties", "losses")))
    df = pl.concat(frames)
    keys = ["family", "size", "baseline", "ckpt"]
    dup = df.filter(pl.struct(keys).is_duplicated())
    if not dup.is_empty():
        raise ValueError(f"ranking table: duplicate rows {dup.select(keys).rows()[:3]}")
    df = join_compute(df, compute, "ranking")
    cols = ["family", "size", "baseline", "baseline_model", "ckpt", "tokens", "flops", "fraction",
            "score", "score_lo", "score_hi", "wins", "ties", "losses", "strength", "nu"]
    return df.select(cols).sort(["family", size_order(df), "baseline", "tokens"])
