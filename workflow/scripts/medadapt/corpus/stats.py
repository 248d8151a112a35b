"""Per-shard statistics of the classified corpus (one job per shard group, beside classification).

For each shard: documents skipped for their text (by reason), documents, characters and tokens per
tokenizer family above and below the threshold, and the score distribution as counts in ten bins of
width 0.1. Everything here adds up across shards, so the filter stage can combine the groups and
subtract exact duplicates (which only it can see, deduplication being global) into the FineMed-de
table. Tokens are counted without special tokens, on the whole text, with each family's source
tokenizer (the one the pack stage uses).
"""
from __future__ import annotations

import os

import numpy as np
import polars as pl

from medadapt.corpus.scores import score_file_of, score_files, scored_windows
from medadapt.corpus.shards import SKIP_REASONS
from medadapt.io import write_table

N_BINS = 10
BIN_COLUMNS = [f"score_{10 * i:02d}_{10 * (i + 1):02d}" for i in range(N_BINS)]  # [0.0, 0.1) ... [0.9, 1.0]
SKIP_COLUMNS = [f"docs_skipped_{r}" for r in SKIP_REASONS]


def score_histogram(scores) -> np.ndarray:
    """Counts per bin [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] (1.0 falls in the last bin).

    Computed in float32, the scores' own precision, so that a stored 0.7 (0.69999999 as float32,
    which `score >= 0.7` also counts as 0.7) lands in [0.7, 0.8)."""
    s = np.asarray(scores, dtype=np.float32) * np.float32(N_BINS)
    return np.bincount(np.minimum(s.astype(np.int64), N_BINS - 1), minlength=N_BINS)


def load_tokenizers(tokenizers: list[str], families: list[str]) -> dict:
    from transformers import AutoTokenizer

    if len(tokenizers) != len(families):
        raise ValueError(f"{len(tokenizers)} tokenizer dirs for {len(families)} families {families}")
    return {f: AutoTokenizer.from_pretrained(str(d)) for f, d in zip(families, tokenizers)}


def count_tokens(tokenizer, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros(0, dtype=np.int64)
    ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))


def _shard_row(shard: str, name: str, score_path: str, toks: dict, threshold: float,
               batch_size: int) -> dict:
    row = {"shard": name, "docs": 0, **dict.fromkeys(SKIP_COLUMNS, 0)}
    for side in ("above", "below"):
        row |= {f"docs_{side}": 0, f"chars_{side}": 0, **{f"tokens_{side}_{f}": 0 for f in toks}}
    hist = np.zeros(N_BINS, dtype=np.int64)
    for df in scored_windows(shard, score_path, batch_size):
        row["docs"] += df.height
        for reason, n in df["skip"].drop_nulls().value_counts().iter_rows():
            row[f"docs_skipped_{reason}"] += n
        df = df.filter(pl.col("skip").is_null())
        hist += score_histogram(df["score"].to_numpy())
        for side, part in (("above", df.filter(pl.col("score") >= threshold)),
                           ("below", df.filter(pl.col("score") < threshold))):
            texts = part["text"].to_list()
            row[f"docs_{side}"] += part.height
            row[f"chars_{side}"] += int(part["text"].str.len_chars().sum() or 0)
            for family, tok in toks.items():
                row[f"tokens_{side}_{family}"] += int(count_tokens(tok, texts).sum())
    return row | dict(zip(BIN_COLUMNS, hist.tolist()))


def shard_stats(shards: list[str], names: list[str], scores: list[str], tokenizers: list[str],
                families: list[str], threshold: float, out: str, threads: int = 1,
                batch_size: int = 10_000) -> dict:
    """Stage `corpus_shard_stats`: write `out` (parquet, one row per shard of the group)."""
    if threads > 1:  # this job tokenises whole documents: use its cores (rayon) for that
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        os.environ["RAYON_RS_NUM_CPUS"] = str(threads)
    toks = load_tokenizers(tokenizers, families)
    files = score_files([str(s) for s in scores])
    rows = []
    for shard, name in zip(map(str, shards), names):
        rows.append(_shard_row(shard, name, score_file_of(files, name), toks, threshold, batch_size))
        print(f"[stats] {name}: {rows[-1]}", flush=True)
    if not rows:
        raise ValueError("corpus_shard_stats: no shards given")
    table = pl.DataFrame(rows)
    write_table(out, table)
    return {"shards": len(rows), "docs": int(table["docs"].sum())}
