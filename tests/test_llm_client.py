"""The OpenAI-compatible client against a local HTTP server speaking the chat-completions protocol.

`FakeOpenAI` is a fake only in that no model stands behind it: the real `openai` SDK talks to it
over HTTP. Other test modules (judge, annotation, the judge CLI) import it from here. Its answer is
a function of the request body; a per-test hook can make it answer with an HTTP error, stall, or
send other content.
"""
from __future__ import annotations

import collections
import json
from collections import Counter
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from medadapt.llm import InvalidAnswer, LLMError, TooManyFailures
from medadapt.llm import ledger as ledger_file
from medadapt.llm.client import ChatClient, Endpoint, RetryPolicy, retry_after

FAKE_KEY = "sk-test-SECRET-5f3c9a1d7e"


class LocalHTTP:
    """Serves a request handler class on 127.0.0.1 (a free port) in a thread; the fakes' base."""

    class _Server(ThreadingHTTPServer):
        # The default backlog of 5 drops connections beyond it, which a client sees as a timeout:
        # a fault of the fake, not of the code under test.
        request_queue_size = 128

    def serve(self, handler) -> None:
        self.server = self._Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeOpenAI(LocalHTTP):
    """`answer(body) -> str`: the assistant's content for a request.

    hook(body, n, headers) -> None (answer normally) or an action tuple:
    ("status", code, headers, body) | ("sleep", seconds) | ("content", text).
    """

    def __init__(self, answer, models=("fake-model",)):
        self.answer = answer
        self.models = list(models)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.hook = None
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.delay = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload, headers=None):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"}
                                                            for m in fake.models]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    n = len(fake.requests)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    action = fake.hook(body, n, fake.headers[n - 1]) if fake.hook else None
                    time.sleep(fake.delay)
                    if action and action[0] == "status":
                        return self._send(action[1], action[3], action[2])
                    if action and action[0] == "sleep":
                        time.sleep(action[1])
                    content = action[1] if action and action[0] == "content" else fake.answer(body)
                    self._send(200, {
                        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0,
                        "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}})
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

        self.serve(Handler)


def echo_number(body) -> str:
    """The answer: the number in the last message, doubled, as JSON."""
    return json.dumps({"n": 2 * int(body["messages"][-1]["content"])})


def parse_n(text):
    try:
        value = json.loads(text)["n"]
    except (TypeError, ValueError, KeyError):
        return None
    return value if isinstance(value, int) else None


@pytest.fixture
def fake():
    server = FakeOpenAI(echo_number)
    yield server
    server.close()


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("FAKE_LLM_KEY", FAKE_KEY)
    return "FAKE_LLM_KEY"


def make_client(fake, key_env, *, max_retries=3, max_concurrency=4, timeout_s=10.0, **kwargs):
    endpoint = Endpoint(model="fake-model", base_url=fake.base_url, api_key_env=key_env,
                        timeout_s=timeout_s, max_concurrency=max_concurrency)
    return ChatClient(endpoint, RetryPolicy(max_retries=max_retries, backoff_base_s=0.01),
                      what="test", **kwargs)


def ask(k: int) -> list[dict]:
    return [{"role": "user", "content": str(k)}]


PARAMS = {"temperature": 0.0, "max_tokens": 8}


def test_values_in_order_identical_requests_sent_once(fake, key_env):
    run = make_client(fake, key_env).run([ask(1), ask(2), ask(1), ask(3)], PARAMS, parse_n)
    assert [r.value for r in run.results] == [2, 4, 2, 6]
    assert [r.raw for r in run.results] == ['{"n": 2}', '{"n": 4}', '{"n": 2}', '{"n": 6}']
    assert run.results[0].key == run.results[2].key != run.results[1].key
    assert len(fake.requests) == 3 and {r["max_tokens"] for r in fake.requests} == {8}
    assert fake.headers[0]["authorization"] == f"Bearer {FAKE_KEY}"
    assert run.usage["requests"] == 4 and run.usage["unique_requests"] == 3
    assert run.usage["sent"] == run.usage["answers"] == 3 and run.usage["prompt_tokens"] == 300
    assert [r.status for r in run.results] == ["valid"] * 4
    assert [r.attempts for r in run.results] == [1] * 4


def test_retry_after_then_500_then_success(fake, key_env, capfd):
    """429 with Retry-After: 1, then 500, then an answer: two retries, and the wait is the server's."""
    fake.hook = lambda body, n, h: {
        1: ("status", 429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}),
        2: ("status", 500, {}, {"error": {"message": "boom"}})}.get(n)
    start = time.monotonic()
    run = make_client(fake, key_env).run([ask(5)], PARAMS, parse_n)
    elapsed = time.monotonic() - start
    assert [r.value for r in run.results] == [10] and len(fake.requests) == 3
    assert 1.0 <= elapsed < 5.0  # backoff_base_s is 0.01: only Retry-After explains a 1 s wait
    err = capfd.readouterr().err
    assert "RateLimitError 429" in err and "retry 1/3" in err
    assert "InternalServerError 500" in err and "retry 2/3" in err


def test_retry_after_ms_wins_over_retry_after(fake, key_env):
    fake.hook = lambda body, n, h: ("status", 429, {"retry-after-ms": "300", "Retry-After": "30"},
                                    {"error": {"message": "slow down"}}) if n == 1 else None
    start = time.monotonic()
    make_client(fake, key_env).run([ask(1)], PARAMS, parse_n)
    assert 0.3 <= time.monotonic() - start < 5.0 and len(fake.requests) == 2


def test_timeout_is_retried(fake, key_env):
    fake.hook = lambda body, n, h: ("sleep", 3.0) if n == 1 else None
    run = make_client(fake, key_env, timeout_s=0.5).run([ask(4)], PARAMS, parse_n)
    assert run.results[0].value == 8 and len(fake.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_http_errors_are_fatal_at_once(fake, key_env, status):
    fake.hook = lambda body, n, h: ("status", status, {}, {"error": {"message": "no"}})
    with pytest.raises(LLMError, match=str(status)):
        make_client(fake, key_env, max_concurrency=1).run([ask(1)], PARAMS, parse_n)
    assert len(fake.requests) == 1


def test_exhausted_retries_end_the_request_missing(fake, key_env):
    fake.hook = lambda body, n, h: ("status", 503, {}, {"error": {"message": "busy"}}) \
        if body["messages"][-1]["content"] == "1" else None
    run = make_client(fake, key_env, max_retries=2, max_concurrency=1).run([ask(1), ask(2)],
                                                                           PARAMS, parse_n)
    assert len(fake.requests) == 4  # 3 tries of the first request, 1 of the second
    missing, ok = run.results
    assert (missing.status, missing.value, missing.attempts) == ("missing", None, 3)
    assert missing.reason.startswith("no answer after 3 tries: InternalServerError 503")
    assert (ok.status, ok.value) == ("valid", 4)
    assert run.usage["answers"] == 4 and run.usage["retries"] == 2 and run.usage["missing"] == 1
    # with no request allowed to fail, the run fails and says so
    with pytest.raises(TooManyFailures, match=r"1 of 1 requests have no valid answer \(0 invalid, "
                                              r"1 without an answer.*more than the 0 allowed"):
        make_client(fake, key_env, max_retries=1).run([ask(1)], PARAMS, parse_n, max_failed=0)


def test_retry_delay_and_classification():
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")

    def status_error(code, headers=None):
        cls = {429: openai.RateLimitError, 500: openai.InternalServerError}.get(code, openai.APIStatusError)
        return cls("x", response=httpx.Response(code, headers=headers or {}, request=request), body=None)

    policy = RetryPolicy(max_retries=3, backoff_base_s=2.0, backoff_max_s=10.0)
    for code in (408, 409, 429, 500, 502, 503):
        assert policy.retryable(status_error(code)), code
    for code in (400, 401, 403, 404, 422):
        assert not policy.retryable(status_error(code)), code
    assert policy.retryable(openai.APITimeoutError(request=request))
    assert policy.retryable(openai.APIConnectionError(request=request))
    assert not policy.retryable(ValueError("bug"))
    # the server's hint, in all three spellings
    assert retry_after(status_error(429, {"Retry-After": "7"})) == 7.0
    assert retry_after(status_error(429, {"retry-after-ms": "250", "Retry-After": "7"})) == 0.25
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after(status_error(429, {"Retry-After": http_date})) <= 31
    assert retry_after(status_error(500)) is None
    assert 7.0 <= policy.delay(status_error(429, {"Retry-After": "7"}), 0) <= 7.2
    assert policy.delay(status_error(429, {"Retry-After": "99999"}), 0) <= 3600.2
    # no hint: exponential backoff with jitter, capped
    for attempt, cap in ((0, 2.0), (1, 4.0), (2, 8.0), (3, 10.0), (9, 10.0)):
        for _ in range(20):
            assert 0.5 * cap <= policy.delay(status_error(503), attempt) <= cap


def test_concurrency_is_bounded(fake, key_env):
    fake.delay = 0.2
    make_client(fake, key_env, max_concurrency=3).run([ask(k) for k in range(9)], PARAMS, parse_n)
    assert len(fake.requests) == 9 and fake.max_in_flight == 3


def test_cache_and_ledger(fake, key_env, tmp_path, monkeypatch):
    fake.hook = lambda body, n, h: ("content", "kaputt") if body["messages"][-1]["content"] == "3" else None
    ledger = tmp_path / "usage.jsonl"
    client = make_client(fake, key_env, cache_dir=str(tmp_path / "cache"), ledger=str(ledger),
                         prices_per_mtok={"input": 1.0, "output": 10.0})
    run = client.run([ask(1), ask(2), ask(3)], PARAMS, parse_n, job="first")
    assert [r.value for r in run.results] == [2, 4, None] and run.results[2].raw == "kaputt"
    assert run.results[2].status == "invalid" and run.results[2].reason == "answer not usable"
    assert not any(r.cache_hit for r in run.results)
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2  # the failure is not cached
    # rerun: the two good answers come from the cache, only the unparseable one is asked again;
    # no key is needed to read the cache, one is needed to send
    fake.hook = None
    run2 = client.run([ask(1), ask(2), ask(3)], PARAMS, parse_n, job="second")
    assert [r.value for r in run2.results] == [2, 4, 6] and len(fake.requests) == 4
    assert [r.cache_hit for r in run2.results] == [True, True, False]
    assert run2.usage["cost_usd"] == pytest.approx((100 * 1.0 + 7 * 10.0) / 1e6)  # only what was sent
    monkeypatch.delenv(key_env)
    run3 = client.run([ask(2), ask(3)], PARAMS, parse_n)
    assert all(r.cache_hit for r in run3.results) and len(fake.requests) == 4
    assert run3.usage["cost_usd"] is None and run3.usage["sent"] == 0
    # another sampling parameter is another request
    monkeypatch.setenv(key_env, FAKE_KEY)
    client.run([ask(1)], {**PARAMS, "temperature": 0.5}, parse_n)
    assert len(fake.requests) == 5
    # one record per answer received and per cache hit, in the contract's shape
    records = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert all(list(r) == list(ledger_file.FIELDS) for r in records)
    # within a run, concurrent answers are recorded in the order they arrive
    assert Counter((r["job"], r["kind"], r["valid"]) for r in records) == Counter([
        *[("first", "answer", True)] * 2, ("first", "answer", False),
        ("second", "cache_hit", True), ("second", "cache_hit", True), ("second", "answer", True),
        (None, "cache_hit", True), (None, "cache_hit", True), (None, "answer", True)])
    assert [r["job"] for r in records] == ["first"] * 3 + ["second"] * 3 + [None] * 3  # appended as they happen
    answers = [r for r in records if r["kind"] == "answer"]
    assert len(answers) == len(fake.requests) == 5
    first = next(r for r in answers if r["valid"])
    assert first["stage"] == "test" and first["model"] == "fake-model" and first["status"] == 200
    assert first["endpoint"] == "127.0.0.1" and first["attempt"] == 1 and first["batch"] is False
    assert (first["prompt_tokens"], first["completion_tokens"]) == (100, 7)
    assert first["cost_usd"] == pytest.approx((100 * 1.0 + 7 * 10.0) / 1e6)
    assert first["time"].endswith("+00:00") and len(first["key"]) == 64
    invalid = [r for r in answers if r["valid"] is False]
    assert [r["reason"] for r in invalid] == ["answer not usable"]  # the invalid one is paid for, and counted
    hits = [r for r in records if r["kind"] == "cache_hit"]
    assert {(r["attempt"], r["cost_usd"], r["prompt_tokens"]) for r in hits} == {(0, None, None)}


def test_invalid_answer_is_asked_again_then_recorded(fake, key_env, tmp_path, capfd):
    """An unusable answer is a failed attempt: asked again (bounded), each answer counted."""
    seen = collections.Counter()

    def hook(body, n, h):
        k = body["messages"][-1]["content"]
        seen[k] += 1
        if k == "1" and seen[k] <= 2:
            return ("content", '{"n": 2')  # truncated: twice, then a good answer
        if k == "2":
            return ("content", '{"n": "four"}')  # never usable
    fake.hook = hook

    def parse_strict(text):
        value = parse_n(text)
        if value is None:
            raise InvalidAnswer(f"not an answer: {text!r}")
        return value
    ledger = tmp_path / "l.jsonl"
    run = make_client(fake, key_env, max_concurrency=1, invalid_retries=2, ledger=str(ledger),
                      cache_dir=str(tmp_path / "c")).run([ask(1), ask(2)], PARAMS, parse_strict)
    good, bad = run.results
    assert (good.status, good.value, good.attempts) == ("valid", 2, 3)
    assert (bad.status, bad.value, bad.attempts, bad.raw) == ("invalid", None, 3, '{"n": "four"}')
    assert bad.reason == """not an answer: '{"n": "four"}'"""
    assert len(fake.requests) == 6 and run.usage["reasks"] == 4 and run.usage["invalid_answers"] == 5
    records = ledger_file.read(ledger)
    assert [(r["attempt"], r["valid"]) for r in records if r["key"] == good.key] == \
        [(1, False), (2, False), (3, True)]
    err = capfd.readouterr().err
    assert "(1/3): not an answer" in err and "asking again" in err
    assert "no valid answer to" in err and "after 3 answer(s)" in err


def test_wrong_url_fails_fast_naming_it(key_env, capfd):
    """Connection refused by an endpoint that never answered: a few tries, not every retry."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    url = f"http://127.0.0.1:{port}/v1"
    endpoint = Endpoint(model="m", base_url=url, api_key_env=key_env, timeout_s=5, max_concurrency=8)
    client = ChatClient(endpoint, RetryPolicy(max_retries=6, backoff_base_s=0.05), what="judge")
    start = time.monotonic()
    with pytest.raises(LLMError, match=rf"cannot connect to {url}: 3 tries failed"):
        client.run([ask(k) for k in range(50)], PARAMS, parse_n)
    assert time.monotonic() - start < 5
    err = capfd.readouterr().err
    retries = [line for line in err.splitlines() if "; retry " in line]
    assert 1 <= len(retries) <= 2 and all(url in line for line in retries)


def test_over_budget_stops_sending_and_finishes_what_is_in_flight(fake, key_env, tmp_path):
    fake.delay = 0.2
    fake.answer = lambda body: "kaputt"
    ledger = tmp_path / "l.jsonl"
    with pytest.raises(TooManyFailures) as err:
        make_client(fake, key_env, max_concurrency=2, ledger=str(ledger)).run(
            [ask(k) for k in range(20)], PARAMS, parse_n, max_failed=1)
    counts = err.value.counts
    assert counts["requests"] == 20 and counts["allowed"] == 1
    # the second failure stops the run: the request in flight beside it is finished, no new one
    assert len(fake.requests) in (2, 3, 4)
    assert counts["invalid"] == len(fake.requests) and counts["unasked"] == 20 - len(fake.requests)
    assert len([r for r in ledger_file.read(ledger) if r["kind"] == "answer"]) == len(fake.requests)


def test_key_never_reaches_results_logs_or_errors(fake, key_env, tmp_path, capfd):
    # a proxy that echoes the Authorization header: in an answer, in a retried error, in a fatal one
    fake.answer = lambda body: f'{{"n": 1}} seen {fake.headers[-1]["authorization"]}'
    fake.hook = lambda body, n, h: ("status", 500, {}, {"error": {"message": h["authorization"]}}) \
        if n == 1 else None
    run = make_client(fake, key_env, cache_dir=str(tmp_path / "c"), ledger=str(tmp_path / "l.jsonl")
                      ).run([ask(1)], PARAMS, lambda t: 1 if t else None)
    assert FAKE_KEY not in run.results[0].raw and run.results[0].raw.startswith('{"n": 1} seen')
    fake.hook = lambda body, n, h: ("status", 401, {}, {"error": {"message": f"bad key {FAKE_KEY}"}})
    with pytest.raises(LLMError) as err:
        make_client(fake, key_env).run([ask(2)], PARAMS, parse_n)
    assert "401" in str(err.value) and FAKE_KEY not in str(err.value)
    out, errs = capfd.readouterr()
    assert "retry" in errs and FAKE_KEY not in out + errs
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert FAKE_KEY.encode() not in p.read_bytes(), p
