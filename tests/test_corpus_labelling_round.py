"""The first labelling round from nothing: without the human labels the workflow draws the documents
to label, exports them (Label Studio project + plain JSONL), stops the corpus chain with what to do
next, and continues to a finished corpus once `medadapt labelstudio import` has written the labels."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from medadapt.corpus.labels import read_validation
from medadapt.corpus.labelstudio import LABEL_CONFIG, LabelsNeeded, labelling_round

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "resources" / "demo" / "world" / "corpus"
SHARDS = sorted(str(p) for p in WORLD.glob("shard-*.jsonl"))
FIXTURE = ROOT / "tests" / "data" / "labelstudio_export.json"
SMK = [sys.executable, "-m", "snakemake"]


def truth() -> dict[str, int]:
    return {r["id"]: int(r["label"]) for r in map(json.loads, WORLD.joinpath("truth.jsonl").read_text().splitlines())}


def test_round_draws_exports_and_stops_with_the_next_steps(tmp_path):
    labels = tmp_path / "labels.jsonl"
    with pytest.raises(LabelsNeeded) as stop:
        labelling_round(SHARDS, 12, 3, str(labels), str(tmp_path / "round" / "gate"))
    message = str(stop.value)
    assert str(labels) in message and "medadapt labelstudio import" in message and "Rerun" in message
    out = tmp_path / "round"
    tasks = json.loads((out / "tasks.json").read_text())
    plain = [json.loads(line) for line in (out / "documents.jsonl").read_text().splitlines()]
    ids = [t["data"]["doc_id"] for t in tasks]
    assert len(ids) == len(set(ids)) == 12 and [p["id"] for p in plain] == ids
    assert all(p["label"] is None and p["text"] for p in plain)
    assert set(ids) <= set(truth())  # documents of the corpus, by their own ids
    assert (out / "label_config.xml").read_text() == LABEL_CONFIG
    assert (out / "NEXT_STEPS.txt").read_text().strip() == message
    # Seeded: a rerun before the labels exist draws the same documents; another seed others.
    with pytest.raises(LabelsNeeded):
        labelling_round(SHARDS, 12, 3, str(labels), str(tmp_path / "again" / "gate"))
    assert json.loads((tmp_path / "again" / "tasks.json").read_text()) == tasks
    with pytest.raises(LabelsNeeded):
        labelling_round(SHARDS, 12, 4, str(labels), str(tmp_path / "other" / "gate"))
    other = [t["data"]["doc_id"] for t in json.loads((tmp_path / "other" / "tasks.json").read_text())]
    assert other != ids


def test_round_is_a_no_op_once_the_labels_exist(tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "world-00001", "label": 1}\n')
    assert labelling_round(SHARDS, 12, 3, str(labels), str(tmp_path / "round" / "gate"))["documents"] == 0
    assert not (tmp_path / "round").exists()


def test_round_asks_for_no_more_than_the_corpus_holds(tmp_path):
    with pytest.raises(ValueError, match="corpus.validation_size: 99999"):
        labelling_round(SHARDS[:1], 99999, 3, str(tmp_path / "l.jsonl"), str(tmp_path / "round" / "gate"))


def label_studio_export(tasks: list[dict], annotators: dict[int, dict[str, int]]) -> list[dict]:
    """A Label Studio JSON export of `tasks`, each annotator (user id) choosing the given labels, in
    the layout of the recorded export in tests/data (its first task is the template)."""
    template = json.loads(FIXTURE.read_text())[0]
    choice = {1: "medical", 0: "not_medical"}
    out = []
    for i, task in enumerate(tasks):
        t = copy.deepcopy(template)
        t["id"], t["data"] = 5000 + i, task["data"]
        ann = t["annotations"][0]
        t["annotations"] = []
        for user, labels in annotators.items():
            a = copy.deepcopy(ann)
            a["id"], a["completed_by"] = 90000 + 10 * i + user, user
            a["result"][0]["value"]["choices"] = [choice[labels[task["data"]["doc_id"]]]]
            t["annotations"].append(a)
        t["total_annotations"] = len(t["annotations"])
        out.append(t)
    return out


def workflow_config(work: Path) -> dict:
    """The demo's corpus chain, smaller, with a validation file that does not exist yet."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["results"] = str(work / "results")
    config["corpus"]["validation"] = str(work / "labels" / "validation.jsonl")
    config["corpus"]["shards"] = {"glob": "resources/demo/world/corpus/shard-000[01].jsonl"}  # 2 of 4: time
    config["corpus"]["validation_size"] = 30
    config["corpus"]["sample_size"] = 200
    config["corpus"]["classifier"]["epochs"] = 1
    return config


def snakemake(work: Path, *targets: str) -> subprocess.CompletedProcess:
    cmd = [*SMK, "-s", str(ROOT / "Snakefile"), "-d", str(work), "--configfile", str(work / "config.yaml"),
           "--profile", str(ROOT / "profiles" / "local"), "--cores", "2", *targets]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_the_labelling_round_trip_from_nothing_to_a_finished_corpus(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "resources").symlink_to(ROOT / "resources")  # the demo config's relative paths
    (work / "config.yaml").write_text(yaml.safe_dump(workflow_config(work), sort_keys=False))
    corpus = work / "results" / "corpus" / "finemed.parquet"
    first = snakemake(work, str(corpus))
    assert first.returncode != 0, "the corpus chain ran without human labels"
    assert "corpus_labelling_round" in first.stderr
    assert not (work / "results" / "corpus" / "sample.parquet").exists()  # nothing annotated before the labels
    log = (work / "logs" / "corpus" / "labelling_round.log")
    log = log if log.exists() else next(work.rglob("labelling_round.log"))
    assert "medadapt labelstudio import" in log.read_text().splitlines()[-1]
    round_dir = work / "results" / "corpus" / "labelling"
    tasks = json.loads((round_dir / "tasks.json").read_text())
    assert len(tasks) == 30

    # Three annotators label in Label Studio (two by the world's truth, one flipping every 10th).
    right = truth()
    drawn = [t["data"]["doc_id"] for t in tasks]
    flipped = {d: (1 - right[d]) if i % 10 == 0 else right[d] for i, d in enumerate(drawn)}
    export = work / "export.json"
    export.write_text(json.dumps(label_studio_export(tasks, {1: right, 2: right, 3: flipped})))
    imported = subprocess.run([sys.executable, "-m", "medadapt", "labelstudio", "import", str(export), "--out",
                               str(work / "labels" / "validation.jsonl")], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    labels = read_validation(str(work / "labels" / "validation.jsonl"))
    assert labels["id"].to_list() == drawn and labels.width == 4

    table = work / "results" / "tables" / "corpus_validation.csv"
    second = snakemake(work, str(corpus), str(table))
    assert second.returncode == 0, second.stderr[-6000:]
    assert "corpus_labelling_round" not in second.stderr
    sample = pl.read_parquet(work / "results" / "corpus" / "sample.parquet")
    assert sorted(sample.filter(pl.col("is_validation"))["id"].to_list()) == sorted(drawn)
    finemed = pl.read_parquet(corpus)
    assert finemed.height > 0
    assert pl.read_csv(table).height > 0  # the classifier and LLM labels measured against ours
