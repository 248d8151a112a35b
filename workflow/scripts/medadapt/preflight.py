"""Before the first submission: does every job of the config's grid fit some node of its partition,
and is what the jobs need there (account, image, container runtime, caches, API keys)?

The jobs are computed from `medadapt.cluster.Cluster` for the config (no Snakemake, no DAG): one per
kind and size - training segments, evaluation (MCQA, generation) per model size, pack and merge per
family, the corpus GPU stages, the corpus filter - with their partition, nodes, CPUs, memory, GPUs
per node and time limit (the profile's `set-resources` runtime, else its `default-resources`, else
the rule's own, RULE_RUNTIMES). The cluster is read from `scontrol show partition -o` and
`scontrol show node -o` (PATH's scontrol). Two estimates of the whole study are checked too: the
disk the results directory will need (`study_footprint`) against the free space there, and what the
judge's games will cost (`judge_estimate`) against `judge.max_cost`. Every problem is one row of a
table; any row is a failure. What was checked and found fine is a line of the report.
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
from medadapt.config import Grid

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


def preflight(config: dict, profile: dict, workdir: str | None = None
              ) -> tuple[list[JobSpec], list[tuple[str, str, str]], list[str]]:
    """(the job shapes checked, the problems, the report's lines of what was estimated)."""
    cluster = Cluster(config, workdir=workdir)
    jobs = grid_jobs(cluster, profile_runtime(profile))
    partitions, nodes = read_slurm()
    default = (profile.get("default-resources", {}) or {}).get("slurm_partition")
    problems = job_problems(jobs, partitions, nodes, str(default).strip("'\"") if default else None)
    problems += environment_problems(cluster, profile, jobs)
    disk_rows, disk_lines = disk_check(config, cluster.workdir)
    judge_rows, judge_lines = judge_check(config, cluster.workdir)
    return jobs, problems + disk_rows + judge_rows, disk_lines + judge_lines


def load_profile(path: str | Path | None) -> dict[str, Any]:
    import yaml

    if path is None:
        return {}
    file = Path(path) / "config.yaml" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--profile: {file} does not exist")
    return yaml.safe_load(file.read_text()) or {}


# --- the study's disk footprint -----------------------------------------------------------------
GB = 1e9
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# fp32 master weights and AdamW's two fp32 moments per parameter: what a training state holds
# (gradients and the RNG/data position are not saved or are negligible).
STATE_BYTES_PER_PARAM = 12
# Hub snapshots of the paper's models are bf16 safetensors; tiny models are built and saved in fp32.
HUB_BYTES_PER_PARAM = 2
TINY_BYTES_PER_PARAM = 4


def parse_size_label(size: str) -> float | None:
    """Parameters named by a size key: the number before `b` (billions) or `m` (millions):
    "0.5b" -> 0.5e9, "7b" -> 7e9, "135m" -> 135e6; None for a label without one (e.g. "small")."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([bm])", size.strip().lower())
    return float(m.group(1)) * (1e9 if m.group(2) == "b" else 1e6) if m else None


def tiny_params(arch: dict, vocab_size: int) -> float:
    """Parameters of a tiny Qwen2-shaped model from its shape (`tiny:`), with the builder's defaults
    for the keys left out (config/schema.yaml, tiny_arch)."""
    h, layers, heads = arch["hidden_size"], arch["num_hidden_layers"], arch["num_attention_heads"]
    kv = arch.get("num_key_value_heads", heads) * (h // heads)
    inter = arch.get("intermediate_size", 2 * h)
    # q and o projections, k and v (with the q/k/v biases of Qwen2), the gated MLP, two norms
    layer = 2 * h * h + h + 2 * (h * kv + kv) + 3 * h * inter + 2 * h
    embeddings = vocab_size * h * (1 if arch.get("tie_word_embeddings", True) else 2)
    return float(layers * layer + embeddings + h)


def model_params(config: dict, family: str, size: str) -> float | None:
    """A model's parameter count: computed from the shape of a tiny model, else (a hub model: not
    known offline) read from its size key - an estimate; None where the key names no number."""
    spec = config["families"][family]["models"][size]
    if "tiny" in spec:
        return tiny_params(spec["tiny"], config.get("tiny_tokenizer", {}).get("vocab_size", 2048))
    return parse_size_label(size)


def _raw_bytes_per_param(config: dict, family: str) -> int:
    """bf16 on a GPU platform with train.bf16 (raw checkpoints are saved in the training dtype), else fp32."""
    p = Grid(config).platform(family)
    return 2 if config["train"]["bf16"] and p["gpus_per_node"] and not p.get("compute_on_cpu") else 4


def _footprint(config: dict, corpus_tokens: float | None = None) -> tuple[dict[str, float], list[str]]:
    """(bytes by part, the sizes whose parameter count is unknown and left out)."""
    grid = Grid(config)
    count = config["train"]["checkpoints"]["count"]
    keep = config["train"]["state"]["keep"]
    merged = DTYPE_BYTES[config["merge"]["dtype"]]
    parts = dict.fromkeys(("raw checkpoints", "merged checkpoints", "training states", "base models"), 0.0)
    unknown = []
    for family in grid.families():
        params = {size: model_params(config, family, size) for size in grid.sizes(family)}
        unknown += [f"{family}/{s}" for s, n in params.items() if n is None]
        raw = _raw_bytes_per_param(config, family)
        for size in grid.adapted(family):
            n = params[size] or 0.0
            parts["raw checkpoints"] += count * n * raw
            parts["merged checkpoints"] += count * n * merged
            parts["training states"] += keep * n * STATE_BYTES_PER_PARAM
        # Every source and next-larger model is fetched (or built) once into results/models; each
        # size of the family is one of them or at least an MCQA baseline (Grid.eval_models).
        for size, n in params.items():
            tiny = "tiny" in grid.model_spec(family, size)
            parts["base models"] += (n or 0.0) * (TINY_BYTES_PER_PARAM if tiny else HUB_BYTES_PER_PARAM)
    if corpus_tokens is not None:
        # one packed copy per family (each packs with its own tokenizer), int32 token ids
        parts["packed data"] = 4.0 * corpus_tokens * len(grid.families())
    return parts, unknown


def study_footprint(config: dict, corpus_tokens: float | None = None) -> dict[str, float]:
    """Bytes the results directory will hold, by part: per adapted (family, size) its raw and merged
    checkpoints (`train.checkpoints.count` each), its kept training states (`train.state.keep`,
    12 bytes per parameter), and every model of the families once (bf16 hub snapshots); with
    `corpus_tokens` the packed data too (4 bytes per token, per family). Hub models' parameter
    counts come from their size keys, so this is an estimate; logs, MCQA, generations and tables
    are small beside it and left out."""
    return _footprint(config, corpus_tokens)[0]


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_check(config: dict, workdir: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Free space where `results` will be (its nearest existing parent) against the footprint.
    The config holds no estimate of the corpus's tokens, so the packed data is left out (stated)."""
    parts, unknown = _footprint(config)
    need = sum(parts.values())
    results = Path(workdir, config["results"])
    where = _existing_parent(results)
    free = shutil.disk_usage(where).free
    detail = ", ".join(f"{k} {v / GB:.1f}" for k, v in parts.items())
    lines = [f"disk: the study needs about {need / GB:.1f} GB ({detail}; packed data not included: the "
             f"config has no token count of the corpus); {where} has {free / GB:.1f} GB free"]
    if unknown:
        lines.append(f"disk: parameter counts unknown (size keys without a number) and left out: {', '.join(unknown)}")
    lines.append("disk: hub models' parameter counts are read from their size keys (0.5b = 0.5e9): an estimate")
    rows = []
    if free < need:
        rows.append(("results", "disk", f"{where} has {free / GB:.1f} GB free; the study needs about "
                                        f"{need / GB:.1f} GB ({detail})"))
    return rows, lines


