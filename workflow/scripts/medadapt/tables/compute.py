"""The compute table: tokens and FLOPs of every checkpoint, the x axes every other table joins."""
from __future__ import annotations

from typing import Sequence

import polars as pl

from medadapt.tables.common import KEY, PathLike, check_unique, read_csvs, size_order, variant_of

CHECKPOINT_COLUMNS = ["family", "size", "ckpt", "step", "fraction", "tokens", "flops", "train_loss"]


def compute_table(checkpoint_csvs: Sequence[PathLike]) -> pl.DataFrame:
    """All checkpoints.csv rows plus one `base` row per (family, size) at 0 tokens / 0 FLOPs.

    Every trajectory starts at the source model itself, so the base row is the origin of each curve.
    """
    frames = []
    for path, df in read_csvs(checkpoint_csvs, CHECKPOINT_COLUMNS, "compute table"):
        bad = [c for c in df["ckpt"].to_list() if variant_of(c) != "merged"]
        if bad:
            raise ValueError(f"{path}: column ckpt must hold cNN names, got {bad[:3]}")
        frames.append(df.with_columns(pl.col("train_loss").cast(pl.Float64)))
    ckpts = pl.concat(frames)
    check_unique(ckpts, KEY, "compute table")
    base = (ckpts.select("family", "size").unique()
            .with_columns(ckpt=pl.lit("base"), step=pl.lit(0, pl.Int64), fraction=pl.lit(0.0),
                          tokens=pl.lit(0, pl.Int64), flops=pl.lit(0.0),
                          train_loss=pl.lit(None, pl.Float64)))
    out = pl.concat([base.select(CHECKPOINT_COLUMNS), ckpts])
    return out.sort(["family", size_order(out), "tokens"])


def join_compute(df: pl.DataFrame, compute: pl.DataFrame, what: str) -> pl.DataFrame:
    """Add tokens, flops, fraction to rows keyed by family, size, ckpt (or by `_cpt`, the merged
    checkpoint a row takes its compute from, dropped afterwards)."""
    comp = compute.select("family", "size", pl.col("ckpt").alias("_cpt"), "tokens", "flops",
                          "fraction")
    if "_cpt" not in df.columns:
        df = df.with_columns(_cpt=pl.col("ckpt"))
    out = df.join(comp, on=["family", "size", "_cpt"], how="left")
    # Baseline-only models (never trained) have no compute rows: they sit at the origin.
    is_base = pl.col("ckpt") == "base"
    out = out.with_columns(tokens=pl.when(is_base).then(pl.col("tokens").fill_null(0))
                           .otherwise("tokens"),
                           flops=pl.when(is_base).then(pl.col("flops").fill_null(0.0))
                           .otherwise("flops"),
                           fraction=pl.when(is_base).then(pl.col("fraction").fill_null(0.0))
                           .otherwise("fraction"))
    missing = out.filter(pl.col("tokens").is_null()).select(KEY).unique().sort(KEY).rows()
    if missing:
        raise ValueError(f"{what} table: no compute row (checkpoints.csv) for {missing[:5]}")
    return out.drop("_cpt")
