"""The usage ledger: appended records stay whole when parallel jobs append to the same file."""
from __future__ import annotations

import csv
import json
import multiprocessing

import pytest

from medadapt.llm import ledger


def test_jsonl_and_csv(tmp_path):
    path = tmp_path / "sub" / "usage.jsonl"
    ledger.append(path, {"time": "t1", "api_calls": 3, "note": "Grüße"})
    ledger.append(str(path), {"time": "t2", "api_calls": 0, "note": None})
    assert [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] == [
        {"time": "t1", "api_calls": 3, "note": "Grüße"}, {"time": "t2", "api_calls": 0, "note": None}]
    path = tmp_path / "usage.csv"
    ledger.append(str(path), {"time": "t1", "out": "a,b.parquet", "api_calls": 3})
    ledger.append(str(path), {"time": "t2", "out": "c.parquet", "api_calls": 0})
    rows = list(csv.DictReader(path.open()))
    assert path.read_text().splitlines()[0] == "time,out,api_calls"  # the header once
    assert rows == [{"time": "t1", "out": "a,b.parquet", "api_calls": "3"},
                    {"time": "t2", "out": "c.parquet", "api_calls": "0"}]


def _writer(path: str, worker: int, n: int) -> None:
    for i in range(n):
        ledger.append(path, {"worker": worker, "i": i, "pad": "x" * 5000})


def test_parallel_appends_stay_whole(tmp_path):
    path = str(tmp_path / "usage.jsonl")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    records = [json.loads(x) for x in open(path).read().splitlines()]
    assert sorted((r["worker"], r["i"]) for r in records) == [(w, i) for w in range(4) for i in range(40)]


def test_record_has_every_field_in_order():
    rec = ledger.record("answer", job="results/judge/q/7b/c05_vs_next.parquet", stage="judge",
                        model="gpt-4.1-mini", endpoint=ledger.endpoint_host(None), key="ab" * 32,
                        attempt=2, status=429, reason="RateLimitError 429")
    assert list(rec) == list(ledger.FIELDS)
    assert rec["endpoint"] == "api.openai.com" and rec["batch"] is False and rec["valid"] is None
    assert rec["time"].endswith("+00:00") and rec["cost_usd"] is None
    hit = ledger.record("cache_hit", job="j", stage="annotate", attempt=0, valid=True, batch=True)
    assert hit["kind"] == "cache_hit" and hit["batch"] is True and hit["status"] is None
    with pytest.raises(ValueError, match="kind 'paid'"):
        ledger.record("paid")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['saved_usd'\]"):
        ledger.record("answer", saved_usd=1.0)


@pytest.mark.parametrize("url,host", [
    (None, "api.openai.com"), ("http://127.0.0.1:8000/v1", "127.0.0.1"),
    ("https://user:secret@proxy.example.org:8443/v1?key=abc", "proxy.example.org"),
])
def test_endpoint_is_the_host_only(url, host):
    assert ledger.endpoint_host(url) == host


def test_read_missing_ledger_is_empty(tmp_path):
    assert ledger.read(tmp_path / "none.jsonl") == []
