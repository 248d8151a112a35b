"""The judge stage against a hostile chat-completions server: no verdict invented, none lost.

`FaultyJudge` speaks the chat-completions protocol over HTTP (the real `openai` client talks to it)
and knows, for every game, the verdict it means: the response with more "+" signs wins, equal
counts tie. Per game it first plays a script of faults, one per request: 429 with Retry-After,
500, an answer slower than the client's timeout, truncated JSON, an invalid enum, prose that
names a verdict. Every unusable answer names the verdict it does *not* mean, so a lenient reading
would be caught. Once a game's script is played out it answers validly.

The server counts what it received and what it sent (a response it wrote; a slow answer whose
client has hung up is not written), so the ledger can be checked against the wire.

The stage runs as the workflow runs it (`medadapt.runtime.run_job` with the rule's named input,
output, params and log); only the backoff is shortened, a runtime knob that is not a config key.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import re
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import polars as pl
import pytest
from test_llm_client import LocalHTTP

import medadapt.cli
from medadapt.config import resolve_block
from medadapt.io import write_jsonl
from medadapt.judge.config import JudgeConfig
from medadapt.judge.pairs import JudgeFailed
from medadapt.llm import ledger as ledger_file
from medadapt.runtime import Job, run_job

TIMEOUT_S = 0.5  # judge.timeout_s in these tests; a slow answer takes longer


def meant(user: str) -> str:
    a = re.search(r"Response A:\n  (.*?)\n\nResponse B:", user, re.S).group(1)
    b = re.search(r"Response B:\n  (.*?)\n\n\nBased on", user, re.S).group(1)
    return "A" if a.count("+") > b.count("+") else "B" if b.count("+") > a.count("+") else "0"


def game_of(user: str) -> tuple[int, str]:
    """(prompt number, order) of a request: candidate responses say "cand"."""
    i = int(re.search(r"Frage (\d+)\?", user).group(1))
    a = re.search(r"Response A:\n  (.*?)\n\nResponse B:", user, re.S).group(1)
    return i, "cand_first" if "cand" in a else "base_first"


class FaultyJudge(LocalHTTP):
    """scripts: (prompt number, order) -> list of faults, played one per request, then valid."""

    def __init__(self, scripts):
        self.scripts = scripts
        self.lock = threading.Lock()
        self.asked = collections.Counter()  # requests per game
        self.counts = collections.Counter()  # requests, answers (written), by fault, abandoned
        self.valid_sent = collections.Counter()  # valid verdicts written per game
        self.meant: dict[tuple[int, str], str] = {}
        self.in_flight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _write(self, code, payload, headers=()):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

            def _client_gone(self) -> bool:
                ready, _, _ = select.select([self.connection], [], [], 0)
                return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""

            def do_POST(self):  # noqa: N802
                with fake.lock:
                    fake.in_flight += 1
                try:
                    self._answer()
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _answer(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][-1]["content"]
                game, verdict = game_of(user), meant(user)
                wrong = "B" if verdict == "A" else "A"
                with fake.lock:
                    fake.counts["requests"] += 1
                    n = fake.asked[game]
                    fake.asked[game] += 1
                    fake.meant[game] = verdict
                script = fake.scripts.get(game, [])
                fault = script[n] if n < len(script) else "valid"
                if fault == "slow":
                    time.sleep(TIMEOUT_S + 0.7)
                    if self._client_gone():
                        with fake.lock:
                            fake.counts["abandoned"] += 1
                        self.close_connection = True
                        return
                if fault == "429":
                    self._write(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                                [("Retry-After", "1")])
                elif fault == "500":
                    self._write(500, {"error": {"message": "The server had an error"}})
                else:
                    content = {
                        "valid": json.dumps({"winner": verdict}), "slow": json.dumps({"winner": verdict}),
                        "truncated": '{"winner": "%s"' % wrong, "enum": '{"winner": 0.5}',
                        "tiebreak": f"tie-breaker: {wrong}", "slash": f"{wrong}/{verdict}",
                        "prose": f'Klar besser ist {{"winner": "{wrong}"}}, weil ...',
                    }[fault]
                    self._write(200, {
                        "id": f"chatcmpl-{fake.counts['requests']}", "object": "chat.completion",
                        "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 200, "completion_tokens": 6, "total_tokens": 206}})
                    if fault in ("valid", "slow"):
                        with fake.lock:
                            fake.valid_sent[game] += 1
                with fake.lock:
                    fake.counts["answers"] += 1
                    fake.counts[fault] += 1

        self.serve(Handler)

    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait for the handlers still busy (a slow answer sleeps on after its client gave up)."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.in_flight == 0


N_PROMPTS = 30
GAMES = [(i, o) for i in range(N_PROMPTS) for o in ("cand_first", "base_first")]


def write_files(tmp_path):
    """Prompt i: the candidate has i % 3 "+" signs, the baseline 1 (wins, ties and losses)."""
    cand = [{"id": f"p{i}", "instruction": f"Frage {i}?", "response": f"cand {'+' * (i % 3)}"}
            for i in range(N_PROMPTS)]
    base = [{"id": f"p{i}", "instruction": f"Frage {i}?", "response": "base +"} for i in range(N_PROMPTS)]
    write_jsonl(tmp_path / "c05.jsonl", cand)
    write_jsonl(tmp_path / "base.jsonl", base)
    return str(tmp_path / "c05.jsonl"), str(tmp_path / "base.jsonl")


def judge_job(tmp_path, server, files, name, **judge):
    block = resolve_block("judge", {
        "model": "gpt-judge", "base_url": server.base_url, "api_key_env": "FAULT_KEY",
        "max_concurrency": 8, "max_retries": 4, "timeout_s": TIMEOUT_S, "max_invalid_retries": 2,
        "prices_per_mtok": {"input": 0.4, "output": 1.6}, **judge})
    return Job(rule="judge", input={"candidate": files[0], "baseline": files[1], "server_file": []},
               output={"out": str(tmp_path / f"{name}.parquet")},
               params={"judge": block, "candidate_name": "q/7b/c05", "baseline_name": "q/7b/base",
                       "cache_dir": str(tmp_path / "cache"), "ledger": str(tmp_path / "ledger.jsonl")},
               log=str(tmp_path / f"{name}.log"))


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """Backoff without a server hint starts at 0.05 s (a knob, not a config key)."""
    monkeypatch.setenv("FAULT_KEY", "sk-fault-test-0123456789")
    original = JudgeConfig.from_block.__func__
    monkeypatch.setattr(JudgeConfig, "from_block", classmethod(
        lambda cls, block: dataclasses.replace(original(cls, block), backoff_base_s=0.05)))


def answers_in_ledger(path) -> collections.Counter:
    return collections.Counter(r["kind"] for r in ledger_file.read(path))


def report(capsys, title, server, tmp_path, games_without_verdict, seconds):
    """The numbers of all runs so far: from the server's side and from the ledger."""
    server.settle()
    records = ledger_file.read(tmp_path / "ledger.jsonl")
    retried = sum(r["kind"] == "error" or (r["kind"] == "answer" and r["status"] != 200)
                  for r in records)
    invalid = sum(r["valid"] is False for r in records)
    with capsys.disabled():
        print(f"\n[fault injection] {title}: {server.counts['requests']} requests, "
              f"{server.counts['answers']} answers ({server.counts['429']} × 429, "
              f"{server.counts['500']} × 500, {server.counts['abandoned']} too slow, no answer), "
              f"{retried} retries, {invalid} invalid answers (re-asked or recorded), "
              f"{games_without_verdict} of 60 games without a verdict; wall {seconds:.1f} s")


