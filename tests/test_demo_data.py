"""Checks the shipped German demo data in resources/demo/ (fast, no models)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from medadapt.corpus.labels import annotators, majority, read_validation

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"
SHARDS = [DEMO / "corpus" / f"shard-{i:04d}.jsonl" for i in range(3)]
SUBJECTS = {"clinical_knowledge", "anatomy", "college_medicine", "medqa"}


def load(path: Path) -> list[dict]:
    """Parse JSON Lines; a bad line fails with file and line number."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            pytest.fail(f"{path}:{n}: not valid JSON ({err})")
    return rows


@pytest.fixture(scope="module")
def docs() -> dict[str, tuple[int, dict]]:
    """All corpus documents by id, with their shard index; duplicates fail."""
    by_id: dict[str, tuple[int, dict]] = {}
    for shard, path in enumerate(SHARDS):
        for doc in load(path):
            assert doc["id"] not in by_id, f"{path}: duplicate id {doc['id']}"
            by_id[doc["id"]] = (shard, doc)
    return by_id


def test_corpus_documents(docs):
    assert len(docs) >= 250
    for shard, doc in docs.values():
        assert set(doc) >= {"id", "text", "url", "language"}, f"shard {shard}: {doc['id']} misses fields"
        assert doc["language"] == "deu_Latn"
        assert doc["url"].startswith("https://") and ".example." in doc["url"]
        assert 15 <= len(doc["text"].split()) <= 150, doc["id"]
    counts = Counter(shard for shard, _ in docs.values())
    assert all(counts[s] >= 50 for s in range(3)), counts
    text = " ".join(doc["text"] for _, doc in docs.values())
    assert all(ch in text for ch in "äöüßÄÖÜ"), "German umlauts and ß are expected"


def test_validation_labels(docs):
    labels = load(DEMO / "corpus" / "validation.jsonl")
    assert len(labels) == 40
    ids = [row["id"] for row in labels]
    assert len(set(ids)) == 40, "validation ids must be unique"
    assert set(ids) <= set(docs), f"unknown ids: {sorted(set(ids) - set(docs))}"
    # three simulated annotators; the gold label is their majority (medadapt.corpus.labels)
    table = read_validation(str(DEMO / "corpus" / "validation.jsonl"))
    assert annotators(table) == ["ann1", "ann2", "ann3"]
    gold = majority(table).to_list()
    assert set(gold) == {0, 1}
    share = sum(gold) / len(gold)
    assert 0.25 <= share <= 0.60, share
    assert {docs[i][0] for i in ids} == {0, 1, 2}, "labels should cover all shards"


def check_mcqa(rows: list[dict], name: str) -> None:
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids), f"{name}: duplicate ids"
    for r in rows:
        assert r["subject"] in SUBJECTS, f"{name}/{r['id']}: subject {r['subject']!r}"
        assert isinstance(r["question"], str) and r["question"].strip()
        assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4, f"{name}/{r['id']}: choices"
        assert type(r["answer"]) is int and 0 <= r["answer"] <= 3, f"{name}/{r['id']}: answer"


def test_mcqa_test_and_dev():
    test, dev = load(DEMO / "mcqa" / "test.jsonl"), load(DEMO / "mcqa" / "dev.jsonl")
    check_mcqa(test, "test")
    check_mcqa(dev, "dev")
    assert len(test) >= 40
    assert {r["answer"] for r in test} == {0, 1, 2, 3}
    assert max(Counter(r["answer"] for r in test).values()) <= len(test) / 4 + 2, "answers skewed"
    assert {r["subject"] for r in test} == SUBJECTS
    assert sorted(r["subject"] for r in dev) == sorted(SUBJECTS), "one dev item per subject"
    assert not {r["id"] for r in test} & {r["id"] for r in dev}
    assert not {r["question"] for r in test} & {r["question"] for r in dev}


def test_prompts():
    prompts = load(DEMO / "prompts.jsonl")
    assert len(prompts) >= 20
    assert len({p["id"] for p in prompts}) == len(prompts)
    for p in prompts:
        assert p["instruction"].strip(), p["id"]
        assert type(p["difficulty"]) is int and 1 <= p["difficulty"] <= 5, p["id"]
    assert len({p["difficulty"] for p in prompts}) >= 3
