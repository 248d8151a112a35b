"""The judge end to end against a local HTTP server speaking the chat-completions protocol.

The server (`FakeOpenAI`, see test_llm_client) is a fake only in the sense that no model stands
behind it: the real `openai` client talks to it over HTTP. Its verdict rule is deterministic (the
longer response wins, equal length is a tie), and a per-test hook can make it answer 429/500/401,
stall, or emit garbage.
"""
from __future__ import annotations

import dataclasses
import json
import re
import threading
import time

import polars as pl
import pytest
from test_llm_client import FAKE_KEY, FakeOpenAI, key_env  # noqa: F401  (a fixture)

from medadapt.io import write_jsonl
from medadapt.judge import judge_pair
from medadapt.judge.config import JudgeConfig
from medadapt.judge.pairs import run_pair
from medadapt.config import resolve_block
from medadapt.judge.pairs import JudgeFailed
from medadapt.judge.template import parse_winner, read_winner
from medadapt.llm import InvalidAnswer, LLMError
from medadapt.llm import ledger as ledger_file


def verdict(messages) -> str:
    user = messages[-1]["content"]
    a = re.search(r"Response A:\n  (.*?)\n\nResponse B:", user, re.S).group(1)
    b = re.search(r"Response B:\n  (.*?)\n\n\nBased on", user, re.S).group(1)
    return "A" if len(a) > len(b) else "B" if len(b) > len(a) else "0"


@pytest.fixture
def fake():
    server = FakeOpenAI(lambda body: json.dumps({"winner": verdict(body["messages"])}),
                        models=("fake-judge", "served-judge"))
    yield server
    server.close()


def judge_cfg(fake, key_env, **over):
    """A resolved judge block (every key the schema defines, as the workflow passes it)."""
    cfg = {"model": "fake-judge", "base_url": fake.base_url, "api_key_env": key_env,
           "max_concurrency": 4, "max_retries": 3, "timeout_s": 10, "temperature": 0.0,
           "max_tokens": 16, "use_json_schema": True,
           "prices_per_mtok": {"input": 0.4, "output": 1.6}}
    cfg.update(over)
    return resolve_block("judge", cfg, source="test")


NAMES = {"candidate_name": "tiny/s/c02", "baseline_name": "tiny/s/base"}


def judge_fast(candidate, baseline, out, judge, cache_dir, ledger=None, server_file=None, **knobs):
    """judge_pair with faster runtime knobs (not config keys): backoff 0.01 s unless given."""
    cfg = dataclasses.replace(JudgeConfig.from_block(judge), **{"backoff_base_s": 0.01, **knobs})
    return run_pair(candidate, baseline, out, cfg, cache_dir, ledger, server_file, **NAMES)


# candidate answers are longer on p1, shorter on p2, equal on p3
CAND = [("p1", "Was ist Fieber?", "Erhöhte Körpertemperatur über 38 Grad."),
        ("p2", "Was ist Metformin?", "Ein Mittel."),
        ("p3", "Was ist ein Puls?", "Herzschlag")]
BASE = [("p1", "Was ist Fieber?", "Hitze."),
        ("p2", "Was ist Metformin?", "Ein Biguanid gegen Diabetes Typ 2."),
        ("p3", "Was ist ein Puls?", "Schlagrate")]


def write_gen(path, rows):
    write_jsonl(path, [{"id": i, "instruction": q, "response": r, "n_tokens": 3,
                        "finish_reason": "stop"} for i, q, r in rows])
    return str(path)


@pytest.fixture
def gens(tmp_path):
    return write_gen(tmp_path / "cand.jsonl", CAND), write_gen(tmp_path / "base.jsonl", BASE)


# ---- parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ('{"winner": "A"}', "A"), ('{"winner":"B"}', "B"), ('{"winner": "0"}', "0"),
    ('  {"winner": "B"}\n', "B"), ('{"winner": "A", "reason": "klarer"}', "A"),
    ('```json\n{"winner": "A"}\n```', "A"), ('```\n{"winner": "0"}\n```\n', "0"),
])
def test_read_winner_accepts_only_the_schema(text, expected):
    assert read_winner(text) == parse_winner(text) == expected


