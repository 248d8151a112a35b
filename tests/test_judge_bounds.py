"""The judge at scale: one API key serves every judge job, so the workflow bounds the requests in
flight (and the Batch API jobs open) across all of them, as Snakemake global resources the judge jobs
hold, rather than per job (on the paper grid 296 jobs x 16 requests)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medadapt.config import ConfigError, check_grid, resolve

ROOT = Path(__file__).resolve().parents[1]


def demo(**judge) -> dict:
    """The demo with its judge at an endpoint the workflow does not serve (an API)."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    del config["judge"]["serve"]
    config["judge"] |= {"base_url": "http://127.0.0.1:9/v1", "api_key_env": ""} | judge
    return config


def judge_resources(tmp_path: Path, config: dict) -> list[dict]:
    """The resources of each judge job in a dry run of `config` (in a directory of the test's own)."""
    config["results"] = str(tmp_path / "results")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "resources").symlink_to(ROOT / "resources")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d",
                           str(tmp_path), "--configfile", str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = re.split(r"\n\s*rule ", proc.stdout)
    found = []
    for block in blocks:
        if block.startswith("judge:"):
            line = re.search(r"resources: (.*)", block).group(1)
            found.append(dict(kv.split("=", 1) for kv in line.split(", ")))
    assert found, "no judge job in the dry run"
    return found


def test_each_online_judge_job_holds_its_concurrency(tmp_path):
    for res in judge_resources(tmp_path, demo(max_concurrency=6)):
        assert (res["judge_requests"], res["judge_batches"]) == ("6", "0")


def test_each_batch_judge_job_holds_one_open_batch(tmp_path):
    for res in judge_resources(tmp_path, demo(batch=True)):
        assert (res["judge_requests"], res["judge_batches"]) == ("0", "1")


def test_a_served_judge_bounds_its_own_load(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())  # the stand-in, one group
    for res in judge_resources(tmp_path, config):
        assert (res["judge_requests"], res["judge_batches"]) == ("0", "0")


def test_one_job_may_not_ask_for_more_than_all_together():
    with pytest.raises(ConfigError, match="judge.max_concurrency: 32 .* judge.max_requests_in_flight 16"):
        resolve(demo(max_concurrency=32, max_requests_in_flight=16))
    check_grid(resolve(demo(max_concurrency=16, max_requests_in_flight=16)))
    check_grid(resolve(demo(max_concurrency=32, max_requests_in_flight=16, batch=True)))  # no requests then
