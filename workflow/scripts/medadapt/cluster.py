"""Where and how big each job runs: Slurm partition, nodes, GPUs, CPUs, memory, threads, device and
the training launch command, derived from the config's `platforms` and `families` blocks.

A family runs on one platform (`families.<f>.platform` names a block of `platforms`: partition,
optional eval_partition, gpus_per_node, cpus_per_gpu, mem_mb_per_gpu). A job's GPU count comes from
`families.<f>.train_gpus` / `eval_gpus` per size; a size not listed gets one GPU on a GPU platform and
none on a CPU platform. Jobs take whole nodes' shares: CPUs and memory scale with the GPUs per node.
The corpus stages have no family; they run on `corpus.platform`.

Every method takes plain strings (stage, family, size) and returns plain values, so it is tested
without Snakemake (`by_wildcards` wraps them for rules). Stages: "train" and "eval" (MCQA, generation) are GPU stages; "pack" and "merge"
are CPU stages whose size follows the family's platform. Runtimes are the rules' own.

How rules use it (`CLUSTER = Cluster(config)` once, in rules/common.smk):

    rule train:
        threads: lambda wc: CLUSTER.threads("train", wc.family, wc.size)
        resources:
            **CLUSTER.by_wildcards("train"),
            runtime=2880,
        params:
            launcher=lambda wc: CLUSTER.launch_command(wc.family, wc.size, PYTHON),
            omp=lambda wc, threads: CLUSTER.omp_threads(wc.family, wc.size, threads),

    rule mcqa:       threads: lambda wc: CLUSTER.threads("eval", wc.family, wc.size)
                     resources: **CLUSTER.by_wildcards("eval"), runtime=240
                     params: device=lambda wc: CLUSTER.device(wc.family)
    rule pack:       threads: lambda wc: CLUSTER.threads("pack", wc.family)
                     resources: **CLUSTER.by_wildcards("pack"), runtime=720
    rule merge:      threads: lambda wc: CLUSTER.threads("merge", wc.family, wc.size)  (always 1)
                     resources: **CLUSTER.by_wildcards("merge")
    rule corpus_*:   resources: **CLUSTER.corpus_resources(gpus), runtime=...

`by_wildcards(stage)` is `resources(stage, family, size)` with each value a function of the job's
wildcards, as Snakemake's `resources:` wants them.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from medadapt.config import Grid

GPU_STAGES = {"train": "train_gpus", "eval": "eval_gpus"}  # stage -> its per-size GPU-count key
CPU_STAGES = ("pack", "merge")

# Fixed sizes (not config keys). A job on the CPU platform, or with no GPU, still needs a floor.
CPU_THREADS = {"train": 2, "eval": 1}  # GPU stages on a CPU platform
MIN_MEM_MB = 4000                      # GPU stages
CORPUS_MIN_CPUS, CORPUS_MIN_MEM_MB = 2, 8000
# pack (tokenizer processes) and merge (two models in memory): bigger when the family's models are
# GPU-sized, i.e. its platform has GPUs.
CPU_STAGE_SIZE = {"pack": {"threads": (16, 2), "mem_mb": (64000, 4000)},   # (GPU platform, CPU platform)
                  "merge": {"threads": (1, 1), "mem_mb": (64000, 4000)}}
RDZV_PORT = 29500

_KEYS = {"train": ("slurm_partition", "nodes", "gres", "cpus_per_task", "mem_mb", "tasks_per_gpu", "tasks", "mpi"),
         "eval": ("slurm_partition", "nodes", "gres", "cpus_per_task", "mem_mb", "tasks_per_gpu"),
         "pack": ("slurm_partition", "mem_mb"),
         "merge": ("mem_mb",)}


class Cluster:
    """Per-job resources of one (resolved, validated) config."""

    def __init__(self, config: dict):
        self.config = config
        self.grid = Grid(config)

    # --- facts ------------------------------------------------------------------------------------
    def platform(self, family: str) -> dict:
        return self.grid.platform(family)

    def has_gpus(self, family: str) -> bool:
        return bool(self.platform(family)["gpus_per_node"])

    def device(self, family: str) -> str:
        """Where the family's compute runs: "cuda" on a GPU platform (ROCm reports as cuda too)."""
        return "cuda" if self.has_gpus(family) else "cpu"

    def gpus(self, stage: str, family: str, size: str | None = None) -> int:
        """GPUs of the whole job (all nodes); CPU stages have none."""
        if stage in CPU_STAGES:
            return 0
        per_size = self.config["families"][family].get(_gpu_key(stage), {})
        return per_size.get(size, 1 if self.has_gpus(family) else 0)

    def gpus_per_node(self, stage: str, family: str, size: str | None = None) -> int:
        return min(self.gpus(stage, family, size), self.platform(family)["gpus_per_node"])

    def nodes(self, stage: str, family: str, size: str | None = None) -> int:
        per_node = self.platform(family)["gpus_per_node"]
        return max(1, math.ceil(self.gpus(stage, family, size) / per_node)) if per_node else 1

    def partition(self, stage: str, family: str) -> str:
        """GPU stages: the platform's partition (eval: eval_partition when set); CPU stages: the cpu
        platform's. "" lets the profile's default partition apply."""
        if stage in CPU_STAGES:
            return self._cpu_partition()
        p = self.platform(family)
        if stage == "eval" and p.get("eval_partition"):
            return p["eval_partition"]
        return p["partition"] or ""

    # --- what a rule declares ---------------------------------------------------------------------
    def threads(self, stage: str, family: str, size: str | None = None) -> int:
        """A node share on GPU platforms (CPUs per GPU × GPUs per node); fixed counts elsewhere."""
        if stage in CPU_STAGES:
            return self._cpu_stage_size(stage, family, "threads")
        gpn = self.gpus_per_node(stage, family, size)
        if not self.has_gpus(family):
            return CPU_THREADS[stage]
        return max(1, gpn * self.platform(family)["cpus_per_gpu"])

    def resources(self, stage: str, family: str, size: str | None = None) -> dict[str, Any]:
        """Snakemake/Slurm resources of one job (without runtime, which each rule sets)."""
        if stage in CPU_STAGES:
            out = {"slurm_partition": self.partition(stage, family),
                   "mem_mb": self._cpu_stage_size(stage, family, "mem_mb")}
            return {k: out[k] for k in _KEYS[stage]}
        p, gpn = self.platform(family), self.gpus_per_node(stage, family, size)
        out = {"slurm_partition": self.partition(stage, family),
               "nodes": self.nodes(stage, family, size),
               "gres": f"gpu:{gpn}" if gpn else "",
               "cpus_per_task": max(1, gpn * p["cpus_per_gpu"]),
               "mem_mb": max(MIN_MEM_MB, gpn * p["mem_mb_per_gpu"]),
               "tasks_per_gpu": 0}
        if stage == "train":
            # The Slurm plugin wants `tasks` with `mpi`: one launcher task per node, multi-node only.
            nodes = out["nodes"]
            out |= {"tasks": nodes, "mpi": "srun" if nodes > 1 else ""}
        return out

    def by_wildcards(self, stage: str) -> dict[str, Callable[[Any], Any]]:
        """`resources(stage, ...)` as functions of a job's wildcards (`.family`, and `.size` where the
        rule has it), one per key: what Snakemake's `resources:` takes."""
        return {key: _from_wildcards(self, stage, key) for key in _KEYS[stage]}

    def corpus_resources(self, gpus: int) -> dict[str, Any]:
        """Corpus stages have no family: they run on `corpus.platform`, with `gpus` GPUs there."""
        p = self.config["platforms"][self.config["corpus"]["platform"]]
        n = gpus if p["gpus_per_node"] else 0
        return {"slurm_partition": (p.get("eval_partition") or p["partition"] or "") if n else self._cpu_partition(),
                "gres": f"gpu:{n}" if n else "",
                "cpus_per_task": max(CORPUS_MIN_CPUS, n * p["cpus_per_gpu"]),
                "mem_mb": max(CORPUS_MIN_MEM_MB, n * p["mem_mb_per_gpu"]),
                "tasks_per_gpu": 0}

    # --- training launch --------------------------------------------------------------------------
    def omp_threads(self, family: str, size: str, threads: int) -> int:
        """CPU threads per training worker: the job's threads shared among its workers (one per GPU)."""
        return max(1, threads // max(1, self.gpus_per_node("train", family, size)))

    def launch_command(self, family: str, size: str, python: str) -> str:
        """The command prefix that starts training (followed by `-m <module> ...`): the interpreter
        for one process; torchrun with one worker per GPU on one node; srun with one torchrun per node
        (FSDP across nodes, rendezvous on the job's first node) on several."""
        gpus, nodes = self.gpus_per_node("train", family, size), self.nodes("train", family, size)
        if gpus <= 1 and nodes == 1:
            return python
        if nodes == 1:
            return f"{python} -m torch.distributed.run --standalone --nproc-per-node={gpus}"
        return (f"srun --ntasks-per-node=1 {python} -m torch.distributed.run --nnodes={nodes} "
                f"--nproc-per-node={gpus} --rdzv-backend=c10d "
                f"--rdzv-endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):{RDZV_PORT}")

    # --- helpers ----------------------------------------------------------------------------------
    def _cpu_partition(self) -> str:
        """The `cpu` platform's partition; "" (the profile's default) when there is no such platform."""
        return self.config["platforms"].get("cpu", {}).get("partition") or ""

    def _cpu_stage_size(self, stage: str, family: str, what: str) -> int:
        on_gpu, on_cpu = CPU_STAGE_SIZE[stage][what]
        return on_gpu if self.has_gpus(family) else on_cpu


def _gpu_key(stage: str) -> str:
    try:
        return GPU_STAGES[stage]
    except KeyError:
        raise ValueError(f"stage must be one of {[*GPU_STAGES, *CPU_STAGES]}, got {stage!r}") from None


def _from_wildcards(cluster: Cluster, stage: str, key: str) -> Callable[[Any], Any]:
    def value(wildcards):
        return cluster.resources(stage, wildcards.family, getattr(wildcards, "size", None))[key]
    return value