@pytest.mark.parametrize("text,why", [
    ('{"winner": "A"', "not a JSON object"),  # truncated: never read as "A"
    ('{"winner": 0.5}', 'winner 0.5 is not one of'), ('{"winner": 0}', "winner 0 is not one of"),
    ('{"winner": "tie"}', 'winner "tie" is not'), ('{"winner": "b"}', 'winner "b" is not'),
    ('{"winner": "C"}', 'winner "C" is not'), ('{"winner": true}', "winner true is not"),
    ('{"winner": null}', "winner null is not"), ('{"verdict": "A"}', "no 'winner' key"),
    ('{"winner": "A", "winner": "B"}', "duplicate key"), ('["A"]', "JSON list, not an object"),
    ("tie-breaker: B", "not a JSON object"), ("A/B", "not a JSON object"), ("A", "not a JSON object"),
    ("Response B.", "not a JSON object"), ('Sure! {"winner": "B"} because ...', "not a JSON object"),
    ('```json\n{"winner": "A"}\n``` Begründung: A', "not a JSON object"),
    ('```json\n{"winner": "A"\n```', "not a JSON object"), ("", "empty answer"), (None, "empty answer"),
])
def test_anything_else_is_invalid_with_a_reason(text, why):
    with pytest.raises(InvalidAnswer, match=re.escape(why)):
        read_winner(text)
    assert parse_winner(text) is None


def test_missing_key_is_a_clear_error_and_nothing_is_sent(fake, gens, tmp_path, monkeypatch):
    cand, base = gens
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(LLMError, match=r"judge\.api_key_env: environment variable NOPE_KEY"):
        judge_pair(cand, base, str(tmp_path / "j.parquet"), judge_cfg(fake, "NOPE_KEY"), None, **NAMES)
    with pytest.raises(LLMError, match=r"judge\.api_key_env: required for the OpenAI API"):
        judge_pair(cand, base, str(tmp_path / "j.parquet"), judge_cfg(fake, "", base_url=None), None,
                   **NAMES)
    assert fake.requests == [] and not (tmp_path / "j.parquet").exists()


# ---- judge_pair -------------------------------------------------------------------------------

def test_judge_pair_both_orders_outcomes_cache_and_ledger(fake, key_env, gens, tmp_path):
    cand, base = gens
    out, ledger, cache = tmp_path / "j.parquet", tmp_path / "ledger.jsonl", tmp_path / "cache"
    cfg = judge_cfg(fake, key_env)
    usage = judge_pair(cand, base, str(out), cfg, str(cache), ledger=str(ledger), **NAMES)
    df = pl.read_parquet(out)
    assert df.columns == ["prompt_id", "order", "winner_raw", "outcome", "judge_model",
                          "prompt_tokens", "completion_tokens", "cache_hit", "key", "raw",
                          "model_a", "model_b", "winner", "status", "attempts", "invalid_reason"]
    assert set(df["status"]) == {"valid"} and df["attempts"].to_list() == [1] * 6
    assert df["invalid_reason"].null_count() == 6
    got = {(r["prompt_id"], r["order"]): (r["winner_raw"], r["outcome"]) for r in df.iter_rows(named=True)}
    assert got == {("p1", "cand_first"): ("A", "win"), ("p1", "base_first"): ("B", "win"),
                   ("p2", "cand_first"): ("B", "loss"), ("p2", "base_first"): ("A", "loss"),
                   ("p3", "cand_first"): ("0", "tie"), ("p3", "base_first"): ("0", "tie")}
    # the same games as the Davidson fit reads them: who was A, who was B, who won
    games = {(r["prompt_id"], r["model_a"], r["model_b"], r["winner"]) for r in df.iter_rows(named=True)}
    assert games == {("p1", "tiny/s/c02", "tiny/s/base", "A"), ("p1", "tiny/s/base", "tiny/s/c02", "B"),
                     ("p2", "tiny/s/c02", "tiny/s/base", "B"), ("p2", "tiny/s/base", "tiny/s/c02", "A"),
                     ("p3", "tiny/s/c02", "tiny/s/base", "0"), ("p3", "tiny/s/base", "tiny/s/c02", "0")}
    assert not df["cache_hit"].any() and df["prompt_tokens"].to_list() == [100] * 6
    # the wire: both orders rendered with the Figure 4 template, sampling params, strict schema
    assert len(fake.requests) == 6
    req = fake.requests[0]
    assert req["model"] == "fake-judge" and req["temperature"] == 0.0 and req["max_tokens"] == 16
    assert req["messages"][0]["role"] == "system" and "Response A:" in req["messages"][1]["content"]
    rf = req["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"]["properties"]["winner"]["enum"] == ["A", "B", "0"]
    assert fake.headers[0]["authorization"] == f"Bearer {FAKE_KEY}"
    p1 = [r["messages"][1]["content"] for r in fake.requests if "Fieber" in r["messages"][1]["content"]]
    assert {c.index("Erhöhte") < c.index("Hitze.") for c in p1} == {True, False}
    assert usage["sent"] == usage["answers"] == 6
    assert usage["cost_usd"] == pytest.approx((600 * 0.4 + 42 * 1.6) / 1e6)
    # rerun: everything from the cache, nothing sent, same result
    usage2 = judge_pair(cand, base, str(out), cfg, str(cache), ledger=str(ledger), **NAMES)
    df2 = pl.read_parquet(out)
    assert len(fake.requests) == 6 and df2["cache_hit"].all() and df2["attempts"].to_list() == [0] * 6
    assert df2.drop("cache_hit", "attempts").equals(df.drop("cache_hit", "attempts"))
    records = ledger_file.read(ledger)
    assert [r["kind"] for r in records] == ["answer"] * 6 + ["cache_hit"] * 6
    assert {(r["job"], r["stage"], r["model"]) for r in records} == {(str(out), "judge", "fake-judge")}
    assert sum(r["cost_usd"] for r in records if r["kind"] == "answer") == pytest.approx(usage["cost_usd"])
    assert usage2["cost_usd"] is None and usage2["sent"] == 0 and "saved_usd" not in usage2
    # a changed sampling parameter is a different request
    judge_pair(cand, base, str(out), judge_cfg(fake, key_env, temperature=0.7), str(cache), **NAMES)
    assert len(fake.requests) == 12


