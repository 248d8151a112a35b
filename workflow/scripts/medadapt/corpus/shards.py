"""Streaming access to corpus shards: FineWeb-2 parquet files or JSONL files with the same fields.

Nothing here loads a whole shard: row counts come from parquet metadata (or a line count for JSONL),
rows are read batch by batch or row group by row group. Ids are returned as strings everywhere so
that shards, annotations, scores and the human-labelled file join on one type.

Bad text is never dropped silently: a document whose text is missing (null), empty (whitespace only)
or not valid UTF-8 keeps its row, gets text null and a `skip` reason (SKIP_REASONS), which the
classify, stats and filter stages count. A shard without the requested columns, or whose `text` is
neither a string nor bytes, is an error naming the file and the field.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import polars as pl

SUFFIXES = (".parquet", ".jsonl", ".json")


def shard_format(path: str | os.PathLike) -> str:
    name = str(path)
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    raise ValueError(f"{path}: unsupported shard format (expected one of {', '.join(SUFFIXES)})")


def shard_name(path: str | os.PathLike) -> str:
    """The shard's key: its file name without extension (corpus/scores/{shard}.parquet)."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise ValueError(f"{path}: unsupported shard format (expected one of {', '.join(SUFFIXES)})")


def shard_names(shards: Iterable[str]) -> list[str]:
    """Shard keys, checked to be unique (they name the score files)."""
    names = [shard_name(s) for s in shards]
    seen: dict[str, str] = {}
    for name, path in zip(names, shards):
        if name in seen:
            raise ValueError(f"shards {seen[name]} and {path} have the same name '{name}'; "
                             "shard file names must be unique")
        seen[name] = str(path)
    return names


def _parquet(path):
    import pyarrow.parquet as pq

    return pq.ParquetFile(path)


def _check_parquet_columns(pf, path, columns: list[str]) -> None:
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} (found {pf.schema_arrow.names})")


def count_rows(path: str | os.PathLike) -> int:
    """Number of documents: parquet metadata, or non-empty lines of a JSONL file."""
    if shard_format(path) == "parquet":
        return _parquet(path).metadata.num_rows
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


SKIP_REASONS = ("missing", "empty", "invalid_utf8")  # text null / whitespace only / not UTF-8


def _decode(value, path, field: str):
    """One text value: (text or None, skip reason or None). Bytes are decoded as UTF-8."""
    if value is None:
        return None, "missing"
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None, "invalid_utf8"
    if not isinstance(value, str):
        raise ValueError(f"{path}: field '{field}' must be a string, got {type(value).__name__} "
                         f"({str(value)[:40]!r})")
    return (value, None) if value.strip() else (None, "empty")


def text_with_skip(df: pl.DataFrame, path) -> pl.DataFrame:
    """`text` as String (null where skipped) and a `skip` column: null, or one of SKIP_REASONS."""
    col = df["text"]
    if col.dtype == pl.String:  # the normal case: vectorised, no Python object per row
        empty = col.str.strip_chars().str.len_bytes() == 0
        skip = (pl.when(col.is_null()).then(pl.lit("missing"))
                .when(empty).then(pl.lit("empty")).otherwise(pl.lit(None, dtype=pl.String)))
        return df.with_columns(skip.alias("skip")).with_columns(
            pl.when(pl.col("skip").is_null()).then(pl.col("text")).alias("text"))
    if col.dtype not in (pl.Binary, pl.Null):
        raise ValueError(f"{path}: field 'text' must be a string column, got {col.dtype}")
    pairs = [_decode(v, path, "text") for v in col.to_list()]
    return df.with_columns(pl.Series("text", [t for t, _ in pairs], dtype=pl.String),
                           pl.Series("skip", [r for _, r in pairs], dtype=pl.String))


def _frame(columns: list[str], data, path=None) -> pl.DataFrame:
    """A DataFrame with `columns` from a dict of lists or an arrow table/batch; id as string, and
    with `text` requested also a `skip` column (see text_with_skip)."""
    if isinstance(data, dict):
        df = pl.DataFrame({c: data[c] for c in columns}, strict=False)
    else:  # arrow: zero-copy where possible (no Python objects per row)
        import pyarrow as pa

        if "text" in columns and pa.types.is_string(data.schema.field("text").type):
            try:
                df = pl.from_arrow(data).select(columns)
            except pl.exceptions.ComputeError:  # a writer stored bytes that are not UTF-8 as string
                idx = data.schema.get_field_index("text")
                data = data.set_column(idx, "text", data.column(idx).cast(pa.binary(), safe=False))
                df = pl.from_arrow(data).select(columns)
        else:
            df = pl.from_arrow(data).select(columns)
    if "id" in df.columns:
        df = df.with_columns(pl.col("id").cast(pl.String))
    if "text" in df.columns:
        df = text_with_skip(df, path)
    return df


