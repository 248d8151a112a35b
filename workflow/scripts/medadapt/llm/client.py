"""Client for any OpenAI-compatible chat-completions endpoint (the OpenAI API, a local vLLM server).

Callers give message lists, sampling parameters and a `parse` callable (answer text -> value; None
or `InvalidAnswer(reason)` when the answer is not usable) and get one `Result` per request, in order:

- identical requests (same cache key) are sent once;
- concurrency is bounded (a semaphore of `max_concurrency` requests in flight);
- one retry policy (`RetryPolicy`); the SDK's own retries are off so that the policy is explicit
  and logged (one line per retry: the reason and the wait): 408/409/429/5xx, timeouts and
  connection errors are retried after the server's Retry-After / retry-after-ms, else after capped
  exponential backoff with jitter; any other HTTP error (400, 401, 404, ...) is a misconfiguration
  and stops the run. An endpoint that refuses connections and has not answered once in this run
  stops it after `connect_tries` attempts (a wrong URL fails in seconds, not after every retry of
  every request);
- an answer that does not parse is a failed attempt: asked again up to `invalid_retries` times,
  then the request ends "invalid" (value None, its last raw text kept); a request whose retries
  are exhausted ends "missing". `max_failed` bounds how many may end so (counted per request,
  duplicates included): once exceeded, nothing new is sent, the requests in flight are finished
  (they are paid for), and `run` raises `TooManyFailures` with the counts;
- every answer that parses is cached as soon as it arrives (`ResponseCache`); invalid answers never
  are, so a rerun asks only what has no valid answer yet;
- every HTTP answer received (2xx or not), every request that got none, and every cache hit is
  appended to the ledger at once (`medadapt.llm.ledger`), so failed and killed runs are counted;
- the key is read (`keys.read_key`) only when something must be sent, and scrubbed from every log
  line, returned answer and error message.

Two transports share the cache, the ledger and the parsing: online requests (here) and OpenAI's
Batch API (`medadapt.llm.batch`, with `batch` options).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import email.utils
import random
import sys
import time
from typing import Any, Callable

import openai

from medadapt.llm import InvalidAnswer, LLMError, TooManyFailures
from medadapt.llm import ledger as ledger_file
from medadapt.llm.cache import ResponseCache, cache_key
from medadapt.llm.keys import read_key, redact

Messages = list[dict[str, Any]]
Parse = Callable[[str | None], Any]

_RETRY_STATUS = (408, 409, 429)
_RETRY_HINT_CAP_S = 3600.0  # a server asking for more than an hour is not waited for longer
OPENAI_URL = "https://api.openai.com/v1"
# Connection errors before the endpoint has answered once: after this many, the URL is wrong or
# the server is down, and waiting through every retry of every request would only hide that.
CONNECT_TRIES = 3


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where requests go. `base_url` None: the OpenAI API. `api_key_env` empty: no key (local)."""

    model: str
    base_url: str | None
    api_key_env: str | None
    timeout_s: float
    max_concurrency: int

    @property
    def url(self) -> str:
        return self.base_url or OPENAI_URL


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
            return retryable_status(exc.status_code)
        return False

    def delay(self, exc: Exception, attempt: int) -> float:
        """Retry-After when the server sends it, else capped exponential backoff with jitter."""
        hinted = retry_after(exc)
        if hinted is not None:
            return min(hinted, _RETRY_HINT_CAP_S) + random.uniform(0, 0.1 * self.backoff_base_s)
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt)
        return random.uniform(0.5, 1.0) * backoff


def retryable_status(status: int) -> bool:
    return status in _RETRY_STATUS or status >= 500


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
    """One 2xx answer as received."""

    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    status: int = 200
    attempt: int = 1  # the n-th request sent for its key in this run