def test_no_json_schema_and_csv_ledger(fake, key_env, gens, tmp_path):
    cand, base = gens
    ledger = tmp_path / "usage.csv"
    judge_pair(cand, base, str(tmp_path / "j.parquet"), judge_cfg(fake, key_env, use_json_schema=False,
               prices_per_mtok=None), str(tmp_path / "c"), ledger=str(ledger), **NAMES)
    assert all("response_format" not in r for r in fake.requests)
    header, *rows = ledger.read_text().splitlines()
    assert header == ",".join(ledger_file.FIELDS) and len(rows) == 6
    assert all(row.startswith("answer,") and ",200,True,100,7,,False," in row for row in rows)


def test_secret_never_reaches_outputs_or_logs(fake, key_env, gens, tmp_path, capfd):
    cand, base = gens

    def hook(body, n, headers):  # one transient error whose body echoes the key, like a proxy might
        if n == 1:
            return ("status", 500, {}, {"error": {"message": f"upstream failed for {headers['authorization']}"}})
    fake.hook = hook
    out_dir = tmp_path / "results"
    judge_fast(cand, base, str(out_dir / "j.parquet"), judge_cfg(fake, key_env), str(out_dir / "cache"),
               ledger=str(out_dir / "ledger.jsonl"))
    captured = capfd.readouterr()
    assert "retry" in captured.err  # the error was logged ...
    assert FAKE_KEY not in captured.out + captured.err  # ... without the key
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    assert len(files) >= 3
    for p in files:
        assert FAKE_KEY.encode() not in p.read_bytes(), p


def test_auth_error_is_fatal_and_redacted(fake, key_env, gens, tmp_path, capfd):
    cand, base = gens
    fake.hook = lambda body, n, h: ("status", 401, {}, {"error": {
        "message": f"Incorrect API key provided: {FAKE_KEY}", "type": "invalid_request_error"}})
    with pytest.raises(LLMError) as err:
        judge_fast(cand, base, str(tmp_path / "j.parquet"), judge_cfg(fake, key_env), str(tmp_path / "c"))
    assert "401" in str(err.value) and FAKE_KEY not in str(err.value)
    assert FAKE_KEY not in "".join(capfd.readouterr())
    assert len(fake.requests) <= 6  # no retries on 401
    assert not (tmp_path / "j.parquet").exists()


