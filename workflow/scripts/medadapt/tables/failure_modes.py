"""The failure-mode table: language mixing, verbosity, truncation and repetition per checkpoint.

Built from the per-response parquets of the `failure_modes` stage (`medadapt.failure_modes`, where
each measure is defined), one row per (family, size, ckpt) with tokens and FLOPs joined from the
compute table, so each measure can be drawn as a trajectory over training.
"""
from __future__ import annotations

from typing import Sequence

import polars as pl

from medadapt.failure_modes import RESPONSE_COLUMNS, RESPONSE_SCHEMA
from medadapt.tables.common import KEY, PathLike, keyed, size_order, variant_of
from medadapt.tables.compute import join_compute

FAILURE_COLUMNS = ["family", "size", "ckpt", "variant", "tokens", "flops", "fraction", "responses",
                   "mean_tokens", "mean_chars", "tokens_vs_source", "chars_vs_source",
                   "truncated_share", "repetitive_share", "mean_repetition",
                   "sentences_identified", "other_language_share",
                   "responses_other_language_share"]


def failure_index(paths: Sequence[PathLike], keys: Sequence[str]) -> dict[tuple[str, ...], str]:
    """{(family, size, ckpt): path} from the per-response parquets and their keys (same order)."""
    return keyed(paths, keys, KEY, "failure-mode table")


def response_rows(index: dict[tuple[str, ...], str]) -> pl.DataFrame:
    """Every response's row, each file checked to hold the model its key names."""
    frames = []
    for key, path in index.items():
        df = pl.read_parquet(path)
        missing = [c for c in RESPONSE_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        found = df.select(KEY).unique().rows()
        if found != [key]:
            raise ValueError(f"{path}: rows for {found[:3]}, but its key is {'/'.join(key)}")
        frames.append(df.select(RESPONSE_COLUMNS).cast(RESPONSE_SCHEMA))
    if not frames:
        return pl.DataFrame(schema=RESPONSE_SCHEMA)
    return pl.concat(frames)


def failure_table(responses: pl.DataFrame, compute: pl.DataFrame) -> pl.DataFrame:
    """FAILURE_COLUMNS, one row per model.

    tokens_vs_source / chars_vs_source: the model's total length over the source's on the same
    prompts (a ratio of sums: long answers weigh by their length, and an empty source answer does
    not make it infinite). truncated_share, repetitive_share: shares of responses.
    other_language_share: identified sentences not in the target language over all identified
    sentences of the model (pooled); responses_other_language_share: responses with at least one
    such sentence. mean_repetition: over responses with at least n words.
    """
    if responses.is_empty():
        return pl.DataFrame(schema={c: pl.String for c in FAILURE_COLUMNS}).select(FAILURE_COLUMNS)
    identified = pl.col("sentences_identified").sum()
    agg = responses.group_by(KEY).agg(
        responses=pl.len(),
        mean_tokens=pl.col("n_tokens").mean(),
        mean_chars=pl.col("n_chars").mean(),
        tokens_vs_source=pl.col("n_tokens").sum() / pl.col("source_tokens").sum(),
        chars_vs_source=pl.col("n_chars").sum() / pl.col("source_chars").sum(),
        truncated_share=pl.col("truncated").mean(),
        repetitive_share=pl.col("repetitive").mean(),
        mean_repetition=pl.col("repetition").mean(),
        sentences_identified=identified,
        other_language_share=pl.when(identified > 0)
        .then(pl.col("sentences_other").sum() / identified),
        responses_other_language_share=(pl.col("sentences_other") > 0).mean(),
    )
    # An empty source total gives inf or NaN, which says nothing: null.
    agg = agg.with_columns(pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c)
                           for c in ("tokens_vs_source", "chars_vs_source"))
    agg = agg.with_columns(variant=pl.col("ckpt").map_elements(variant_of, return_dtype=pl.String))
    out = join_compute(agg, compute, "failure-mode")
    return out.select(FAILURE_COLUMNS).sort(["family", size_order(out), "tokens"])
