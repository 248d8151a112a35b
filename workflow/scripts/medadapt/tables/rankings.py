"""The rankings table: the Davidson fits of all comparisons, placed on the tokens/FLOPs axes."""
from __future__ import annotations

from typing import Sequence

import polars as pl

from medadapt.fit import FIT_COLUMNS
from medadapt.tables.common import PathLike, check_unique, read_csvs, size_order, variant_of
from medadapt.tables.compute import join_compute

FLOATS = ("strength", "score", "score_lo", "score_hi", "expected_score", "expected_score_lo",
          "expected_score_hi", "nu", "gamma", "position_consistency")
INTS = ("games", "valid", "invalid", "prompts", "prompts_dropped", "wins", "ties", "losses")
RANKING_COLUMNS = ["family", "size", "baseline", "baseline_model", "ckpt", "tokens", "flops",
                   "fraction", "score", "score_lo", "score_hi", "expected_score", "expected_score_lo",
                   "expected_score_hi", "wins", "ties", "losses", "games", "valid", "invalid",
                   "prompts", "prompts_dropped", "fitted", "strength", "nu", "gamma",
                   "position_consistency", "degenerate", "status"]


def ranking_table(fit_csvs: Sequence[PathLike], compute: pl.DataFrame) -> pl.DataFrame:
    """Davidson fits of all comparisons with tokens/FLOPs: one row per (family, size, baseline, ckpt).

    `score` is the strength share (the figures' number), `expected_score` (W + T/2)/n; the counts
    say how many games the judge returned, how many had a valid verdict and how many prompts the
    fit dropped; `fitted` is false for the source's own point against itself (0.5, not a game).
    """
    frames = []
    for path, df in read_csvs(fit_csvs, FIT_COLUMNS, "ranking table"):
        for c in df["ckpt"].to_list():
            if variant_of(c) == "raw":
                raise ValueError(f"{path}: ckpt {c!r}: rankings are of merged checkpoints (cNN, base)")
        frames.append(df.with_columns(pl.col(c).cast(pl.Float64) for c in FLOATS)
                      .with_columns(pl.col(c).cast(pl.Int64) for c in INTS)
                      .with_columns(pl.col(c).cast(pl.Boolean) for c in ("fitted", "degenerate"))
                      .with_columns(pl.col("status").cast(pl.String)))
    df = pl.concat(frames)
    check_unique(df, ["family", "size", "baseline", "ckpt"], "ranking table")
    df = join_compute(df, compute, "ranking")
    return df.select(RANKING_COLUMNS).sort(["family", size_order(df), "baseline", "tokens"])