@dataclasses.dataclass
class Result:
    """The outcome of one request.

    status: "valid" (value = parse(raw)), "invalid" (answered, never validly: raw is the last
    answer, reason why it failed) or "missing" (no answer: retries exhausted, not sent after the
    run stopped, or an error status). attempts: requests sent for this key in this run (retries
    and re-asks included; 0 for a cache hit). Tokens: of the answer in `raw`.
    """

    key: str
    value: Any
    raw: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cache_hit: bool
    attempts: int = 0
    status: str = "valid"
    reason: str | None = None


@dataclasses.dataclass
class Run:
    results: list[Result]
    usage: dict[str, Any]  # this run's counts (`usage`); the ledger has them record by record


def cost(prices_per_mtok: dict[str, float] | None, prompt_tokens: int | None,
         completion_tokens: int | None, factor: float = 1.0) -> float | None:
    """USD for these tokens at {"input": USD, "output": USD} per million tokens, times `factor`
    (the Batch API's discount); None without prices or without any token count."""
    if not prices_per_mtok or (prompt_tokens is None and completion_tokens is None):
        return None
    p = prices_per_mtok
    return factor * ((prompt_tokens or 0) * p.get("input", 0.0)
                     + (completion_tokens or 0) * p.get("output", 0.0)) / 1e6


@dataclasses.dataclass
class _RunState:
    """What one `run` call counts and shares between its requests."""

    job: str | None
    weight: collections.Counter  # key -> how many of the caller's requests it answers
    max_failed: int | None
    stop: asyncio.Event | None = None
    fatal: str | None = None
    over_budget: bool = False
    answered: bool = False  # has the endpoint sent any HTTP answer in this run?
    connect_failures: int = 0
    failed: int = 0  # requests (weighted) that ended without a valid answer
    attempts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    tally: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    spent: float | None = None


class _NoAnswer(Exception):
    """A request ends without an answer (reason in the message); `unasked`: never sent."""

    def __init__(self, reason: str, unasked: bool = False):
        super().__init__(reason)
        self.unasked = unasked


def describe(exc: Exception, url: str | None = None) -> str:
    status = getattr(exc, "status_code", None)
    where = ""
    if url and isinstance(exc, openai.APIConnectionError):  # timeouts included
        where = f" ({url})"
    return f"{type(exc).__name__}{f' {status}' if status else ''}{where}: {str(exc)[:300]}"


