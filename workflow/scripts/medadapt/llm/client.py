"""Client for any OpenAI-compatible chat-completions endpoint (the OpenAI API, a local vLLM server).

Callers give message lists, sampling parameters and a `parse` callable (answer text -> value, or
None when the answer is not usable) and get one `Result` per request, in order:

- identical requests (same cache key) are sent once;
- concurrency is bounded (a semaphore of `max_concurrency` requests in flight);
- one retry policy (`RetryPolicy`); the SDK's own retries are off so that the policy is explicit
  and logged: 408/409/429/5xx, timeouts and connection errors are retried after the server's
  Retry-After / retry-after-ms, else after capped exponential backoff with jitter; any other HTTP
  error (400, 401, 404, ...) is a misconfiguration and stops the run at once;
- every answer that parses is cached as soon as it arrives (`ResponseCache`), so an interrupted or
  failed run resumes without paying again; an answer that does not parse is returned with value
  None, logged and not cached;
- one usage record per run goes to the ledger (`medadapt.llm.ledger`);
- the key is read (`keys.read_key`) only when something must be sent, and scrubbed from every log
  line, returned answer and error message.

The request path has three seams: `_submit` (the transport: online requests now; a Batch API
submission would be another transport with the same contract), `_ask` (send one request, then
parse: a bounded re-ask of an unparseable answer belongs there) and `_on_answer` (every answer
received passes through it once, as it arrives: a per-answer ledger record belongs there).
"""
from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import random
import sys
import time
from typing import Any, Callable

import openai

from medadapt.llm import LLMError
from medadapt.llm import ledger as ledger_file
from medadapt.llm.cache import ResponseCache, cache_key
from medadapt.llm.keys import read_key, redact

Messages = list[dict[str, Any]]
Parse = Callable[[str | None], Any]

_RETRY_STATUS = (408, 409, 429)
_RETRY_HINT_CAP_S = 3600.0  # a server asking for more than an hour is not waited for longer


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where requests go. `base_url` None: the OpenAI API. `api_key_env` empty: no key (local)."""

    model: str
    base_url: str | None
    api_key_env: str | None
    timeout_s: float
    max_concurrency: int


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, how often, and how long to wait before the next attempt."""

    max_retries: int
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0

    @staticmethod
    def retryable(exc: Exception) -> bool:
        if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
            return True
        if isinstance(exc, openai.APIStatusError):
            return exc.status_code in _RETRY_STATUS or exc.status_code >= 500
        return False

    def delay(self, exc: Exception, attempt: int) -> float:
        """Retry-After when the server sends it, else capped exponential backoff with jitter."""
        hinted = retry_after(exc)
        if hinted is not None:
            return min(hinted, _RETRY_HINT_CAP_S) + random.uniform(0, 0.1 * self.backoff_base_s)
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt)
        return random.uniform(0.5, 1.0) * backoff


def retry_after(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, Retry-After seconds or HTTP date)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


@dataclasses.dataclass
class Answer:
    """One HTTP answer as received."""

    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclasses.dataclass
class Result:
    """The outcome of one request: `value` is parse(raw), None when the answer did not parse."""

    key: str
    value: Any
    raw: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cache_hit: bool


@dataclasses.dataclass
class Run:
    results: list[Result]
    usage: dict[str, Any]  # the record appended to the ledger


def cost(prices_per_mtok: dict[str, float] | None, prompt_tokens: int,
         completion_tokens: int) -> float | None:
    """USD for these tokens at {"input": USD, "output": USD} per million tokens; None: no prices."""
    if not prices_per_mtok:
        return None
    p = prices_per_mtok
    return (prompt_tokens * p.get("input", 0.0) + completion_tokens * p.get("output", 0.0)) / 1e6


