"""Usage ledger: one appended record per run of paid (or free) requests, JSONL or CSV by suffix.

Parallel jobs append to the same file: an exclusive flock keeps each record whole, and the CSV
header is written only by whoever finds the file empty.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from pathlib import Path
from typing import Any


def append(ledger: str | os.PathLike, record: dict[str, Any]) -> None:
    ledger = str(ledger)
    Path(ledger).parent.mkdir(parents=True, exist_ok=True)
    if ledger.endswith(".csv"):
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=list(record)).writerow(record)
        line = buf.getvalue()
    else:
        line = json.dumps(record, ensure_ascii=False) + "\n"
    with open(ledger, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if ledger.endswith(".csv") and fh.tell() == 0:
                fh.write(",".join(record) + "\n")
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
