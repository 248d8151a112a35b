"""`medadapt preflight` against a recorded cluster: a fake `scontrol` on PATH prints LUMI-like and
DGX-H100-like partitions and nodes, so every check runs without Slurm."""
from __future__ import annotations

import collections
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medadapt.cli import main
from medadapt.cluster import Cluster
from medadapt.config import load, resolve
from medadapt.preflight import (disk_check, grid_jobs, judge_check, judge_estimate, judged_comparisons,
                                parse_minutes, parse_size_label, preflight, profile_runtime,
                                study_footprint, tiny_params)

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
    fake_disk(monkeypatch, free=10e12)  # the paper's study needs ~2.6 TB; a test machine has less
    return work


Usage = collections.namedtuple("Usage", "total used free")


def fake_disk(monkeypatch, free: float) -> list[str]:
    """shutil.disk_usage with `free` bytes free; returns the paths it was asked about."""
    asked = []

    def usage(path):
        asked.append(str(path))
        return Usage(2 * free, free, int(free))
    monkeypatch.setattr("medadapt.preflight.shutil.disk_usage", usage)
    return asked


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
    jobs, problems, report = preflight(copy.deepcopy(paper), lumi_profile(), workdir=str(fake_slurm))
    assert problems == []
    assert any(line.startswith("disk: the study needs about 2633.4 GB") for line in report), report
    assert any(line.startswith("judge: 127872 games (296 comparisons × 216 prompts × 2 orders)") and
               "no price configured" in line for line in report), report
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
    _, problems, _ = preflight(config, profile, workdir=str(fake_slurm))
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