def _jsonl_rows(path) -> Iterator[tuple[int, dict]]:
    """(row index, record) over non-empty lines; errors name the file and line.

    A line that is not valid UTF-8 is still parsed (its id stays usable); its string fields carry
    the undecodable bytes as lone surrogates, and `text` is turned into bytes so that it is counted
    as invalid_utf8 rather than failing the whole shard.
    """
    row = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line, bad = raw.decode("utf-8"), False
            except UnicodeDecodeError:
                line, bad = raw.decode("utf-8", errors="surrogateescape"), True
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object per line")
            if bad and isinstance(rec.get("text"), str):
                rec["text"] = rec["text"].encode("utf-8", errors="surrogateescape")
            yield row, rec
            row += 1


def _pick(path, rec: dict, row: int, columns: list[str]) -> list:
    try:
        return [rec[c] for c in columns]
    except KeyError as exc:
        raise ValueError(f"{path}: row {row} has no field {exc} (expected {columns})") from None


def iter_batches(path: str | os.PathLike, columns: list[str], batch_size: int = 1024
                 ) -> Iterator[pl.DataFrame]:
    """Yield the shard as polars DataFrames of at most `batch_size` rows, in file order (only
    `columns` are read; with `text` among them, a `skip` column is added)."""
    if shard_format(path) == "parquet":
        pf = _parquet(path)
        _check_parquet_columns(pf, path, columns)
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            yield _frame(columns, batch, path)
        return
    data: dict[str, list] = {c: [] for c in columns}
    n = 0
    for row, rec in _jsonl_rows(path):
        for c, v in zip(columns, _pick(path, rec, row, columns)):
            data[c].append(v)
        n += 1
        if n == batch_size:
            yield _jsonl_frame(columns, data, path)
            data, n = {c: [] for c in columns}, 0
    if n:
        yield _jsonl_frame(columns, data, path)


def _jsonl_frame(columns: list[str], data: dict[str, list], path) -> pl.DataFrame:
    """Text values may be str, bytes (invalid UTF-8) or None: decode them before polars sees them,
    keeping each skip reason."""
    if "text" not in data:
        return _frame(columns, data, path)
    pairs = [_decode(v, path, "text") for v in data["text"]]
    df = _frame(columns, {**data, "text": pl.Series([t for t, _ in pairs], dtype=pl.String)}, path)
    return df.with_columns(pl.Series("skip", [r for _, r in pairs], dtype=pl.String))


def read_rows(path: str | os.PathLike, rows: np.ndarray, columns: list[str],
              want_ids: set[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read the rows at positions `rows`, and any rows whose id is in `want_ids`, in one pass.

    Parquet: only row groups that hold a wanted row are read in full (the id column alone is read
    to look for `want_ids`). Returns (rows at `rows`, rows matching `want_ids`), each with a
    `row` column (position in the shard).
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    want = set(want_ids or ())
    drawn, found = [], []
    if shard_format(path) == "parquet":
        pf = _parquet(path)
        _check_parquet_columns(pf, path, columns + ["id"])
        start = 0
        for g in range(pf.metadata.num_row_groups):
            size = pf.metadata.row_group(g).num_rows
            local = rows[(rows >= start) & (rows < start + size)] - start
            hits = np.empty(0, dtype=np.int64)
            if want:
                ids = pf.read_row_group(g, columns=["id"]).column("id").to_pylist()
                hits = np.array([i for i, x in enumerate(ids) if str(x) in want], dtype=np.int64)
            if len(local) or len(hits):
                table = pf.read_row_group(g, columns=columns)
                df = _frame(columns, table, path).with_row_index("row", offset=start)
                df = df.with_columns(pl.col("row").cast(pl.Int64))
                drawn.append(df[local.tolist()])
                found.append(df[hits.tolist()])
            start += size
    else:
        chosen = set(rows.tolist())
        data = {c: [] for c in ["row", *columns]}
        hit = {c: [] for c in ["row", *columns]}
        for row, rec in _jsonl_rows(path):
            is_hit = bool(want) and str(rec.get("id")) in want
            if row in chosen or is_hit:
                values = [row, *_pick(path, rec, row, columns)]
                for target, flag in ((data, row in chosen), (hit, is_hit)):
                    if flag:
                        for c, v in zip(target, values):
                            target[c].append(v)
        drawn.append(_jsonl_frame(["row", *columns], data, path).with_columns(pl.col("row").cast(pl.Int64)))
        found.append(_jsonl_frame(["row", *columns], hit, path).with_columns(pl.col("row").cast(pl.Int64)))
    extra = ["skip"] if "text" in columns else []
    empty = pl.DataFrame(schema={"row": pl.Int64, **{c: pl.String for c in [*columns, *extra]}})
    return (pl.concat(drawn) if drawn else empty, pl.concat(found) if found else empty)


def group_shards(names: list[str], per_job: int) -> dict[str, list[str]]:
    """Shard names cut into consecutive groups of `per_job`, keyed "0000", "0001", ...: one
    classify (and stats) job per group, so a cluster sees len(names) / per_job jobs."""
    starts = range(0, len(names), per_job)
    width = max(4, len(str(max(len(starts) - 1, 0))))
    return {f"{i:0{width}d}": list(names[s:s + per_job]) for i, s in enumerate(starts)}
