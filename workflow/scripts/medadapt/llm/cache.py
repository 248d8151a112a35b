"""Content-addressed answer cache: a rerun never pays twice for the same request.

The key is the SHA-256 of the model, the messages and the sampling parameters, so a changed prompt,
template, response or parameter is a different key (no stale reuse). One JSON file per key
(`<dir>/<key[:2]>/<key>.json`), written atomically. Only answers that parsed are stored, and an
entry counts as a hit only if its answer still parses, so a failure is asked again on the next run.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from medadapt.io import write_json


def cache_key(model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    payload = {"model": model, "messages": messages, "params": params}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """`directory` None: a cache that holds nothing (every request is sent)."""

    def __init__(self, directory: str | Path | None):
        self.dir = Path(directory) if directory else None

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str, parse: Callable[[str | None], Any]) -> tuple[dict[str, Any], Any] | None:
        """(entry, parsed value) of a stored answer; None when absent, damaged or unparseable."""
        if self.dir is None:
            return None
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # a damaged entry is a miss; the next put replaces it
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        value = parse(entry.get("raw"))
        return None if value is None else (entry, value)

    def put(self, key: str, entry: dict[str, Any], value: Any) -> None:
        """Store `entry` (with its answer under "raw"), whose answer parsed to `value`."""
        if self.dir is None:
            return
        if value is None:
            raise ValueError("cache: refusing to store an answer that did not parse")
        write_json(self.path(key), {**entry, "key": key})