def test_cli_exits_1_with_a_table(paper, fake_slurm, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
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
    assert ["job", "check", "problem"] in [line.split() for line in proc.stdout.splitlines()]
    assert "train qwen3/8b" in proc.stdout and "judge: 127872 games" in proc.stdout
    assert "'standard-x' does not exist" in proc.stdout
    raw["platforms"]["amd"]["partition"] = "standard-g"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    # in-process, so that the fixture's free disk space holds (a subprocess sees the real one)
    os.chdir(fake_slurm)
    assert main(["preflight", "--configfile", str(config), "--profile", str(ROOT / "profiles" / "lumi")]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "disk: the study needs" in out and "judge: 127872 games" in out


def test_runtimes_come_from_the_profile_then_the_rules(paper):
    runtime = profile_runtime(lumi_profile())
    assert runtime("train") == 2880 and runtime("mcqa") == 240 and runtime("tables") == 120
    jobs = grid_jobs(Cluster(copy.deepcopy(paper), workdir="/w"), runtime)
    # the corpus filter's limit grows with the corpus (none fetched under /w: the base 30 min)
    assert next(j for j in jobs if j.rule == "corpus_filter").minutes == 30


# --- the study's footprint and the judge's cost -------------------------------------------------
def one_family(paper, platform="nvidia", **train):
    """The paper's config with one family: 1b (adapted) and 3b, 3 checkpoints."""
    config = copy.deepcopy(paper)
    config["families"] = {"fam": {"platform": platform, "adapt": ["1b"],
                                  "models": {"1b": {"source": "org/m-1b"}, "3b": {"source": "org/m-3b"}}}}
    config["train"] = {"checkpoints": {"count": 3}, **train}
    return resolve(config)


def test_size_labels_and_tiny_shapes_give_parameter_counts():
    assert parse_size_label("0.5b") == 0.5e9 and parse_size_label("7b") == 7e9
    assert parse_size_label("1.7B") == 1.7e9 and parse_size_label("135m") == 135e6
    assert parse_size_label("small") is None and parse_size_label("b") is None
    # counted by hand (and checked once against transformers' Qwen2ForCausalLM): per layer q,o 2×64,
    # q/k/v biases 8+2×8, k,v 2×64, MLP 3×8×16, norms 2×8 = 680; tied embeddings 10×8; final norm 8
    assert tiny_params({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                        "intermediate_size": 16}, vocab_size=10) == 768


def test_study_footprint_known_answers(paper):
    gb = 1e9
    # GPU platform, bf16: raw 3 × 1e9 × 2; merged (bfloat16) 3 × 1e9 × 2; states 2 kept × 1e9 × 12;
    # base models (1b and 3b) in bf16: 4e9 × 2
    assert study_footprint(one_family(paper)) == {"raw checkpoints": 6 * gb, "merged checkpoints": 6 * gb,
                                                  "training states": 24 * gb, "base models": 8 * gb}
    # CPU training saves fp32, a float32 merge too, 1 state kept; packed data: 1e9 tokens × 4 bytes
    config = one_family(paper, platform="cpu", state={"keep": 1})
    config["merge"]["dtype"] = "float32"
    assert study_footprint(config, corpus_tokens=1e9) == {
        "raw checkpoints": 12 * gb, "merged checkpoints": 12 * gb, "training states": 12 * gb,
        "base models": 8 * gb, "packed data": 4 * gb}


def test_disk_fails_when_free_space_is_below_the_footprint(paper, tmp_path, monkeypatch):
    config = one_family(paper)  # 44 GB
    config["results"] = "deep/results"  # not there yet: its nearest existing parent is asked
    asked = fake_disk(monkeypatch, free=40e9)
    rows, lines = disk_check(config, str(tmp_path))
    assert asked == [str(tmp_path)]
    assert rows == [("results", "disk", f"{tmp_path} has 40.0 GB free; the study needs about 44.0 GB (raw "
                     "checkpoints 6.0, merged checkpoints 6.0, training states 24.0, base models 8.0)")]
    assert "packed data not included" in lines[0]
    fake_disk(monkeypatch, free=50e9)
    rows, lines = disk_check(config, str(tmp_path))
    assert rows == [] and lines[0].startswith("disk: the study needs about 44.0 GB") and "50.0 GB free" in lines[0]
    config["families"]["fam"]["models"]["large"] = config["families"]["fam"]["models"].pop("3b")
    _, lines = disk_check(config, str(tmp_path))
    assert any("left out: fam/large" in line for line in lines)


def test_judge_games_tokens_and_cost_known_answers(paper, tmp_path):
    config = one_family(paper)
    # 3 merged checkpoints vs the source; those and the source vs the next-larger model
    assert judged_comparisons(config) == 7 and judged_comparisons(paper) == 296
    config["generate"].update(max_tokens=100, expected_count=10)
    config["judge"].update(max_tokens=10, prices_per_mtok={"input": 1.0, "output": 10.0}, max_cost=0.05)
    # 7 × 10 prompts × 2 orders = 140 games; in (2 × 100 + 400) × 140, out 10 × 140;
    # (84000 × 1 + 1400 × 10) / 1e6 USD
    est = judge_estimate(config, prompts=10)
    assert est == {"games": 140, "input_tokens": 84000, "output_tokens": 1400, "cost": pytest.approx(0.098)}
    rows, _ = judge_check(config, str(tmp_path))
    assert rows == [("judge", "cost", "about 0.10 USD (140 games, online) exceeds judge.max_cost 0.05 USD")]
    config["judge"]["batch"] = True  # half price: 0.049
    rows, lines = judge_check(config, str(tmp_path))
    assert rows == [] and "about 0.05 USD (Batch API), within judge.max_cost 0.05 USD" in lines[0]
    # the prompt file's lines count where it exists; no price: games and tokens, not a failure
    (tmp_path / "prompts.jsonl").write_text('{"id": 1}\n{"id": 2}\n\n')
    config["generate"]["prompts"] = "prompts.jsonl"
    config["judge"]["prices_per_mtok"] = None
    rows, lines = judge_check(config, str(tmp_path))
    assert rows == [] and lines[0].startswith("judge: 28 games (7 comparisons × 2 prompts × 2 orders)")
    assert "no price configured (judge.prices_per_mtok)" in lines[0] and "max_cost is not checked" in lines[0]
