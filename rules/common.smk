# Shared by all rule files. Here live the config (validated, defaults filled from config/schema.yaml),
# the grid, paths, and every input, param and resource function; the other files hold only rules.
import glob
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))
from medadapt.cluster import Cluster  # noqa: E402
from medadapt.corpus.shards import group_shards  # noqa: E402
from medadapt.config import (
    ConfigError,
    Grid,
    per_device_batch_size,
    resolve,
)  # noqa: E402

# First of all: validate the config and fill in every default the schema defines (one place).
try:
    resolve(
        config,
        source=", ".join(
            map(str, workflow.overwrite_configfiles or workflow.configfiles)
        ),
    )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

GRID = Grid(config)
CLUSTER = Cluster(config)
R = config["results"]
CKPTS = GRID.ckpts()
# Every rule enters the library through this one file (see medadapt.runtime).
ENTRY = str(Path(workflow.basedir) / "workflow" / "scripts" / "medadapt_entry.py")
# Without a per-rule conda env, run the interpreter that runs Snakemake (e.g. .venv), not PATH's.
PYTHON = "python" if workflow.deployment_settings.deployment_method else sys.executable
MEDADAPT = f"{PYTHON} {ENTRY}"
SERVE = config["judge"].get("serve")
SERVER_FILE = f"{R}/judge/server.json"


def model_dir(family, size, ckpt):
    return f"{R}/models/{family}/{size}/{ckpt}"


def log(name):
    return f"{R}/logs/{name}.log"


def texts(patterns):
    """Files matching the config's glob patterns, sorted (a stable input list)."""
    return sorted(f for g in patterns for f in glob.glob(g))


def _named(files):
    return {k: v if isinstance(v, str) else list(v) for k, v in files.items()}


# --- shell rules: the job as JSON for `medadapt stage` (script rules get it from Snakemake) ------
def stage_job(**params):
    """A params function: the job's named input/output, `params` (values or functions of the
    wildcards), threads and wildcards, as the JSON `medadapt stage RULE --job` reads."""

    def job(wildcards, input, output, threads):
        values = {k: v(wildcards) if callable(v) else v for k, v in params.items()}
        return json.dumps(
            {
                "input": _named(input),
                "output": _named(output),
                "params": values,
                "threads": threads,
                "wildcards": dict(wildcards.items()),
            }
        )

    return job


# --- models -------------------------------------------------------------------------------------
def needs_tokenizer(spec):
    """Tiny causal LMs need the demo tokenizer built first; hub models don't."""
    return [f"{R}/models/tiny-tokenizer"] if "tiny" in spec else []


def aux_spec(name):
    return {
        "annotator": config["corpus"]["annotator"]["model"],
        "classifier-base": config["corpus"]["classifier"]["base_model"],
        "judge": (SERVE or {}).get("model"),
    }[name]


def aux_tokenizer(wc):
    return [] if wc.name == "classifier-base" else needs_tokenizer(aux_spec(wc.name))


def aux_texts(wc):
    """A tiny classifier trains its own tokenizer on the demo text."""
    spec = aux_spec(wc.name)
    return (
        texts(config["tiny_tokenizer"]["texts"])
        if wc.name == "classifier-base" and "tiny" in spec
        else []
    )


def aux_seed(wc):
    return (
        config["seed"] + 100 + ["annotator", "classifier-base", "judge"].index(wc.name)
    )


# --- corpus -------------------------------------------------------------------------------------
def shard_paths(wc=None):
    """{name: path} of the corpus shards, known once the corpus_shards checkpoint has run."""
    with checkpoints.corpus_shards.get().output[0].open() as fh:
        return json.load(fh)


def all_shard_paths(wc=None):
    return list(shard_paths().values())


def all_shard_names(wc=None):
    return list(shard_paths())


def shard_groups():
    """{group: [shard names]}: the shards one classify / stats job takes."""
    return group_shards(
        all_shard_names(), config["corpus"]["classify"]["shards_per_job"]
    )


def group_shard_names(wc):
    return shard_groups()[wc.group]


def group_shard_paths(wc):
    paths = shard_paths()
    return [paths[name] for name in group_shard_names(wc)]


def all_scores(wc=None):
    return [f"{R}/corpus/scores/group-{g}" for g in shard_groups()]


def all_shard_stats(wc=None):
    return [f"{R}/corpus/stats/group-{g}.parquet" for g in shard_groups()]


# Scores of finished shards, kept outside every declared output so a failed group job keeps them.
CLASSIFY_PARTS = f"{R}/corpus/classify-parts"


def family_tokenizer(family):
    """A family's tokenizer: that of its first adapted model (pack uses it; so do corpus stats)."""
    return model_dir(family, GRID.adapted(family)[0], "base")


