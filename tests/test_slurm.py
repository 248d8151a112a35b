"""The Slurm profiles, run for real: a private two-node Slurm (tests/slurm: each node a network
namespace and host name of its own on this machine), the workflow with a profile built from
profiles/lumi, and Slurm's own records of what every job got.

The subset of the demo that runs: two tiny families on the GPU platforms (`nvidia`: one node, two
GPUs, torchrun standalone; `amd`: one GPU per node on two nodes, i.e. the multi-node srun + torchrun
launch, one launcher per node, its workers talking over gloo across the nodes' bridge, on the
nodes' `eth0` as the platform's env says) trained as 3-checkpoint segment chains,
MCQA of checkpoint 1 (a GPU rule per platform), its SLERP merge (a CPU rule) and the packing (a CPU
rule). Compute runs on the CPU inside the GPU allocations (`platforms.*.compute_on_cpu`). The
filtered corpus is given ready (`prebuilt_corpus`, the split-grid setting): the corpus stages are
not what is tested here, and a corpus from another run is exactly what that setting is for.

While it runs, the test interrupts each family's second segment after its first checkpoint exists:
the nvidia one with `scancel` (SIGTERM, then SIGKILL: preemption), the amd one with
`scancel --signal=URG` (what the profile's time-limit warning sends). The profile's retry resumes
from the state each job saved, the first checkpoints survive untouched, the two families' final
checkpoints are equal (same world size), and checkpoints 1 and 2 of the multi-node launch are a
single uninterrupted process's.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from slurm import SlurmCluster

ROOT = Path(__file__).resolve().parents[1]
SMK = [sys.executable, "-m", "snakemake"]
FAMILIES = ("tinyn", "tinya")  # on platforms nvidia / amd
CKPTS = ("c01", "c02", "c03")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="a test Slurm needs root")]


def slurm_config(work: Path, ifname: str) -> dict:
    """config/demo.yaml with its families on the GPU platforms of the test Slurm (whose nodes'
    network interface is `ifname`)."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    tiny = config["families"].pop("tiny")
    small = {"threads": 1, "mem_mb": 1000}
    config["platforms"] = {
        "cpu": {"partition": "cpu", "gpus_per_node": 0, "cpus_per_gpu": 0, "mem_mb_per_gpu": 0,
                "cpu_jobs": {"pack": {"threads": 1, "mem_mb": 3000}, "merge": {"threads": 1, "mem_mb": 3500}}},
        "nvidia": {"partition": "nvidia", "gpus_per_node": 2, "cpus_per_gpu": 1, "mem_mb_per_gpu": 2500,
                   "compute_on_cpu": True, "cpu_jobs": {"train": small, "eval": small}},
        # The multi-node launch: gloo on the nodes' interface (as NCCL_SOCKET_IFNAME=hsn0... on LUMI),
        # and torchrun's own record of its rendezvous (INFO: which launcher got which ranks, and the
        # rendezvous node each resolved inside its job step) in the training log.
        "amd": {"partition": "amd", "gpus_per_node": 1, "cpus_per_gpu": 1, "mem_mb_per_gpu": 3000,
                "compute_on_cpu": True, "cpu_jobs": {"train": small, "eval": small},
                "env": {"GLOO_SOCKET_IFNAME": ifname, "LOGLEVEL": "INFO"}},
    }
    models = {"s": tiny["models"]["s"], "m": tiny["models"]["m"]}
    config["families"] = {
        "tinyn": {"platform": "nvidia", "models": models, "adapt": ["s"], "train_gpus": {"s": 2}},
        "tinya": {"platform": "amd", "models": models, "adapt": ["s"], "train_gpus": {"s": 2}},
        "tinyc": {"platform": "cpu", "models": models, "adapt": ["s"]},  # left out by run_platforms
    }
    config["run_platforms"] = ["nvidia", "amd"]
    config["prebuilt_corpus"] = str(work / "finemed.parquet")
    # Enough steps that a cancel lands mid-segment, and a state saved every few steps in between.
    config["train"]["state"] = {"save_every_steps": 4, "save_every_minutes": 0, "keep": 2}
    # The batch this test's step counts and its single-process reference (per device 4) are made for:
    # 2 GPUs x 4 on the nvidia family, 1 GPU x 4 x 2 accumulation on the amd one.
    config["train"] |= {"effective_batch_size": 8, "per_device_batch_size": 4}
    config["results"] = str(work / "results")
    config["tiny_tokenizer"]["texts"] = [str(ROOT / t) for t in config["tiny_tokenizer"]["texts"]]
    config["corpus"]["shards"]["glob"] = str(ROOT / config["corpus"]["shards"]["glob"])
    config["corpus"]["validation"] = str(ROOT / config["corpus"]["validation"])
    config["generate"]["prompts"] = str(ROOT / config["generate"]["prompts"])
    for block in (config["judge"]["serve"], config["corpus"]["annotator"]["serve"]):
        block["reference"]["facts"] = str(ROOT / block["reference"]["facts"])
    config["mcqa"]["include_path"] = str(ROOT / config["mcqa"]["include_path"])
    config["mcqa"]["limit"] = 4
    return config


