"""The one adapter between a job and the library: binding by name, logs, provenance, offline mode."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medadapt.io import atomic_path, write_json
from medadapt.runtime import Job, bind, provenance_path, redact, run_job

ROOT = Path(__file__).resolve().parents[1]


def test_run_job_logs_child_processes_and_records_provenance(tmp_path):
    out = tmp_path / "out.json"

    def stage(out: str, n: int, threads: int):
        subprocess.run(["echo", "from a child process"], check=True)
        write_json(out, {"n": n, "omp": os.environ["OMP_NUM_THREADS"], "hub": os.environ["HF_HUB_OFFLINE"]})
        return {"rows": n, "threads": threads}

    job = Job(rule="demo_rule", output={"out": str(out)}, params={"n": 3}, threads=3,
              log=str(tmp_path / "logs" / "x.log"), wildcards={"size": "s"})
    assert run_job(job, stage) == {"rows": 3, "threads": 3}
    assert json.loads(out.read_text()) == {"n": 3, "omp": "3", "hub": "1"}  # threads capped, offline
    log = (tmp_path / "logs" / "x.log").read_text()
    assert "rule demo_rule" in log and "from a child process" in log
    prov = json.loads(provenance_path(str(out)).read_text())
    assert prov["params"] == {"n": 3} and prov["result"] == {"rows": 3, "threads": 3}
    assert prov["output"] == {"out": str(out)} and prov["threads"] == 3
    assert "torch" in prov["versions"] and prov["wildcards"] == {"size": "s"}


def test_fetch_jobs_alone_go_online(tmp_path):
    seen = {}
    run_job(Job(rule="r", params={"online": True}), lambda: seen.update(hub=os.environ["HF_HUB_OFFLINE"]))
    assert seen == {"hub": "0"}


def stage_fn(out: str, shards: list[str], threshold: float, server: str | None, model: str = "m"):
    return locals()


def test_bind_matches_parameters_by_name():
    job = Job(rule="r", input={"shards": "a.parquet", "server": []}, output={"out": "o.csv"},
              params={"threshold": 0.5})
    # one shard becomes a list where the stage takes a list; an empty optional input is None
    assert bind(stage_fn, job) == {"out": "o.csv", "shards": ["a.parquet"], "threshold": 0.5,
                                   "server": None}
    assert stage_fn(**bind(stage_fn, job))["model"] == "m"  # a default stays a default


@pytest.mark.parametrize("job, message", [
    (Job(rule="r", input={"shards": ["a"]}, output={"out": "o"}, params={}),
     "needs 'threshold', which is none of the rule's output"),
    (Job(rule="r", input={"shards": ["a"], "server": []}, output={"out": "o"},
         params={"threshold": 1, "tresh": 2}), "params 'tresh' not taken by stage"),
    (Job(rule="r", input={"out": "x"}, output={"out": "o"}, params={}), "'out' is both an output and a input"),
])
def test_bind_refuses_a_rule_and_stage_that_drifted_apart(job, message):
    with pytest.raises(ValueError, match=message):
        bind(stage_fn, job)


def test_bind_passes_extra_outputs_to_var_keywords():
    def figures(family: str, **outputs):
        return outputs

    job = Job(rule="figures", output={"a": "a.png", "b": "b.png"}, params={"family": "f"})
    assert bind(figures, job) == {"family": "f", "a": "a.png", "b": "b.png"}


def test_stage_cli_runs_a_real_stage_through_the_adapter(tmp_path):
    """`medadapt stage RULE --job JSON` (the shell rules' route) runs the rule's stage function."""
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": 7, "instruction": "Was ist ein EKG?"}\n')
    out, log = tmp_path / "prompts.jsonl", tmp_path / "stage.log"
    job = {"output": {"out": str(out)}, "params": {"source": str(src)}, "threads": 1}
    proc = subprocess.run([sys.executable, str(ROOT / "workflow" / "scripts" / "medadapt_entry.py"),
                           "stage", "eval_prompts", "--job", json.dumps(job), "--log-file", str(log)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == {"id": "7", "instruction": "Was ist ein EKG?"}
    assert "rule eval_prompts" in log.read_text()
    assert json.loads(provenance_path(str(out)).read_text())["stage"] == "medadapt.sources.prepare_prompts"
    bad = subprocess.run([sys.executable, "-m", "medadapt", "stage", "eval_prompts", "--job", "{oops"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "workflow" / "scripts")})
    assert bad.returncode == 2 and "--job is not valid JSON" in bad.stderr


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights").write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_recorded_params_drop_credentials_from_urls():
    params = {"judge": {"base_url": "https://user:s3cret@api.example.org:8443/v1?api-key=s3cret", "model": "m"},
              "paths": ["results/x"]}
    assert redact(params) == {"judge": {"base_url": "https://api.example.org:8443/v1", "model": "m"},
                              "paths": ["results/x"]}


def test_a_failed_job_ends_its_log_with_the_reason(tmp_path):
    def stage():
        print("working")
        raise ValueError("shard-0003.parquet: no 'text' column")

    job = Job(rule="corpus_classify", log=str(tmp_path / "x.log"))
    with pytest.raises(ValueError):
        run_job(job, stage)
    lines = (tmp_path / "x.log").read_text().splitlines()
    assert lines[-1] == "[medadapt] rule corpus_classify failed: ValueError: shard-0003.parquet: no 'text' column"
    assert any(line.startswith("Traceback") for line in lines)  # the traceback is in the log too


# --- the GPUs a job sees ------------------------------------------------------------------------
def _gpu_job(tmp_path, expected):
    return Job(rule="mcqa", resources={"expect_gpus": expected}, log=str(tmp_path / "gpu.log"))


def test_a_gpu_job_must_see_exactly_the_gpus_it_asked_for(tmp_path, monkeypatch):
    """Not >= 1: a 2-GPU job that sees 1 or 3 stops before its stage (tensor parallelism, the batch
    size would not be the config's); with CUDA torch that is retried (a node may be faulty)."""
    import torch

    from medadapt.runtime import DeterministicFailure, check_gpus, is_deterministic

    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.version, "hip", None)
    check_gpus(_gpu_job(tmp_path, 2), device_count=lambda: 2)
    for seen in (1, 3):
        with pytest.raises(RuntimeError, match=rf"given 2 GPU\(s\) per node but sees {seen} .*CUDA 12.4") as err:
            check_gpus(_gpu_job(tmp_path, 2), device_count=lambda: seen)
        assert not is_deterministic(err.value)
    check_gpus(_gpu_job(tmp_path, 0), device_count=lambda: 0)  # no GPU asked: no check
    # torch without GPU support: the wrong software, which every retry would meet again
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(DeterministicFailure, match=r"sees 0 .*built for CPU only.*platforms.<name>.container"):
        check_gpus(_gpu_job(tmp_path, 2), device_count=lambda: 0)


# --- retries ------------------------------------------------------------------------------------
@pytest.mark.parametrize("exc,deterministic", [
    (FileNotFoundError("data/x.parquet"), True),
    (json.JSONDecodeError("bad", "{", 0), True),
    (ValueError("x"), False),  # too broad to tell (a library's transient ValueError is not ours)
    (TimeoutError("server"), False),
    (KeyboardInterrupt(), False),  # SIGINT
    (SystemExit(143), False),  # SIGTERM turned into an exit (time limit, preemption)
    (MemoryError(), False),
])
def test_retry_classification(exc, deterministic):
    from medadapt.config import ConfigError
    from medadapt.runtime import DeterministicFailure, is_deterministic

    assert is_deterministic(exc) is deterministic
    assert is_deterministic(DeterministicFailure("bad data")) and is_deterministic(ConfigError("train.lr"))


def test_a_deterministic_failure_is_not_retried_but_a_signal_is(tmp_path):
    """Attempt 1 fails on a missing file: attempt 2 of the same job stops at once with that message,
    without running the stage. A failure by a signal leaves no marker: its retry runs the stage. A
    new run (attempt 1 again, the user may have fixed it) starts clean."""
    from medadapt.runtime import DeterministicFailure, marker_path

    log = str(tmp_path / "logs" / "job.log")
    ran = []

    def missing():
        ran.append("missing")
        raise FileNotFoundError("corpus.validation: data/labels.jsonl does not exist")

    with pytest.raises(FileNotFoundError):
        run_job(Job(rule="r", log=log, resources={"attempt": 1}), missing)
    assert marker_path(log).exists()
    with pytest.raises(DeterministicFailure, match=r"not retried - attempt 1 failed .*data/labels.jsonl does not exist"):
        run_job(Job(rule="r", log=log, resources={"attempt": 2}), missing)
    assert ran == ["missing"]  # the retry never ran the stage
    assert "deterministic: not retried" in Path(log).read_text().splitlines()[-1]
    # a new run: attempt 1 removes the marker and runs
    run_job(Job(rule="r", log=log, resources={"attempt": 1}), lambda: ran.append("fixed"))
    assert ran == ["missing", "fixed"] and not marker_path(log).exists()

    def killed():
        ran.append("killed")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(Job(rule="r", log=log, resources={"attempt": 1}), killed)
    assert not marker_path(log).exists()
    run_job(Job(rule="r", log=log, resources={"attempt": 2}), lambda: ran.append("resumed"))
    assert ran[-2:] == ["killed", "resumed"]
    # without `attempt` (a profile without retries) nothing is left behind
    with pytest.raises(FileNotFoundError):
        run_job(Job(rule="r", log=log), missing)
    assert not marker_path(log).exists()


def test_stage_cli_exits_3_on_a_deterministic_failure(tmp_path):
    """The shell rules' route: a missing input file is exit status 3 (EXIT_DETERMINISTIC), with the
    reason on stderr and in the log."""
    from medadapt.runtime import EXIT_DETERMINISTIC

    job = {"output": {"out": str(tmp_path / "p.jsonl")}, "params": {"source": str(tmp_path / "none.jsonl")},
           "threads": 1}
    cmd = [sys.executable, str(ROOT / "workflow" / "scripts" / "medadapt_entry.py"),
           "stage", "eval_prompts", "--job", json.dumps(job), "--log-file", str(tmp_path / "l.log")]
    # a shell rule's command sets the attempt in the environment (rules/common.smk)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ | {"MEDADAPT_ATTEMPT": "1"})
    assert proc.returncode == EXIT_DETERMINISTIC == 3
    assert "FileNotFoundError: generate.prompts" in proc.stderr
    assert (tmp_path / "l.log.deterministic-failure").exists()
    retry = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ | {"MEDADAPT_ATTEMPT": "2"})
    assert retry.returncode == 3 and "not retried - attempt 1 failed" in retry.stderr
