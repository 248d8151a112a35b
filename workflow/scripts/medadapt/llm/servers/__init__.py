"""Launchers of local OpenAI-compatible servers, one module per kind (`vllm`), interchangeable for
the client: while a launcher serves, it keeps a marker JSON {base_url, model, pid, ready} at the
path it was given, and consumers find the server through that marker (`wait_for_server_file`).

The marker exists before the server is ready (a Snakemake service job and its consumers start
together, and a consumer whose input is missing fails), so readiness is probed on the server
itself; that also guards against a stale marker of a killed server.
"""
from __future__ import annotations

import json
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


def wait_for_server_file(path: str, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
    """Wait for a server's marker and for the server behind it to answer; return the marker."""
    deadline = time.monotonic() + timeout_s
    while (info := server_info(path)) is None:
        if time.monotonic() > deadline:
            raise LLMError(f"server file: no live server behind {path} within {timeout_s:.0f} s "
                           "(did the server job start?)")
        time.sleep(poll_s)
    return info