def slurm_profile() -> dict:
    """profiles/lumi with what this machine lacks (an account, an accounting database) left out, and
    short status polls. (The profile deploys no software: GPU rules enter the platform's image
    themselves, and the test platforms have none.)"""
    profile = yaml.safe_load((ROOT / "profiles" / "lumi" / "config.yaml").read_text())
    assert "software-deployment-method" not in profile
    profile.pop("slurm-status-command")
    del profile["default-resources"]["slurm_account"]
    profile["default-resources"]["slurm_partition"] = "cpu"
    profile["slurm-init-seconds-before-status-checks"] = 4
    profile["slurm-status-command"] = "squeue"  # no accounting database here (MinJobAge keeps jobs)
    profile["slurm-keep-successful-logs"] = True
    profile["latency-wait"] = 5
    profile["jobs"] = 20
    train = profile["set-resources"]["train"]
    # Two nodes for all jobs: no --exclusive, which would hold both nodes for the two-node training
    # and queue every other job behind it (keep the time-limit warning signal).
    assert train["slurm_extra"] == "'--exclusive --signal=URG@900'"
    train["slurm_extra"] = "'--signal=URG@900'"
    assert "nodes" not in train  # the node count is the config's (platforms, train_gpus)
    return profile


def corpus(path: Path, repeat: int) -> None:
    """The filtered corpus, ready: the demo shards' documents (repeated, for enough training steps)."""
    rows = [json.loads(line) for f in sorted((ROOT / "resources" / "demo" / "corpus").glob("shard-*.jsonl"))
            for line in f.read_text().splitlines() if line.strip()]
    texts = [r["text"] for r in rows] * repeat
    pl.DataFrame({"id": [str(i) for i in range(len(texts))], "text": texts}).write_parquet(path)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """Two nodes; stopped (daemons, namespaces, bridge, /etc/hosts lines) whatever the tests did."""
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), nodes=2).start()
    try:
        yield cluster
    finally:
        try:
            subprocess.run(["scancel", "--quiet", "--user", "root"], env=cluster.env, capture_output=True)
        finally:
            cluster.stop()


