"""Consumers of a local server stop waiting at once when its launcher failed, and say why."""
from __future__ import annotations

import os
import time

import pytest

from medadapt.llm import LLMError
from medadapt.llm.servers import FAILURE_NOTE_SLACK_S, failure_note, wait_for_server_file, write_failure_note


def test_a_failed_server_ends_the_wait_with_its_reason(tmp_path):
    marker = str(tmp_path / "server.json")  # never written: the server died before serving
    write_failure_note(marker, "RuntimeError: vLLM server exited with code 1 before it was ready")
    start = time.monotonic()
    with pytest.raises(LLMError, match="server behind .*server.json failed: RuntimeError: vLLM server exited"):
        wait_for_server_file(marker, timeout_s=600, poll_s=0.05)
    assert time.monotonic() - start < 5


def test_a_stale_failure_note_of_an_earlier_run_is_ignored(tmp_path):
    marker = str(tmp_path / "server.json")
    write_failure_note(marker, "an earlier run's failure")
    old = time.time() - FAILURE_NOTE_SLACK_S - 60
    os.utime(failure_note(marker), (old, old))
    with pytest.raises(LLMError, match="no live server behind"):  # waits out its own timeout instead
        wait_for_server_file(marker, timeout_s=0.3, poll_s=0.05)
