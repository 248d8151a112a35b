"""The OpenAI-compatible client against a local HTTP server speaking the chat-completions protocol.

`FakeOpenAI` is a fake only in that no model stands behind it: the real `openai` SDK talks to it
over HTTP. Other test modules (judge, annotation, the judge CLI) import it from here. Its answer is
a function of the request body; a per-test hook can make it answer with an HTTP error, stall, or
send other content.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from medadapt.llm import LLMError
from medadapt.llm.client import ChatClient, Endpoint, RetryPolicy, retry_after

FAKE_KEY = "sk-test-SECRET-5f3c9a1d7e"


class FakeOpenAI:
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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
    assert run.usage["api_calls"] == 3 and run.usage["prompt_tokens"] == 300


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


def test_exhausted_retries_are_fatal(fake, key_env):
    fake.hook = lambda body, n, h: ("status", 503, {}, {"error": {"message": "busy"}})
    with pytest.raises(LLMError, match="giving up after 3 attempts: .*503"):
        make_client(fake, key_env, max_retries=2).run([ask(1)], PARAMS, parse_n)
    assert len(fake.requests) == 3


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
    run = client.run([ask(1), ask(2), ask(3)], PARAMS, parse_n, ledger_context={"job": "first"})
    assert [r.value for r in run.results] == [2, 4, None] and run.results[2].raw == "kaputt"
    assert not any(r.cache_hit for r in run.results)
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2  # the failure is not cached
    # rerun: the two good answers come from the cache, only the unparseable one is asked again;
    # no key is needed to read the cache, one is needed to send
    fake.hook = None
    run2 = client.run([ask(1), ask(2), ask(3)], PARAMS, parse_n, ledger_context={"job": "second"})
    assert [r.value for r in run2.results] == [2, 4, 6] and len(fake.requests) == 4
    assert [r.cache_hit for r in run2.results] == [True, True, False]
    monkeypatch.delenv(key_env)
    run3 = client.run([ask(2), ask(3)], PARAMS, parse_n)
    assert all(r.cache_hit for r in run3.results) and len(fake.requests) == 4
    # another sampling parameter is another request
    monkeypatch.setenv(key_env, FAKE_KEY)
    client.run([ask(1)], {**PARAMS, "temperature": 0.5}, parse_n)
    assert len(fake.requests) == 5
    records = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert len(records) == 4 and list(records[0])[:2] == ["time", "job"]
    assert [r["job"] for r in records[:2]] == ["first", "second"]
    assert [(r["api_calls"], r["cache_hits"], r["unparseable"]) for r in records] == \
        [(3, 0, 1), (1, 2, 0), (0, 2, 0), (1, 0, 0)]
    assert records[0]["cost_usd"] == pytest.approx((300 * 1.0 + 21 * 10.0) / 1e6)
    assert records[1]["saved_usd"] == pytest.approx((200 * 1.0 + 14 * 10.0) / 1e6)


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
