"""Where and how big each job runs: Slurm partition, nodes, GPUs, CPUs, memory, threads, device and
the training launch command, derived from the config's `platforms` and `families` blocks.

A family runs on one platform (`families.<f>.platform` names a block of `platforms`). A job's GPU
count comes from `families.<f>.train_gpus` / `eval_gpus` per size; a size not listed gets one GPU on a
GPU platform and none on a CPU platform. GPU jobs take whole nodes' shares: CPUs and memory scale with
the GPUs per node (`cpus_per_gpu`, `mem_mb_per_gpu`). Jobs without a GPU take their size from the
platform's `cpu_jobs` block: the CPU stages (pack, merge) run on the `cpu` platform when the config
has one (else on the family's), GPU stages on a platform without GPUs use it, and it is the floor of
GPU jobs. Nothing here is a hard-coded size. The corpus stages have no family: they run on
`corpus.platform`.

Every method takes plain strings (stage, family, size) and returns plain values, so it is tested
without Snakemake (`by_wildcards` wraps them for rules). Stages: "train" and "eval" (MCQA,
generation) are GPU stages; "pack" and "merge" are CPU stages. Runtimes are the rules' own (a profile
overrides them per rule, see the README).

How rules use it (`CLUSTER = Cluster(config)` once, in rules/common.smk):

    rule train:
        threads: lambda wc: CLUSTER.threads("train", wc.family, wc.size)
        resources:
            **CLUSTER.by_wildcards("train"),
            launch=lambda wc: CLUSTER.launch_command(wc.family, wc.size, PYTHON, ENTRY, ...),
    rule mcqa:       threads: lambda wc: CLUSTER.threads("eval", wc.family, wc.size)
                     resources: **CLUSTER.by_wildcards("eval"), runtime=240,
                                entry=lambda wc: CLUSTER.entry_command("eval", wc.family, PYTHON, ENTRY, ...)
                     params: job=stage_job(device=lambda wc: CLUSTER.device(wc.family), ...)
    rule pack:       threads: lambda wc: CLUSTER.threads("pack", wc.family)
                     resources: **CLUSTER.by_wildcards("pack"), runtime=720
    rule corpus_*:   threads: CLUSTER.corpus_threads(gpus)
                     resources: **CLUSTER.corpus_resources(gpus), runtime=...

Every GPU job enters its platform's container the same way (`job_prefix`): the platform's `env`
and the cache variables exported in a shell of its own, then `<container_runtime> exec <GPU flag>
--bind ... <image> bash -c '<container_activate> exec "$@"'`. Training puts it inside its srun step
(`launch_command`); the other GPU rules run `entry_command`, the same prefix before `python ENTRY`.
Snakemake's own apptainer deployment is not used: it calls whichever of apptainer/singularity is on
PATH with one set of arguments for every rule, sets `--home` to the working directory (hiding
~/.cache) and runs `sh -c`, where an image's conda environment cannot be activated.

`by_wildcards(stage)` is `resources(stage, ...)` with each value a function of the job's wildcards,
as Snakemake's `resources:` wants them. Besides Slurm's keys, GPU jobs carry `expect_gpus`: the GPUs
the job must see, which `medadapt.runtime` checks before the stage runs (0: no check).
"""
from __future__ import annotations

import math
import os
import shlex
from typing import Any, Callable

from medadapt.config import ConfigError, Grid

GPU_STAGES = {"train": "train_gpus", "eval": "eval_gpus"}  # stage -> its per-size GPU-count key
CPU_STAGES = ("pack", "merge")
# The rendezvous port of multi-node training: offset by the job id, so two jobs whose first node is
# the same (a shared node, or a test Slurm with one node) do not collide.
RDZV_PORT, RDZV_PORTS = 29500, 1000
# The container runtime's GPU flag when the platform block sets none (container_gpu_flag: null).
GPU_FLAG = {"nvidia": "--nv", "amd": "--rocm"}  # by platform name
# Every cache the jobs fill or read, under the config's `caches` directory: the hub and datasets
# caches (HF_HOME: the fetch rules fill them on a login node, offline jobs read them), vLLM's
# compiled graphs and Triton's kernels. Set for every job, inside containers too.
CACHE_VARS = {"HF_HOME": "huggingface", "VLLM_CACHE_ROOT": "vllm", "TRITON_CACHE_DIR": "triton"}
# Training workers read their GPU's CPU cores from here (set by the launch command, see gpu_cpus).
GPU_CPUS_ENV = "MEDADAPT_GPU_CPUS"