def check_wire(server, tmp_path):
    """The invariants over every run so far: the ledger matches the wire, nothing paid twice."""
    server.settle()
    kinds = answers_in_ledger(tmp_path / "ledger.jsonl")
    assert kinds["answer"] == server.counts["answers"]  # every answer the server sent, counted
    assert kinds["error"] == server.counts["abandoned"]  # every request that got no answer
    assert max(server.valid_sent.values(), default=0) <= 1  # no valid verdict bought twice


def test_faults_within_the_budget(tmp_path, capsys):
    """Every fault once (one game never answers validly): each game judged as meant, or null."""
    scripts = {}
    faults = [[], ["429"], ["500", "500"], ["slow"], ["truncated"], ["enum"], ["tiebreak", "slash"],
              ["prose"]]
    for i, order in GAMES:
        scripts[(i, order)] = faults[i % len(faults)]
    scripts[(7, "cand_first")] = ["truncated", "enum", "prose"]  # 3 unusable answers: invalid
    server = FaultyJudge(scripts)
    files = write_files(tmp_path)
    try:
        job = judge_job(tmp_path, server, files, "c05_vs_source", max_invalid_fraction=0.05)
        start = time.monotonic()
        usage = run_job(job)
        seconds = time.monotonic() - start
        report(capsys, "faults within the budget", server, tmp_path, usage["invalid"], seconds)
        df = pl.read_parquet(job.output["out"])
        assert df.height == 60 and df.filter(pl.col("winner").is_not_null()).height == 59
        for row in df.iter_rows(named=True):
            game = (int(row["prompt_id"][1:]), row["order"])
            if game == (7, "cand_first"):  # recorded as invalid, with its raw text, never guessed
                assert row["winner"] is None and row["status"] == "invalid" and row["attempts"] == 3
                assert row["raw"].startswith("Klar besser ist") and row["outcome"] is None
                assert row["invalid_reason"] == "not a JSON object (Expecting value at character 0)"
            else:
                assert row["winner"] == server.meant[game], game  # exactly what the server meant
                assert row["status"] == "valid" and row["invalid_reason"] is None
        assert usage["invalid"] == 1 and usage["missing"] == 0 and usage["valid"] == 59
        assert server.counts["abandoned"] == 8 and server.counts["429"] == 8
        assert usage["answers"] == server.counts["answers"] and usage["sent"] == server.counts["requests"]
        check_wire(server, tmp_path)
        log_lines = open(job.log).read().splitlines()
        assert any("RateLimitError 429" in x and "; retry 1/4" in x and "in 1." in x for x in log_lines)
        assert any("APITimeoutError" in x and server.base_url in x for x in log_lines)
        assert log_lines[-1].startswith(f"[judge] {job.output['out']}: 60 games, 59 valid, 1 invalid")

        # a rerun asks only the game without a verdict (the server now means it)
        n = server.counts["requests"]
        usage2 = run_job(job)
        assert server.counts["requests"] - n == 1 and usage2["cache_hits"] == 59
        assert pl.read_parquet(job.output["out"])["winner"].null_count() == 0
        check_wire(server, tmp_path)
        # once everything is cached, a rerun (here through `medadapt judge`) sends nothing
        n = server.counts["requests"]
        argv = ["judge", *files, "--out", str(tmp_path / "again.csv"), "--model", "gpt-judge",
                "--base-url", server.base_url, "--cache-dir", str(tmp_path / "cache"),
                "--candidate-name", "q/7b/c05", "--baseline-name", "q/7b/base"]
        assert medadapt.cli.main(argv) == 0
        assert server.counts["requests"] == n
    finally:
        server.close()


