# Shared by all rule files. Here live the config (validated, defaults filled from config/schema.yaml),
# the grid, paths, and every input, param and resource function; the other files hold only rules.
import glob
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))
from medadapt.cluster import Cluster, select_platforms  # noqa: E402
from medadapt.runtime import ATTEMPT_ENV  # noqa: E402
from medadapt.corpus.shards import group_shards  # noqa: E402
from medadapt.config import (
    ConfigError,
    Grid,
    per_device_batch_size,
    resolve,
)  # noqa: E402
from medadapt.settings import (
    RUN_KNOBS_PARAM,
    run_knobs,
    study,
    with_run_knobs,
)  # noqa: E402
from medadapt import results_record  # noqa: E402

# First of all: validate the config and fill in every default the schema defines (one place).
try:
    resolve(
        config,
        source=", ".join(
            map(str, workflow.overwrite_configfiles or workflow.configfiles)
        ),
    )
    CLUSTER = Cluster(config)  # also checks run_platforms / prebuilt_corpus
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# A grid split across clusters: this invocation's DAG holds only the families of `run_platforms`.
LEFT_OUT = select_platforms(config)
SPLIT = bool(config["run_platforms"] or config["prebuilt_corpus"])
GRID = Grid(config)
R = config["results"]
# Hardware settings are run knobs, but the device they give each run (bf16 on GPUs) changes what
# training computes: recorded with the study settings. (Its number of training processes does not:
# every world size trains on the same global batches, medadapt.train.engine.)
DERIVED_SETTINGS = {
    f"{f}/{s}": {
        "device": CLUSTER.device(f),
    }
    for f in GRID.families()
    for s in GRID.adapted(f)
}
# No output of one config is taken for another's (medadapt.results_record): a results directory
# made with other study settings, without this working directory's metadata, stops the run here.
try:
    _DIFFERING = results_record.check(
        config, R, config["accept_foreign_results"], derived=DERIVED_SETTINGS
    )
except results_record.ForeignResults as exc:
    raise WorkflowError(str(exc)) from None
if results_record.unrecorded(R):
    print(
        f"medadapt: {R} holds outputs but no record of the config that made them "
        f"({results_record.RECORD}, written from the next run on); only Snakemake's metadata,"
        " where this working directory has it, tells what changed",
        file=sys.stderr,
    )
if _DIFFERING and config["accept_foreign_results"]:
    print(
        f"medadapt: accept_foreign_results - taking {R} as it is, although its record differs in "
        + ", ".join(_DIFFERING[: results_record.SHOWN]),
        file=sys.stderr,
    )
CKPTS = GRID.ckpts()
# Every rule enters the library through this one file (see medadapt.runtime).
ENTRY = str(Path(workflow.basedir) / "workflow" / "scripts" / "medadapt_entry.py")
# Without a per-rule conda env, run the interpreter that runs Snakemake (e.g. .venv), not PATH's.
# (A GPU job in its platform's container runs the image's `python`: medadapt.cluster.)
PYTHON = "python" if workflow.deployment_settings.deployment_method else sys.executable
# The checkout, bound into every container: the entry script and the library live here.
REPO = str(Path(workflow.basedir).resolve())
# Every download and compiler cache in one place (config `caches`): exported here, so that local
# jobs, Slurm jobs (sbatch passes the submitting environment on) and the fetch rules on the login
# node see the same HF_HOME; GPU jobs export it again inside their container (medadapt.cluster).
Path(CLUSTER.caches()).mkdir(parents=True, exist_ok=True)
os.environ.update(CLUSTER.cache_env())
MEDADAPT = f"{PYTHON} {ENTRY}"
SERVE = config["judge"].get("serve")
# A local judge server: vLLM serving a model (judge_server), or the demo's stand-in (reference_server).
VLLM_JUDGE = bool(SERVE and "model" in SERVE)
SERVER_FILE = f"{R}/judge/server.json"
# The demo's stand-in LLM servers (medadapt.llm.servers.reference), by the role they play.
REFERENCE = {
    role: block
    for role, block in (
        ("annotator", config["corpus"]["annotator"].get("serve")),
        ("judge", SERVE),
    )
    if block and "reference" in block
}


def reference_marker(role):
    return f"{R}/servers/{role}.json"