def usage(results: list[Result], prices_per_mtok: dict[str, float] | None) -> dict[str, Any]:
    """Requests, cache hits, API calls, unparseable answers, tokens and cost of one run."""
    unique = {r.key: r for r in results}.values()
    paid = [r for r in unique if not r.cache_hit]
    cached = [r for r in unique if r.cache_hit]
    p_tok = sum(r.prompt_tokens or 0 for r in paid)
    c_tok = sum(r.completion_tokens or 0 for r in paid)
    return {
        "requests": len(results), "unique_requests": len(unique), "cache_hits": len(cached),
        "api_calls": len(paid), "unparseable": sum(r.value is None for r in unique),
        "prompt_tokens": p_tok, "completion_tokens": c_tok,
        "cost_usd": cost(prices_per_mtok, p_tok, c_tok),
        "saved_usd": cost(prices_per_mtok, sum(r.prompt_tokens or 0 for r in cached),
                          sum(r.completion_tokens or 0 for r in cached)),
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {str(exc)[:300]}"


class _Fatal(Exception):
    pass


class ChatClient:
    """Requests to one endpoint and model. `what` names the config block in messages and logs.

    `cache_dir` None: no cache; `ledger` None: no usage record; `prices_per_mtok`
    ({"input": USD, "output": USD} per million tokens) or None: cost not computed.
    """

    def __init__(self, endpoint: Endpoint, retry: RetryPolicy, *, what: str,
                 cache_dir: str | None = None, ledger: str | None = None,
                 prices_per_mtok: dict[str, float] | None = None):
        self.endpoint, self.retry, self.what = endpoint, retry, what
        self.cache = ResponseCache(cache_dir)
        self.ledger = ledger
        self.prices = prices_per_mtok
        self._secret: str | None = None

    def log(self, msg: str) -> None:
        print(f"[{self.what}] {redact(msg, self._secret)}", file=sys.stderr, flush=True)

    def run(self, requests: list[Messages], params: dict[str, Any], parse: Parse,
            ledger_context: dict[str, Any] | None = None) -> Run:
        """Answer every message list (one Result each, in order), reusing cached answers.

        `params`: everything besides model and messages sent with each request (temperature,
        max_tokens, response_format, ...); part of the cache key. `ledger_context`: fields that
        lead the usage record (e.g. which files were judged). Raises LLMError on a non-transient
        API error or when a request's retries are exhausted; what succeeded before is cached.
        """
        model = self.endpoint.model
        keys = [cache_key(model, messages, params) for messages in requests]
        results: dict[str, Result] = {}
        todo: dict[str, Messages] = {}
        for key, messages in zip(keys, requests):
            if key in results or key in todo:
                continue
            hit = self.cache.get(key, parse)
            if hit is not None:
                entry, value = hit
                results[key] = Result(key, value, entry.get("raw"), entry.get("prompt_tokens"),
                                      entry.get("completion_tokens"), cache_hit=True)
            else:
                todo[key] = messages
        self.log(f"model={model} requests={len(requests)} unique={len(set(keys))} "
                 f"cached={len(results)} to_send={len(todo)}")
        if todo:
            self._secret = read_key(self.endpoint.api_key_env, self.endpoint.base_url, self.what)
            results.update(self._submit(todo, params, parse))
        ordered = [results[key] for key in keys]
        record = {"time": _now(), **(ledger_context or {}), **usage(ordered, self.prices)}
        if self.ledger:
            ledger_file.append(self.ledger, record)
        return Run(ordered, record)

    # ---- transport ------------------------------------------------------------------------------

    def _submit(self, todo: dict[str, Messages], params: dict[str, Any],
                parse: Parse) -> dict[str, Result]:
        """Send every request online (bounded concurrency) and collect the results by key."""
        return asyncio.run(self._submit_online(todo, params, parse))

    async def _submit_online(self, todo: dict[str, Messages], params: dict[str, Any],
                             parse: Parse) -> dict[str, Result]:
        ep = self.endpoint
        sem = asyncio.Semaphore(int(ep.max_concurrency))
        client_kwargs = {"api_key": self._secret, "timeout": float(ep.timeout_s), "max_retries": 0}
        if ep.base_url is not None:
            client_kwargs["base_url"] = ep.base_url
        results: dict[str, Result] = {}

        async def one(key: str, messages: Messages) -> None:
            results[key] = await self._ask(client, sem, key, messages, params, parse)
            if len(results) % max(1, len(todo) // 10) == 0 or len(results) == len(todo):
                self.log(f"{len(results)}/{len(todo)} requests done")

        async with openai.AsyncOpenAI(**client_kwargs) as client:
            try:
                async with asyncio.TaskGroup() as group:
                    for key, messages in todo.items():
                        group.create_task(one(key, messages))
            except* _Fatal as eg:
                raise LLMError(redact(str(eg.exceptions[0]), self._secret)) from None
        return results

    async def _ask(self, client, sem: asyncio.Semaphore, key: str, messages: Messages,
                   params: dict[str, Any], parse: Parse) -> Result:
        """One request: send (with retries), parse, hand the answer on."""
        answer = await self._send(client, sem, messages, params)
        raw = redact(answer.text, self._secret) if answer.text is not None else None
        value = parse(raw)
        self._on_answer(key, answer, raw, value, params)
        return Result(key, value, raw, answer.prompt_tokens, answer.completion_tokens,
                      cache_hit=False)

    async def _send(self, client, sem: asyncio.Semaphore, messages: Messages,
                    params: dict[str, Any]) -> Answer:
        for attempt in range(int(self.retry.max_retries) + 1):
            try:
                async with sem:  # held only while a request is in flight, not while waiting
                    resp = await client.chat.completions.create(
                        model=self.endpoint.model, messages=messages, **params)
                tokens = resp.usage
                return Answer(resp.choices[0].message.content if resp.choices else None,
                              tokens.prompt_tokens if tokens else None,
                              tokens.completion_tokens if tokens else None)
            except Exception as exc:  # classify: transient -> retry, anything else -> stop the run
                if not self.retry.retryable(exc):
                    raise _Fatal(_describe(exc)) from None
                if attempt == int(self.retry.max_retries):
                    raise _Fatal(f"giving up after {attempt + 1} attempts: {_describe(exc)}") from None
                delay = self.retry.delay(exc, attempt)
                self.log(f"{_describe(exc)}; retry {attempt + 1}/{self.retry.max_retries} "
                         f"in {delay:.1f} s")
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _on_answer(self, key: str, answer: Answer, raw: str | None, value: Any,
                   params: dict[str, Any]) -> None:
        """Every answer received, once: cache it at once if it parsed (progress survives a later
        failure), else log it."""
        if value is None:
            self.log(f"unparseable answer {key[:12]}: {raw!r:.200}")
            return
        self.cache.put(key, {"model": self.endpoint.model, "params": params, "raw": raw,
                             "prompt_tokens": answer.prompt_tokens,
                             "completion_tokens": answer.completion_tokens, "created": _now()},
                       value)
