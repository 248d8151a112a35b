"""Launchers of local OpenAI-compatible servers, one module per kind (`vllm`), interchangeable for
the client: while a launcher serves, it keeps a marker JSON {base_url, model, pid, ready} at the
path it was given, and consumers find the server through that marker (`wait_for_server_file`).

The marker exists before the server is ready (a Snakemake service job and its consumers start
together, and a consumer whose input is missing fails), so readiness is probed on the server
itself; that also guards against a stale marker of a killed server. A launcher that fails leaves a
note beside the marker (`failure_note`, not a declared output, so Snakemake does not remove it with
the failed job's outputs): consumers then stop waiting at once and report the server's reason
instead of waiting out their timeout.
"""
from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from medadapt.llm import LLMError


def served_models(base_url: str, timeout_s: float = 5.0) -> list[str]:
    """Model names an OpenAI-compatible server lists at GET {base_url}/models."""
    with urllib.request.urlopen(f"{base_url}/models", timeout=timeout_s) as resp:
        return [m.get("id") for m in json.load(resp).get("data", [])]


def server_info(path: str) -> dict[str, Any] | None:
    """The marker's content once the server it names answers and lists its model, else None."""
    try:
        info = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:  # written atomically, so never half-written: it is corrupt
        raise LLMError(f"server file {path} is not valid JSON ({exc.msg})") from None
    for field in ("base_url", "model"):
        if not info.get(field):
            raise LLMError(f"server file {path} lacks field {field!r}")
    try:
        served = served_models(info["base_url"], timeout_s=10)
    except (OSError, ValueError):
        return None
    return info if info["model"] in served else None


# A failure note older than this, relative to the start of the wait, belongs to an earlier run.
FAILURE_NOTE_SLACK_S = 120.0


def failure_note(path: str) -> Path:
    """Where a launcher that failed says why, beside its marker `path`."""
    return Path(f"{path}.failed")


def write_failure_note(path: str, reason: str) -> None:
    from medadapt.io import write_json

    write_json(failure_note(path), {"reason": reason, "pid": os.getpid(), "time": time.time()})


def _server_failed(path: str, since: float) -> str | None:
    note = failure_note(path)
    try:
        if note.stat().st_mtime < since - FAILURE_NOTE_SLACK_S:
            return None
        return json.loads(note.read_text()).get("reason", "unknown reason")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def wait_for_server_file(path: str, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
    """Wait for a server's marker and for the server behind it to answer; return the marker.

    Fails at once when the server's launcher left a failure note during this wait."""
    since = time.time()
    deadline = time.monotonic() + timeout_s
    while (info := server_info(path)) is None:
        if (reason := _server_failed(path, since)) is not None:
            raise LLMError(f"the server behind {path} failed: {reason}")
        if time.monotonic() > deadline:
            raise LLMError(f"server file: no live server behind {path} within {timeout_s:.0f} s "
                           "(did the server job start?)")
        time.sleep(poll_s)
    return info
