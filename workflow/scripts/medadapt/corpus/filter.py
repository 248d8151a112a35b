"""Build FineMed-de: keep docs with score >= threshold, drop exact-duplicate texts, write its table.

Streams every shard window by window, joined with its score file, so only one shard's scores and
the set of kept-text hashes (16 bytes per kept doc) are in memory. Deduplication is global (the
first occurrence in shard order stays), so it runs here, in one job; everything else per document
(characters and tokens per tokenizer family above/below the threshold, skipped documents, score
bins) was counted per shard group by the stats stage, and this stage subtracts the duplicates (it
tokenises only the removed duplicates) to give kept and dropped per shard and in total.

Table (`stats_out`, CSV): a `total` row first, then one row per shard. Kept = score >= threshold and
not a duplicate; dropped = everything else (below the threshold, duplicates, skipped texts).
"""
from __future__ import annotations

import hashlib

import polars as pl

from medadapt.corpus.scores import score_file_of, score_files, scored_windows
from medadapt.corpus.stats import BIN_COLUMNS, SKIP_COLUMNS, count_tokens, load_tokenizers
from medadapt.io import atomic_path, write_table


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def read_shard_stats(stats: list[str]) -> dict[str, dict]:
    """{shard name: its row} from the stats stage's group files."""
    rows = pl.concat([pl.read_parquet(str(p)) for p in stats], how="vertical").to_dicts()
    return {r["shard"]: r for r in rows}


def _table_row(name: str, st: dict, dup: dict, families: list[str], threshold: float) -> dict:
    kept = st["docs_above"] - dup["docs"]
    row = {"shard": name, "docs_total": st["docs"], "docs_kept": kept,
           "kept_fraction": kept / st["docs"] if st["docs"] else 0.0,
           "docs_dropped": st["docs"] - kept, "docs_below_threshold": st["docs_below"],
           "duplicates_removed": dup["docs"], **{c: st[c] for c in SKIP_COLUMNS},
           "chars_kept": st["chars_above"] - dup["chars"],
           "chars_dropped": st["chars_below"] + dup["chars"]}
    for f in families:
        row[f"tokens_kept_{f}"] = st[f"tokens_above_{f}"] - dup[f]
        row[f"tokens_dropped_{f}"] = st[f"tokens_below_{f}"] + dup[f]
    return row | {c: st[c] for c in BIN_COLUMNS} | {"threshold": float(threshold)}


def filter_corpus(shards: list[str], names: list[str], scores: list[str], stats: list[str],
                  tokenizers: list[str], families: list[str], threshold: float, out: str,
                  stats_out: str, batch_size: int = 10_000) -> dict:
    """Stage `corpus_filter`: write `out` (parquet: id, text, shard, score) and `stats_out`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = [str(s) for s in shards]
    files = score_files([str(s) for s in scores])
    shard_rows = read_shard_stats(stats)
    toks = load_tokenizers(tokenizers, families)
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("shard", pa.string()),
                        ("score", pa.float32())])
    seen: set[bytes] = set()
    table = []
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for shard, name in zip(shards, names):
            if name not in shard_rows:
                raise ValueError(f"no statistics for shard '{name}' in {len(stats)} stats file(s)")
            dup = {"docs": 0, "chars": 0, **dict.fromkeys(families, 0)}
            n_docs = n_above = 0
            for df in scored_windows(shard, score_file_of(files, name), batch_size):
                n_docs += df.height
                df = df.filter(pl.col("skip").is_null() & (pl.col("score") >= threshold))
                n_above += df.height
                keep = []
                for text in df["text"].to_list():
                    h = text_hash(text)
                    keep.append(h not in seen)
                    seen.add(h)
                mask = pl.Series(keep, dtype=pl.Boolean)
                dups = df.filter(~mask)["text"].to_list()
                dup["docs"] += len(dups)
                dup["chars"] += sum(map(len, dups))
                for family, tok in toks.items():
                    dup[family] += int(count_tokens(tok, dups).sum())
                df = df.filter(mask).with_columns(pl.lit(name).alias("shard"))
                writer.write_table(df.select("id", "text", "shard", "score").to_arrow().cast(schema))
            st = shard_rows[name]
            if (st["docs"], st["docs_above"]) != (n_docs, n_above):
                raise ValueError(f"statistics of shard '{name}' ({st['docs']} docs, {st['docs_above']} above "
                                 f"the threshold) do not match its scores ({n_docs}, {n_above}): "
                                 "stale corpus_shard_stats output?")
            table.append(_table_row(name, st, dup, families, threshold))
    per_shard = pl.DataFrame(table)
    sums = per_shard.drop("shard", "kept_fraction", "threshold").sum()
    total = sums.with_columns(pl.lit("total").alias("shard"),
                              (pl.col("docs_kept") / pl.col("docs_total")).fill_nan(0.0).alias("kept_fraction"),
                              pl.lit(float(threshold)).alias("threshold")).select(per_shard.columns)
    result = pl.concat([total, per_shard], how="vertical_relaxed")
    write_table(stats_out, result)
    summary = {k: result.row(0, named=True)[k] for k in ("docs_total", "docs_kept", "duplicates_removed")}
    print(f"[filter] {summary}", flush=True)
    return summary