JUDGE_SERVER_FILE = (
    reference_marker("judge")
    if "judge" in REFERENCE
    else (SERVER_FILE if VLLM_JUDGE else [])
)
ANNOTATOR_SERVER_FILE = (
    reference_marker("annotator") if "annotator" in REFERENCE else []
)
# Judge jobs wait on the network (a local server, an API, a batch that may take hours): they take
# no core, so they do not hold back the jobs that need one. So do annotation jobs of a local
# stand-in server (one group with it).
JUDGE_THREADS = 0 if SERVE or config["judge"]["batch"] else 1
# One API key serves every judge job: bound the requests (and open batches) of all of them at once,
# not per job (296 jobs x 16 requests on the paper grid). Global resources the judge jobs hold; a
# `--resources` given on the command line wins.
JUDGE_BOUNDS = {
    "judge_requests": config["judge"]["max_requests_in_flight"],
    "judge_batches": config["judge"]["max_open_batches"],
}
for _name, _bound in JUDGE_BOUNDS.items():
    if _name not in workflow.global_resources:
        workflow.register_resource(_name, _bound)
# A judge the workflow serves itself runs in one group with its judge jobs and bounds its own load:
# the jobs hold nothing then.
JUDGE_HOLDS = (
    {"judge_requests": 0, "judge_batches": 0}
    if SERVE
    else (
        {"judge_requests": 0, "judge_batches": 1}
        if config["judge"]["batch"]
        else {"judge_requests": config["judge"]["max_concurrency"], "judge_batches": 0}
    )
)
# A GPU corpus job (annotation, classifier) takes two threads (tokenizing, data loading), at most
# its CPUs (one on the demo's CPU platform).
CORPUS_GPU_THREADS = min(2, CLUSTER.corpus_threads(1))
ANNOTATE_THREADS = 0 if ANNOTATOR_SERVER_FILE else CORPUS_GPU_THREADS


def reference_setting(key):
    return lambda wc: REFERENCE[wc.role]["reference"][key]


def reference_facts(wc):
    return REFERENCE[wc.role]["reference"]["facts"]


def reference_names(wc):
    """The model name clients ask the stand-in server for: the configured judge or annotator model."""
    block = config["judge"] if wc.role == "judge" else config["corpus"]["annotator"]
    return [block["model"]]


def reference_port(wc):
    return REFERENCE[wc.role]["port"]


def model_dir(family, size, ckpt):
    return f"{R}/models/{family}/{size}/{ckpt}"


def log(name):
    return f"{R}/logs/{name}.log"


def texts(patterns):
    """Files matching the config's glob patterns, sorted (a stable input list)."""
    return sorted(f for g in patterns for f in glob.glob(g))


def _named(files):
    return {k: v if isinstance(v, str) else list(v) for k, v in files.items()}


# Corpus filtering, packing and training are the critical path: before every job that is ready
# as well (e.g. the evaluation of source models), which Snakemake would otherwise prefer when it
# uses more cores (a local stand-in annotator and its jobs take one core together).
CRITICAL_PATH = 10


# --- params: study settings recorded, run knobs not (medadapt.settings) ---------------------------
# Snakemake records a param (and reruns a job when it changes) only when the param is a value or a
# function of the wildcards; a function that takes threads or resources is never recorded. Study
# settings are therefore plain params; run knobs reach the job through functions of threads.
def _evaluate(values, wildcards):
    return {k: v(wildcards) if callable(v) else v for k, v in values.items()}


def _unrecorded(fn):
    """Marks a param function that Snakemake does not record: it must carry run knobs only
    (tests/test_rerun_triggers.py checks every rule)."""
    fn.medadapt_unrecorded = True
    return fn


def split_settings(**blocks):
    """Params of a `script:` job whose config blocks hold run knobs. name=(config key, block or a
    function of the wildcards) gives the param `name` (the block's study settings, recorded) and
    one `run_knobs` param (every block's run knobs, unrecorded), which medadapt.runtime merges back
    into `name` before the stage sees it."""

    def recorded(section, block):
        return lambda wc: study(block(wc) if callable(block) else block, section)

    def knobs(wildcards, threads):
        return {
            name: run_knobs(block(wildcards) if callable(block) else block, section)
            for name, (section, block) in blocks.items()
        }

    return {
        **{name: recorded(*spec) for name, spec in blocks.items()},
        RUN_KNOBS_PARAM: _unrecorded(knobs),
    }


def _named(files):
    return {k: v if isinstance(v, str) else list(v) for k, v in files.items()}


