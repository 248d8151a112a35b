"""OpenAI's Batch API as a second transport of `ChatClient` (half price, results within 24 h).

One round: the requests still without a valid answer are written as a JSONL input file
({custom_id: cache key, method: POST, url: /v1/chat/completions, body: model, messages and the
sampling params}), uploaded through the Files API (purpose "batch"), submitted as a batch
(completion_window "24h"), polled until it ends, and the output and error files are downloaded.
Results are matched by custom_id (their order is not the input's). Each result line is an HTTP
answer for the ledger (records with batch: true, cost times `price_factor`), and goes through the
same parsing and cache as an online answer. A line whose response has an error status, or that
has only an `error`, is a failed attempt; a request with no line at all (an expired or cancelled
batch) too. Failed attempts go into the next round, a new batch, up to `invalid_retries` more
rounds; error statuses that no retry can fix (400, 401, 403, 404, 422) are not asked again.

Resuming: the ids of the uploaded file and of the batch are written to a state file under
`state_dir` (outside every job's declared outputs, so a failed job does not lose them) before the
job waits on them. The state file is named by the job and the exact set of requests, so a rerun of
a job that stopped while its batch was running (killed, or past `wait_s`) finds the batch, does
not submit it again, and picks up its results; a state file with a file id but no batch id (a run
killed between upload and create) is resolved by listing the batches. The state file is removed
once the batch's results are in (valid answers cached).
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import openai

from medadapt.io import write_json
from medadapt.llm import LLMError
from medadapt.llm.client import Answer, Result, describe
from medadapt.llm.keys import redact

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
TERMINAL = ("completed", "failed", "expired", "cancelled")
_FATAL_STATUS = (400, 401, 403, 404, 422)


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """`state_dir`: where submitted batches are remembered; `poll_s`: seconds between status
    checks; `price_factor`: batch price / online price (OpenAI: 0.5); `wait_s`: how long one job
    waits for a batch before it fails (the batch keeps running; a rerun resumes it)."""

    state_dir: str
    poll_s: float = 60.0
    price_factor: float = 0.5
    wait_s: float = 25 * 3600.0


@dataclasses.dataclass
class _Outcome:
    answer: Any  # client.Answer of a 2xx line, else None
    raw: str | None
    value: Any
    reason: str | None
    retry: bool  # may another round fix it?


def submit(client, st, todo: dict[str, list[dict]], params: dict[str, Any], parse) -> dict:
    """`ChatClient._submit_online`'s contract, through the Batch API: key -> Result."""
    return asyncio.run(_submit(client, st, todo, params, parse))


async def _submit(client, st, todo, params, parse) -> dict:
    ep = client.endpoint
    kwargs = {"api_key": client._secret, "timeout": float(ep.timeout_s), "max_retries": 0}
    if ep.base_url is not None:
        kwargs["base_url"] = ep.base_url
    rounds = client.invalid_retries + 1
    pending = dict(todo)
    last: dict[str, _Outcome] = {}
    results: dict[str, Result] = {}
    async with openai.AsyncOpenAI(**kwargs) as api:
        for n in range(1, rounds + 1):
            outcomes = await _round(client, api, st, pending, params, parse)
            for key, outcome in outcomes.items():
                if outcome.value is not None:
                    results[key] = Result(key, outcome.value, outcome.raw,
                                          outcome.answer.prompt_tokens,
                                          outcome.answer.completion_tokens, False,
                                          st.attempts[key])
                    continue
                if outcome.answer is not None or key not in last or last[key].answer is None:
                    last[key] = outcome  # an invalid answer is kept over a later error
            pending = {k: m for k, m in pending.items()
                       if k not in results and outcomes[k].retry}
            if not pending:
                break
            if n < rounds:
                st.tally["reasks"] += len(pending)
                client.log(f"{len(pending)} request(s) without a valid answer; asking again in a "
                           f"new batch (round {n + 1}/{rounds})")
    for key in todo:
        if key in results:
            continue
        o = last[key]
        status = "invalid" if o.answer is not None else "missing"
        results[key] = Result(key, None, o.raw, o.answer.prompt_tokens if o.answer else None,
                              o.answer.completion_tokens if o.answer else None, False,
                              st.attempts[key], status, o.reason)
        client._settle(st, results[key])
    return results


