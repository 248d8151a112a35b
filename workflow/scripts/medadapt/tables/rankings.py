"""The rankings table: the Davidson fits of all comparisons, placed on the tokens/FLOPs axes."""
from __future__ import annotations

from typing import Sequence

import polars as pl

from medadapt.tables.common import PathLike, check_unique, read_csvs, size_order, variant_of
from medadapt.tables.compute import join_compute

FIT_COLUMNS = ["family", "size", "baseline", "baseline_model", "ckpt", "wins", "ties", "losses",
               "strength", "score", "score_lo", "score_hi", "nu"]


def ranking_table(fit_csvs: Sequence[PathLike], compute: pl.DataFrame) -> pl.DataFrame:
    """Davidson fits of all comparisons with tokens/FLOPs: one row per (family, size, baseline, ckpt)."""
    frames = []
    for path, df in read_csvs(fit_csvs, FIT_COLUMNS, "ranking table"):
        for c in df["ckpt"].to_list():
            if variant_of(c) == "raw":
                raise ValueError(f"{path}: ckpt {c!r}: rankings are of merged checkpoints (cNN, base)")
        frames.append(df.with_columns(pl.col(c).cast(pl.Float64) for c in
                                      ("strength", "score", "score_lo", "score_hi", "nu"))
                      .with_columns(pl.col(c).cast(pl.Int64) for c in ("wins", "ties", "losses")))
    df = pl.concat(frames)
    check_unique(df, ["family", "size", "baseline", "ckpt"], "ranking table")
    df = join_compute(df, compute, "ranking")
    cols = ["family", "size", "baseline", "baseline_model", "ckpt", "tokens", "flops", "fraction",
            "score", "score_lo", "score_hi", "wins", "ties", "losses", "strength", "nu"]
    return df.select(cols).sort(["family", size_order(df), "baseline", "tokens"])