def preflight(slurm: SlurmCluster, work: Path, config: dict, **env) -> subprocess.CompletedProcess:
    """`medadapt preflight` on the login node of this Slurm (its scontrol), with the test's profile."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (work / "profile").mkdir(exist_ok=True)
    (work / "profile" / "config.yaml").write_text(yaml.safe_dump(slurm_profile()))
    return subprocess.run([sys.executable, "-m", "medadapt", "preflight", "--configfile", str(work / "config.yaml"),
                           "--profile", str(work / "profile")], cwd=work, env={**slurm.env, **env},
                          capture_output=True, text=True, timeout=300)


def test_preflight_reads_this_slurm_and_names_what_would_fail(slurm, tmp_path):
    """Clean on the config the module's run submits (its jobs fit these nodes); with a training job
    no node can hold, a hub dataset not in the cache and a judge key not set, each is named and the
    exit is non-zero, before any job is submitted."""
    fits = preflight(slurm, tmp_path / "fits", slurm_config(tmp_path / "fits", slurm.ifname))
    assert fits.returncode == 0, fits.stdout + fits.stderr
    assert "no problems found" in fits.stdout
    config = slurm_config(tmp_path / "bad", slurm.ifname)
    config["platforms"]["nvidia"]["cpus_per_gpu"] = 40  # 2 GPUs x 40 = 80 CPUs; a node has 64
    config["mcqa"]["hub_datasets"] = [{"path": "LumiOpen/opengpt-x_mmlux", "name": "anatomy_DE"}]
    del config["judge"]["serve"]
    config["judge"] |= {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "MEDADAPT_TEST_UNSET_KEY"}
    bad = preflight(slurm, tmp_path / "bad", config)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    rows = [line for line in bad.stdout.splitlines() if line.strip()]
    assert any(r.startswith("train tinyn/s") and "80 CPUs" in r and "nvidia" in r for r in rows), bad.stdout
    assert any(r.startswith("mcqa") and "huggingface/datasets is empty" in r for r in rows), bad.stdout
    assert any("$MEDADAPT_TEST_UNSET_KEY is not set" in r for r in rows), bad.stdout
    assert not any(r.startswith("train tinya/s") for r in rows)  # what fits is not reported


def test_two_nodes_each_in_a_namespace_of_its_own(slurm):
    """The cluster the launch is tested on: `srun -N2 --ntasks-per-node=1` runs on both nodes, each a
    host name and address of its own, and a job step there reaches the controller (scontrol: what the
    launch resolves the rendezvous node with) and the other node by name over the bridge."""
    first, second = slurm.nodes
    step = ('echo "$(hostname) $SLURM_NODEID $(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1) '
            f'$(ip -4 -o addr show {slurm.ifname} | tr -s " " | cut -d" " -f4)"')
    out = subprocess.run(["srun", "-N2", "--ntasks-per-node=1", "-p", "amd", "--gres=gpu:1", "bash", "-c", step],
                         env=slurm.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split("\n")[:-1]) == [
        f"{first} 0 {first} {slurm.addresses[first]}/24", f"{second} 1 {first} {slurm.addresses[second]}/24"]
    # a listener on the first node's address, reached from the second node by the first's name: the
    # peer it sees is the second node's address (over the bridge, not loopback)
    client = [*slurm.in_node(second), sys.executable, "-c",
              f"import socket, sys; socket.create_connection(('{first}', int(sys.argv[1])), timeout=10)"]
    server = (f"import socket, subprocess, sys; s = socket.create_server(('{slurm.addresses[first]}', 0)); "
              "c = subprocess.Popen(sys.argv[1:] + [str(s.getsockname()[1])]); peer = s.accept()[1]; "
              "print(peer[0], c.wait())")
    out = subprocess.run([*slurm.in_node(first), sys.executable, "-c", server, *client], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == [slurm.addresses[second], "0"], out.stderr


def targets(results: Path) -> list[str]:
    out = []
    for fam in FAMILIES:
        out += [f"{results}/train/{fam}/s/checkpoints.csv", f"{results}/mcqa/{fam}/s/raw-c01.json",
                f"{results}/models/{fam}/s/c01"]
    return out


class Interrupter(threading.Thread):
    """Interrupts each family's second segment once checkpoint 1 exists and the segment has trained
    past a saved state: the nvidia one with `scancel` (SIGTERM, SIGKILL after KillWait: preemption),
    the amd one (the multi-node launch) with `scancel --signal=URG`, which Slurm delivers like the
    profile's `--signal=URG@900` before a time limit (to every job step, not the batch shell)."""

    HOW = {"tinyn": [], "tinya": ["--signal=URG"]}

    def __init__(self, slurm: SlurmCluster, results: Path):
        super().__init__(daemon=True)
        self.slurm, self.results = slurm, results
        self.done: dict[str, dict] = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and len(self.done) < len(self.HOW):
            for fam in set(self.HOW) - set(self.done):
                first = self.results / "models" / fam / "s" / "raw-c01"
                states = self.results / "train" / fam / "s" / "state"
                running = [j for j in self.slurm.running(f"rule_train_wildcards_{fam}_s_c02")
                           if j["state"] == "RUNNING"]
                if not (first.is_dir() and running and states.is_dir()):
                    continue
                saved = sorted(int(p.name.split("-")[1]) for p in states.glob("checkpoint-*"))
                if saved and saved[-1] > json.loads((first / "training.json").read_text())["step"]:
                    job = running[0]
                    self.done[fam] = {**job, "first_inode": first.stat().st_ino,
                                      "first_mtime": first.stat().st_mtime, "after_state": saved[-1]}
                    subprocess.run(["scancel", *self.HOW[fam], job["id"]], env=self.slurm.env, check=True)
            time.sleep(0.5)


