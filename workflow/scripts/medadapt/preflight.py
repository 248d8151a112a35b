"""Before the first submission: does every job of the config's grid fit some node of its partition,
and is what the jobs need there (account, image, container runtime, caches, API keys)?

The jobs are computed from `medadapt.cluster.Cluster` for the config (no Snakemake, no DAG): one per
kind and size - training segments, evaluation (MCQA, generation) per model size, pack and merge per
family, the corpus GPU stages, the corpus filter - with their partition, nodes, CPUs, memory, GPUs
per node and time limit (the profile's `set-resources` runtime, else its `default-resources`, else
the rule's own, RULE_RUNTIMES). The cluster is read from `scontrol show partition -o` and
`scontrol show node -o` (PATH's scontrol). Every problem is one row of a table; any row is a failure.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from medadapt.cluster import Cluster

# The runtime (minutes) a rule declares in rules/*.smk, for a profile that sets none: a dry run
# (`snakemake -n -p`) shows them too; these are the jobs whose limit matters most.
RULE_RUNTIMES = {"train": 2880, "mcqa": 240, "generate": 120, "pack": 720, "merge": 120,
                 "corpus_annotate": 720, "corpus_classifier": 720, "corpus_classify": 240}


@dataclasses.dataclass
class JobSpec:
    rule: str
    what: str  # e.g. "qwen3/8b"
    partition: str
    nodes: int
    cpus: int
    mem_mb: int
    gpus_per_node: int
    minutes: int


@dataclasses.dataclass
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int
    partitions: tuple[str, ...]


@dataclasses.dataclass
class Partition:
    name: str
    max_minutes: int | None  # None: UNLIMITED
    max_nodes: int | None
    total_nodes: int


def grid_jobs(cluster: Cluster, runtime_of) -> list[JobSpec]:
    """One JobSpec per distinct job shape of the grid. `runtime_of(rule)` gives a rule's minutes."""
    config, grid = cluster.config, cluster.grid
    jobs = []

    def add(rule, what, res, gpn, minutes=None):
        jobs.append(JobSpec(rule, what, res["slurm_partition"], res.get("nodes", 1), res["cpus_per_task"],
                            res["mem_mb"], gpn, runtime_of(rule) if minutes is None else minutes))

    for family in grid.families():
        for size in grid.adapted(family):
            add("train", f"{family}/{size}", cluster.resources("train", family, size),
                cluster.gpus_per_node("train", family, size))
        for size in grid.sizes(family):
            res = cluster.resources("eval", family, size)
            for rule in ("mcqa", "generate"):
                add(rule, f"{family}/{size}", res, cluster.gpus_per_node("eval", family, size))
        add("pack", family, cluster.resources("pack", family), 0)
        add("merge", family, cluster.resources("merge", family), 0)
    if not config["prebuilt_corpus"]:
        tp = config["corpus"]["annotator"]["tensor_parallel_size"]
        for rule, gpus in (("corpus_annotate", tp), ("corpus_classifier", 1), ("corpus_classify", 1)):
            res = cluster.corpus_resources(gpus)
            add(rule, "corpus", res, int(res["gres"].split(":")[1]) if res["gres"] else 0)
        add("corpus_filter", "corpus", cluster.filter_resources(), 0,
            minutes=runtime_of("corpus_filter") or cluster.filter_runtime(_shards_mb(config)))
    return jobs


def _shards_mb(config: dict) -> float:
    """The raw corpus's size on disk where it is already fetched (0 before the fetch)."""
    shards = config["corpus"]["shards"]
    root = Path(shards["dir"]) if "dir" in shards else None
    files = list(root.rglob("*.parquet")) if root and root.is_dir() else \
        [Path(p) for p in glob.glob(shards.get("glob", ""))]
    return sum(f.stat().st_size for f in files) / 1e6


