"""What every result table shares: the key columns, their dtypes, size ordering, checkpoint
variants, the CSV reader and the (path, key) pairing of stage outputs.

All tables are tidy (one row per observation) and share the keys family, size, ckpt.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, Mapping, Sequence

import polars as pl

PathLike = str | os.PathLike
KEY = ["family", "size", "ckpt"]
# Columns that must stay strings even when they look numeric (a size named "14" stays "14").
STRINGS = {c: pl.String for c in ("family", "size", "next_size", "ckpt", "variant", "task",
                                  "baseline", "baseline_model", "judge_model")}
# FLOPs of a real run (~4e20) overflow Int64: always floats.
NUMBERS = {"tokens": pl.Int64, "flops": pl.Float64, "step": pl.Int64, "fraction": pl.Float64}
_CKPT = re.compile(r"^(?P<raw>raw-)?c(?P<num>\d+)$")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmbt]?)", re.IGNORECASE)
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_WORDS = {w: i for i, ws in enumerate((("xxs", "tiny"), ("xs", "mini"), ("s", "small"),
                                       ("m", "medium", "base"), ("l", "large"), ("xl",), ("xxl",)))
          for w in ws}


def size_key(size: str) -> tuple:
    """Sort key for size labels, small to large: by the parameter count in the label ('0.5b' < '7b'
    < '14b'), else by size words (xs < s < m < l < xl, as the demo's s/m/l), else by name."""
    m = _SIZE.search(str(size))
    if m:
        return (0, float(m.group(1)) * _SCALE[m.group(2).lower()], str(size))
    word = _WORDS.get(str(size).lower())
    return (1, float(word), str(size)) if word is not None else (2, 0.0, str(size))


def sorted_sizes(sizes: Iterable[str]) -> list[str]:
    return sorted(set(sizes), key=size_key)


def size_order(df: pl.DataFrame) -> pl.Expr:
    """Sort expression: the rank of each row's size among the sizes of `df`."""
    ranks = {s: i for i, s in enumerate(sorted_sizes(df["size"].to_list()))}
    return pl.col("size").replace_strict(ranks, return_dtype=pl.Int64)


def variant_of(ckpt: str) -> str:
    """'base' -> base (source/baseline model), 'cNN' -> merged (CPT+SLERP), 'raw-cNN' -> raw CPT."""
    if ckpt == "base":
        return "base"
    m = _CKPT.match(ckpt)
    if not m:
        raise ValueError(f"checkpoint name {ckpt!r}: expected 'base', 'cNN' or 'raw-cNN'")
    return "raw" if m.group("raw") else "merged"


def read_table(path: PathLike) -> pl.DataFrame:
    """Read a table written by this package with the dtypes it was written with."""
    return pl.read_csv(path, schema_overrides={**STRINGS, **NUMBERS}, infer_schema_length=None)


def read_csv(path: PathLike, required: Sequence[str]) -> pl.DataFrame:
    """A stage's CSV output with the shared dtypes; errors name the file and the missing columns."""
    try:
        df = read_table(path)
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise ValueError(f"{path}: cannot read as CSV ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected at least {list(required)}")
    return df


def nonempty(paths: Sequence[PathLike] | Mapping, what: str) -> None:
    if not paths:
        raise ValueError(f"{what}: no input files given")


def read_csvs(paths: Sequence[PathLike], columns: Sequence[str],
              what: str) -> list[tuple[PathLike, pl.DataFrame]]:
    """(path, its `columns`) for each of several stage CSVs, none of them empty."""
    nonempty(paths, what)
    out = []
    for path in paths:
        df = read_csv(path, columns).select(columns)
        if df.is_empty():
            raise ValueError(f"{path}: no rows")
        out.append((path, df))
    return out


def check_unique(df: pl.DataFrame, keys: Sequence[str], what: str) -> None:
    dup = df.filter(pl.struct(keys).is_duplicated())
    if not dup.is_empty():
        raise ValueError(f"{what}: duplicate rows {dup.select(keys).rows()[:3]}")


def keyed(paths: Sequence[PathLike], keys: Sequence[str], fields: Sequence[str],
          what: str) -> dict[tuple[str, ...], str]:
    """Pair stage outputs with the keys the workflow names them by: keys[k] ("a/b/c", one part per
    field) belongs to paths[k]. The workflow knows the keys; a path's layout is not a contract."""
    paths, keys = list(paths), list(keys)
    if len(paths) != len(keys):
        raise ValueError(f"{what}: {len(paths)} file(s) but {len(keys)} key(s); give one "
                         f"\"{'/'.join(fields)}\" key per file, in the same order")
    index: dict[tuple[str, ...], str] = {}
    for path, key in zip(paths, keys):
        parts = tuple(str(key).split("/"))
        if len(parts) != len(fields) or not all(parts):
            raise ValueError(f"{what}: key {key!r} for {path}: expected \"{'/'.join(fields)}\"")
        if parts in index:
            raise ValueError(f"{what}: key {key!r} given twice ({index[parts]} and {path})")
        index[parts] = str(path)
    return index