def state_path(client, st, pending: dict, params: dict) -> Path:
    ident = hashlib.sha256(json.dumps(
        {"job": st.job, "model": client.endpoint.model, "url": client.endpoint.url,
         "params": params, "keys": sorted(pending)}, sort_keys=True).encode()).hexdigest()[:24]
    return Path(client.batch.state_dir) / f"{ident}.json"


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError:  # written atomically, so never half-written: start over
        return {}
    return state if isinstance(state, dict) else {}


async def _round(client, api, st, pending: dict, params: dict, parse) -> dict[str, _Outcome]:
    """Submit (or resume) one batch of `pending`, wait for it, read its results."""
    opts = client.batch
    path = state_path(client, st, pending, params)
    state = _read_state(path)
    batch = await _find(client, api, state)
    if batch is None:
        if not state.get("input_file_id"):
            lines = (json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT,
                                 "body": {"model": client.endpoint.model, "messages": messages,
                                          **params}}, ensure_ascii=False)
                     for key, messages in pending.items())
            data = ("\n".join(lines) + "\n").encode("utf-8")
            upload = await _call(client, "upload the batch input file", lambda: api.files.create(
                file=(f"{path.stem}.jsonl", data, "application/jsonl"), purpose="batch"))
            state = {"job": st.job, "input_file_id": upload.id, "requests": len(pending),
                     "created": time.time()}
            write_json(path, state)
        batch = await _call(client, "create the batch", lambda: api.batches.create(
            input_file_id=state["input_file_id"], endpoint=ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata={"job": str(st.job or "")[-500:], "requests": str(len(pending))}))
        state["batch_id"] = batch.id
        write_json(path, state)
        client.log(f"submitted batch {batch.id}: {len(pending)} requests "
                   f"(resumable: its id is kept in {path})")
    else:
        client.log(f"resuming batch {batch.id} ({batch.status}), submitted by an earlier run "
                   f"(kept in {path})")
    for key in pending:
        st.attempts[key] += 1
    st.tally["sent"] += len(pending)
    batch = await _wait(client, api, batch, path)
    if batch.status == "failed":
        path.unlink(missing_ok=True)  # nothing ran; a rerun submits anew
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        detail = "; ".join(f"{e.code}: {e.message}" + (f" (line {e.line})" if e.line else "")
                           for e in errors[:3]) or "no reason given"
        raise LLMError(f"batch {batch.id} at {client.endpoint.url} failed: {detail}")
    outcomes: dict[str, _Outcome] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        content = await _call(client, f"download batch file {file_id}",
                              lambda fid=file_id: api.files.content(fid))
        for n, line in enumerate(content.text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key = item["custom_id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                client.log(f"batch {batch.id}: file {file_id} line {n} is not a result line")
                continue
            if key not in pending or key in outcomes:
                client.log(f"batch {batch.id}: ignoring a result for custom_id {key!r} "
                           f"({'a second one' if key in outcomes else 'not submitted'})")
                continue
            outcomes[key] = _read_line(client, st, key, item, params, parse)
    absent = [key for key in pending if key not in outcomes]
    for key in absent:
        reason = f"no result for it in batch {batch.id} ({batch.status})"
        client._record(st, "error", key, st.attempts[key], batch=True, reason=reason)
        outcomes[key] = _Outcome(None, None, None, reason, retry=True)
    counts = collections.Counter("valid" if o.value is not None else "failed"
                                 for o in outcomes.values())
    client.log(f"batch {batch.id} {batch.status}: {counts['valid']} valid answers, "
               f"{counts['failed']} failed ({len(absent)} without a result line)")
    path.unlink(missing_ok=True)
    return outcomes


def _read_line(client, st, key: str, item: dict, params: dict, parse) -> _Outcome:
    """One line of an output or error file: {id, custom_id, response: {status_code, request_id,
    body}, error}."""
    attempt = st.attempts[key]
    response = item.get("response")
    if not isinstance(response, dict):
        error = item.get("error") or {}
        reason = f"batch error {error.get('code')}: {error.get('message')}"
        client._record(st, "error", key, attempt, batch=True, reason=reason)
        return _Outcome(None, None, None, reason, retry=True)
    status = response.get("status_code")
    body = response.get("body") if isinstance(response.get("body"), dict) else {}
    if not isinstance(status, int) or not 200 <= status < 300:
        message = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) \
            else body.get("error")
        reason = f"HTTP {status} in the batch: {message}"
        client._record(st, "answer", key, attempt, status=status if isinstance(status, int) else None,
                       batch=True, reason=reason)
        return _Outcome(None, None, None, reason, retry=status not in _FATAL_STATUS)
    choices = body.get("choices") or []
    text = (choices[0].get("message") or {}).get("content") if choices else None
    usage = body.get("usage") or {}
    answer = Answer(text, usage.get("prompt_tokens"), usage.get("completion_tokens"), status, attempt)
    raw = redact(text, client._secret) if text is not None else None
    value, reason = client._parse(parse, raw)
    client._on_answer(st, key, answer, raw, value, reason, params, batch=True)
    if value is None:
        client.log(f"invalid answer to {key[:12]} in the batch: {reason}: {raw!r:.120}")
    return _Outcome(answer, raw, value, reason, retry=True)


async def _find(client, api, state: dict):
    """The batch a state file remembers, or None (none submitted, or it is gone)."""
    if state.get("batch_id"):
        try:
            return await _call(client, f"look up batch {state['batch_id']}",
                               lambda: api.batches.retrieve(state["batch_id"]))
        except LLMError as exc:
            if isinstance(exc.__cause__, openai.NotFoundError):
                client.log(f"batch {state['batch_id']} is gone at the endpoint; submitting anew")
                return None
            raise
    if state.get("input_file_id"):  # killed between upload and create: was it created?
        page = await _call(client, "list batches", lambda: api.batches.list(limit=100))
        async for batch in page:
            if batch.input_file_id == state["input_file_id"]:
                return batch
    return None


async def _wait(client, api, batch, path: Path):
    start, seen = time.monotonic(), None
    while batch.status not in TERMINAL:
        counts = batch.request_counts
        now = (batch.status, counts.completed if counts else None, counts.failed if counts else None)
        if now != seen:
            done = f"{counts.completed}/{counts.total} done, {counts.failed} failed" if counts else ""
            client.log(f"batch {batch.id}: {batch.status} {done}")
            seen = now
        if time.monotonic() - start > client.batch.wait_s:
            raise LLMError(f"batch {batch.id} is still {batch.status} after {client.batch.wait_s:g} s "
                           f"of waiting; it keeps running at {client.endpoint.url}: rerun the job "
                           f"to pick up its results (its id is kept in {path})")
        await asyncio.sleep(client.batch.poll_s)
        batch = await _call(client, f"poll batch {batch.id}",
                            lambda bid=batch.id: api.batches.retrieve(bid))
    return batch


async def _call(client, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
    """One request of the batch protocol under the client's retry policy (logged per retry)."""
    url = client.endpoint.url
    failures = 0
    for retry in range(int(client.retry.max_retries) + 1):
        try:
            return await make()
        except Exception as exc:
            desc = describe(exc, url)
            connect = (isinstance(exc, openai.APIConnectionError)
                       and not isinstance(exc, openai.APITimeoutError))
            failures += connect
            if (not client.retry.retryable(exc) or retry == int(client.retry.max_retries)
                    or failures >= client.connect_tries):
                raise LLMError(redact(f"{what} at {url}: {desc}", client._secret)) from exc
            delay = client.retry.delay(exc, retry)
            client.log(f"{what}: {desc}; retry {retry + 1}/{client.retry.max_retries} in {delay:.1f} s")
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
