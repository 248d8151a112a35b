"""Classifier fine-tuning (slow: trains a tiny XLM-R) and the corpus stages chained on it."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medadapt.corpus.classifier import stratified_split, train_classifier
from medadapt.corpus.classify import classify_shards, load_classifier

MEDICAL = ["Der Patient klagt über Brustschmerzen und Atemnot.", "Metformin bei Diabetes mellitus Typ 2.",
           "Bei Fieber über 39 Grad zum Arzt.", "Die Antibiotikatherapie wurde beendet.",
           "Eine Hypertonie wurde diagnostiziert."]
OTHER = ["Das Wetter in Hamburg bleibt regnerisch.", "Der Verein gewann das Heimspiel.",
         "Die Stadtbibliothek öffnet ab Montag.", "Neue Buslinie ab Dezember.", "Das Konzert war ausverkauft."]


def write_sample_and_labels(tmp_path, n=44, n_validation=4):
    texts = [(MEDICAL if i % 2 == 0 else OTHER)[(i // 2) % 5] + f" Nr. {i}." for i in range(n)]
    labels = [int(i % 2 == 0) for i in range(n)]
    ids = [f"d{i}" for i in range(n)]
    sample = tmp_path / "sample.parquet"
    pl.DataFrame({"id": ids, "text": texts, "shard": ["s"] * n,
                  "is_validation": [i < n_validation for i in range(n)]}).write_parquet(sample)
    half = n // 2
    chunks = []
    for k, (lo, hi) in enumerate([(0, half), (half, n)]):
        path = tmp_path / f"chunk-{k}.parquet"
        lab = [None if i == n - 1 else labels[i] for i in range(lo, hi)]  # one unparseable answer
        pl.DataFrame({"id": ids[lo:hi], "label": pl.Series(lab, dtype=pl.Int64),
                      "raw": ["{}"] * (hi - lo)}).write_parquet(path)
        chunks.append(str(path))
    return str(sample), chunks


def test_stratified_split_is_seeded_and_keeps_both_classes():
    y = np.array([1] * 4 + [0] * 36)
    tr, te = stratified_split(y, 0.25, seed=3)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 40
    assert y[te].sum() == 1 and (y[te] == 0).sum() == 9
    assert np.array_equal(te, stratified_split(y, 0.25, seed=3)[1])
    assert not np.array_equal(te, stratified_split(y, 0.25, seed=4)[1])
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(y, 1.5, seed=0)


def test_one_class_fails_clearly(tmp_path, tiny_classifier):
    sample, chunks = write_sample_and_labels(tmp_path)
    for c in chunks:
        pl.read_parquet(c).with_columns(pl.lit(0, dtype=pl.Int64).alias("label")).write_parquet(c)
    params = {"max_length": 32, "epochs": 1, "learning_rate": 1e-3, "batch_size": 8, "test_size": 0.25}
    with pytest.raises(ValueError, match=r"chunk-0\.parquet.*chunk-1\.parquet.*class\(es\) \[0\] only"):
        train_classifier(sample, chunks, tiny_classifier, str(tmp_path / "clf"), params, seed=0)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_train_classifier_tiny(tmp_path, tiny_classifier):
    sample, chunks = write_sample_and_labels(tmp_path)
    out = tmp_path / "classifier"
    params = {"max_length": 32, "epochs": 1, "learning_rate": 1e-3, "batch_size": 8, "test_size": 0.25}
    metrics = train_classifier(sample, chunks, tiny_classifier, str(out), params, seed=0)
    saved = json.loads((out / "metrics.json").read_text())
    # 44 docs - 4 validation - 1 unparseable = 39 labelled: 19 medical, 20 not -> test 5 + 5
    assert saved["n_train"] + saved["n_test"] == 39 and saved["n_test"] == 10 and saved["test_medical"] == 5
    for k in ("precision", "recall", "f1", "accuracy"):
        assert 0.0 <= saved[k] <= 1.0 and saved[k] == metrics[k]
    assert saved["tp"] + saved["fp"] + saved["fn"] + saved["tn"] == 10
    model, tok, positive = load_classifier(str(out))
    assert positive == 1 and model.config.id2label[1] == "medical"
    assert (out / "tokenizer.json").exists() or (out / "sentencepiece.bpe.model").exists()
    test = pl.read_parquet(out / "test_scores.parquet")  # the split behind metrics.json, with scores
    assert test.height == 10 and test["label"].sum() == 5 and test["score"].is_between(0, 1).all()
    assert ((test["score"] >= 0.5).cast(pl.Int64) == test["label"]).sum() == round(saved["accuracy"] * 10)
    # each score is its own document's (the classify stage's scoring gives the same), in split order
    from medadapt.corpus.classify import score_texts

    texts = dict(zip(*pl.read_parquet(sample).select("id", "text").to_dict(as_series=False).values()))
    direct = score_texts(model, tok, [texts[i] for i in test["id"]], 32, 512)
    assert np.allclose(direct, test["score"].to_numpy(), atol=1e-4)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stages_chain(tmp_path, tiny_classifier):
    """sample -> (labels as the annotate stage writes them) -> train -> classify -> stats -> filter -> validate."""
    from medadapt.corpus.filter import filter_corpus
    from medadapt.corpus.sample import stratified_sample
    from medadapt.corpus.stats import shard_stats
    from medadapt.corpus.validate import validate

    def doc(i):
        return {"id": f"s{i}", "text": (MEDICAL if i % 2 == 0 else OTHER)[(i // 2) % 5] + f" ({i})"}

    pq.write_table(pa.Table.from_pylist([doc(i) for i in range(40)]), tmp_path / "000_00000.parquet",
                   row_group_size=8)
    (tmp_path / "shard-0001.jsonl").write_text("".join(json.dumps(doc(i)) + "\n" for i in range(40, 60)))
    shards = [str(tmp_path / "000_00000.parquet"), str(tmp_path / "shard-0001.jsonl")]
    names = ["000_00000", "shard-0001"]
    vfile = tmp_path / "human.jsonl"
    vfile.write_text("".join(json.dumps({"id": f"s{i}", "label": int(i % 2 == 0)}) + "\n" for i in (1, 2, 57, 58)))
    stratified_sample(shards, 45, 0, str(vfile), str(tmp_path / "sample.parquet"))
    sample = pl.read_parquet(tmp_path / "sample.parquet")
    ann = sample.select("id", (pl.col("id").str.slice(1).cast(pl.Int64) % 2 == 0).cast(pl.Int64).alias("label"),
                        pl.lit('{"medical":true}').alias("raw"))
    ann.write_parquet(tmp_path / "chunk-0.parquet")
    params = {"max_length": 32, "epochs": 1, "learning_rate": 1e-3, "batch_size": 8, "test_size": 0.2}
    clf = str(tmp_path / "clf")
    train_classifier(str(tmp_path / "sample.parquet"), [str(tmp_path / "chunk-0.parquet")], tiny_classifier,
                     clf, params, seed=0)
    group = str(tmp_path / "scores" / "group-0000")
    classify_shards(shards, names, clf, group, str(tmp_path / "parts"), max_length=32, batch_tokens=256, window=16)
    stats = str(tmp_path / "stats.parquet")
    shard_stats(shards, names, [group], [tiny_classifier], ["xlmr"], 0.0, stats)
    summary = filter_corpus(shards, names, [group], [stats], [tiny_classifier], ["xlmr"], 0.0,
                            str(tmp_path / "finemed.parquet"), str(tmp_path / "stats.csv"))
    assert summary["docs_total"] == 60 and summary["docs_kept"] == 60  # threshold 0 keeps all (texts unique)
    table = pl.read_csv(tmp_path / "stats.csv")
    assert table["shard"].to_list() == ["total", *names] and table["tokens_kept_xlmr"][0] > 60
    outs = [str(tmp_path / f) for f in ("validation.csv", "agreement.csv", "pr.png", "pr.svg")]
    validate(str(tmp_path / "sample.parquet"), [str(tmp_path / "chunk-0.parquet")], [group], clf, str(vfile), 0.5,
             *outs)
    rows = {(r["system"], r["reference"]): r for r in pl.read_csv(outs[0]).to_dicts()}
    assert rows[("llm_annotator", "majority")]["f1"] == 1.0  # labels = human labels
    assert rows[("llm_annotator", "majority")]["n"] == 4 and rows[("classifier", "majority")]["n"] == 4
    assert rows[("classifier", "llm_annotator")]["n"] == json.loads((tmp_path / "clf" / "metrics.json").read_text())["n_test"]