def test_faults_past_the_budget_fail_the_job_naming_the_count(tmp_path, capsys):
    """80 % of the games never get a verdict: the job fails and says how many; nothing is lost."""
    scripts = {game: (["truncated", "enum", "prose"] * 2 if k % 5 else ["500"])
               for k, game in enumerate(GAMES)}
    server = FaultyJudge(scripts)
    files = write_files(tmp_path)
    try:
        job = judge_job(tmp_path, server, files, "c05_vs_next", max_concurrency=4)
        start = time.monotonic()
        with pytest.raises(JudgeFailed, match=r"of 60 games have no verdict") as err:
            run_job(job)
        seconds = time.monotonic() - start
        failed = int(re.search(r"(\d+) of 60 games have no verdict", str(err.value)).group(1))
        report(capsys, "faults past the budget (the failed run)", server, tmp_path, failed, seconds)
        # the job stopped at the first game past the budget (0 of 60 allowed at 0.01)
        assert 1 <= failed <= 60 and "judge.max_invalid_fraction 0.01 allows 0" in str(err.value)
        last = open(job.log).read().splitlines()[-1]
        assert last.startswith("[medadapt] rule judge failed: JudgeFailed: ") and f"{failed} of 60 games" in last
        assert not (tmp_path / "c05_vs_next.parquet").exists()
        check_wire(server, tmp_path)
        cached = len(list((tmp_path / "cache").rglob("*.json")))
        assert cached == sum(server.valid_sent.values())  # every valid verdict received is kept

        # the server heals: a rerun pays only for games without a verdict, never one twice
        server.scripts = {}
        start = time.monotonic()
        run_job(job)
        report(capsys, "faults past the budget (+ the rerun after the server healed)", server,
               tmp_path, 0, time.monotonic() - start)
        df = pl.read_parquet(job.output["out"])
        assert df["winner"].null_count() == 0
        assert all(row["winner"] == server.meant[(int(row["prompt_id"][1:]), row["order"])]
                   for row in df.iter_rows(named=True))
        check_wire(server, tmp_path)
        n = server.counts["requests"]
        run_job(job)
        assert server.counts["requests"] == n  # all cached: zero requests
    finally:
        server.close()
