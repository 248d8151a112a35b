"""Results always match their config: after a finished run, changing a study setting plans exactly the
jobs it changes, changing a run knob plans none, and a results directory made with another config
is never taken for this one's.

The finished run is the demo's whole DAG recorded by Snakemake itself: every output is created
empty and `snakemake --touch --forceall` then records each job's metadata (params included: the
touch executor stores the same record as a real run, see `test_a_real_job_records_what_touch_records`)
without running any stage. Dry runs then show what each change plans (Snakemake's default rerun
triggers). The expected jobs are computed from the DAG: the jobs that read the setting, and every
job downstream of them (plus a service server whose consumers rerun, and so all its consumers).
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from medadapt import results_record
from medadapt.results_record import RECORD
from medadapt.settings import RUN_KNOBS, run_knobs, study, with_run_knobs
from workflow_dir import ROOT, make_workdir, run_snakemake

DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())


# --- the finished run ----------------------------------------------------------------------------
def parse_jobs(text: str) -> list[dict]:
    """Every job of a dry run's listing: rule, wildcards, input and output paths (services marked)."""
    jobs = []
    for block in re.split(r"\n(?=\s*(?:local)?(?:rule|checkpoint) \w+:)", text):
        head = re.match(r"\s*(?:local)?(?:rule|checkpoint) (\w+):", block)
        if not head:
            continue
        fields = dict(re.findall(r"^\s+(input|output|wildcards): (.*)$", block, flags=re.M))
        outputs = fields.get("output", "").split(", ") if fields.get("output") else []
        jobs.append({
            "rule": head.group(1),
            "wildcards": dict(p.split("=", 1) for p in fields["wildcards"].split(", ")) if "wildcards" in fields else {},
            "input": set(fields["input"].split(", ")) if fields.get("input") else set(),
            "output": {o.removesuffix(" (service)") for o in outputs},
            "service": any(o.endswith(" (service)") for o in outputs),
        })
    return jobs


def job_counts(text: str) -> Counter:
    """Jobs per rule from a dry run's "Job stats" table (empty when there is nothing to do)."""
    if "Nothing to be done" in text:
        return Counter()
    table = text[text.index("Job stats:"):]
    table = table[:table.index("total")]
    return Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)})