# --- the judge's cost ---------------------------------------------------------------------------
# Input tokens of one game besides its two answers: the Figure 4 messages (about 600 characters,
# ~150 tokens) and one instruction with its input (a few hundred tokens at most).
JUDGE_PROMPT_TOKENS = 400


def judged_comparisons(config: dict) -> int:
    """Checkpoint-vs-baseline comparisons the workflow judges (`Grid.judged_ckpts`, as the rules)."""
    grid = Grid(config)
    return sum(len(grid.judged_ckpts(baseline)) for _, _, baseline in grid.comparisons())


def prompt_count(config: dict, workdir: str) -> int | None:
    """The prompts every model answers: lines of generate.prompts where that file exists, else
    generate.expected_count (None: neither known before the prompts are translated)."""
    path = config["generate"]["prompts"]
    if path and Path(workdir, path).is_file():
        return sum(1 for line in Path(workdir, path).read_text().splitlines() if line.strip())
    return config["generate"]["expected_count"]


def judge_estimate(config: dict, prompts: int) -> dict[str, Any]:
    """Games (comparisons × prompts × 2 orders), their tokens and cost in USD (None without
    `judge.prices_per_mtok`, or with a judge the workflow serves itself). Input per game: both
    answers at `generate.max_tokens` (an upper bound) plus JUDGE_PROMPT_TOKENS; output:
    `judge.max_tokens`. The Batch API's price is `judge.batch_price_factor` of the online one."""
    judge = config["judge"]
    games = judged_comparisons(config) * prompts * 2
    tokens_in = games * (2 * config["generate"]["max_tokens"] + JUDGE_PROMPT_TOKENS)
    tokens_out = games * judge["max_tokens"]
    prices = judge.get("prices_per_mtok")
    cost = None
    if prices and not judge.get("serve"):
        factor = judge["batch_price_factor"] if judge["batch"] else 1.0
        cost = factor * (tokens_in * prices.get("input", 0.0) + tokens_out * prices.get("output", 0.0)) / 1e6
    return {"games": games, "input_tokens": tokens_in, "output_tokens": tokens_out, "cost": cost}