_KEYS = {"train": ("slurm_partition", "nodes", "gres", "cpus_per_task", "mem_mb", "tasks_per_gpu", "tasks", "mpi",
                   "expect_gpus"),
         "eval": ("slurm_partition", "nodes", "gres", "cpus_per_task", "mem_mb", "tasks_per_gpu", "expect_gpus"),
         "pack": ("slurm_partition", "cpus_per_task", "mem_mb"),
         "merge": ("slurm_partition", "cpus_per_task", "mem_mb")}


class Cluster:
    """Per-job resources of one (resolved, validated) config."""

    def __init__(self, config: dict, workdir: str | None = None):
        """`workdir`: the directory relative paths of the config start from (default: the current
        one, as for Snakemake)."""
        self.config = config
        self.workdir = os.path.abspath(workdir or os.getcwd())
        self.grid = Grid(config)
        problems = selection_problems(config)
        if problems:
            raise ConfigError("invalid configuration\n" + "\n".join(f"  {p}" for p in problems))

    # --- facts ------------------------------------------------------------------------------------
    def platform(self, family: str) -> dict:
        return self.grid.platform(family)

    def has_gpus(self, family: str) -> bool:
        return bool(self.platform(family)["gpus_per_node"])

    def device(self, family: str) -> str:
        """Where the family's compute runs: "cuda" on a GPU platform (ROCm reports as cuda too), "cpu"
        on a CPU platform or one whose GPUs are stand-ins (`compute_on_cpu`)."""
        p = self.platform(family)
        return "cuda" if p["gpus_per_node"] and not p["compute_on_cpu"] else "cpu"

    def gpus(self, stage: str, family: str, size: str | None = None) -> int:
        """GPUs of the whole job (all nodes); CPU stages have none."""
        if stage in CPU_STAGES:
            return 0
        per_size = self.config["families"][family].get(_gpu_key(stage), {})
        return per_size.get(size, 1) if self.has_gpus(family) else 0

    def gpus_per_node(self, stage: str, family: str, size: str | None = None) -> int:
        return min(self.gpus(stage, family, size), self.platform(family)["gpus_per_node"])

    def nodes(self, stage: str, family: str, size: str | None = None) -> int:
        per_node = self.platform(family)["gpus_per_node"]
        return max(1, math.ceil(self.gpus(stage, family, size) / per_node)) if per_node else 1

    def partition(self, stage: str, family: str) -> str:
        """GPU stages: the platform's partition (eval: eval_partition when set); CPU stages: the cpu
        platform's. "" lets the profile's default partition apply."""
        if stage in CPU_STAGES:
            return self._cpu_stage_platform(family)["partition"] or ""
        p = self.platform(family)
        if stage == "eval" and p["eval_partition"]:
            return p["eval_partition"]
        return p["partition"] or ""

    # --- what a rule declares ---------------------------------------------------------------------
    def threads(self, stage: str, family: str, size: str | None = None) -> int:
        """A node share on GPU platforms (CPUs per GPU × GPUs per node); the platform's `cpu_jobs`
        size for jobs without a GPU."""
        if stage in CPU_STAGES:
            return self._cpu_stage_platform(family)["cpu_jobs"][stage]["threads"]
        return self.resources(stage, family, size)["cpus_per_task"]

    def resources(self, stage: str, family: str, size: str | None = None) -> dict[str, Any]:
        """Snakemake/Slurm resources of one job (without runtime, which each rule sets)."""
        if stage in CPU_STAGES:
            size_ = self._cpu_stage_platform(family)["cpu_jobs"][stage]
            return {"slurm_partition": self.partition(stage, family), "cpus_per_task": size_["threads"],
                    "mem_mb": size_["mem_mb"]}
        p, gpn = self.platform(family), self.gpus_per_node(stage, family, size)
        floor = p["cpu_jobs"][stage]
        out = {"slurm_partition": self.partition(stage, family),
               "nodes": self.nodes(stage, family, size),
               "gres": f"gpu:{gpn}" if gpn else "",
               "cpus_per_task": max(floor["threads"], gpn * p["cpus_per_gpu"]),
               "mem_mb": max(floor["mem_mb"], gpn * p["mem_mb_per_gpu"]),
               "tasks_per_gpu": 0}
        if stage == "train":
            # Multi-node only: one launcher task per node, started by the rule's own srun (the Slurm
            # plugin runs a job with an `mpi` resource without srun). A single-node job has no `mpi`
            # (None drops the resource), so the plugin starts it in a job step, where Slurm's
            # time-limit warning signal reaches it.
            nodes = out["nodes"]
            out |= {"tasks": nodes, "mpi": "srun" if nodes > 1 else None}
        out["expect_gpus"] = 0 if p["compute_on_cpu"] else gpn
        return out

    def by_wildcards(self, stage: str) -> dict[str, Callable[[Any], Any]]:
        """`resources(stage, ...)` as functions of a job's wildcards (`.family`, and `.size` where the
        rule has it), one per key: what Snakemake's `resources:` takes."""
        return {key: _from_wildcards(self, stage, key) for key in _KEYS[stage]}

    def corpus_resources(self, gpus: int) -> dict[str, Any]:
        """Corpus stages have no family: they run on `corpus.platform`, with `gpus` GPUs there."""
        p = self.config["platforms"][self.config["corpus"]["platform"]]
        n = gpus if p["gpus_per_node"] else 0
        floor = p["cpu_jobs"]["corpus"]
        return {"slurm_partition": (p["eval_partition"] or p["partition"] or "") if n
                else self._cpu_platform(p)["partition"] or "",
                "gres": f"gpu:{n}" if n else "",
                "cpus_per_task": max(floor["threads"], n * p["cpus_per_gpu"]),
                "mem_mb": max(floor["mem_mb"], n * p["mem_mb_per_gpu"]),
                "tasks_per_gpu": 0,
                "expect_gpus": 0 if p["compute_on_cpu"] else n}

    def corpus_threads(self, gpus: int) -> int:
        """Threads of a corpus job: its CPUs (so Snakemake's local scheduling matches Slurm's)."""
        return self.corpus_resources(gpus)["cpus_per_task"]

    def filter_resources(self) -> dict[str, Any]:
        """The corpus filter job (one pass over every shard, on the CPU platform): `corpus.filter`'s
        threads and memory; its time limit is `filter_runtime`."""
        size = self.config["corpus"]["filter"]
        return {"slurm_partition": self.corpus_resources(0)["slurm_partition"],
                "cpus_per_task": size["threads"], "mem_mb": size["mem_mb"]}

    def filter_runtime(self, input_mb: float) -> int:
        """Minutes for the corpus filter to stream `input_mb` of shards: it grows with the corpus
        (FineWeb-2 German is 640 GB), so no fixed limit kills the full run or idles a small one."""
        size = self.config["corpus"]["filter"]
        return size["minutes"] + math.ceil(size["minutes_per_gb"] * input_mb / 1000)

    # --- training launch --------------------------------------------------------------------------
    def train_processes(self, family: str, size: str) -> int:
        """Training processes (one per GPU; one on the CPU)."""
        return max(1, self.gpus("train", family, size))

    def omp_threads(self, family: str, size: str, threads: int) -> int:
        """CPU threads per training worker: the job's threads shared among its workers (one per GPU)."""
        return max(1, threads // max(1, self.gpus_per_node("train", family, size)))

    def launch_command(self, family: str, size: str, python: str, script: str, repo: str | None = None) -> str:
        """The command that starts `script` (followed by its arguments) as the training job. (torchrun
        gets `--` before the script: its option parser would take the script's `--log` for its own
        `--log-dir`/`--logs-specs`.)

        One process: the interpreter. One node with several GPUs: torchrun standalone, one worker
        per GPU. Several nodes: `srun` starts one torchrun per node; each resolves the rendezvous
        endpoint (the allocation's first node) inside its job step, from Slurm's environment there
        (the rule's own shell has no SLURM_JOB_NODELIST under the Slurm plugin). The job prefix (the
        platform's `env`, the caches, its container: `job_prefix`) comes inside the step, so srun
        stays outside the container and `$SLURM_NODEID` etc. are the node's own. In a container the
        interpreter is the image's `python`, else `python`.
        """
        gpus, nodes = self.gpus_per_node("train", family, size), self.nodes("train", family, size)
        workers = 1 if gpus <= 1 and nodes == 1 else gpus
        python = self._python("train", family, python)
        extra = {}
        if self.platform(family)["gpu_cpus"]:
            extra[GPU_CPUS_ENV] = " ".join(self.platform(family)["gpu_cpus"])
        if nodes == 1:  # the rule's shell already runs inside the job (a step, under the Slurm plugin)
            run = f"{python} {script}" if workers == 1 else \
                f"{python} -m torch.distributed.run --standalone --nproc-per-node={workers} -- {script}"
            return f"{self.job_prefix('train', family, repo, extra)}{run}"
        rdzv = ('export PET_RDZV_ENDPOINT=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)'
                f':$(({RDZV_PORT} + ${{SLURM_JOB_ID:-0}} % {RDZV_PORTS}));')
        cpus = self.resources("train", family, size)["cpus_per_task"]
        # One launcher per node, whatever Slurm counts as a CPU (LUMI-G counts hardware threads:
        # --ntasks alone may place two torchrun launchers on one node and none on another).
        return (f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 --cpus-per-task={cpus} "
                f"--kill-on-bad-exit=1 {self.job_prefix('train', family, repo, extra, [rdzv])}"
                f"{python} -m torch.distributed.run --nnodes={nodes} --nproc-per-node={gpus} "
                f"--rdzv-backend=c10d --rdzv-id=medadapt -- {script}")

    def entry_command(self, stage: str, family: str | None, python: str, script: str,
                      repo: str | None = None) -> str:
        """The command that runs `script` (the workflow's entry) for a GPU rule other than training
        (eval: MCQA, generation; corpus: annotation, classifier, classification; `family` None),
        entering its container the way training does."""
        return f"{self.job_prefix(stage, family, repo)}{self._python(stage, family, python)} {script}"

    def job_prefix(self, stage: str, family: str | None, repo: str | None = None,
                   extra_env: dict[str, str] | None = None, raw_exports: list[str] | None = None) -> str:
        """What runs a job's command: exports of the platform's `env`, `extra_env` and, with a
        container, the cache variables (`cache_env`), done in a shell of its own (values expand where
        the command runs), then the platform's container (`container_prefix`) when the stage has
        one. Without a container the cache variables come from the workflow's environment
        (rules/common.smk sets them, in Snakemake's process on the login node and on the node)."""
        _, p = self._platform_of(stage, family)
        container = self.container_prefix(stage, family, repo)
        env = {**p["env"], **(extra_env or {}), **(self.cache_env() if container else {})}
        exports = [f"export {k}={_shell_value(v)};" for k, v in env.items()] + list(raw_exports or [])
        return _in_shell(exports) + container

    def container_prefix(self, stage: str, family: str | None, repo: str | None = None) -> str:
        """`<runtime> exec <flag> --bind <dirs> <image> bash -c '<activate> exec "$@"' medadapt-container `
        for a stage with a container (see `container`), else "". Binds: the platform's
        `container_binds`, the working directory, `results`, the caches and `repo` (the workflow's
        checkout, where the entry script lives), each once."""
        image = self.container(stage, family)
        if not image:
            return ""
        name, p = self._platform_of(stage, family)
        flag = p["container_gpu_flag"]
        if flag is None:
            flag = GPU_FLAG.get(name, "")
        if p["compute_on_cpu"]:
            flag = ""  # stand-in GPUs: the runtime would look for a driver that is not there
        results = os.path.join(self.workdir, self.config["results"])
        binds = _unique_binds([*p["container_binds"], self.workdir, results, self.caches(),
                               *([repo] if repo else [])])
        activate = p["container_activate"]
        inner = f"{activate.strip().rstrip(';')}; exec \"$@\"" if activate else 'exec "$@"'
        parts = [p["container_runtime"], "exec", flag, f"--bind {shlex.quote(','.join(binds))}",
                 shlex.quote(image), "bash -c", shlex.quote(inner), "medadapt-container"]
        return " ".join(filter(None, parts)) + " "

    def caches(self) -> str:
        """The absolute cache directory (`caches` of the config, relative to the working directory)."""
        return os.path.join(self.workdir, self.config["caches"])

    def cache_env(self) -> dict[str, str]:
        """The cache variables every job gets (see CACHE_VARS)."""
        return cache_env(self.caches())

    def _python(self, stage: str, family: str | None, python: str) -> str:
        # The host's interpreter path means nothing inside an image: there its own `python` runs.
        return "python" if self.container(stage, family) else python

    def _platform_of(self, stage: str, family: str | None) -> tuple[str, dict]:
        if stage == "corpus":
            name = self.config["corpus"]["platform"]
            return name, self.config["platforms"][name]
        return self.platform_name(family), self.platform(family)

    def platform_name(self, family: str) -> str:
        return self.config["families"][family]["platform"]

    def container(self, stage: str, family: str | None = None) -> str | None:
        """The image a GPU job runs in (its platform's `container`; the corpus stages':
        `corpus.platform`'s); None for jobs without GPUs, which run in the Snakemake host's Python."""
        if stage == "corpus":
            p = self.config["platforms"][self.config["corpus"]["platform"]]
            return p["container"] if p["gpus_per_node"] else None
        return self.platform(family)["container"] if self.gpus(stage, family) else None

    def gpu_cpus(self, family: str) -> list[str] | None:
        """The CPU cores of each GPU of a node (by GPU index), to bind training workers to."""
        return self.platform(family)["gpu_cpus"]

    # --- helpers ----------------------------------------------------------------------------------
    def _cpu_stage_platform(self, family: str) -> dict:
        """CPU stages run on the `cpu` platform when the config has one, else on the family's."""
        return self._cpu_platform(self.platform(family))

    def _cpu_platform(self, fallback: dict) -> dict:
        return self.config["platforms"].get("cpu", fallback)


def selection_problems(config: dict) -> list[str]:
    """What is wrong with `run_platforms` / `prebuilt_corpus` (a grid split across clusters)."""
    chosen = config["run_platforms"]
    if not chosen:
        return []
    problems = [f"run_platforms: '{p}' is not defined under platforms" for p in chosen
                if p not in config["platforms"]]
    families = [f for f, spec in config["families"].items() if spec["platform"] in chosen]
    if not families:
        problems.append(f"run_platforms: {chosen} selects no family (their platforms: "
                        f"{sorted({s['platform'] for s in config['families'].values()})})")
    if config["corpus"]["platform"] not in chosen and not config["prebuilt_corpus"]:
        problems.append(f"run_platforms: {chosen} leaves out corpus.platform '{config['corpus']['platform']}': "
                        "build the corpus on the run that has that platform and set prebuilt_corpus to its "
                        "results/corpus/finemed.parquet (copied here)")
    return problems


def select_platforms(config: dict) -> list[str]:
    """Restrict `config["families"]` in place to the families on `run_platforms` (the part of a split
    grid this invocation runs); returns the families left out."""
    chosen = config["run_platforms"]
    if not chosen:
        return []
    dropped = [f for f, spec in config["families"].items() if spec["platform"] not in chosen]
    for family in dropped:
        del config["families"][family]
    return dropped


def cache_env(caches: str) -> dict[str, str]:
    """The cache variables (CACHE_VARS) under the directory `caches`."""
    return {var: os.path.join(caches, sub) for var, sub in CACHE_VARS.items()}


def _unique_binds(paths: list[str]) -> list[str]:
    """Bind each directory once, and none inside another bound one (the runtime refuses nothing
    then, but a nested bind would shadow what the outer one shows)."""
    out: list[str] = []
    for path in paths:
        norm = path.rstrip("/") or "/"
        if any(norm == b or norm.startswith(b.rstrip("/") + "/") for b in out):
            continue
        out = [b for b in out if not b.startswith(norm.rstrip("/") + "/")] + [norm]
    return out


def _in_shell(exports: list[str]) -> str:
    """A prefix that runs the command after it with `exports` done first, in a shell of its own: it
    expands the values where the command runs (a node's own $SLURM_NODEID), without the `set -u`
    of Snakemake's shell."""
    if not exports:
        return ""
    script = " ".join([*exports, 'exec "$@"'])
    return f"bash -c {shlex.quote(script)} medadapt-launch "


def _shell_value(value: str) -> str:
    """A value for `export K=...` that the step's shell expands ($SLURM_NODEID, $USER) but does not
    split or glob."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _gpu_key(stage: str) -> str:
    try:
        return GPU_STAGES[stage]
    except KeyError:
        raise ValueError(f"stage must be one of {[*GPU_STAGES, *CPU_STAGES]}, got {stage!r}") from None


def _from_wildcards(cluster: Cluster, stage: str, key: str) -> Callable[[Any], Any]:
    def value(wildcards):
        return cluster.resources(stage, wildcards.family, getattr(wildcards, "size", None))[key]
    return value
