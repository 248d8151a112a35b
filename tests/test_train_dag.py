"""The job graph of the demo (`snakemake --dag`): checkpoint k's merge and MCQA depend only on the
training segments up to checkpoint k, so on a cluster they run while later segments train; the
segments form a chain; `snakemake -n --profile profiles/lumi` works where no Slurm is installed."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from workflow_dir import make_workdir, run_snakemake

ROOT = Path(__file__).resolve().parents[1]
# Slurm's client commands: hidden from PATH to stand for a machine without Slurm
SLURM_COMMANDS = {"sacct", "sacctmgr", "salloc", "sattach", "sbatch", "sbcast", "scancel", "scontrol", "scrontab",
                  "sdiag", "sinfo", "sprio", "squeue", "sreport", "srun", "sshare", "sstat", "strigger", "sview"}


def _snakemake(*args, results, env=None):
    """In a working directory of its own beside `results` (tests/workflow_dir.py)."""
    work = make_workdir(Path(results).parent / "work")
    proc = run_snakemake(work, *args, "--config", f"results={results}", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def jobs_for(target: str, tmp_path) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job the demo needs to build `target` from nothing (a dry run)."""
    out = _snakemake("--configfile", "config/demo.yaml", "-n", f"{tmp_path}/results/{target}",
                     results=tmp_path / "results").stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", out):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block.strip())
        if head:
            found = re.search(r"^\s*wildcards: (.*)$", block, flags=re.M)
            pairs = found.group(1).split(", ") if found else []
            jobs.append((head.group(1), dict(p.split("=", 1) for p in pairs)))
    return jobs


@pytest.mark.parametrize("target", ["mcqa/tiny/s/c01.json", "mcqa/tiny/s/raw-c01.json", "models/tiny/s/c01"])
def test_checkpoint_1_is_merged_and_evaluated_after_its_own_segment_only(target, tmp_path):
    jobs = jobs_for(target, tmp_path)
    assert [w["ckpt"] for r, w in jobs if r == "train"] == ["c01"]
    if target != "mcqa/tiny/s/raw-c01.json":
        assert [w["ckpt"] for r, w in jobs if r == "merge"] == ["c01"]


def test_segments_form_a_chain(tmp_path):
    """Checkpoint 2 needs segments 1 and 2; the run's log needs all three, each after the one before."""
    assert sorted(w["ckpt"] for r, w in jobs_for("mcqa/tiny/m/c02.json", tmp_path) if r == "train") == ["c01", "c02"]
    dot = _snakemake("--configfile", "config/demo.yaml", "--dag", "dot", f"{tmp_path}/results/train/tiny/s/checkpoints.csv",
                     results=tmp_path / "results").stdout
    node = {n: label for n, label in re.findall(r'^\s*(\d+)\[label = "([^"]*)"', dot, flags=re.M)}
    edges = {(node[a], node[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)}
    segments = {label for label in node.values() if label.startswith("train\\n")}
    assert segments == {"train\\nckpt: c01", "train\\nckpt: c02", "train\\nckpt: c03"}
    chain = {(a, b) for a, b in edges if a in segments and b in segments}
    assert chain == {("train\\nckpt: c01", "train\\nckpt: c02"), ("train\\nckpt: c02", "train\\nckpt: c03")}
    assert {a for a, b in edges if b == "train_log"} == segments


def test_lumi_profile_dry_run_without_slurm(tmp_path):
    """`snakemake -n --profile profiles/lumi` on a machine with no Slurm commands (and no account set)
    and no container runtime: the GPU rules enter their image themselves (medadapt.cluster), so
    Snakemake looks for neither `apptainer` nor `singularity`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        for exe in Path(d).glob("*") if Path(d).is_dir() else []:
            if exe.name not in (*SLURM_COMMANDS, "apptainer", "singularity") and not (bin_dir / exe.name).exists() \
                    and os.access(exe, os.X_OK):
                (bin_dir / exe.name).symlink_to(exe)
    env = {k: v for k, v in os.environ.items() if k not in ("SBATCH_ACCOUNT", "SLURM_CONF")} | {"PATH": str(bin_dir)}
    probe = subprocess.run(["bash", "-c", "command -v sbatch srun squeue || echo none"], capture_output=True,
                           text=True, env=env)
    assert probe.stdout.strip() == "none"
    out = _snakemake("-n", "--profile", "profiles/lumi", "--quiet", "rules", results=tmp_path / "results",
                     env=env).stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    # the paper grid: 8 runs x 18 segments, each run's log gathered once
    assert (counts["train"], counts["train_log"], counts["merge"]) == ("144", "8", "144")


def test_lumi_profile_renders_gpu_rules_in_their_image(tmp_path):
    """`snakemake -n -p --profile profiles/lumi`: an MCQA job of the amd family and a generation job
    of the nvidia family run their entry script inside their platform's image, entered as training
    enters it (runtime, GPU flag, binds incl. results and caches, cache variables, activation), and
    carry the attempt that stops retries of a deterministic failure."""
    results = tmp_path / "results"
    out = _snakemake("-n", "-p", "--profile", "profiles/lumi", f"{results}/mcqa/qwen3/8b/base.json",
                     f"{results}/generate/qwen2.5/7b/base.jsonl", results=results).stdout
    shells = {m.group(1): m.group(0) for m in re.finditer(r"^.*medadapt-container python \S+ stage (\w+) .*$",
                                                          out, flags=re.M)}
    # the prompts' translation (vLLM, corpus.platform: nvidia) comes along and enters its image too
    assert set(shells) == {"mcqa", "generate", "eval_translate"}, out[-3000:]
    work = results.parent / "work"  # the working directory (_snakemake): the caches' default place
    caches = f'export HF_HOME="{work}/cache/huggingface"; export VLLM_CACHE_ROOT="{work}/cache/vllm"; ' \
             f'export TRITON_CACHE_DIR="{work}/cache/triton"; '
    for rule in shells:
        # the attempt is in the command's environment, not in the params (a rerun trigger)
        assert caches in shells[rule] and "MEDADAPT_ATTEMPT=1 bash -c '" in shells[rule]
        assert '"attempt"' not in shells[rule]
    assert f"medadapt-launch singularity exec --rocm --bind /pfs,/scratch,/projappl,/project,/flash,/appl,{work}," \
           f"{results},{ROOT} containers/medadapt-rocm.sif bash -c '$WITH_CONDA; exec \"$@\"' medadapt-container python " \
           f"{ROOT}/workflow/scripts/medadapt_entry.py stage mcqa " in shells["mcqa"]
    assert 'export MIOPEN_USER_DB_PATH="/tmp/$USER-miopen-cache-$SLURM_JOB_ID-$SLURM_NODEID"' in shells["mcqa"]
    assert f"medadapt-launch apptainer exec --nv --bind {work},{results},{ROOT} containers/medadapt-cuda.sif " \
           f"bash -c 'exec \"$@\"' medadapt-container python {ROOT}/workflow/scripts/medadapt_entry.py stage generate " \
        in shells["generate"]
    assert "medadapt-launch apptainer exec --nv " in shells["eval_translate"]
