"""`medadapt judge` end to end against a local chat-completions server (see test_llm_client).

The fake judge prefers the response with more "+" signs, wherever it is shown, so every verdict is
known; a table whose model_a/model_b were swapped relative to the order shown cannot pass.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys

import polars as pl
import pytest
import yaml
from test_llm_client import FAKE_KEY, FakeOpenAI

import medadapt.cli
from medadapt.io import write_jsonl

from medadapt.cli import judge as judge_cli  # noqa: E402


def run_cli(argv: list[str]) -> int:
    """`medadapt judge ARGV` as the console script runs it: exit code 2 on a usage error."""
    return medadapt.cli.main(["judge", *argv])


# ---- the fake judge and the response files -------------------------------------------------------

def plus_judge(body) -> str:
    user = body["messages"][-1]["content"]
    if "kaputt" in user:
        return "Ich kann mich nicht entscheiden."
    a = re.search(r"Response A:\n  (.*?)\n\nResponse B:", user, re.S).group(1)
    b = re.search(r"Response B:\n  (.*?)\n\n\nBased on", user, re.S).group(1)
    return json.dumps({"winner": "A" if a.count("+") > b.count("+") else
                       "B" if b.count("+") > a.count("+") else "0"})


# candidate better on p1, worse on p2, as good on p3; no verdict on p4
CAND = [("p1", "Was ist Fieber?", "Erhöhte Temperatur +++"), ("p2", "Was ist Metformin?", "Ein Mittel +"),
        ("p3", "Was ist ein Puls?", "Herzschlag ++"), ("p4", "kaputt?", "x")]
BASE = [("p1", "Was ist Fieber?", "Hitze +"), ("p2", "Was ist Metformin?", "Ein Biguanid ++"),
        ("p3", "Was ist ein Puls?", "Schlagrate ++"), ("p4", "kaputt?", "y")]


def write_responses(path, rows):
    write_jsonl(path, [{"id": i, "instruction": q, "response": r, "n_tokens": 3} for i, q, r in rows])
    return str(path)


@pytest.fixture
def fake():
    server = FakeOpenAI(plus_judge, models=("fake-judge",))
    yield server
    server.close()


@pytest.fixture
def files(tmp_path):
    return (write_responses(tmp_path / "c02.jsonl", CAND),
            write_responses(tmp_path / "base.jsonl", BASE))


@pytest.fixture
def judge_yaml(tmp_path, fake, monkeypatch):
    """A workflow-like config file whose judge block points at the fake, key in the environment."""
    monkeypatch.setenv("FAKE_JUDGE_KEY", FAKE_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "results": "results", "seed": 0,
        "judge": {"model": "fake-judge", "base_url": fake.base_url, "api_key_env": "FAKE_JUDGE_KEY",
                  "max_concurrency": 2, "max_retries": 0, "temperature": 0.0, "max_tokens": 16,
                  "max_invalid_retries": 1, "max_invalid_fraction": 0.25}}))
    return str(path)


def games(path) -> set[tuple[str, str, str, str]]:
    with open(path, newline="") as fh:
        return {(r["prompt_id"], r["model_a"], r["model_b"], r["winner"]) for r in csv.DictReader(fh)}


EXPECTED = {("p1", "c02", "base", "A"), ("p1", "base", "c02", "B"),
            ("p2", "c02", "base", "B"), ("p2", "base", "c02", "A"),
            ("p3", "c02", "base", "0"), ("p3", "base", "c02", "0"),
            ("p4", "c02", "base", ""), ("p4", "base", "c02", "")}


# ---- the command ---------------------------------------------------------------------------------

def test_judges_both_orders_into_a_csv_of_games(fake, files, judge_yaml, tmp_path, capfd):
    out, cache, ledger = tmp_path / "games.csv", tmp_path / "cache", tmp_path / "usage.jsonl"
    argv = [*files, "--out", str(out), "--config", judge_yaml, "--cache-dir", str(cache),
            "--ledger", str(ledger)]
    assert run_cli(argv) == 0
    assert games(out) == EXPECTED
    header = out.read_text().splitlines()[0].split(",")
    assert {"prompt_id", "model_a", "model_b", "winner"} <= set(header)
    # the workflow's settings went over the wire: model, temperature, schema, the key's variable
    # p4's two games were asked twice each (judge.max_invalid_retries 1), then left without a winner
    assert len(fake.requests) == 10 and {r["model"] for r in fake.requests} == {"fake-judge"}
    assert {r["max_tokens"] for r in fake.requests} == {16}
    assert all(r["response_format"]["json_schema"]["strict"] for r in fake.requests)  # default
    assert {h["authorization"] for h in fake.headers} == {f"Bearer {FAKE_KEY}"}
    stdout, stderr = capfd.readouterr()
    assert "8 games (c02 vs base): 6 with a verdict, 2 without; 0 from the cache, 10 requests sent, " \
        "10 answers received" in stdout and FAKE_KEY not in stdout + stderr
    rows = list(csv.DictReader(out.open()))
    assert {(r["prompt_id"], r["status"], r["attempts"]) for r in rows} == {
        ("p1", "valid", "1"), ("p2", "valid", "1"), ("p3", "valid", "1"), ("p4", "invalid", "2")}
    # rerun: only the two games without a verdict are asked again; the ledger has both runs,
    # one record per answer received and per cache hit
    assert run_cli(argv) == 0 and len(fake.requests) == 14 and games(out) == EXPECTED
    records = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert sum(r["kind"] == "answer" for r in records) == len(fake.requests)
    assert sum(r["kind"] == "cache_hit" for r in records) == 6
    assert {r["job"] for r in records} == {str(out)}
    assert sorted(r["attempt"] for r in records if not r["valid"]) == [1, 1, 1, 1, 2, 2, 2, 2]


def test_too_many_games_without_a_verdict_is_exit_1_naming_the_count(fake, files, judge_yaml, tmp_path,
                                                                     capfd):
    strict = tmp_path / "strict.yaml"
    doc = yaml.safe_load(open(judge_yaml))
    doc["judge"]["max_invalid_fraction"] = 0.01
    strict.write_text(yaml.safe_dump(doc))
    out = tmp_path / "g.csv"
    assert run_cli([*files, "--out", str(out), "--config", str(strict)]) == 1
    err = capfd.readouterr().err
    assert re.search(r"medadapt judge: failed: .*g\.csv: 2 of 8 games have no verdict \(2 invalid "
                     r"after up to 2 answers each.*judge\.max_invalid_fraction 0\.01 allows 0", err)
    assert not out.exists()


def test_names_parquet_and_flags_without_config(fake, tmp_path):
    # without p4: no config, so judge.max_invalid_fraction is the default, which allows no failure
    files = (write_responses(tmp_path / "c02.jsonl", CAND[:3]),
             write_responses(tmp_path / "base.jsonl", BASE[:3]))
    out = tmp_path / "games.parquet"
    argv = [*files, "--out", str(out), "--model", "fake-judge", "--base-url", fake.base_url,
            "--candidate-name", "tiny/s/c02", "--baseline-name", "tiny/s/base"]
    assert run_cli(argv) == 0
    df = pl.read_parquet(out)
    got = {(r["prompt_id"], r["model_a"], r["model_b"], r["winner"] or "") for r in df.iter_rows(named=True)}
    assert got == {(p, a.replace("c02", "tiny/s/c02").replace("base", "tiny/s/base"),
                    b.replace("c02", "tiny/s/c02").replace("base", "tiny/s/base"), w)
                   for p, a, b, w in EXPECTED if p != "p4"}
    # no config: the schema's defaults (max_tokens 32, JSON schema on) and the dummy key
    assert {r["max_tokens"] for r in fake.requests} == {32}
    assert all("response_format" in r for r in fake.requests)
    assert {h["authorization"] for h in fake.headers} == {"Bearer EMPTY"}


def test_help_names_the_contract():
    parser = argparse.ArgumentParser(prog="medadapt")
    text = judge_cli.add_parser(parser.add_subparsers()).format_help()
    for word in ("CANDIDATE".lower(), "--out", "--config", "--cache-dir", "--ledger", "--candidate-name",
                 "--baseline-name", "--model", "--base-url", "--api-key-env", "model_a", "winner",
                 "OpenAI API"):
        assert word in text, word


def _usage_error(argv, capfd, *patterns):
    assert run_cli(argv) == 2
    err = capfd.readouterr().err
    assert "\nmedadapt judge: error: " in "\n" + err, err
    for pattern in patterns:
        assert re.search(pattern, err), (pattern, err)


def test_bad_input_is_a_usage_error(fake, files, judge_yaml, tmp_path, capfd, monkeypatch):
    cand, base = files
    out = str(tmp_path / "g.csv")
    ok = ["--out", out, "--config", judge_yaml]
    _usage_error([str(tmp_path / "nope.jsonl"), base, *ok], capfd, r"candidate .*nope\.jsonl: no such file")
    (tmp_path / "broken.jsonl").write_text('{"id": "p1", "instruction": "q", "response": "r"}\n{oops\n')
    _usage_error([str(tmp_path / "broken.jsonl"), base, *ok], capfd, r"broken\.jsonl:2: not valid JSON")
    write_jsonl(tmp_path / "short.jsonl", [{"id": "p1", "instruction": "q"}])
    _usage_error([str(tmp_path / "short.jsonl"), base, *ok], capfd, r"line 1 lacks field 'response'")
    write_responses(tmp_path / "other.jsonl", CAND[:2])
    _usage_error([cand, str(tmp_path / "other.jsonl"), *ok], capfd, r"prompt ids differ")
    _usage_error([cand, base, "--out", str(tmp_path / "g.txt"), "--config", judge_yaml], capfd,
                 r"\.csv or \.parquet")
    _usage_error([cand, cand, *ok], capfd, r"both models would be called 'c02'")
    # the config: missing, without a judge block, with a misspelt key; no model at all
    _usage_error([cand, base, "--out", out, "--config", str(tmp_path / "none.yaml")], capfd, "cannot read")
    (tmp_path / "nojudge.yaml").write_text("seed: 1\n")
    _usage_error([cand, base, "--out", out, "--config", str(tmp_path / "nojudge.yaml")], capfd, "no judge:")
    (tmp_path / "typo.yaml").write_text(f"judge: {{model: m, base_url: '{fake.base_url}', max_concurency: 3}}\n")
    _usage_error([cand, base, "--out", out, "--config", str(tmp_path / "typo.yaml")], capfd, "max_concurency")
    _usage_error([cand, base, "--out", out], capfd, "--model")
    # the key: a variable that is not set; the OpenAI API without any
    monkeypatch.delenv("FAKE_JUDGE_KEY")
    _usage_error([cand, base, *ok], capfd, r"api_key_env: environment variable FAKE_JUDGE_KEY")
    _usage_error([cand, base, "--out", out, "--model", "gpt-x"], capfd, r"required for the OpenAI API")
    assert fake.requests == [] and not (tmp_path / "g.csv").exists()


def test_endpoint_failure_is_exit_1_without_the_key(fake, files, judge_yaml, tmp_path, capfd):
    fake.hook = lambda body, n, h: ("status", 401, {}, {"error": {"message": f"bad key {FAKE_KEY}"}})
    assert run_cli([*files, "--out", str(tmp_path / "g.csv"), "--config", judge_yaml]) == 1
    out, err = capfd.readouterr()
    assert "401" in err and FAKE_KEY not in out + err and not (tmp_path / "g.csv").exists()
