"""Classifier fine-tuning (slow: trains a tiny XLM-R) and streaming, length-bucketed shard scoring."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medadapt.corpus.classifier import stratified_split, train_classifier
from medadapt.corpus.classify import classify_shard, load_classifier, score_texts

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


def test_length_bucketing_preserves_order(tiny_classifier):
    model, tok, positive = load_classifier(tiny_classifier)
    texts = [("Der Patient klagt " * k) + str(k) for k in (9, 1, 5, 3, 12, 2, 7)]
    one_by_one = score_texts(model, tok, texts, batch_size=1, max_length=64, positive=positive)
    bucketed = score_texts(model, tok, texts, batch_size=3, max_length=64, positive=positive)
    assert bucketed.dtype == np.float32 and len(set(one_by_one.round(6))) > 1
    np.testing.assert_allclose(bucketed, one_by_one, atol=1e-5)  # padding must not change a score


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_classify_shard_streams(tmp_path, tiny_classifier, fmt):
    ids = [f"x{i}" for i in range(23)]
    texts = [(MEDICAL + OTHER)[i % 10] * (1 + i % 4) for i in range(23)]
    if fmt == "parquet":
        shard = tmp_path / "000_00000.parquet"
        pq.write_table(pa.table({"text": texts, "id": ids, "url": ["u"] * 23}), shard, row_group_size=5)
    else:
        shard = tmp_path / "shard-0001.jsonl"
        shard.write_text("".join(json.dumps({"id": i, "text": t, "url": "u", "language": "de"}) + "\n"
                                 for i, t in zip(ids, texts)))
    out = tmp_path / "scores.parquet"
    summary = classify_shard(str(shard), tiny_classifier, str(out), batch_size=4, max_length=64, window_batches=2)
    df = pl.read_parquet(out)
    assert summary["docs"] == 23 and df.columns == ["id", "score"]
    assert df["id"].to_list() == ids and df["score"].dtype == pl.Float32
    assert df["score"].is_between(0, 1).all()
    model, tok, positive = load_classifier(tiny_classifier)
    direct = score_texts(model, tok, texts, batch_size=23, max_length=64, positive=positive)
    np.testing.assert_allclose(df["score"].to_numpy(), direct, atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stages_chain(tmp_path, tiny_classifier):
    """sample -> (labels as the annotate stage writes them) -> train -> classify -> filter -> validate."""
    from medadapt.corpus.filter import filter_corpus
    from medadapt.corpus.sample import stratified_sample
    from medadapt.corpus.validate import validate

    def doc(i):
        return {"id": f"s{i}", "text": (MEDICAL if i % 2 == 0 else OTHER)[(i // 2) % 5] + f" ({i})"}

    pq.write_table(pa.Table.from_pylist([doc(i) for i in range(40)]), tmp_path / "000_00000.parquet",
                   row_group_size=8)
    (tmp_path / "shard-0001.jsonl").write_text("".join(json.dumps(doc(i)) + "\n" for i in range(40, 60)))
    shards = [str(tmp_path / "000_00000.parquet"), str(tmp_path / "shard-0001.jsonl")]
    vfile = tmp_path / "human.jsonl"
    vfile.write_text("".join(json.dumps({"id": f"s{i}", "label": int(i % 2 == 0)}) + "\n" for i in (1, 2, 57, 58)))
    stratified_sample(shards, 45, 0, str(vfile), str(tmp_path / "sample.parquet"))
    sample = pl.read_parquet(tmp_path / "sample.parquet")
    ann = sample.select("id", (pl.col("id").str.slice(1).cast(pl.Int64) % 2 == 0).cast(pl.Int64).alias("label"),
                        pl.lit('{"medical":true}').alias("raw"))
    ann.write_parquet(tmp_path / "chunk-0.parquet")
    params = {"max_length": 32, "epochs": 1, "learning_rate": 1e-3, "batch_size": 8, "test_size": 0.2}
    train_classifier(str(tmp_path / "sample.parquet"), [str(tmp_path / "chunk-0.parquet")], tiny_classifier,
                     str(tmp_path / "clf"), params, seed=0)
    scores = []
    for shard, name in zip(shards, ["000_00000", "shard-0001"]):
        scores.append(str(tmp_path / "scores" / f"{name}.parquet"))
        classify_shard(shard, str(tmp_path / "clf"), scores[-1], batch_size=8, max_length=32)
    stats = filter_corpus(shards, scores, 0.0, str(tmp_path / "finemed.parquet"), str(tmp_path / "stats.csv"))
    assert stats["docs_total"] == 60 and stats["docs_kept"] == 60  # threshold 0 keeps all (texts unique)
    validate(str(tmp_path / "sample.parquet"), [str(tmp_path / "chunk-0.parquet")], scores, str(vfile), 0.5,
             str(tmp_path / "validation.csv"))
    rows = {r["system"]: r for r in pl.read_csv(tmp_path / "validation.csv").to_dicts()}
    assert rows["llm_annotator"]["f1"] == 1.0 and rows["llm_annotator"]["n"] == 4  # labels = human labels
    assert rows["classifier"]["n"] == 4