def test_retry_after_is_honoured_then_5xx_backoff(fake, key_env, tmp_path):
    cand = write_gen(tmp_path / "c.jsonl", CAND[:1])
    base = write_gen(tmp_path / "b.jsonl", BASE[:1])
    fake.hook = lambda body, n, h: {1: ("status", 429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}),
                                    2: ("status", 429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}),
                                    3: ("status", 503, {}, {"error": {"message": "busy"}})}.get(n)
    start = time.monotonic()
    judge_fast(cand, base, str(tmp_path / "j.parquet"), judge_cfg(fake, key_env), str(tmp_path / "c"))
    elapsed = time.monotonic() - start
    assert len(fake.requests) == 5  # 2 games + 3 failed attempts
    assert elapsed >= 1.0  # backoff_base_s is 0.01: only Retry-After can explain the wait
    assert pl.read_parquet(tmp_path / "j.parquet")["outcome"].to_list() == ["win", "win"]


def test_timeout_is_retried(fake, key_env, tmp_path):
    cand = write_gen(tmp_path / "c.jsonl", CAND[:1])
    base = write_gen(tmp_path / "b.jsonl", BASE[:1])
    fake.hook = lambda body, n, h: ("sleep", 3.0) if n == 1 else None
    judge_fast(cand, base, str(tmp_path / "j.parquet"), judge_cfg(fake, key_env, timeout_s=0.5),
               str(tmp_path / "c"))
    assert len(fake.requests) == 3
    assert pl.read_parquet(tmp_path / "j.parquet")["winner_raw"].null_count() == 0


def test_exhausted_retries_fail_naming_the_count_but_keep_successes_cached(fake, key_env, gens,
                                                                          tmp_path):
    cand, base = gens
    # everything about p2 fails; the other four games succeed
    fake.hook = lambda body, n, h: (("status", 500, {}, {"error": {"message": "boom"}})
                                    if "Metformin" in body["messages"][1]["content"] else None)
    cfg = judge_cfg(fake, key_env, max_retries=2, max_concurrency=1, max_invalid_fraction=0.2)
    out = tmp_path / "j.parquet"
    with pytest.raises(JudgeFailed, match=r"2 of 6 games have no verdict \(0 invalid after up to 3 "
                                          r"answers each, 2 without an answer.*max_invalid_fraction "
                                          r"0\.2 allows 1\. Most common reason: no answer after 3 "
                                          r"tries: InternalServerError 500"):
        judge_pair(cand, base, str(out), cfg, str(tmp_path / "c"), **NAMES)
    assert not out.exists()
    assert len(list((tmp_path / "c").rglob("*.json"))) == 4
    fake.hook = None
    n_before = len(fake.requests)
    judge_fast(cand, base, str(out), cfg, str(tmp_path / "c"))
    assert len(fake.requests) - n_before == 2  # successes were not paid twice
    assert set(pl.read_parquet(out)["status"]) == {"valid"}


def test_invalid_is_asked_again_then_null_counted_and_not_cached(fake, key_env, gens, tmp_path, capfd):
    cand, base = gens
    fake.hook = lambda body, n, h: (("content", "Beide Antworten sind gut.")
                                    if "Fieber" in body["messages"][1]["content"] else None)
    out = tmp_path / "j.parquet"
    cfg = judge_cfg(fake, key_env, max_invalid_fraction=0.5)
    usage = judge_pair(cand, base, str(out), cfg, str(tmp_path / "c"), **NAMES)
    df = pl.read_parquet(out)
    bad = df.filter(pl.col("prompt_id") == "p1")
    assert bad["winner_raw"].null_count() == 2 and bad["outcome"].null_count() == 2
    assert bad["winner"].null_count() == 2 and set(bad["model_a"]) == {"tiny/s/c02", "tiny/s/base"}
    assert bad["raw"].to_list() == ["Beide Antworten sind gut."] * 2
    assert bad["status"].to_list() == ["invalid"] * 2 and bad["attempts"].to_list() == [3, 3]
    assert bad["invalid_reason"].str.starts_with("not a JSON object").all()
    assert usage["invalid"] == 2 and usage["reasks"] == 4 and len(fake.requests) == 10
    assert "no valid answer to" in capfd.readouterr().err
    assert len(list((tmp_path / "c").rglob("*.json"))) == 4
    fake.hook = None
    judge_pair(cand, base, str(out), cfg, str(tmp_path / "c"), **NAMES)
    assert len(fake.requests) == 12  # only the two failures were asked again
    assert pl.read_parquet(out)["outcome"].null_count() == 0


