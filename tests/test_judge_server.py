"""The local vLLM server launcher (the judge's Snakemake service job) and judging through it end to end."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from medadapt.config import resolve_block
from medadapt.io import write_jsonl
from medadapt.judge import judge_pair
from medadapt.llm.engine import STRUCTURED_OUTPUTS
from medadapt.llm.servers.vllm import free_port, serve, server_command

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"


def test_server_command_has_the_verified_flags():
    cmd = server_command("/m", "judge", "127.0.0.1", 8011, 512, ["--seed", "1"])
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    flags = dict(zip(cmd[3::2], cmd[4::2]))
    assert cmd.index("--enforce-eager") > 0 and cmd[-2:] == ["--seed", "1"]
    assert flags["--model"] == "/m" and flags["--served-model-name"] == "judge"
    assert flags["--port"] == "8011" and flags["--max-model-len"] == "512"
    assert json.loads(cmd[cmd.index("--structured-outputs-config") + 1]) == \
        {"backend": "xgrammar", "disable_any_whitespace": True} == STRUCTURED_OUTPUTS


def test_free_port_and_missing_model(tmp_path):
    assert 0 < free_port() < 65536
    with pytest.raises(FileNotFoundError, match="no config.json"):
        serve(str(tmp_path), "judge", 0, str(tmp_path / "server.json"), max_model_len=512)
    assert not (tmp_path / "server.json").exists()


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_real_vllm_server_judges_both_orders_and_stops_on_sigterm(tiny_lm, tmp_path):
    marker = tmp_path / "server.json"
    log = open(tmp_path / "server.log", "w")
    cli = [sys.executable, "-m", "medadapt.llm.servers.vllm", "--model", tiny_lm,
           "--served-name", "tiny-judge", "--port", "0", "--max-model-len", "1024",
           "--out", str(marker)]  # the command the Snakemake service rule runs
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SCRIPTS), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(cli, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=env)
    try:
        deadline = time.monotonic() + 180
        info = {}
        while not info.get("ready"):
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "server not ready in 180 s"
            time.sleep(1)
            if marker.exists():  # written at once (ready: false), rewritten when ready
                info = json.loads(marker.read_text())
        assert info["pid"] in _group_members(info["pid"])  # the server leads its own group
        assert info["model"] == "tiny-judge" and info["base_url"].startswith("http://127.0.0.1:")

        rows = [("m1", "Was hilft bei Fieber?", "Viel trinken und ausruhen.", "Ein Arzt."),
                ("m2", "Was ist Metformin?", "Ein Mittel bei Diabetes.", "Ein Antibiotikum.")]
        write_jsonl(tmp_path / "c.jsonl", [{"id": i, "instruction": q, "response": c} for i, q, c, _ in rows])
        write_jsonl(tmp_path / "b.jsonl", [{"id": i, "instruction": q, "response": b} for i, q, _, b in rows])
        judge = resolve_block("judge", {"model": "unused", "base_url": None, "api_key_env": "",
                                        "max_concurrency": 4, "max_retries": 2, "timeout_s": 120,
                                        "temperature": 0.0, "max_tokens": 16})
        args = (str(tmp_path / "c.jsonl"), str(tmp_path / "b.jsonl"), str(tmp_path / "j.parquet"),
                judge, str(tmp_path / "cache"))
        names = {"candidate_name": "tiny/s/c02", "baseline_name": "tiny/s/base"}
        judge_pair(*args, server_file=str(marker), **names)
        df = pl.read_parquet(tmp_path / "j.parquet")
        assert df.height == 4 and set(df["order"]) == {"cand_first", "base_first"}
        assert set(df["winner_raw"].to_list()) <= {"A", "B", "0"}, df["raw"].to_list()
        # guided decoding makes every answer a verdict, read strictly (as the demo's max_tokens allows)
        assert df["outcome"].null_count() == 0 and not df["cache_hit"].any()
        assert set(df["status"]) == {"valid"} and df["attempts"].to_list() == [1] * 4
        assert set(df["judge_model"]) == {"tiny-judge"}
        assert (df["prompt_tokens"] > 0).all()
        assert df["winner"].equals(df["winner_raw"], check_names=False)

        judge_pair(*args, server_file=str(marker), **names)
        again = pl.read_parquet(tmp_path / "j.parquet")
        assert again["cache_hit"].all() and again["winner_raw"].equals(df["winner_raw"])
    finally:
        proc.send_signal(signal.SIGTERM)  # what Snakemake does to a service job
        try:
            rc = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert rc == 0, text[-3000:]
    assert not marker.exists() and "server stopped" in text
    assert _group_members(info["pid"]) == []  # API server and engine core are gone


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_server_that_dies_at_start_is_reported_and_leaves_no_marker(tiny_lm, tmp_path):
    marker = tmp_path / "server.json"
    with pytest.raises(RuntimeError, match="exited with code"):
        serve(tiny_lm, "tiny-judge", 0, str(marker), max_model_len=512, extra_args=["--no-such-flag"],
              ready_timeout=100)
    assert not marker.exists()
