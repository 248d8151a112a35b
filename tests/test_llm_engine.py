"""The offline engine's CPU defaults and the structured-output setup it shares with the server.

Engine construction itself runs in the slow tests (generation, vLLM annotation, judge server).
"""
from __future__ import annotations

import json

import pytest

from medadapt.llm.engine import CPU_KV_CACHE_BYTES, STRUCTURED_OUTPUTS, eager_default, engine_defaults
from medadapt.llm.servers.vllm import cpu_kv_cache_args, server_command


@pytest.fixture(scope="module")
def on_cpu():
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def test_eager_default(on_cpu):
    assert eager_default(True) is True and eager_default(False) is False
    assert eager_default(None) is on_cpu


def test_cpu_kv_cache_default(monkeypatch, on_cpu):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    expected = {"kv_cache_memory_bytes": CPU_KV_CACHE_BYTES} if on_cpu else {}
    assert engine_defaults(None) == expected == engine_defaults({})
    assert cpu_kv_cache_args(["--seed", "1"]) == ["--seed", "1"] + (
        ["--kv-cache-memory-bytes", str(CPU_KV_CACHE_BYTES)] if on_cpu else [])
    # a caller that sized the cache (either way) is left alone
    assert engine_defaults({"gpu_memory_utilization": 0.5}) == {"gpu_memory_utilization": 0.5}
    assert engine_defaults({"kv_cache_memory_bytes": 7}) == {"kv_cache_memory_bytes": 7}
    assert cpu_kv_cache_args(["--gpu-memory-utilization=0.5"]) == ["--gpu-memory-utilization=0.5"]
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    assert engine_defaults(None) == {} and cpu_kv_cache_args(None) == []


def test_one_structured_output_setup():
    assert STRUCTURED_OUTPUTS == {"backend": "xgrammar", "disable_any_whitespace": True}
    cmd = server_command("/m", "judge", "127.0.0.1", 8011, 512)
    assert json.loads(cmd[cmd.index("--structured-outputs-config") + 1]) == STRUCTURED_OUTPUTS