def test_concurrency_is_bounded(fake, key_env, tmp_path):
    rows = [(f"q{k}", f"Frage {k}?", "x" * k) for k in range(8)]
    cand = write_gen(tmp_path / "c.jsonl", rows)
    base = write_gen(tmp_path / "b.jsonl", [(i, q, "x" * 3) for i, q, _ in rows])
    fake.delay = 0.2
    judge_pair(cand, base, str(tmp_path / "j.parquet"), judge_cfg(fake, key_env, max_concurrency=3),
               str(tmp_path / "c"), **NAMES)
    assert len(fake.requests) == 15  # q3: identical answers -> both orders identical, sent once
    assert fake.max_in_flight == 3


def test_server_file_overrides_endpoint_and_is_waited_for(fake, tmp_path, gens):
    cand, base = gens
    marker = tmp_path / "server.json"

    def later():
        time.sleep(1.0)
        marker.write_text(json.dumps({"base_url": fake.base_url, "model": "served-judge", "pid": 1}))
    threading.Thread(target=later, daemon=True).start()
    cfg = judge_cfg(fake, "", model="configured", base_url="http://127.0.0.1:9/v1", max_concurrency=2,
                    max_retries=0, max_tokens=8, serve={"model": {"source": "x"}})
    judge_pair(cand, base, str(tmp_path / "j.parquet"), cfg, str(tmp_path / "c"), server_file=str(marker),
               **NAMES)
    assert {r["model"] for r in fake.requests} == {"served-judge"}
    assert fake.headers[0]["authorization"] == "Bearer EMPTY"
    assert set(pl.read_parquet(tmp_path / "j.parquet")["judge_model"]) == {"served-judge"}


def test_stale_server_file_is_not_trusted(fake, tmp_path, gens):
    cand, base = gens
    marker = tmp_path / "server.json"
    marker.write_text(json.dumps({"base_url": "http://127.0.0.1:9/v1", "model": "gone", "pid": 1}))
    cfg = judge_cfg(fake, "", model="m", max_concurrency=1, max_retries=0, max_tokens=8)
    with pytest.raises(LLMError, match="no live server behind"):
        judge_fast(cand, base, str(tmp_path / "j.parquet"), cfg, None, server_file=str(marker),
                   server_wait_s=2)
    assert fake.requests == []


def test_mismatched_inputs_are_clear_errors(fake, key_env, tmp_path):
    cfg = judge_cfg(fake, key_env)
    cand = write_gen(tmp_path / "c.jsonl", CAND)
    base = write_gen(tmp_path / "b.jsonl", BASE[:2])
    with pytest.raises(ValueError, match=r"prompt ids differ.*c\.jsonl.*b\.jsonl.*only in candidate \['p3'\]"):
        judge_pair(cand, base, str(tmp_path / "j.parquet"), cfg, None, **NAMES)
    other = write_gen(tmp_path / "o.jsonl", [(i, q + "!", r) for i, q, r in BASE])
    with pytest.raises(ValueError, match="instruction differs"):
        judge_pair(cand, other, str(tmp_path / "j.parquet"), cfg, None, **NAMES)
    write_jsonl(tmp_path / "bad.jsonl", [{"id": "p1", "instruction": "q"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl: line 1 lacks field 'response'"):
        judge_pair(str(tmp_path / "bad.jsonl"), base, str(tmp_path / "j.parquet"), cfg, None, **NAMES)
    assert fake.requests == []
    with pytest.raises(ValueError, match="same name"):
        judge_pair(cand, cand, str(tmp_path / "j.parquet"), cfg, None, candidate_name="m",
                   baseline_name="m")
    assert fake.requests == []