def stage_params(per_process=None, run=None, **settings):
    """The params of a `shell:` job, `medadapt stage RULE --job JSON`. Every setting is its own param
    (values or functions of the wildcards: recorded, so a changed setting reruns the job), and
    `job`, the JSON the stage reads: the settings with `run` (run knobs, same form) merged over
    them, named input/output, threads, wildcards and the GPUs the job must see
    (resources.expect_gpus). `per_process`, a function of (wildcards, job threads), gives the
    threads of each process (torchrun workers).
    """

    def job(wildcards, input, output, threads, resources):
        values = with_run_knobs(
            {
                **_evaluate(settings, wildcards),
                RUN_KNOBS_PARAM: _evaluate(run or {}, wildcards),
            }
        )
        return json.dumps(
            {
                "input": _named(input),
                "output": _named(output),
                "params": values,
                "threads": per_process(wildcards, threads) if per_process else threads,
                "wildcards": dict(wildcards.items()),
                "resources": {"expect_gpus": resources.get("expect_gpus", 0)},
            }
        )

    job.medadapt_run = set(run or {})
    return {**settings, "job": _unrecorded(job)}


# --- models -------------------------------------------------------------------------------------
def _family_regex(families):
    """A wildcard constraint matching exactly these families (none: a pattern that never matches)."""
    return "|".join(re.escape(f) for f in families) or "(?!)"


# Families whose models are pre-trained by the workflow (model_pretrain), and the others (model_base).
PRETRAINED = [f for f in GRID.families() if "pretrain" in config["families"][f]]
PRETRAINED_FAMILIES = _family_regex(PRETRAINED)
BUILT_FAMILIES = _family_regex([f for f in GRID.families() if f not in PRETRAINED])


def pretrain_block(wc):
    return config["families"][wc.family]["pretrain"]


def pretrain_plan(wc):
    """The size's pre-training files with how often each is read, in the config's order (it sets
    the data order): [(path, repeat)]."""
    plan = []
    for entry in pretrain_block(wc)["sizes"][wc.size]["files"]:
        pattern, repeat = (
            (entry, 1) if isinstance(entry, str) else (entry["path"], entry["repeat"])
        )
        plan += [(f, repeat) for f in sorted(glob.glob(pattern))]
    return plan


def pretrain_files(wc):
    return [f for f, _ in pretrain_plan(wc)]


def pretrain_repeats(wc):
    return [r for _, r in pretrain_plan(wc)]


def model_seed(wc):
    return config["seed"] + GRID.sizes(wc.family).index(wc.size)


def needs_tokenizer(spec):
    """Tiny causal LMs need the demo tokenizer built first; hub models don't."""
    return [f"{R}/models/tiny-tokenizer"] if "tiny" in spec else []


def aux_spec(name):
    return {
        "annotator": config["corpus"]["annotator"]["model"],
        "classifier-base": config["corpus"]["classifier"]["base_model"],
        "judge": (SERVE or {}).get("model"),
        "translator": (TRANSLATE or {}).get("model"),
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
        config["seed"]
        + 100
        + ["annotator", "classifier-base", "judge", "translator"].index(wc.name)
    )


# --- corpus -------------------------------------------------------------------------------------
def shard_paths(wc=None):
    """{name: path} of the corpus shards, known once the corpus_shards checkpoint has run."""
    with checkpoints.corpus_shards.get().output[0].open() as fh:
        return json.load(fh)


# Never written: the labelling round stops the chain (see rule corpus_labelling_round).
LABELLING_GATE = f"{R}/corpus/labelling/labels-imported"


def labelling_gate(wc):
    """Nothing once the human labels (corpus.validation) exist; else the labelling round's output,
    so the sample waits for the labels."""
    return [] if Path(config["corpus"]["validation"]).is_file() else [LABELLING_GATE]


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
def corpus_file(wc):
    """FineMed-de: built here, or by another run of a grid split across clusters."""
    return config["prebuilt_corpus"] or f"{R}/corpus/finemed.parquet"


def pack_tokenizer(wc):
    """A family is packed once, with the tokenizer of its first adapted model."""
    return family_tokenizer(wc.family)


def previous_checkpoint(wc):
    """Segment cNN starts where raw-c(NN-1) ended; the first starts from the base model."""
    i = CKPTS.index(wc.ckpt)
    return model_dir(wc.family, wc.size, f"raw-{CKPTS[i - 1]}") if i else []


def run_checkpoints(wc):
    return [model_dir(wc.family, wc.size, f"raw-{c}") for c in CKPTS]


