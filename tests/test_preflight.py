"""`medadapt preflight` against a recorded cluster: a fake `scontrol` on PATH prints LUMI-like and
DGX-H100-like partitions and nodes, so every check runs without Slurm."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medadapt.cluster import Cluster
from medadapt.config import load
from medadapt.preflight import grid_jobs, parse_minutes, preflight, profile_runtime

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = """\
PartitionName=standard-g AllowGroups=ALL MaxNodes=1024 MaxTime=2-00:00:00 TotalNodes=8 State=UP
PartitionName=small-g AllowGroups=ALL MaxNodes=4 MaxTime=3-00:00:00 TotalNodes=8 State=UP
PartitionName=small AllowGroups=ALL MaxNodes=4 MaxTime=3-00:00:00 TotalNodes=2 State=UP
PartitionName=gpu-h100 AllowGroups=ALL MaxNodes=UNLIMITED MaxTime=2-00:00:00 TotalNodes=2 State=UP
"""
LUMI_G = "NodeName=nid0050{i:02d} Arch=x86_64 CPUTot=128 RealMemory=491520 Gres=gpu:mi250:8 Partitions=standard-g,small-g State=IDLE"
LUMI_C = "NodeName=nid0010{i:02d} Arch=x86_64 CPUTot=256 RealMemory=229376 Gres=(null) Partitions=small State=IDLE"
DGX = "NodeName=dgx{i:02d} Arch=x86_64 CPUTot=112 RealMemory=2015000 Gres=gpu:h100:8 Partitions=gpu-h100 State=IDLE"
NODES = "\n".join([*(LUMI_G.format(i=i) for i in range(8)), *(LUMI_C.format(i=i) for i in range(2)),
                   *(DGX.format(i=i) for i in range(2))]) + "\n"


@pytest.fixture()
def fake_slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "partition.txt").write_text(PARTITIONS)
    (tmp_path / "node.txt").write_text(NODES)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\n[ "$1" = show ] && exec cat "{tmp_path}/$2.txt"\nexit 1\n')
    scontrol.chmod(0o755)
    for runtime in ("singularity", "apptainer"):
        (bin_dir / runtime).write_text("#!/bin/sh\n")
        (bin_dir / runtime).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    (work / "containers").mkdir(parents=True)
    for image in ("medadapt-rocm.sif", "medadapt-cuda.sif"):
        (work / "containers" / image).write_text("")
    (work / "cache" / "huggingface" / "datasets").mkdir(parents=True)
    monkeypatch.setenv("SBATCH_ACCOUNT", "project_1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return work


@pytest.fixture(scope="module")
def paper():
    return load(ROOT / "config" / "config.yaml")


def lumi_profile():
    import yaml
    return yaml.safe_load((ROOT / "profiles" / "lumi" / "config.yaml").read_text())


def test_slurm_times_in_minutes():
    assert parse_minutes("2-00:00:00") == 2880 and parse_minutes("72:00:00") == 4320
    assert parse_minutes("30") == 30 and parse_minutes("1:30:00") == 90 and parse_minutes("UNLIMITED") is None


def test_the_paper_grid_fits_lumi_and_a_dgx_h100(paper, fake_slurm):
    jobs, problems = preflight(copy.deepcopy(paper), lumi_profile(), workdir=str(fake_slurm))
    assert problems == []
    # every kind of job was checked, the largest training on 8 nodes for 48 h
    assert {j.rule for j in jobs} >= {"train", "mcqa", "generate", "pack", "merge", "corpus_annotate",
                                      "corpus_classifier", "corpus_classify", "corpus_filter"}
    big = next(j for j in jobs if j.rule == "train" and j.what == "qwen3/8b")
    assert (big.partition, big.nodes, big.cpus, big.gpus_per_node, big.minutes) == ("standard-g", 8, 56, 8, 2880)


def test_every_job_that_fits_no_node_is_a_row(paper, fake_slurm):
    """The review's finding: 16 CPUs per H100 asks 128 CPUs of a 112-core node; a missing
    partition, too many nodes, a time limit above the partition's and the environment each show."""
    config = copy.deepcopy(paper)
    config["platforms"]["nvidia"]["cpus_per_gpu"] = 16
    config["platforms"]["cpu"]["partition"] = "cpu"
    config["families"]["qwen3"]["train_gpus"]["8b"] = 128  # 16 nodes of a partition with 8
    profile = lumi_profile()
    profile["set-resources"]["mcqa"] = {"runtime": 5000}
    os.environ.pop("SBATCH_ACCOUNT")
    os.environ.pop("OPENAI_API_KEY")
    (fake_slurm / "containers" / "medadapt-rocm.sif").unlink()
    _, problems = preflight(config, profile, workdir=str(fake_slurm))
    rows = {(job, check): text for job, check, text in problems}
    assert "asks 128 CPUs, 1792000 MB, 8 GPUs per node; gpu-h100's largest node dgx00: 112 CPUs" in \
        rows[("train qwen2.5/7b", "size")]
    assert rows[("pack qwen3", "partition")] == "'cpu' does not exist (scontrol show partition)"
    assert rows[("train qwen3/8b", "nodes")].startswith("asks 16 nodes; standard-g has 8 that fit")
    assert rows[("mcqa qwen3/8b", "time")] == "asks 5000 min; small-g allows 4320"
    assert "SBATCH_ACCOUNT is not set" in rows[("all jobs", "account")]
    assert "containers/medadapt-rocm.sif does not exist" in rows[("amd GPU jobs", "image")]
    assert rows[("judge", "API key")] == "judge.api_key_env: $OPENAI_API_KEY is not set"
    assert ("train qwen3/0.6b", "size") not in rows  # what fits is not reported


def test_cli_exits_1_with_a_table(paper, fake_slurm, tmp_path):
    config = fake_slurm / "c.yaml"
    import yaml
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    raw["platforms"]["amd"]["partition"] = "standard-x"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = os.environ | {"PYTHONPATH": str(ROOT / "workflow" / "scripts")}
    proc = subprocess.run([sys.executable, "-m", "medadapt", "preflight", "--configfile", str(config),
                           "--profile", str(ROOT / "profiles" / "lumi")], cwd=fake_slurm, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "job" in proc.stdout.splitlines()[1] and "train qwen3/8b" in proc.stdout
    assert "'standard-x' does not exist" in proc.stdout
    raw["platforms"]["amd"]["partition"] = "standard-g"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    ok = subprocess.run(proc.args, cwd=fake_slurm, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "no problems found" in ok.stdout, ok.stdout + ok.stderr


def test_runtimes_come_from_the_profile_then_the_rules(paper):
    runtime = profile_runtime(lumi_profile())
    assert runtime("train") == 2880 and runtime("mcqa") == 240 and runtime("tables") == 120
    jobs = grid_jobs(Cluster(copy.deepcopy(paper), workdir="/w"), runtime)
    # the corpus filter's limit grows with the corpus (none fetched under /w: the base 30 min)
    assert next(j for j in jobs if j.rule == "corpus_filter").minutes == 30