def job_table(slurm: SlurmCluster) -> list[dict]:
    """One row per Slurm job, from Slurm's records: the job completion log and `scontrol show job`."""
    rows = []
    for rec in slurm.jobs():
        job = slurm.show_job(rec["JobId"])
        if not job.get("Comment", "").startswith("rule_"):
            continue  # not the workflow's (the cluster check's srun)
        tres = dict(kv.split("=", 1) for kv in job["TRES"].split(","))
        gpus = job.get("TresPerNode", "").rpartition("gpu:")[2]
        rows.append({"id": int(rec["JobId"]), "job": job["Comment"].removeprefix("rule_"),
                     "partition": rec["Partition"], "nodes": int(rec["NodeCnt"]), "nodelist": rec["NodeList"],
                     "tasks": int(job["NumTasks"]), "gpus": int(gpus or 0),
                     "cpus": int(rec["ProcCnt"]), "mem_mb": int(tres["mem"].rstrip("M")),
                     "time_limit_min": rec["TimeLimit"], "state": rec["JobState"]})
    return sorted(rows, key=lambda r: r["id"])


def print_table(rows: list[dict]) -> None:
    cols = ["job", "partition", "nodes", "nodelist", "tasks", "gpus", "cpus", "mem_mb", "time_limit_min", "state"]
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("\n" + " | ".join(c.ljust(width[c]) for c in cols))
    print("-|-".join("-" * width[c] for c in cols))
    for r in rows:
        print(" | ".join(str(r[c]).ljust(width[c]) for c in cols))


