"""Shard classification: token-budget batches, scores independent of batching, grouped shards that
resume after a failure, and bad input (no text column, empty / non-UTF-8 text, an empty shard)."""
from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medadapt.corpus.classify import (classify_shards, length_batches, load_classifier, read_part_meta,
                                      score_texts)
from medadapt.corpus.shards import group_shards, iter_batches

TEXTS = ["Der Patient klagt über Brustschmerzen und Atemnot.", "Das Wetter in Hamburg bleibt regnerisch.",
         "Metformin bei Diabetes mellitus Typ 2.", "Der Verein gewann das Heimspiel.",
         "Bei Fieber über 39 Grad zum Arzt.", "Die Stadtbibliothek öffnet ab Montag."]
SETTINGS = {"max_length": 64, "batch_tokens": 96, "window": 5}


def test_length_batches_by_hand():
    # longest first: 50 -> budget 100 // 50 = 2 docs (50, 40); 30 -> 3 docs (30, 20, 10); 5 -> (5)
    lengths = [10, 50, 30, 5, 40, 20]
    batches = length_batches(lengths, 100)
    assert [b.tolist() for b in batches] == [[1, 4], [2, 5, 0], [3]]
    assert all(len(b) * max(lengths[i] for i in b) <= 100 for b in batches)
    # a document longer than the budget is a batch of its own
    assert [b.tolist() for b in length_batches([300, 10], 100)] == [[0], [1]]


def test_group_shards_by_hand():
    assert group_shards(["a", "b", "c"], 2) == {"0000": ["a", "b"], "0001": ["c"]}
    assert list(group_shards([f"s{i}" for i in range(12001)], 1))[-1] == "12000"  # widens past 9999


def test_scores_do_not_depend_on_batching(tiny_classifier):
    model, tok, positive = load_classifier(tiny_classifier)
    texts = [("Der Patient klagt " * k) + str(k) for k in (9, 1, 5, 3, 12, 2, 7)]
    one_by_one = score_texts(model, tok, texts, max_length=64, batch_tokens=1, positive=positive)
    budget = score_texts(model, tok, texts, max_length=64, batch_tokens=60, positive=positive)
    assert budget.dtype == np.float32 and len(set(one_by_one.round(6))) > 1
    np.testing.assert_allclose(budget, one_by_one, atol=1e-5)  # padding must not change a score


def write_shard(path, ids, texts, fmt):
    if fmt == "parquet":
        pq.write_table(pa.table({"text": texts, "id": ids, "url": ["u"] * len(ids)}), path, row_group_size=4)
    else:
        path.write_text("".join(json.dumps({"id": i, "text": t, "url": "u"}) + "\n" for i, t in zip(ids, texts)))
    return str(path)


@pytest.fixture
def group(tmp_path):
    """Two shards (parquet, JSONL) of 11 and 7 documents."""
    a = [f"a{i}" for i in range(11)]
    b = [f"b{i}" for i in range(7)]
    return ([write_shard(tmp_path / "000_00000.parquet", a, [TEXTS[i % 6] * (1 + i % 3) for i in range(11)], "parquet"),
             write_shard(tmp_path / "shard-0001.jsonl", b, [TEXTS[(i + 2) % 6] for i in range(7)], "jsonl")],
            ["000_00000", "shard-0001"], a, b)


def test_classify_group_writes_one_file_per_shard(tmp_path, tiny_classifier, group):
    shards, names, a, b = group
    out, parts = tmp_path / "scores" / "group-0000", tmp_path / "parts"
    summary = classify_shards(shards, names, tiny_classifier, str(out), str(parts), **SETTINGS)
    assert summary["scored"] == names and summary["reused"] == [] and summary["docs"] == 18
    assert sorted(p.name for p in out.iterdir()) == ["000_00000.parquet", "shard-0001.parquet"]
    model, tok, positive = load_classifier(tiny_classifier)
    for name, ids, shard in zip(names, (a, b), shards):
        df = pl.read_parquet(out / f"{name}.parquet")
        assert df.columns == ["id", "score"] and df["id"].to_list() == ids and df["score"].dtype == pl.Float32
        texts = pl.concat(iter_batches(shard, ["text"]))["text"].to_list()
        direct = score_texts(model, tok, texts, max_length=64, batch_tokens=10_000, positive=positive)
        np.testing.assert_allclose(df["score"].to_numpy(), direct, atol=1e-5)
        # the declared output is a link to the part that survives a failed job
        assert os.path.samefile(out / f"{name}.parquet", parts / f"{name}.parquet")
    assert summary["tokens"] <= summary["padded_tokens"]