def train_state_dir(wc):
    """The run's training states: not an output of any job, so no failed job's clean-up deletes
    them (medadapt.train.state)."""
    return f"{R}/train/{wc.family}/{wc.size}/state"


# Which try of a job this is, for medadapt.runtime (a retry of a deterministic failure stops at
# once). In the command's environment, not in the job's params: params are a rerun trigger, and a
# job that succeeded in its second try would then rerun in the next invocation.
def attempt_env(attempt):
    return f"{ATTEMPT_ENV}={attempt} "


def train_launch(wc, attempt):
    return attempt_env(attempt) + CLUSTER.launch_command(
        wc.family, wc.size, PYTHON, ENTRY, REPO
    )


def gpu_entry(stage):
    """`resources.entry` of a GPU shell rule: its entry script, in the platform's container when it
    has one (entered as training enters it). A resource, like train's launch: how a job runs is
    no reason to rerun it."""
    return lambda wc, attempt: attempt_env(attempt) + CLUSTER.entry_command(
        stage, getattr(wc, "family", None), PYTHON, ENTRY, REPO
    )


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


def eval_tensor_parallel(wc):
    return max(1, CLUSTER.gpus_per_node("eval", wc.family, wc.size))


def model_key(wc):
    return {"family": wc.family, "size": wc.size, "ckpt": wc.ckpt}


# The prompts: a user file, or MedInstruct-test translated in the workflow (generate.translate).
TRANSLATE = (
    config["generate"]["translate"] if config["generate"]["prompts"] is None else None
)
TRANSLATED_PROMPTS = f"{R}/data/eval/medinstruct_de.jsonl"


def prompts_translation(wc):
    return [TRANSLATED_PROMPTS] if TRANSLATE else []


def translator_model(wc):
    """The model directory the vllm backend loads, when the config gives a spec to build or fetch."""
    if TRANSLATE["backend"] == "vllm" and not isinstance(TRANSLATE["model"], str):
        return f"{R}/models/aux/translator"
    return []


# --- judging ------------------------------------------------------------------------------------
def baseline_generation(wc):
    size = GRID.baseline_size(wc.family, wc.size, wc.baseline)
    return f"{R}/generate/{wc.family}/{size}/base.jsonl"


def candidate_name(wc):
    return f"{wc.family}/{wc.size}/{wc.ckpt}"


def baseline_name(wc):
    return f"{wc.family}/{GRID.baseline_size(wc.family, wc.size, wc.baseline)}/base"


def fit_ckpts(baseline):
    return GRID.judged_ckpts(baseline)


def fit_ckpt_names(wc):
    return fit_ckpts(wc.baseline)


def fit_self_ckpt(wc):
    """The checkpoint that is the baseline itself: the source, in the comparison against it."""
    return "base" if wc.baseline == "source" else None


def fit_judgments(wc):
    return [
        f"{R}/judge/{wc.family}/{wc.size}/{c}_vs_{wc.baseline}.parquet"
        for c in fit_ckpts(wc.baseline)
    ]