def smk(work: Path, *args: str, timeout: int = 300) -> str:
    proc = run_snakemake(work, *args, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A working directory whose results/ holds the demo's whole DAG with Snakemake's metadata."""
    work = make_workdir(tmp_path_factory.mktemp("rerun") / "work")
    # the corpus checkpoint for real (a listing of the shard files), so that the DAG past it is known
    smk(work, "-c1", "results/corpus/shards.json", "--configfile", "config/demo.yaml")
    jobs = parse_jobs(smk(work, "-n", "--configfile", "config/demo.yaml"))
    for path in (Path(work, o) for job in jobs for o in job["output"] if not job["service"]):
        if path.suffix:  # the demo's directory outputs (models, scores, packed data) have none
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            path.mkdir(parents=True, exist_ok=True)
    smk(work, "--touch", "--forceall", "-c1", "--configfile", "config/demo.yaml")
    assert not job_counts(smk(work, "-n", "--configfile", "config/demo.yaml"))
    return work, jobs


def changed_config(work: Path, changes: dict[str, object]) -> str:
    """The demo config with dotted keys set, written into the working directory."""
    cfg = copy.deepcopy(DEMO)
    for key, value in changes.items():
        *head, last = key.split(".")
        node = cfg
        for part in head:
            node = node.setdefault(part, {})  # a block the demo leaves to the schema's defaults
        assert node.get(last) != value, f"{key}: the demo has {value!r} already"
        node[last] = value
    path = work / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))  # the grid's order matters
    return str(path)


def planned(work: Path, changes: dict[str, object]) -> Counter:
    return job_counts(smk(work, "-n", "--configfile", changed_config(work, changes)))


def downstream(jobs: list[dict], direct) -> Counter:
    """Jobs per rule that must rerun when the jobs matching `direct` change: those and every job that
    reads an output of a rerun job; a service whose consumer reruns runs again, and then all its
    consumers rerun (its output is new to them)."""
    rerun = [job for job in jobs if direct(job)]
    grew = True
    while grew:
        grew = False
        made = {o for job in rerun for o in job["output"]}
        for job in jobs:
            if any(job is r for r in rerun):
                continue
            needed_service = job["service"] and any(job["output"] & other["input"] for other in rerun)
            if job["input"] & made or needed_service:
                rerun.append(job)
                grew = True
    return Counter(job["rule"] for job in rerun)


def rules(*names):
    return lambda job: job["rule"] in names


# study setting(s) -> the jobs that read them
STUDY_SETTINGS = {
    "learning rate": ({"train.learning_rate": 1.0e-3}, rules("train")),
    "checkpoint schedule": ({"train.checkpoints": {"count": 3, "first_fraction": 0.1}}, rules("train")),
    "warmup": ({"train.warmup_ratio": 0.2}, rules("train")),
    "merge t": ({"merge.t": 0.3}, rules("merge")),
    "MCQA tasks": ({"mcqa.tasks": ["medadapt_world_mcqa_de", "another_task"]}, rules("mcqa")),
    "judge model": ({"judge.model": "another-judge"},
                    lambda job: job["rule"] == "judge" or job["wildcards"].get("role") == "judge"),
    "corpus threshold": ({"corpus.threshold": 0.6}, rules("corpus_shard_stats", "corpus_filter", "corpus_validate")),
    "annotator answer length": ({"corpus.annotator.max_tokens": 8}, rules("corpus_annotate")),
    "classifier epochs": ({"corpus.classifier.epochs": 2}, rules("corpus_classifier")),
    "pre-training": ({"families.tiny.pretrain.learning_rate": 1.0e-3}, rules("model_pretrain")),
    "generation": ({"generate.max_tokens": 64}, rules("generate")),
    "stand-in judge": ({"judge.serve.reference.noise": 0.2},
                       lambda job: job["rule"] == "judge" or job["wildcards"].get("role") == "judge"),
    "Davidson fit": ({"fit.n_boot": 200}, rules("fit")),
    "failure modes": ({"failure_modes.min_words": 4}, rules("failure_modes")),
    "MCQA tests in the tables": ({"mcqa.alpha": 0.01}, rules("tables")),
    "seed": ({"seed": 4321}, rules("corpus_sample", "corpus_classifier", "aux_model", "model_pretrain", "pack",
                                   "train", "generate", "fit", "tables")),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STUDY_SETTINGS))
def test_a_study_setting_reruns_exactly_the_jobs_it_changes(finished, name):
    work, jobs = finished
    changes, direct = STUDY_SETTINGS[name]
    expected = downstream(jobs, direct)
    assert expected, f"{name}: no job of the demo reads it"
    assert planned(work, changes) == expected


# run knobs: how a job runs, never what it computes
RUN_KNOB_CHANGES = {
    "training state saves and logging": {"train.state": {"save_every_steps": 5, "save_every_minutes": 1, "keep": 3},
                                         "train.logging_steps": 7},
    "judge client": {"judge.max_concurrency": 2, "judge.max_retries": 1, "judge.timeout_s": 5},
    "annotator client": {"corpus.annotator.max_concurrency": 3, "corpus.annotator.timeout_s": 9},
    "server port": {"judge.serve": {**DEMO["judge"]["serve"], "port": 45678}},
    "threads": {"platforms.cpu.cpu_jobs": {"train": {"threads": 2, "mem_mb": 2000},
                                           "pack": {"threads": 2, "mem_mb": 2000},
                                           "corpus": {"threads": 2, "mem_mb": 2000}}},
    "foreign-results switch": {"accept_foreign_results": True},
    # the engine trains on the same global batches however they are split over processes
    "training memory and split": {"train.activation_checkpointing": True, "train.per_device_batch_size": 2,
                                  "train.sharding": {"reshard_after_forward": False}},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUN_KNOB_CHANGES))
def test_a_run_knob_reruns_nothing(finished, name):
    work, _ = finished
    assert planned(work, RUN_KNOB_CHANGES[name]) == Counter()


@pytest.mark.slow
def test_a_real_job_records_what_touch_records(tmp_path):
    """The tokenizer job run for real: its setting reruns it (and what reads it) as in the touched run."""
    work = make_workdir(tmp_path / "work")
    target = "results/models/tiny-tokenizer"
    smk(work, "-c1", target, "--configfile", "config/demo.yaml")
    assert not job_counts(smk(work, "-n", target, "--configfile", "config/demo.yaml"))
    changed = changed_config(work, {"tiny_tokenizer.vocab_size": DEMO["tiny_tokenizer"]["vocab_size"] + 8})
    assert job_counts(smk(work, "-n", target, "--configfile", changed)) == Counter({"tiny_tokenizer": 1})


# --- no output of one config is taken for another's ---------------------------------------------
@pytest.mark.slow
def test_copied_results_of_another_config_stop_the_run(finished, tmp_path):
    work, _ = finished
    results = tmp_path / "copied" / "results"
    shutil.copytree(work / "results", results, symlinks=True)  # the outputs and the record, no metadata
    elsewhere = make_workdir(tmp_path / "elsewhere")
    paper = ["-n", "--configfile", "config/config.yaml", "--config", f"results={results}"]
    proc = run_snakemake(elsewhere, *paper)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert str(results / RECORD) in out and "accept_foreign_results" in out
    sections = re.search(r"in the sections ([\w, ]+)", out)
    assert sections and {"families", "train", "mcqa", "judge"} <= set(sections.group(1).split(", ")), out[-2000:]
    assert re.search(r"in the keys [\w.]+", out), out[-2000:]
    # the same config takes the copied outputs as they are (nothing to do)...
    same = run_snakemake(elsewhere, "-n", "--configfile", "config/demo.yaml", "--config", f"results={results}")
    assert same.returncode == 0 and "Nothing to be done" in same.stdout + same.stderr
    # ...and so does another config that says so
    accepted = run_snakemake(elsewhere, *paper, "accept_foreign_results=True")
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    assert "accept_foreign_results" in accepted.stderr


# --- every rule records its study settings --------------------------------------------------------
RULE_PARAMS = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.rules import Rule
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(snakefile=Path(sys.argv[1]), resource_settings=ResourceSettings(cores=1),
                      config_settings=ConfigSettings(configfiles=[Path(sys.argv[2])]),
                      storage_settings=StorageSettings())._workflow
    print("RULES " + json.dumps({rule.name: [
        {"name": name, "derived": bool(Rule._is_deriving_function(item)),
         "unrecorded": bool(getattr(item, "medadapt_unrecorded", False)),
         "run": sorted(getattr(item, "medadapt_run", []))}
        for name, item in rule.params._allitems()] for rule in wf.rules}))
"""
# The run parts of shell rules' job JSON (stage_params(run=...)): where state lives, run knobs.
RUN_PARTS = {"train": ["peak_tflops", "per_device_batch_size", "state_dir", "train", "world_size"],
             "corpus_annotate": ["annotator"], "eval_translate": ["translate"], "reference_server": ["port"],
             "judge_server": ["port"]}


def rule_params(tmp_path, configfile: str) -> dict[str, list[dict]]:
    work = make_workdir(tmp_path / "work")
    proc = subprocess.run([sys.executable, "-c", RULE_PARAMS, str(ROOT / "Snakefile"), configfile], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RULES ", 1)[1])


@pytest.mark.parametrize("configfile", ["config/demo.yaml", "config/config.yaml"])
def test_every_rule_records_its_settings(tmp_path, configfile):
    """Snakemake records no param that is a function of threads, resources, input or output. Such a
    param may only be one of the two that carry run knobs (built by rules/common.smk's
    split_settings and stage_params), and a shell rule's unrecorded job JSON adds to its recorded
    params only the listed run parts."""
    found = rule_params(tmp_path, configfile)
    assert {"train", "merge", "mcqa", "judge", "corpus_annotate"} <= set(found)
    if configfile == "config/demo.yaml":
        assert "reference_server" in found
    for rule, params in found.items():
        for p in params:
            if p["derived"]:
                assert p["unrecorded"], (f"rule {rule}: param {p['name']} is a function of threads/resources/"
                                         "input/output, so Snakemake does not record it")
            if p["run"]:
                assert p["run"] == sorted(RUN_PARTS[rule]), f"rule {rule}: job JSON run part {p['run']}"
    names = {rule: {p["name"] for p in params} for rule, params in found.items()}
    # the training settings reach Snakemake's record, not only the job JSON
    assert {"train", "seed", "ckpt", "device"} <= names["train"]
    # ...and how the global batch is split over processes does not (the same batches at any split)
    assert not {"world_size", "per_device_batch_size"} & names["train"]


# --- the split itself ---------------------------------------------------------------------------
def test_the_training_block_splits_into_study_settings_and_run_knobs():
    train = copy.deepcopy(DEMO["train"]) | {"logging_steps": 5, "state": {"save_every_minutes": 3, "keep": 2}}
    settings, knobs = study(train, "train"), run_knobs(train, "train")
    assert "learning_rate" in settings and "checkpoints" in settings and "seq_len" in settings
    assert "state" not in settings and "logging_steps" not in settings
    # the demo's block also sets the per-device batch and activation checkpointing: how the global
    # batch is split and how memory is spent, run knobs too
    assert knobs == {"logging_steps": 5, "state": {"save_every_minutes": 3, "keep": 2},
                     "per_device_batch_size": DEMO["train"]["per_device_batch_size"],
                     "activation_checkpointing": DEMO["train"]["activation_checkpointing"]}
    assert settings["effective_batch_size"] == DEMO["train"]["effective_batch_size"]
    merged = with_run_knobs({"train": settings, "run_knobs": {"train": knobs}})
    assert merged == {"train": train}


def test_nested_and_wildcard_knobs():
    judge = {"model": "j", "max_concurrency": 4, "serve": {"reference": {"seed": 1}, "port": 0}}
    assert study(judge, "judge") == {"model": "j", "serve": {"reference": {"seed": 1}}}
    assert run_knobs(judge, "judge") == {"max_concurrency": 4, "serve": {"port": 0}}
    config = {"seed": 1, "results": "r", "families": {"a": {"platform": "cpu", "models": {"s": "x"}}}}
    assert study(config) == {"seed": 1, "families": {"a": {"models": {"s": "x"}}}}
    assert {k.split(".")[0] for k in RUN_KNOBS} >= {"train", "judge", "platforms"}


def test_study_settings_do_not_depend_on_key_order():
    a = {"learning_rate": 1, "seq_len": 2}
    assert repr(study(a, "train")) == repr(study(dict(reversed(a.items())), "train"))


def test_the_record_stops_only_foreign_results_of_other_settings(tmp_path):
    config = {"results": "r", "seed": 1, "train": {"learning_rate": 0.1, "logging_steps": 1}}
    results, here, elsewhere = tmp_path / "results", tmp_path / "here", tmp_path / "elsewhere"
    assert results_record.check(config, results, workdir=here) == []  # nothing recorded yet
    assert not results_record.unrecorded(results, workdir=here)
    (results / "tables").mkdir(parents=True)
    assert results_record.unrecorded(results, workdir=here)  # outputs of an unknown config: warned
    results_record.write(config, results, workdir=here, derived={"tiny/s": {"device": "cpu"}})
    derived = {"tiny/s": {"device": "cpu"}}
    assert not results_record.unrecorded(results, workdir=here)
    assert not results_record.unrecorded(results, workdir=elsewhere)  # recorded: checked, not warned
    knobs_only = copy.deepcopy(config) | {"results": "other"}
    knobs_only["train"]["logging_steps"] = 9
    assert results_record.check(knobs_only, results, workdir=elsewhere, derived=derived) == []
    other = copy.deepcopy(config)
    other["train"]["learning_rate"] = 0.2
    # here, Snakemake's metadata covers the results: its triggers rerun what changed
    assert results_record.check(other, results, workdir=here, derived=derived) == ["train.learning_rate"]
    with pytest.raises(results_record.ForeignResults, match=r"sections train; in the keys train\.learning_rate\."):
        results_record.check(other, results, workdir=elsewhere, derived=derived)
    with pytest.raises(results_record.ForeignResults, match=r"in the keys derived\.tiny/s\.device"):
        results_record.check(config, results, workdir=elsewhere, derived={"tiny/s": {"device": "cuda"}})
    assert results_record.check(other, results, accept=True, workdir=elsewhere, derived=derived) == [
        "train.learning_rate"]
