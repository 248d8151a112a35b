"""Stratified sample of corpus documents for LLM annotation (paper: 260k docs of FineWeb-2 German).

Each shard contributes in proportion to its row count (largest-remainder rounding, so the sample
has exactly `n` drawn docs); rows are drawn without replacement by one seeded generator, so the
same shards, n and seed give the same sample. The human-labelled validation docs are always
included (is_validation = True), drawn or not, so that LLM labels and classifier scores exist for
them. Drawn documents without usable text (missing, empty, not UTF-8) are left out of the sample
and counted in the stage's summary; a validation document without usable text is an error.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from medadapt.corpus.labels import read_validation
from medadapt.corpus.shards import count_rows, read_rows, shard_names
from medadapt.io import write_table


def allocate(counts: list[int], n: int) -> list[int]:
    """Split n over strata proportionally to `counts` (largest remainder; never above a count)."""
    counts_a = np.asarray(counts, dtype=np.int64)
    total = int(counts_a.sum())
    n = min(int(n), total)
    if n <= 0 or total == 0:
        return [0] * len(counts)
    exact = counts_a * n / total
    alloc = np.floor(exact).astype(np.int64)
    # Ties in the remainder go to the earlier shard (stable sort): deterministic.
    order = np.argsort(-(exact - alloc), kind="stable")
    for i in order[: n - int(alloc.sum())]:
        alloc[i] += 1
    return alloc.tolist()


def stratified_sample(shards: list[str], n: int, seed: int, validation_file: str | None,
                      out: str) -> dict:
    """Write `out` (parquet: id, text, shard, is_validation) and return a summary."""
    shards = [str(s) for s in shards]
    if not shards:
        raise ValueError("stratified_sample: no shards given")
    names = shard_names(shards)
    counts = [count_rows(s) for s in shards]
    alloc = allocate(counts, n)
    want = set(read_validation(validation_file)["id"].to_list()) if validation_file else set()
    rng = np.random.default_rng(seed)
    parts, found_ids, skipped = [], set(), {}
    for path, name, count, k in zip(shards, names, counts, alloc):
        rows = rng.choice(count, size=k, replace=False) if k else np.empty(0, dtype=np.int64)
        drawn, hits = read_rows(path, rows, ["id", "text"], want - found_ids)
        found_ids |= set(hits["id"].to_list())
        docs = pl.concat([drawn, hits]).unique(subset="row", keep="first", maintain_order=True)
        bad = docs.filter(pl.col("skip").is_not_null())
        unusable = bad.filter(pl.col("id").is_in(sorted(want)))
        if unusable.height:
            raise ValueError(f"{validation_file}: validation document(s) {unusable['id'].to_list()[:10]} "
                             f"in {path} have no usable text ({sorted(set(unusable['skip']))})")
        for reason, n_bad in bad["skip"].value_counts().iter_rows():  # counted, not annotated
            skipped[reason] = skipped.get(reason, 0) + n_bad
        docs = docs.filter(pl.col("skip").is_null())
        parts.append(docs.sort("row").select("id", "text", pl.lit(name).alias("shard")))
    missing = sorted(want - found_ids)
    if missing:
        raise ValueError(f"{validation_file}: {len(missing)} validation id(s) not found in the "
                         f"{len(shards)} shard(s): {missing[:10]}")
    sample = pl.concat(parts).with_columns(pl.col("id").is_in(sorted(want)).alias("is_validation"))
    dup = sample.filter(pl.col("id").is_duplicated())["id"].unique().to_list()
    if dup:
        raise ValueError(f"duplicate document ids in the shards: {dup[:10]}")
    write_table(out, sample)
    summary = {"docs_total": int(sum(counts)), "drawn": int(sum(alloc)), "validation": len(want),
               "sample": sample.height, "per_shard": dict(zip(names, alloc)),
               "skipped_text": skipped}
    print(f"[sample] {summary['drawn']} drawn of {summary['docs_total']} docs in {len(shards)} "
          f"shard(s) + {len(want)} validation -> {sample.height} rows; drawn but skipped for their "
          f"text: {skipped or 'none'}", flush=True)
    return summary
