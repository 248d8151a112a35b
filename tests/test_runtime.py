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
