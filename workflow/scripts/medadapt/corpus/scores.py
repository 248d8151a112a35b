"""Reading classifier scores: one checked reader for the stats, filter and validate stages.

A score file is `corpus/scores/group-NNNN/{shard}.parquet` (id, score float32; null where the
document was skipped for its text). Stages find a shard's file by name among the group directories
(or plain files) they are given.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import polars as pl

from medadapt.corpus.shards import iter_batches


def score_files(scores: list[str]) -> dict[str, str]:
    """{shard name: score file} from score files and/or directories of them."""
    found: dict[str, str] = {}
    for entry in map(Path, scores):
        files = sorted(entry.glob("*.parquet")) if entry.is_dir() else [entry]
        for f in files:
            name = f.name.removesuffix(".parquet")
            if name in found:
                raise ValueError(f"two score files for shard '{name}': {found[name]} and {f}")
            found[name] = str(f)
    return found


def score_file_of(files: dict[str, str], name: str) -> str:
    try:
        return files[name]
    except KeyError:
        raise ValueError(f"no score file for shard '{name}' among {len(files)} score file(s) "
                         f"(expected {name}.parquet in a corpus/scores/group-* directory)") from None


def read_scores(path: str) -> pl.DataFrame:
    """A score file (id, score), checked: ids unique, score a probability or null (skipped)."""
    df = pl.read_parquet(path)
    missing = {"id", "score"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)} (found {df.columns})")
    df = df.select(pl.col("id").cast(pl.String), pl.col("score").cast(pl.Float32))
    if df["id"].is_duplicated().any():
        raise ValueError(f"{path}: duplicate ids, e.g. {df.filter(pl.col('id').is_duplicated())['id'][0]}")
    return df


def scored_windows(shard: str, score_path: str, batch_size: int) -> Iterator[pl.DataFrame]:
    """The shard's documents in file order, window by window: id, text, skip, score.

    Every document must have a row in the score file, with a score exactly when its text was not
    skipped; anything else means the score file belongs to another version of the shard."""
    scores = read_scores(score_path).with_columns(pl.lit(True).alias("_scored"))
    n = 0
    for df in iter_batches(shard, ["id", "text"], batch_size=batch_size):
        df = df.join(scores, on="id", how="left", maintain_order="left")
        unscored = df.filter(pl.col("_scored").is_null())["id"]
        if unscored.len():
            raise ValueError(f"{score_path}: no score for document(s) {unscored.head(5).to_list()} of "
                             f"{shard} (stale score file? rerun corpus_classify)")
        stale = df.filter(pl.col("skip").is_null() != pl.col("score").is_not_null())["id"]
        if stale.len():
            raise ValueError(f"{score_path}: score presence does not match the text of document(s) "
                             f"{stale.head(5).to_list()} in {shard} (stale score file?)")
        n += df.height
        yield df.drop("_scored")
    if n != scores.height:
        raise ValueError(f"{score_path}: {scores.height} scores but {shard} has {n} documents "
                         "(stale score file?)")