class ChatClient:
    """Requests to one endpoint and model. `what` names the config block in messages and logs;
    `stage` ("judge", "annotate") is the ledger's.

    `cache_dir` None: no cache; `ledger` None: no usage records; `prices_per_mtok` ({"input": USD,
    "output": USD} per million tokens) or None: cost not computed; `invalid_retries`: how often an
    unusable answer is asked again; `batch` (`medadapt.llm.batch.BatchOptions`): send through the
    Batch API instead of online requests.
    """

    def __init__(self, endpoint: Endpoint, retry: RetryPolicy, *, what: str,
                 stage: str | None = None, cache_dir: str | None = None,
                 ledger: str | None = None, prices_per_mtok: dict[str, float] | None = None,
                 invalid_retries: int = 0, batch: Any = None, connect_tries: int = CONNECT_TRIES):
        self.endpoint, self.retry, self.what = endpoint, retry, what
        self.stage = stage or what
        self.cache = ResponseCache(cache_dir)
        self.ledger = ledger
        self.prices = prices_per_mtok
        self.invalid_retries = int(invalid_retries)
        self.batch = batch
        self.connect_tries = int(connect_tries)
        self._secret: str | None = None

    def log(self, msg: str) -> None:
        print(f"[{self.what}] {redact(msg, self._secret)}", file=sys.stderr, flush=True)

    def run(self, requests: list[Messages], params: dict[str, Any], parse: Parse, *,
            job: str | None = None, max_failed: int | None = None) -> Run:
        """Answer every message list (one Result each, in order), reusing cached answers.

        `params`: everything besides model and messages sent with each request (temperature,
        max_tokens, response_format, ...); part of the cache key. `job`: who asks (the ledger's
        `job`, e.g. the output path). `max_failed`: how many requests may end without a valid
        answer (None: any). Raises LLMError on a misconfiguration (bad key, URL, request) and
        TooManyFailures past `max_failed`; what was answered validly before is cached either way.
        """
        model = self.endpoint.model
        keys = [cache_key(model, messages, params) for messages in requests]
        st = _RunState(job=job, weight=collections.Counter(keys), max_failed=max_failed)
        results: dict[str, Result] = {}
        todo: dict[str, Messages] = {}
        for key, messages in zip(keys, requests):
            if key in results or key in todo:
                continue
            hit = self.cache.get(key, lambda raw: self._parse(parse, raw)[0])
            if hit is not None:
                entry, value = hit
                results[key] = Result(key, value, entry.get("raw"), entry.get("prompt_tokens"),
                                      entry.get("completion_tokens"), cache_hit=True)
                self._record(st, "cache_hit", key, 0, valid=True)
            else:
                todo[key] = messages
        self.log(f"model={model} requests={len(requests)} unique={len(st.weight)} "
                 f"cached={len(results)} to_send={len(todo)}")
        if todo:
            self._secret = read_key(self.endpoint.api_key_env, self.endpoint.base_url, self.what)
            if self.batch is not None:
                from medadapt.llm import batch as batch_transport

                results.update(batch_transport.submit(self, st, todo, params, parse))
            else:
                results.update(asyncio.run(self._submit_online(st, todo, params, parse)))
        ordered = [results[key] for key in keys]
        usage = self._usage(st, ordered)
        if st.fatal:
            raise LLMError(redact(st.fatal, self._secret))
        failed = usage["invalid"] + usage["missing"]
        if max_failed is not None and failed > max_failed:
            reasons = collections.Counter(r.reason for r in ordered if r.status != "valid")
            example = reasons.most_common(1)[0][0] if reasons else None
            raise TooManyFailures(redact(
                f"{failed} of {len(requests)} requests have no valid answer ({usage['invalid']} "
                f"invalid, {usage['missing']} without an answer, {usage['unasked']} of them not "
                f"sent once the run stopped), more than the {max_failed} allowed; most common "
                f"reason: {example}", self._secret),
                {"requests": len(requests), "invalid": usage["invalid"],
                 "missing": usage["missing"], "unasked": usage["unasked"], "allowed": max_failed},
                redact(example, self._secret) if example else None)
        return Run(ordered, usage)

    # ---- shared by both transports ----------------------------------------------------------------

    @staticmethod
    def _parse(parse: Parse, raw: str | None) -> tuple[Any, str | None]:
        """(value, None) or (None, why the answer is not usable)."""
        try:
            value = parse(raw)
        except InvalidAnswer as exc:
            return None, str(exc)
        return (value, None) if value is not None else (None, "answer not usable")

    def _record(self, st: _RunState, kind: str, key: str, attempt: int, *,
                status: int | None = None, valid: bool | None = None, answer: Answer | None = None,
                batch: bool = False, reason: str | None = None) -> None:
        """Count one event and append its ledger record now."""
        p_tok = answer.prompt_tokens if answer else None
        c_tok = answer.completion_tokens if answer else None
        spent = cost(self.prices, p_tok, c_tok, self.batch.price_factor if batch else 1.0)
        st.tally[kind] += 1
        st.tally["prompt_tokens"] += p_tok or 0
        st.tally["completion_tokens"] += c_tok or 0
        if spent is not None:
            st.spent = (st.spent or 0.0) + spent
        if self.ledger:
            ledger_file.append(self.ledger, ledger_file.record(
                kind, job=st.job, stage=self.stage, model=self.endpoint.model,
                endpoint=ledger_file.endpoint_host(self.endpoint.base_url), key=key,
                attempt=attempt, status=status, valid=valid, prompt_tokens=p_tok,
                completion_tokens=c_tok, cost_usd=spent, batch=batch,
                reason=redact(reason, self._secret) if reason else None))

    def _on_answer(self, st: _RunState, key: str, answer: Answer, raw: str | None, value: Any,
                   reason: str | None, params: dict[str, Any], batch: bool = False) -> None:
        """Every 2xx answer received, once, as it arrives: ledger record; cached at once if it
        parsed (progress survives a later failure), counted and logged if not."""
        self._record(st, "answer", key, answer.attempt, status=answer.status,
                     valid=value is not None, answer=answer, batch=batch, reason=reason)
        if value is None:
            st.tally["invalid_answers"] += 1
            return
        self.cache.put(key, {"model": self.endpoint.model, "params": params, "raw": raw,
                             "prompt_tokens": answer.prompt_tokens,
                             "completion_tokens": answer.completion_tokens,
                             "created": ledger_file.now()}, value)

    def _settle(self, st: _RunState, result: Result) -> None:
        """A request has ended: count a failure and stop the run once past the budget."""
        if result.status == "valid":
            return
        st.failed += st.weight[result.key]
        if (st.max_failed is not None and st.failed > st.max_failed and not st.over_budget
                and not st.fatal):
            st.over_budget = True
            self.log(f"stopping: {st.failed} requests without a valid answer, more than the "
                     f"{st.max_failed} allowed; requests in flight are finished, no new ones sent")
            if st.stop is not None:
                st.stop.set()

    def _fatal(self, st: _RunState, message: str) -> None:
        if st.fatal is None:
            st.fatal = message
            self.log(f"stopping: {message}")
        if st.stop is not None:
            st.stop.set()

    def _usage(self, st: _RunState, ordered: list[Result]) -> dict[str, Any]:
        """This run's counts. Requests (valid/invalid/missing) count duplicates; HTTP counts are
        what went over the wire in this run (nothing a cache hit saved is counted as spent)."""
        by_status = collections.Counter(r.status for r in ordered)
        t = st.tally
        return {
            "requests": len(ordered), "unique_requests": len(st.weight),
            "cache_hits": t["cache_hit"], "sent": t["sent"], "answers": t["answer"],
            "errors": t["error"], "retries": t["retries"], "reasks": t["reasks"],
            "invalid_answers": t["invalid_answers"], "valid": by_status["valid"],
            "invalid": by_status["invalid"], "missing": by_status["missing"],
            "unasked": sum(1 for r in ordered if r.status == "missing" and r.attempts == 0),
            "prompt_tokens": t["prompt_tokens"], "completion_tokens": t["completion_tokens"],
            "cost_usd": st.spent,
        }

    # ---- the online transport --------------------------------------------------------------------

    async def _submit_online(self, st: _RunState, todo: dict[str, Messages],
                             params: dict[str, Any], parse: Parse) -> dict[str, Result]:
        """Send every request online (bounded concurrency) and collect the results by key."""
        ep = self.endpoint
        st.stop = asyncio.Event()
        if st.over_budget or st.fatal:
            st.stop.set()
        sem = asyncio.Semaphore(int(ep.max_concurrency))
        client_kwargs = {"api_key": self._secret, "timeout": float(ep.timeout_s), "max_retries": 0}
        if ep.base_url is not None:
            client_kwargs["base_url"] = ep.base_url
        results: dict[str, Result] = {}
        step = max(1, len(todo) // 10)

        async def one(key: str, messages: Messages) -> None:
            result = results[key] = await self._ask(st, client, sem, key, messages, params, parse)
            self._settle(st, result)
            if not st.stop.is_set() and (len(results) % step == 0 or len(results) == len(todo)):
                self.log(f"{len(results)}/{len(todo)} requests done")

        async with openai.AsyncOpenAI(**client_kwargs) as client:
            await asyncio.gather(*(one(key, messages) for key, messages in todo.items()))
        return results

    async def _ask(self, st: _RunState, client, sem: asyncio.Semaphore, key: str,
                   messages: Messages, params: dict[str, Any], parse: Parse) -> Result:
        """One request: send (with retries), parse; an unusable answer is asked again."""
        asks = self.invalid_retries + 1
        last: tuple[Answer, str | None, str | None] | None = None
        for n in range(1, asks + 1):
            try:
                answer = await self._send(st, client, sem, key, messages, params)
            except _NoAnswer as exc:
                if last is None:
                    return Result(key, None, None, None, None, False, st.attempts[key],
                                  "missing", str(exc))
                break  # keep the invalid answer we have; its reason says more
            raw = redact(answer.text, self._secret) if answer.text is not None else None
            value, reason = self._parse(parse, raw)
            self._on_answer(st, key, answer, raw, value, reason, params)
            if value is not None:
                return Result(key, value, raw, answer.prompt_tokens, answer.completion_tokens,
                              False, st.attempts[key])
            last = (answer, raw, reason)
            if n < asks and not st.stop.is_set():
                st.tally["reasks"] += 1
                self.log(f"invalid answer to {key[:12]} ({n}/{asks}): {reason}; asking again")
            else:
                break
        answer, raw, reason = last
        self.log(f"no valid answer to {key[:12]} after {n} answer(s): {reason}: {raw!r:.200}")
        return Result(key, None, raw, answer.prompt_tokens, answer.completion_tokens, False,
                      st.attempts[key], "invalid", reason)

    async def _send(self, st: _RunState, client, sem: asyncio.Semaphore, key: str,
                    messages: Messages, params: dict[str, Any]) -> Answer:
        """One answer with status 2xx, retrying transient failures; _NoAnswer when none comes."""
        url = self.endpoint.url
        desc = ""
        for retry in range(int(self.retry.max_retries) + 1):
            error: Exception | None = None
            async with sem:  # held only while a request is in flight, not while waiting
                if st.stop.is_set():
                    if st.attempts[key]:
                        raise _NoAnswer(f"{desc}; not retried: the run had stopped")
                    raise _NoAnswer("not sent: the run had stopped", unasked=True)
                st.attempts[key] += 1
                st.tally["sent"] += 1
                attempt = st.attempts[key]
                try:
                    resp = await client.chat.completions.create(
                        model=self.endpoint.model, messages=messages, **params)
                except Exception as exc:  # classified below, outside the semaphore
                    error = exc
            if error is None:
                st.answered = True
                tokens = resp.usage
                return Answer(resp.choices[0].message.content if resp.choices else None,
                              tokens.prompt_tokens if tokens else None,
                              tokens.completion_tokens if tokens else None, 200, attempt)
            desc = describe(error, url)
            status = getattr(error, "status_code", None)
            if status is not None:  # the server answered, with an error
                st.answered = True
                self._record(st, "answer", key, attempt, status=status, reason=desc)
            else:
                self._record(st, "error", key, attempt, reason=desc)
            if not self.retry.retryable(error):
                self._fatal(st, f"{desc} (endpoint {url}, model {self.endpoint.model})")
                raise _NoAnswer(desc)
            if (isinstance(error, openai.APIConnectionError)
                    and not isinstance(error, openai.APITimeoutError) and not st.answered):
                st.connect_failures += 1
                if st.connect_failures >= self.connect_tries:
                    self._fatal(st, f"cannot connect to {url}: {st.connect_failures} tries failed "
                                    f"and it has not answered once in this run ({desc}); is the "
                                    "base_url right and the server running?")
                    raise _NoAnswer(desc)
            if st.stop.is_set():
                raise _NoAnswer(desc)
            if retry == int(self.retry.max_retries):
                raise _NoAnswer(f"no answer after {retry + 1} tries: {desc}")
            delay = self.retry.delay(error, retry)
            st.tally["retries"] += 1
            self.log(f"{desc}; retry {retry + 1}/{self.retry.max_retries} of {key[:12]} "
                     f"in {delay:.1f} s")
            with contextlib.suppress(asyncio.TimeoutError):  # a stop ends the wait early
                await asyncio.wait_for(st.stop.wait(), delay)
        raise AssertionError("unreachable")