FAMILY_TOKENIZERS = [family_tokenizer(f) for f in GRID.families()]
CORPUS_TARGETS = [
    f"{R}/tables/corpus_validation.csv",
    f"{R}/corpus/labelstudio/tasks.json",
]


def annotator_model(wc):
    m = config["corpus"]["annotator"]["model"]
    return [] if isinstance(m, str) else [f"{R}/models/aux/annotator"]


def annotator_config(wc):
    """The annotator block, with a locally built or fetched model replaced by its directory."""
    block, local = config["corpus"]["annotator"], annotator_model(wc)
    return {**block, "model": local[0]} if local else block


ANNOTATIONS = expand(
    f"{R}/corpus/annotations/chunk-{{chunk}}.parquet",
    chunk=range(config["corpus"]["annotator"]["chunks"]),
)


# --- training -----------------------------------------------------------------------------------
def pack_tokenizer(wc):
    """A family is packed once, with the tokenizer of its first adapted model."""
    return family_tokenizer(wc.family)


# --- evaluation ---------------------------------------------------------------------------------
def mcqa_data(wc):
    data = []
    if config["mcqa"]["hub_datasets"]:
        data.append(f"{R}/data/eval/hub_datasets.done")
    if "medqa_de" in config["mcqa"]["tasks"]:
        data.append("data/eval/medqa_de/test.jsonl")
    return data


def mcqa_model_args(wc):
    """bf16 on GPUs for raw and merged checkpoints alike, so the two views compare like with like."""
    return {"dtype": "bfloat16"} if CLUSTER.device(wc.family) == "cuda" else None


def model_key(wc):
    return {"family": wc.family, "size": wc.size, "ckpt": wc.ckpt}


# --- judging ------------------------------------------------------------------------------------
def baseline_generation(wc):
    size = GRID.baseline_size(wc.family, wc.size, wc.baseline)
    return f"{R}/generate/{wc.family}/{size}/base.jsonl"


def baseline_name(wc):
    return f"{wc.family}/{GRID.baseline_size(wc.family, wc.size, wc.baseline)}/base"


# The fit's players: the source itself (`base`) and every merged checkpoint, against one baseline.
FIT_CKPTS = ["base"] + CKPTS


def fit_judgments(wc):
    return [
        f"{R}/judge/{wc.family}/{wc.size}/{c}_vs_{wc.baseline}.parquet"
        for c in FIT_CKPTS
    ]


# --- report -------------------------------------------------------------------------------------
MCQA_KEYS = ["/".join(m) for m in GRID.eval_models()]
MCQA_JSONS = [f"{R}/mcqa/{key}.json" for key in MCQA_KEYS]
TRAIN_LOGS = [
    f"{R}/train/{f}/{s}/checkpoints.csv"
    for f in GRID.families()
    for s in GRID.adapted(f)
]
FITS = [f"{R}/fit/{f}/{s}_vs_{b}.csv" for f, s, b in GRID.comparisons()]
GAMES = [(f, s, c, b) for f, s, b in GRID.comparisons() for c in FIT_CKPTS]
JUDGMENT_KEYS = ["/".join(game) for game in GAMES]
JUDGMENTS = [f"{R}/judge/{f}/{s}/{c}_vs_{b}.parquet" for f, s, c, b in GAMES]
TABLES = {
    name: f"{R}/tables/{name}.csv"
    for name in ("compute", "mcqa", "rankings", "win_tie_loss")
}
FIGURE_KINDS = (
    "trajectories_tokens",
    "trajectories_flops",
    "mcqa_raw_vs_merged",
    "mcqa_tasks",
    "win_tie_loss",
)
FIGURES = [
    f"{R}/figures/{fam}/{kind}.png" for fam in GRID.families() for kind in FIGURE_KINDS
]


def figure_output(kind):
    caption = (
        "win_tie_loss_fig" if kind == "win_tie_loss" else kind
    )  # the table has its own
    return report(
        f"{R}/figures/{{family}}/{kind}.png",
        caption=f"../workflow/report/{caption}.rst",
        category="Figures",
        subcategory="{family}",
    )


NEXT_LARGER = {
    f"{f}/{s}": GRID.next_larger(f, s) for f in GRID.families() for s in GRID.adapted(f)
}
REPORT_TARGETS = [*TABLES.values(), *FIGURES, *CORPUS_TARGETS]


# --- cluster resources (medadapt.cluster, unit-tested) -------------------------------------------
def gpu_resources(kind):
    """Resources of a GPU job (`kind` train or eval) as per-wildcards functions."""
    keys = CLUSTER.gpu_resources(
        kind, GRID.families()[0], GRID.sizes(GRID.families()[0])[0]
    )
    return {
        k: (lambda wc, k=k: CLUSTER.gpu_resources(kind, wc.family, wc.size)[k])
        for k in keys
    }


def gpu_threads(kind, cpu_default):
    return lambda wc: CLUSTER.threads(kind, wc.family, wc.size, cpu_default)