# --- report -------------------------------------------------------------------------------------
MCQA_KEYS = ["/".join(m) for m in GRID.eval_models()]
MCQA_JSONS = [f"{R}/mcqa/{key}.json" for key in MCQA_KEYS]
# Item-level results beside each MCQA JSON, in the same order as MCQA_KEYS.
MCQA_ITEMS = [f"{R}/mcqa/{key}.items.parquet" for key in MCQA_KEYS]
TRAIN_LOGS = [
    f"{R}/train/{f}/{s}/checkpoints.csv"
    for f in GRID.families()
    for s in GRID.adapted(f)
]
# Run histories (Table 2: wall time, accelerators), keyed "family/size" in the same order.
HISTORY_KEYS = [f"{f}/{s}" for f in GRID.families() for s in GRID.adapted(f)]
HISTORIES = [f"{R}/train/{key}/history.json" for key in HISTORY_KEYS]
FITS = [f"{R}/fit/{f}/{s}_vs_{b}.csv" for f, s, b in GRID.comparisons()]
GAMES = [(f, s, c, b) for f, s, b in GRID.comparisons() for c in fit_ckpts(b)]
JUDGMENT_KEYS = ["/".join(game) for game in GAMES]
JUDGMENTS = [f"{R}/judge/{f}/{s}/{c}_vs_{b}.parquet" for f, s, c, b in GAMES]
# Every model that generates: the judged checkpoints and their baselines, in order, once each.
GENERATIONS = list(
    dict.fromkeys(
        key
        for f, s, c, b in GAMES
        for key in ((f, s, c), (f, GRID.baseline_size(f, s, b), "base"))
    )
)
FAILURE_MODE_KEYS = ["/".join(key) for key in GENERATIONS]
FAILURE_MODES = [f"{R}/failure_modes/{key}.parquet" for key in FAILURE_MODE_KEYS]
TABLES = {
    name: f"{R}/tables/{name}.csv"
    for name in (
        "compute",
        "mcqa",
        "rankings",
        "win_tie_loss",
        "llm_usage",
        "prompt_outcomes",
        "runs",
    )
}
MCQA_TEST_TABLES = ("mcqa_tests", "mcqa_milestones")
TABLES.update({name: f"{R}/tables/{name}.csv" for name in MCQA_TEST_TABLES})
FAILURE_TABLE = f"{R}/tables/failure_modes.csv"
FAILURE_RESPONSES = f"{R}/tables/failure_modes_responses.parquet"
# Usage ledgers of the LLM clients, appended as requests are answered. No job declares them; a ledger
# that does not exist means nothing was sent through that client.
JUDGE_LEDGER = f"{R}/judge/ledger.jsonl"
ANNOTATION_LEDGER = f"{R}/corpus/annotations/ledger.jsonl"
TRANSLATE_LEDGER = f"{R}/data/eval/translate/ledger.jsonl"
LEDGERS = [JUDGE_LEDGER, ANNOTATION_LEDGER, TRANSLATE_LEDGER]


def medqa_de_info(wc):
    """What German MedQA's test set and one-shot pool are, for the report (when it is a task)."""
    return (
        ["data/eval/medqa_de/info.json"]
        if "medqa_de" in config["mcqa"]["tasks"]
        else []
    )


FIGURE_KINDS = (
    "trajectories_tokens",
    "trajectories_flops",
    "mcqa_raw_vs_merged",
    "mcqa_tasks",
    "win_tie_loss",
    "judge_flows",
)
FIGURE_FORMATS = ("png", "svg")  # every figure in both; the report shows the PNG
FIGURES = [
    f"{R}/figures/{fam}/{kind}.{fmt}"
    for fam in GRID.families()
    for kind in FIGURE_KINDS
    for fmt in FIGURE_FORMATS
]


def figure_outputs(kind):
    """The figures rule's named outputs of one kind: the PNG (in the report) and the SVG."""
    return {
        kind: figure_output(kind),
        f"{kind}_svg": f"{R}/figures/{{family}}/{kind}.svg",
    }


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
FAILURE_FIGURES = [
    f"{R}/figures/{fam}/failure_modes.{fmt}"
    for fam in GRID.families()
    for fmt in FIGURE_FORMATS
]
# Judge examples (source vs last checkpoint, side by side): per adapted run, the last
# checkpoint's judgment against the source and both models' responses, in the same order.
EXAMPLE_KEYS = (
    [f"{f}/{s}/{CKPTS[-1]}" for f, s, b in GRID.comparisons() if b == "source"]
    if CKPTS
    else []
)
EXAMPLE_JUDGMENTS = [
    f"{R}/judge/{f}/{s}/{c}_vs_source.parquet"
    for f, s, c in (k.split("/") for k in EXAMPLE_KEYS)
]
EXAMPLE_CANDIDATES = [f"{R}/generate/{key}.jsonl" for key in EXAMPLE_KEYS]
EXAMPLE_SOURCES = [
    f"{R}/generate/{f}/{s}/base.jsonl"
    for f, s, c in (k.split("/") for k in EXAMPLE_KEYS)
]
EXAMPLES = {
    "out_csv": f"{R}/tables/judge_examples.csv",
    "out_md": f"{R}/tables/judge_examples.md",
}
# The default target: the report; for one part of a grid split across clusters (run_platforms /
# prebuilt_corpus), that part's results, which the README's last step turns into one report.
REPORT_TARGETS = (
    [*TRAIN_LOGS, *MCQA_JSONS, *FITS]
    if SPLIT
    else [
        *TABLES.values(),
        *FIGURES,
        f"{R}/tables/corpus_validation.csv",
        FAILURE_TABLE,
        *FAILURE_FIGURES,
        *(EXAMPLES.values() if EXAMPLE_KEYS else []),
    ]
)
from medadapt.corpus.shards import group_shards  # noqa: E402
