"""Shard reading and the stratified sample (small temp shards, parquet with several row groups + JSONL)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medadapt.corpus.sample import allocate, stratified_sample
from medadapt.corpus.shards import count_rows, iter_batches, read_rows, shard_name


def text_of(doc_id: str) -> str:
    return f"Dokument {doc_id}: " + "Text " * (len(doc_id) % 5)


def write_parquet(path, ids, row_group_size=7):
    table = pa.table({"text": [text_of(i) for i in ids], "id": ids, "url": [f"https://x.de/{i}" for i in ids],
                      "date": ["2024-01-01"] * len(ids)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


def write_jsonl(path, ids):
    with open(path, "w") as fh:
        for i in ids:
            fh.write(json.dumps({"id": i, "text": text_of(i), "url": "u", "language": "de"}) + "\n")
        fh.write("\n")  # a trailing blank line is not a document
    return str(path)


@pytest.fixture
def shards(tmp_path):
    return [write_parquet(tmp_path / "000_00000.parquet", [f"a{i}" for i in range(50)]),
            write_parquet(tmp_path / "000_00001.parquet", [f"b{i}" for i in range(30)]),
            write_jsonl(tmp_path / "shard-0001.jsonl", [f"c{i}" for i in range(20)])]


def test_count_rows_and_names(shards):
    assert [count_rows(s) for s in shards] == [50, 30, 20]
    assert [shard_name(s) for s in shards] == ["000_00000", "000_00001", "shard-0001"]
    with pytest.raises(ValueError, match="unsupported shard format"):
        shard_name("x/shard.csv")


@pytest.mark.parametrize("which", [0, 2])
def test_iter_batches_streams_in_order(shards, which):
    frames = list(iter_batches(shards[which], ["id", "text"], batch_size=8))
    assert max(f.height for f in frames) == 8
    ids = pl.concat(frames)["id"].to_list()
    assert ids == [f"{'ac'[which // 2]}{i}" for i in range(count_rows(shards[which]))]


def test_missing_column_names_file(tmp_path, shards):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["x"]}), bad)
    with pytest.raises(ValueError, match=r"bad\.parquet: missing column\(s\) \['text'\]"):
        next(iter_batches(str(bad), ["id", "text"]))
    badj = tmp_path / "bad.jsonl"
    badj.write_text('{"id": "x", "text": "t"}\n{"id": "y"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl: row 1 has no field 'text'"):
        list(iter_batches(str(badj), ["id", "text"]))


@pytest.mark.parametrize("which", [0, 2])
def test_read_rows_across_row_groups(shards, which):
    rows = np.array([13, 0, 49 if which == 0 else 19, 7])
    drawn, found = read_rows(shards[which], rows, ["id", "text"], want_ids={"a3", "c5"})
    prefix = "a" if which == 0 else "c"
    assert drawn["row"].to_list() == sorted(rows.tolist())
    assert drawn["id"].to_list() == [f"{prefix}{r}" for r in sorted(rows.tolist())]
    assert drawn["text"].to_list() == [text_of(i) for i in drawn["id"]]
    assert found["id"].to_list() == [f"{prefix}{3 if which == 0 else 5}"]


def test_allocate_is_proportional_and_exact():
    assert allocate([50, 30, 20], 20) == [10, 6, 4]
    assert sum(allocate([7, 11, 13], 10)) == 10
    assert allocate([3, 1], 100) == [3, 1]  # capped at the corpus size
    assert allocate([1, 1, 1], 2) == [1, 1, 0]  # ties: earlier shard first


def test_sample_proportional_and_deterministic(tmp_path, shards):
    out1, out2, out3 = (str(tmp_path / f"s{i}.parquet") for i in range(3))
    summary = stratified_sample(shards, 20, 7, None, out1)
    stratified_sample(shards, 20, 7, None, out2)
    stratified_sample(shards, 20, 8, None, out3)
    s1, s2, s3 = (pl.read_parquet(p) for p in (out1, out2, out3))
    assert s1.columns == ["id", "text", "shard", "is_validation"]
    assert s1.equals(s2)
    assert set(s1["id"]) != set(s3["id"])
    counts = dict(s1.group_by("shard").len().iter_rows())
    assert counts == {"000_00000": 10, "000_00001": 6, "shard-0001": 4} == summary["per_shard"]
    assert s1["id"].n_unique() == 20 and not s1["is_validation"].any()
    assert all(t == text_of(i) for i, t in zip(s1["id"], s1["text"]))


def test_validation_docs_always_included(tmp_path, shards):
    stratified_sample(shards, 6, 1, None, str(tmp_path / "b.parquet"))
    base = pl.read_parquet(tmp_path / "b.parquet")
    drawn = set(base["id"])
    undrawn = [i for i in ["a1", "b29", "c0", "c19"] if i not in drawn][:3]
    val_ids = undrawn + [base["id"][0]]  # undrawn docs plus one that is drawn anyway
    vfile = tmp_path / "human.jsonl"
    vfile.write_text("".join(json.dumps({"id": i, "label": k % 2}) + "\n" for k, i in enumerate(val_ids)))
    out = str(tmp_path / "s.parquet")
    stratified_sample(shards, 6, 1, str(vfile), out)
    s = pl.read_parquet(out)
    assert s.height == 6 + len(undrawn)
    assert set(s.filter("is_validation")["id"]) == set(val_ids)
    assert set(s.filter(~pl.col("is_validation"))["id"]) == drawn - set(val_ids)


def test_unknown_validation_id_names_file(tmp_path, shards):
    vfile = tmp_path / "human.jsonl"
    vfile.write_text('{"id": "a1", "label": 1}\n{"id": "nope", "label": 0}\n')
    with pytest.raises(ValueError, match=r"human\.jsonl: 1 validation id\(s\) not found.*'nope'"):
        stratified_sample(shards, 5, 0, str(vfile), str(tmp_path / "s.parquet"))
    vfile.write_text('{"id": "a1", "label": "yes"}\n')
    with pytest.raises(ValueError, match=r"human\.jsonl: record 1 \(id a1\): label of human must be"):
        stratified_sample(shards, 5, 0, str(vfile), str(tmp_path / "s.parquet"))
    assert not (tmp_path / "s.parquet").exists()


def test_duplicate_shard_names_rejected(tmp_path, shards):
    other = tmp_path / "sub"
    other.mkdir()
    dup = write_jsonl(other / "shard-0001.jsonl", ["z1"])
    with pytest.raises(ValueError, match="same name 'shard-0001'"):
        stratified_sample(shards + [dup], 5, 0, None, str(tmp_path / "s.parquet"))


def test_documents_without_text_are_counted_not_sampled(tmp_path):
    """All 4 rows are drawn (n = 4); 2 have no usable text: they are counted, and not annotated."""
    shard = tmp_path / "s.jsonl"
    shard.write_bytes(b'{"id": "d0", "text": "Arzt"}\n{"id": "d1", "text": "   "}\n'
                      b'{"id": "d2", "text": "Gr\xfc\xdfe"}\n{"id": "d3", "text": "Klinik"}\n')
    summary = stratified_sample([str(shard)], 4, 0, None, str(tmp_path / "out.parquet"))
    assert pl.read_parquet(tmp_path / "out.parquet")["id"].to_list() == ["d0", "d3"]
    assert summary["skipped_text"] == {"empty": 1, "invalid_utf8": 1}
    vfile = tmp_path / "human.jsonl"
    vfile.write_text('{"id": "d1", "label": 0}\n')
    with pytest.raises(ValueError, match=r"validation document\(s\) \['d1'\] in .*s\.jsonl have no usable text"):
        stratified_sample([str(shard)], 1, 0, str(vfile), str(tmp_path / "out2.parquet"))
