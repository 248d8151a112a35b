"""Packing: EOS after every document, global concatenation, blocks == tokens // seq_len."""
import json
from pathlib import Path

import polars as pl
import pytest
from datasets import load_from_disk
from transformers import AutoTokenizer

from medadapt.train.pack import pack

SEQ = 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, german_texts):
    path = tmp_path_factory.mktemp("corpus") / "finemed.parquet"
    texts = list(dict.fromkeys(german_texts))  # unique docs, so every decoded doc can be traced back
    pl.DataFrame({"id": [f"d{i}" for i in range(len(texts))], "text": texts}).write_parquet(path)
    return str(path), texts


@pytest.fixture(scope="module")
def packed(tmp_path_factory, corpus, tiny_tokenizer):
    out = tmp_path_factory.mktemp("packed") / "qwen"
    stats = pack(corpus[0], tiny_tokenizer, SEQ, str(out), threads=1, seed=3)
    return str(out), stats


def test_block_count_and_stats(packed, corpus, tiny_tokenizer):
    out, stats = packed
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    expected = sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in corpus[1])  # +1: EOS
    ds = load_from_disk(out)
    assert stats["tokens"] == expected and stats["docs"] == len(corpus[1])
    assert stats["blocks"] == expected // SEQ == len(ds)
    assert all(len(row) == SEQ for row in ds["input_ids"])
    assert json.loads((Path(out) / "stats.json").read_text()) == stats


def test_documents_are_separated_by_eos(packed, corpus, tiny_tokenizer):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    stream = [i for row in load_from_disk(packed[0])["input_ids"] for i in row]
    *complete, _tail = tok.decode(stream).split(tok.eos_token)
    assert len(complete) == stream.count(tok.eos_token_id) >= len(corpus[1]) - 2
    assert set(complete) <= set(corpus[1])  # every EOS ends exactly one whole document
    assert len(set(complete)) == len(complete)  # no document twice, none split


def test_seed_shuffles_documents_deterministically(tmp_path, corpus, tiny_tokenizer, packed):
    again = pack(corpus[0], tiny_tokenizer, SEQ, str(tmp_path / "a"), threads=2, seed=3)
    other = pack(corpus[0], tiny_tokenizer, SEQ, str(tmp_path / "b"), threads=1, seed=4)
    first = load_from_disk(packed[0])["input_ids"]
    assert again["blocks"] == other["blocks"] == packed[1]["blocks"]
    assert load_from_disk(str(tmp_path / "a"))["input_ids"] == first  # the process count does not change the order
    assert load_from_disk(str(tmp_path / "b"))["input_ids"] != first


def test_missing_text_column_is_named(tmp_path, tiny_tokenizer):
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"body": ["Hallo Welt"]}).write_parquet(bad)
    with pytest.raises(ValueError, match=r"bad\.parquet.*no 'text' column"):
        pack(str(bad), tiny_tokenizer, SEQ, str(tmp_path / "out"), seed=0)
    assert not (tmp_path / "out").exists()


def test_corpus_shorter_than_one_block(tmp_path, tiny_tokenizer):
    short = tmp_path / "short.parquet"
    pl.DataFrame({"text": ["Fieber."]}).write_parquet(short)
    with pytest.raises(ValueError, match="no block of 4096 tokens"):
        pack(str(short), tiny_tokenizer, 4096, str(tmp_path / "out"), seed=0)
    assert [p.name for p in tmp_path.iterdir()] == ["short.parquet"]  # no output, no cache left behind