# --- reading Slurm ------------------------------------------------------------------------------
def _fields(line: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def parse_minutes(value: str) -> int | None:
    """Slurm's time format ([days-]hours:minutes:seconds, minutes, UNLIMITED) in minutes."""
    if value in ("UNLIMITED", "INFINITE", ""):
        return None
    days, _, rest = value.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return (int(days) if days else 0) * 1440 + h * 60 + m + (1 if s else 0)


def parse_partitions(text: str) -> dict[str, Partition]:
    out = {}
    for line in text.splitlines():
        f = _fields(line)
        if "PartitionName" in f:
            max_nodes = f.get("MaxNodes", "UNLIMITED")
            out[f["PartitionName"]] = Partition(f["PartitionName"], parse_minutes(f.get("MaxTime", "UNLIMITED")),
                                                None if max_nodes == "UNLIMITED" else int(max_nodes),
                                                int(f.get("TotalNodes", "0")))
    return out


def parse_nodes(text: str) -> list[Node]:
    out = []
    for line in text.splitlines():
        f = _fields(line)
        if "NodeName" in f:
            gres = re.search(r"gpu(?::[\w-]+)?:(\d+)", f.get("Gres", ""))
            out.append(Node(f["NodeName"], int(f.get("CPUTot", "0")), int(f.get("RealMemory", "0")),
                            int(gres.group(1)) if gres else 0, tuple(f.get("Partitions", "").split(","))))
    return out


def read_slurm() -> tuple[dict[str, Partition], list[Node]]:
    def run(*args):
        return subprocess.run(["scontrol", "show", *args, "-o"], capture_output=True, text=True, check=True,
                              timeout=60).stdout
    return parse_partitions(run("partition")), parse_nodes(run("node"))


# --- the checks ---------------------------------------------------------------------------------
def job_problems(jobs: list[JobSpec], partitions: dict[str, Partition], nodes: list[Node],
                 default_partition: str | None) -> list[tuple[str, str, str]]:
    """(job, what, problem) for every job that fits no node of its partition."""
    problems = []
    for job in jobs:
        name = job.partition or default_partition
        label = f"{job.rule} {job.what}"
        if not name:
            problems.append((label, "partition", "none set (platform partition or the profile's slurm_partition)"))
            continue
        part = partitions.get(name)
        if part is None:
            problems.append((label, "partition", f"'{name}' does not exist (scontrol show partition)"))
            continue
        members = [n for n in nodes if name in n.partitions]
        fits = [n for n in members if n.cpus >= job.cpus and n.mem_mb >= job.mem_mb and n.gpus >= job.gpus_per_node]
        if not fits:
            best = max(members, key=lambda n: (n.gpus, n.cpus, n.mem_mb), default=None)
            have = f"largest node {best.name}: {best.cpus} CPUs, {best.mem_mb} MB, {best.gpus} GPUs" if best else "no nodes"
            problems.append((label, "size", f"asks {job.cpus} CPUs, {job.mem_mb} MB, {job.gpus_per_node} GPUs per "
                                            f"node; {name}'s {have}"))
        elif len(fits) < job.nodes or (part.max_nodes is not None and job.nodes > part.max_nodes):
            problems.append((label, "nodes", f"asks {job.nodes} nodes; {name} has {len(fits)} that fit"
                                             + (f", allows {part.max_nodes} per job" if part.max_nodes else "")))
        if part.max_minutes is not None and job.minutes > part.max_minutes:
            problems.append((label, "time", f"asks {job.minutes} min; {name} allows {part.max_minutes}"))
    return problems


def environment_problems(cluster: Cluster, profile: dict, jobs: list[JobSpec]) -> list[tuple[str, str, str]]:
    """Account, images and their runtime, hub caches, API keys."""
    config, problems = cluster.config, []
    account = str(profile.get("default-resources", {}).get("slurm_account", ""))
    if "SBATCH_ACCOUNT" in account and not os.environ.get("SBATCH_ACCOUNT"):
        problems.append(("all jobs", "account", "SBATCH_ACCOUNT is not set (the profile charges every job to it)"))
    used = {config["families"][f]["platform"] for f in cluster.grid.families()}
    if not config["prebuilt_corpus"]:
        used.add(config["corpus"]["platform"])
    for name in sorted(used):
        p = config["platforms"][name]
        if not (p["container"] and p["gpus_per_node"]):
            continue
        if not Path(cluster.workdir, p["container"]).is_file():
            problems.append((f"{name} GPU jobs", "image", f"platforms.{name}.container: {p['container']} does not exist "
                                                          "(containers/*.def, README)"))
        if not shutil.which(p["container_runtime"]):
            problems.append((f"{name} GPU jobs", "runtime", f"platforms.{name}.container_runtime: "
                                                            f"'{p['container_runtime']}' is not on PATH"))
    hub = Path(cluster.caches(), "huggingface")
    if config["mcqa"]["hub_datasets"] and not (hub / "datasets").is_dir():
        problems.append(("mcqa", "caches", f"{hub / 'datasets'} is empty: run the download rules on the login "
                                           "node first (snakemake ... --until eval_hub_datasets)"))
    for where, block in _key_blocks(config):
        env = block.get("api_key_env")
        if env and not os.environ.get(env):
            problems.append((where, "API key", f"{where}.api_key_env: ${env} is not set"))
    return problems


def _key_blocks(config: dict) -> list[tuple[str, dict]]:
    """The blocks that call an API with a key: the annotator and the translation (openai backend),
    the judge (without a local server)."""
    out = []
    annotator = config["corpus"]["annotator"]
    if not config["prebuilt_corpus"] and annotator["backend"] == "openai" and not annotator.get("serve"):
        out.append(("corpus.annotator", annotator))
    translate = config["generate"].get("translate")
    if config["generate"]["prompts"] is None and translate and translate["backend"] == "openai":
        out.append(("generate.translate", translate))
    if not config["judge"].get("serve"):
        out.append(("judge", config["judge"]))
    return out


def profile_runtime(profile: dict):
    """A rule's minutes as the profile sets them (set-resources, then default-resources), else the
    rule's own (RULE_RUNTIMES); None where neither knows (corpus_filter: sized from the corpus)."""
    per_rule = profile.get("set-resources", {}) or {}
    default = (profile.get("default-resources", {}) or {}).get("runtime")

    def runtime_of(rule: str) -> int | None:
        if "runtime" in (per_rule.get(rule) or {}):
            return int(per_rule[rule]["runtime"])
        if rule in RULE_RUNTIMES:
            return RULE_RUNTIMES[rule]
        return None if rule == "corpus_filter" else (int(default) if default else None)
    return runtime_of


def format_table(rows: list[tuple[str, str, str]]) -> str:
    head = ("job", "check", "problem")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(2)]
    lines = [f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]}"]
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def preflight(config: dict, profile: dict, workdir: str | None = None) -> tuple[list[JobSpec], list[tuple[str, str, str]]]:
    cluster = Cluster(config, workdir=workdir)
    jobs = grid_jobs(cluster, profile_runtime(profile))
    partitions, nodes = read_slurm()
    default = (profile.get("default-resources", {}) or {}).get("slurm_partition")
    problems = job_problems(jobs, partitions, nodes, str(default).strip("'\"") if default else None)
    return jobs, problems + environment_problems(cluster, profile, jobs)


def load_profile(path: str | Path | None) -> dict[str, Any]:
    import yaml

    if path is None:
        return {}
    file = Path(path) / "config.yaml" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--profile: {file} does not exist")
    return yaml.safe_load(file.read_text()) or {}