def test_failed_group_keeps_finished_shard_and_rerun_skips_it(tmp_path, tiny_classifier, group):
    """A group job dies on its second shard: Snakemake then deletes the job's outputs. The first
    shard's scores survive in parts_dir, and the rerun reuses them without scoring that shard again."""
    shards, names, a, b = group
    good = open(shards[1], "rb").read()
    with open(shards[1], "wb") as fh:
        fh.write(good.splitlines()[0] + b"\n{broken json\n")
    out, parts = tmp_path / "scores" / "group-0000", tmp_path / "parts"
    with pytest.raises(ValueError, match=r"shard-0001\.jsonl:2: not valid JSON"):
        classify_shards(shards, names, tiny_classifier, str(out), str(parts), **SETTINGS)
    assert not out.exists()  # nothing declared was written (and Snakemake would delete it anyway)
    first = parts / "000_00000.parquet"
    assert first.is_file() and not (parts / "shard-0001.parquet").exists()
    before = (first.stat().st_ino, first.stat().st_mtime_ns)
    assert read_part_meta(first)["shard"] == "000_00000"

    with open(shards[1], "wb") as fh:  # the cause is fixed; the job is rerun
        fh.write(good)
    summary = classify_shards(shards, names, tiny_classifier, str(out), str(parts), **SETTINGS)
    assert summary["reused"] == ["000_00000"] and summary["scored"] == ["shard-0001"]
    assert summary["docs"] == 7  # only the second shard's documents went through the model
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == before
    assert pl.read_parquet(out / "000_00000.parquet")["id"].to_list() == a

    # a changed shard (or classifier) invalidates its part: it is scored again
    write_shard(tmp_path / "000_00000.parquet", a[:3], TEXTS[:3], "parquet")
    summary = classify_shards(shards, names, tiny_classifier, str(out), str(parts), **SETTINGS)
    assert summary["scored"] == ["000_00000"] and summary["reused"] == ["shard-0001"]
    assert pl.read_parquet(out / "000_00000.parquet").height == 3


def test_bad_text_is_counted_not_scored(tmp_path, tiny_classifier):
    """Null, empty and non-UTF-8 text: kept as rows with a null score, counted by reason."""
    shard = tmp_path / "bad.jsonl"
    lines = [json.dumps({"id": "ok1", "text": TEXTS[0]}).encode(), json.dumps({"id": "nul", "text": None}).encode(),
             json.dumps({"id": "ws", "text": "  \n "}).encode(), b'{"id": "latin1", "text": "Gr\xfc\xdfe"}',
             json.dumps({"id": "ok2", "text": TEXTS[1]}).encode()]
    shard.write_bytes(b"\n".join(lines) + b"\n")
    pshard = tmp_path / "bad.parquet"  # a parquet shard whose text column is bytes
    pq.write_table(pa.table({"id": ["p0", "p1", "p2"], "text": pa.array([TEXTS[2].encode(), b"\xff\xfe", b""],
                                                                          pa.binary())}), pshard)
    out = tmp_path / "scores"
    summary = classify_shards([str(shard), str(pshard)], ["bad", "badp"], tiny_classifier, str(out),
                              str(tmp_path / "parts"), **SETTINGS)
    assert (summary["skipped_missing"], summary["skipped_empty"], summary["skipped_invalid_utf8"]) == (1, 2, 2)
    df = pl.read_parquet(out / "bad.parquet")
    assert df["id"].to_list() == ["ok1", "nul", "ws", "latin1", "ok2"]
    assert df["score"].is_null().to_list() == [False, True, True, True, False]
    assert pl.read_parquet(out / "badp.parquet")["score"].is_null().to_list() == [False, True, True]


def test_empty_shard_gives_empty_scores(tmp_path, tiny_classifier):
    empty_pq = tmp_path / "e.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), empty_pq)
    (tmp_path / "e2.jsonl").write_text("")
    summary = classify_shards([str(empty_pq), str(tmp_path / "e2.jsonl")], ["e", "e2"], tiny_classifier,
                              str(tmp_path / "out"), str(tmp_path / "parts"), **SETTINGS)
    assert summary.get("docs", 0) == 0
    for name in ("e", "e2"):
        df = pl.read_parquet(tmp_path / "out" / f"{name}.parquet")
        assert df.height == 0 and df.columns == ["id", "score"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_shard_without_text_names_file_and_field(tmp_path, tiny_classifier, fmt):
    if fmt == "parquet":
        shard = tmp_path / "notext.parquet"
        pq.write_table(pa.table({"id": ["x"], "content": ["Arzt"]}), shard)
        match = r"notext\.parquet: missing column\(s\) \['text'\]"
    else:
        shard = tmp_path / "notext.jsonl"
        shard.write_text('{"id": "x", "content": "Arzt"}\n')
        match = r"notext\.jsonl: row 0 has no field 'text'"
    with pytest.raises(ValueError, match=match):
        classify_shards([str(shard)], ["notext"], tiny_classifier, str(tmp_path / "o"), str(tmp_path / "p"),
                        **SETTINGS)
    numeric = tmp_path / "numeric.parquet"
    pq.write_table(pa.table({"id": ["x"], "text": [3]}), numeric)
    with pytest.raises(ValueError, match=r"numeric\.parquet: field 'text' must be a string column"):
        classify_shards([str(numeric)], ["numeric"], tiny_classifier, str(tmp_path / "o"), str(tmp_path / "p"),
                        **SETTINGS)
