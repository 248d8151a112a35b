"""Usage ledger: one record per HTTP answer received, per request that got none, per cache hit.

Records are appended the moment the event happens (an exclusive flock keeps each whole when
parallel jobs share the file, fsync makes it durable), so a run that fails or is killed has still
counted every answer it received: the ledger is the study's record of what was spent, not a
summary a finished run writes.

One JSON object per line (JSONL; `.csv` by suffix writes the same fields with a header), keys in
the order of `FIELDS`:

- kind: "answer" (the server sent an HTTP response: 2xx with usage, or 4xx/5xx), "error" (no
  response: timeout, connection error; a batch line with an error and no response), "cache_hit"
  (the answer came from the cache; nothing was sent);
- time (ISO 8601, UTC), job (the output path of the job that asked), stage ("judge" | "annotate"),
  model, endpoint (host only), key (the request's cache key), attempt (the n-th request sent for
  this key in this run, 1-based; 0 for a cache hit);
- status (HTTP status, or a batch line's status_code; null without a response), valid (2xx: did
  the answer parse; null otherwise), prompt_tokens, completion_tokens (the answer's usage; null
  without), cost_usd (from the configured prices, batch discount applied; null without prices or
  usage), batch (true: a result line of a Batch API output/error file), reason (why an answer was
  invalid or a request failed; null otherwise).

Cache hits carry no tokens and no cost: what they cost was recorded once, when the answer arrived.
"""
from __future__ import annotations

import csv
import datetime
import fcntl
import io
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FIELDS = ("kind", "time", "job", "stage", "model", "endpoint", "key", "attempt", "status", "valid",
          "prompt_tokens", "completion_tokens", "cost_usd", "batch", "reason")
KINDS = ("answer", "error", "cache_hit")
OPENAI_HOST = "api.openai.com"


def endpoint_host(base_url: str | None) -> str:
    """The host of an endpoint URL, without scheme, port, credentials, path or query."""
    if base_url is None:
        return OPENAI_HOST
    return urlsplit(base_url).hostname or ""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def record(kind: str, **fields: Any) -> dict[str, Any]:
    """A record with every field of `FIELDS` (absent ones null, `batch` false), in that order."""
    if kind not in KINDS:
        raise ValueError(f"ledger: kind {kind!r} is not one of {KINDS}")
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"ledger: unknown field(s) {sorted(unknown)}")
    out = {name: fields.get(name) for name in FIELDS}
    out["kind"], out["time"] = kind, fields.get("time") or now()
    out["batch"] = bool(fields.get("batch", False))
    return out


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


def read(ledger: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a JSONL ledger (an absent file: none)."""
    try:
        text = Path(ledger).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