@pytest.fixture(scope="module")
def run(slurm, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    corpus(work / "finemed.parquet", repeat=1)
    (work / "resources").symlink_to(ROOT / "resources")  # the demo MCQA task reads its items from there
    (work / "config.yaml").write_text(yaml.safe_dump(slurm_config(work, slurm.ifname), sort_keys=False))
    (work / "profile").mkdir()
    (work / "profile" / "config.yaml").write_text(yaml.safe_dump(slurm_profile()))
    results = work / "results"
    interrupter = Interrupter(slurm, results)
    interrupter.start()
    start = time.time()
    cmd = [*SMK, "-s", str(ROOT / "Snakefile"), "-d", str(work), "--configfile", str(work / "config.yaml"),
           "--profile", str(work / "profile"), *targets(results)]
    env = {**slurm.env, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    interrupter.stop.set()
    seconds = time.time() - start
    assert proc.returncode == 0, f"{proc.stdout[-5000:]}\n{proc.stderr[-8000:]}"
    return {"work": work, "results": results, "interrupted": interrupter.done, "seconds": seconds,
            "log": proc.stderr, "table": job_table(slurm)}


def test_every_job_got_its_platform_share(run):
    """Slurm's records: partition, nodes, tasks, GPUs, CPUs and memory of every job, as the config's
    platform blocks say (the numbers worked out in slurm_config)."""
    rows = run["table"]
    print_table(rows)
    print(f"workflow wall time: {run['seconds']:.0f} s")
    expect = {  # (partition, nodes, tasks, gpus, cpus, mem_mb)
        "pack_wildcards_tinyn": ("cpu", 1, 1, 0, 1, 3000),
        "pack_wildcards_tinya": ("cpu", 1, 1, 0, 1, 3000),
        "train_wildcards_tinyn": ("nvidia", 1, 1, 2, 2, 5000),   # 2 GPUs x (1 CPU, 2500 MB)
        "train_wildcards_tinya": ("amd", 2, 2, 1, 2, 6000),      # 2 nodes x (1 launcher, 1 GPU, 1 CPU, 3000 MB)
        "mcqa_wildcards_tinyn": ("nvidia", 1, 1, 1, 1, 2500),      # 1 GPU's share
        "mcqa_wildcards_tinya": ("amd", 1, 1, 1, 1, 3000),
        "merge_wildcards_tinyn": ("cpu", 1, 1, 0, 1, 3500),
        "merge_wildcards_tinya": ("cpu", 1, 1, 0, 1, 3500),
    }
    limits = {"pack": "720", "train": "2880", "mcqa": "240", "merge": "120"}  # minutes: rules, profile
    seen = set()
    for row in rows:
        assert row["time_limit_min"] == limits[row["job"].split("_")[0]], row
        key = next(k for k in expect if row["job"].startswith(k))
        assert (row["partition"], row["nodes"], row["tasks"], row["gpus"], row["cpus"], row["mem_mb"]) == \
            expect[key], row
        seen.add(key)
    assert seen == set(expect)
    # 3 segments per family, and for each family the interrupted attempt of segment 2: scancel'ed
    # (nvidia) or stopped by SIGURG, which exits with an error (amd)
    trains = {(r["job"], r["state"]) for r in rows if r["job"].startswith("train_")}
    assert sorted(trains) == sorted({(f"train_wildcards_{f}_s_{c}", "COMPLETED") for f in FAMILIES for c in CKPTS}
                                    | {("train_wildcards_tinyn_s_c02", "CANCELLED"),
                                       ("train_wildcards_tinya_s_c02", "FAILED")})
    assert len([r for r in rows if r["job"].startswith("train_")]) == 8
    assert all(r["state"] == "COMPLETED" for r in rows if not r["job"].startswith("train_"))
    assert run["seconds"] < 600


def test_gpu_jobs_saw_their_gpus(run):
    """Slurm set CUDA_VISIBLE_DEVICES inside every GPU job (the stage logs it), none in CPU jobs."""
    logs = run["results"] / "logs"
    one, two = r"CUDA_VISIBLE_DEVICES=[0-7] ", r"CUDA_VISIBLE_DEVICES=[0-7],[0-7] "
    for fam in FAMILIES:
        for ckpt in CKPTS:  # nvidia: 2 GPUs on the node; amd: 1 GPU per "node" (per launcher)
            assert re.search(two if fam == "tinyn" else one, (logs / "train" / fam / "s" / f"{ckpt}.log").read_text())
        assert re.search(one, (logs / "mcqa" / fam / "s" / "raw-c01.log").read_text())
        assert "no GPU variables" in (logs / "merge" / fam / "s" / "c01.log").read_text()
        assert "no GPU variables" in (logs / "data" / fam / "pack.log").read_text()


WORKER = re.compile(r"\[medadapt\] rule train .*? host=(\S+) rank=(\d+) local_rank=(\d+) group_rank=(\d+) "
                    r"world_size=(\d+) ")


@pytest.mark.parametrize("ckpt", CKPTS)
def test_multi_node_launch_ran_one_launcher_per_node(run, slurm, ckpt):
    """Each segment of the amd family (c02: its retry) ran on both nodes, one torchrun launcher (group
    rank) on each, every launcher with the rendezvous node it resolved inside its job step: the
    allocation's first node. Read from Slurm's record, the workers' first log line (host name and
    torchrun's ranks) and torchrun's own log of its launch configuration and rendezvous."""
    job = next(r for r in reversed(run["table"]) if r["job"] == f"train_wildcards_tinya_s_{ckpt}")
    assert (job["nodes"], job["tasks"], job["state"]) == (2, 2, "COMPLETED"), job
    log = (run["results"] / "logs" / "train" / "tinya" / "s" / f"{ckpt}.log").read_text()
    workers = sorted((int(g), host, int(rank), int(local), int(world)) for host, rank, local, g, world
                     in WORKER.findall(log))
    # group rank 0 on one node and 1 on the other, one worker each (1 GPU per node)
    assert [(g, rank, local, world) for g, _, rank, local, world in workers] == [(0, 0, 0, 2), (1, 1, 0, 2)], log
    assert sorted(host for _, host, *_ in workers) == sorted(slurm.nodes), log
    endpoints = re.findall(r"rdzv_endpoint\s+: (\S+)", log)
    assert len(endpoints) == 2 and len(set(endpoints)) == 1, log
    host, port = endpoints[0].split(":")
    assert host == slurm.nodes[0] and 29500 <= int(port) < 30500
    # torchrun's rendezvous: both launchers in one group of 2, its master the node of group rank 0
    assert re.findall(r"group_world_size=(\d+)", log) == ["2", "2"], log
    assert re.findall(r"master_addr=(\S+)", log) == [workers[0][1]] * 2, log
    record = json.loads((run["results"] / "models" / "tinya" / "s" / f"raw-{ckpt}" / "training.json").read_text())
    assert record["world_size"] == 2 and record["plan"]["world_size"] == 2


@pytest.mark.parametrize("family,signal", [("tinyn", "SIGTERM"), ("tinya", "SIGURG")])
def test_interrupted_training_resumed_and_lost_no_checkpoint(run, family, signal):
    """scancel's SIGTERM (nvidia) or SIGURG (amd, as before a time limit) reached the workers: they saved
    the state at the end of that step and stopped; the retry (a new Slurm job) resumed from it and
    checkpoint 1 was never touched. The run's journal keeps both attempts (Snakemake replaced the
    rule's log for the retry)."""
    hit = run["interrupted"].get(family)
    assert hit, f"the {family} training job was never interrupted"
    first = run["results"] / "models" / family / "s" / "raw-c01"
    assert (first.stat().st_ino, first.stat().st_mtime) == (hit["first_inode"], hit["first_mtime"])
    journal = (run["results"] / "train" / family / "s" / "state" / "journal.log").read_text()
    stopped = re.search(rf"job {hit['id']}: c02: stopped by {signal} at step (\d+)", journal)
    assert stopped, journal
    step = int(stopped.group(1))
    assert step > hit["after_state"]
    assert re.search(rf"job {hit['id']}: state saved at step {step} \({signal}\)", journal)
    resumed = re.findall(rf"job (\d+): c02: steps \d+\.\.\d+, resuming from step {step}\n", journal)
    assert resumed and hit["id"] not in resumed  # by the retry, another Slurm job
    record = json.loads((run["results"] / "models" / family / "s" / "raw-c02" / "training.json").read_text())
    assert record["resumed_from_step"] == step > record["first_step"]
    log_csv = pl.read_csv(run["results"] / "train" / family / "s" / "checkpoints.csv")
    assert log_csv["ckpt"].to_list() == list(CKPTS)


def test_resumed_checkpoints_equal_uninterrupted_and_single_process(run, tmp_path):
    """The cancelled-and-resumed nvidia run (torchrun, 2 workers on one node) ends where the
    SIGURG-stopped and resumed amd run (srun, 2 nodes x 1 worker) does, at every checkpoint; and the
    two-node run's checkpoints 1 and 2 (its resumed segment) are those of one process trained
    without interruption (2 ranks x 4 blocks vs 1 process x 4 x 2 accumulation)."""
    import torch
    from safetensors.torch import load_file

    from medadapt.config import load
    from medadapt.train.trainer import train

    models = run["results"] / "models"
    for ckpt in CKPTS:
        resumed = load_file(models / "tinyn" / "s" / f"raw-{ckpt}" / "model.safetensors")
        launchers = load_file(models / "tinya" / "s" / f"raw-{ckpt}" / "model.safetensors")
        assert resumed.keys() == launchers.keys()
        for name in resumed:
            torch.testing.assert_close(resumed[name], launchers[name], rtol=1e-5, atol=1e-6)
    records = {fam: json.loads((models / fam / "s" / "raw-c02" / "training.json").read_text()) for fam in FAMILIES}
    for key in ("engine", "fsdp"):  # the training engine, where the record names it: the same on both launches
        if key in records["tinya"]:
            assert records["tinya"][key] == records["tinyn"][key], key
    config = load(run["work"] / "config.yaml")
    previous = None
    for ckpt in CKPTS[:2]:
        out = tmp_path / f"single-{ckpt}"
        train(model=str(models / "tinya" / "s" / "base"), packed=str(run["results"] / "data" / "tinya" / "packed"),
              previous=previous, out_dir=str(out), state_dir=str(tmp_path / "state"), ckpt=ckpt,
              train=config["train"], seed=config["seed"], per_device_batch_size=4, world_size=1, device="cpu",
              family="tinya", size="s")
        single = load_file(out / "model.safetensors")
        launchers = load_file(models / "tinya" / "s" / f"raw-{ckpt}" / "model.safetensors")
        assert single.keys() == launchers.keys()
        for name in single:
            torch.testing.assert_close(launchers[name], single[name], rtol=1e-4, atol=1e-5, msg=f"{ckpt} {name}")
        previous = str(out)
