"""Atomic writers: an output appears whole or not at all, so a killed job never leaves half a file."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto `path` (file or directory)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_table(path: str | os.PathLike, df) -> None:
    """Write a polars DataFrame as CSV or parquet, chosen by the file extension."""
    with atomic_path(path) as tmp:
        if str(path).endswith(".parquet"):
            df.write_parquet(tmp)
        elif str(path).endswith(".csv"):
            df.write_csv(tmp)
        else:
            raise ValueError(f"{path}: expected a .csv or .parquet output path")


def write_jsonl(path: str | os.PathLike, rows) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def read_parquet(path: str | os.PathLike, required, what: str):
    """A stage's parquet output; errors name the file, what it should hold and the missing columns."""
    import polars as pl

    try:
        df = pl.read_parquet(path)
    except (OSError, pl.exceptions.ComputeError) as exc:
        raise ValueError(f"{path}: cannot read {what} ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected at least {list(required)}")
    return df


def read_json(path: str | os.PathLike, what: str):
    """A stage's JSON output; an unreadable or malformed file names itself and what it should hold."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read {what} ({exc})") from None