def judge_check(config: dict, workdir: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    prompts = prompt_count(config, workdir)
    if prompts is None:
        return [], [f"judge: {judged_comparisons(config)} comparisons × 2 orders per prompt; the prompt count "
                    "is unknown (no generate.prompts file, no generate.expected_count): no estimate"]
    est = judge_estimate(config, prompts)
    line = (f"judge: {est['games']} games ({judged_comparisons(config)} comparisons × {prompts} prompts × 2 "
            f"orders), at most {est['input_tokens'] / 1e6:.1f} M input and {est['output_tokens'] / 1e6:.1f} M "
            f"output tokens (answers at generate.max_tokens, {JUDGE_PROMPT_TOKENS} tokens of template and prompt)")
    max_cost = config["judge"].get("max_cost")
    if config["judge"].get("serve"):
        return [], [line + "; served locally: no API cost"]
    if est["cost"] is None:
        unchecked = "; judge.max_cost is not checked" if max_cost is not None else ""
        return [], [line + f"; no price configured (judge.prices_per_mtok): no cost estimate{unchecked}"]
    mode = "Batch API" if config["judge"]["batch"] else "online"
    line += f"; about {est['cost']:.2f} USD ({mode})"
    rows = []
    if max_cost is not None and est["cost"] > max_cost:
        rows.append(("judge", "cost", f"about {est['cost']:.2f} USD ({est['games']} games, {mode}) exceeds "
                                      f"judge.max_cost {max_cost:.2f} USD"))
    elif max_cost is not None:
        line += f", within judge.max_cost {max_cost:.2f} USD"
    return rows, [line]
