"""Judging through OpenAI's Batch API, against a local server speaking its Files and Batches protocol.

`FakeBatchAPI` implements what the client uses of the protocol, with the shapes of the OpenAI API
reference: POST /v1/files (multipart: file, purpose) -> a file object; GET /v1/files/{id}/content;
POST /v1/batches {input_file_id, endpoint, completion_window, metadata} -> a batch object (id,
status, input_file_id, output_file_id, error_file_id, request_counts, ...); GET /v1/batches/{id};
GET /v1/batches (a list). A batch moves validating -> in_progress -> finalizing -> completed, one
step per poll; its output file holds the 2xx results, its error file the others, one line each
{id, custom_id, response: {status_code, request_id, body}, error}, in an order other than the
input's. What each request gets is a function of the request (`answer`), so every verdict is known.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import re
import threading
import time
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler

import openai
import polars as pl
import pytest
from test_llm_client import FAKE_KEY, LocalHTTP

from medadapt.config import resolve_block
from medadapt.io import write_jsonl
from medadapt.judge import judge_pair
from medadapt.judge.config import JudgeConfig
from medadapt.judge.pairs import run_pair
from medadapt.llm import LLMError
from medadapt.llm import ledger as ledger_file


def plus_verdict(user: str) -> str:
    a = re.search(r"Response A:\n  (.*?)\n\nResponse B:", user, re.S).group(1)
    b = re.search(r"Response B:\n  (.*?)\n\n\nBased on", user, re.S).group(1)
    return "A" if a.count("+") > b.count("+") else "B" if b.count("+") > a.count("+") else "0"


def completion(content: str, model: str) -> dict:
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 300, "completion_tokens": 5, "total_tokens": 305}}


class FakeBatchAPI(LocalHTTP):
    """`answer(body, n)` -> ("ok", content) | ("status", code, message) | ("error", code, message)
    | ("none",): what the n-th submission (1-based) of a request gets in its batch."""

    def __init__(self, answer):
        self.answer = answer
        self.lock = threading.Lock()
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.submissions = collections.Counter()  # custom_id -> times submitted in a batch
        self.uploads: list[list[dict]] = []  # the parsed input lines of every uploaded batch file
        self.created: list[dict] = []  # bodies of POST /v1/batches
        self.polls_to_finish = 3
        self.models = {"gpt-4.1-mini"}
        self.final_status = "completed"
        self.fail_create_after_creating = False
        self.lines_answered = 0  # result lines written into output/error files
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload, ctype="application/json"):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, code, message):
                self._send(code, {"error": {"message": message, "type": "invalid_request_error",
                                            "param": None, "code": None}})

            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
                with fake.lock:
                    if self.path == "/v1/files":
                        return fake.upload(self, data)
                    if self.path == "/v1/batches":
                        return fake.create(self, json.loads(data))
                self._error(404, f"no route {self.path}")

            def do_GET(self):  # noqa: N802
                with fake.lock:
                    if m := re.fullmatch(r"/v1/files/([\w-]+)/content", self.path):
                        f = fake.files.get(m.group(1))
                        if f is None:
                            return self._error(404, "No such File object")
                        return self._send(200, f["data"], "application/octet-stream")
                    if m := re.fullmatch(r"/v1/batches/([\w-]+)", self.path):
                        b = fake.batches.get(m.group(1))
                        if b is None:
                            return self._error(404, "No batch found")
                        fake.advance(b)
                        return self._send(200, b)
                    if self.path.startswith("/v1/batches"):
                        data = sorted(fake.batches.values(), key=lambda b: -b["created_at"])
                        return self._send(200, {"object": "list", "data": data,
                                                "first_id": data[0]["id"] if data else None,
                                                "last_id": data[-1]["id"] if data else None,
                                                "has_more": False})
                self._error(404, f"no route {self.path}")

        self.serve(Handler)

    # ---- the protocol ------------------------------------------------------------------------------

    def new_file(self, data: bytes, purpose: str, filename: str) -> dict:
        fid = f"file-{len(self.files) + 1:04d}"
        self.files[fid] = {"data": data, "purpose": purpose}
        return {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}

    def upload(self, handler, data: bytes):
        ctype = handler.headers["Content-Type"]
        msg = BytesParser(policy=email_policy).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + data)
        parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
        if "file" not in parts or "purpose" not in parts:
            return handler._error(400, "file and purpose are required")
        purpose = parts["purpose"].get_content().strip()
        content = parts["file"].get_payload(decode=True)
        if purpose == "batch":
            self.uploads.append([json.loads(x) for x in content.decode().splitlines() if x.strip()])
        handler._send(200, self.new_file(content, purpose, parts["file"].get_filename()))

    def create(self, handler, body: dict):
        f = self.files.get(body.get("input_file_id"))
        if f is None or f["purpose"] != "batch":
            return handler._error(400, "input_file_id must be a file uploaded with purpose batch")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return handler._error(400, "unsupported endpoint or completion_window")
        now = int(time.time())
        bid = f"batch_{len(self.batches) + 1:04d}"
        self.batches[bid] = {
            "id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h",
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now + len(self.batches), "in_progress_at": None,
            "expires_at": now + 86400, "finalizing_at": None, "completed_at": None,
            "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "_polls": 0}
        self.created.append(body)
        if self.fail_create_after_creating:  # created, but the answer is lost on the way
            return handler._error(500, "The server had an error while processing your request")
        handler._send(200, {k: v for k, v in self.batches[bid].items() if k != "_polls"})

    def advance(self, b: dict) -> None:
        b["_polls"] += 1
        if b["status"] in ("completed", "failed", "expired", "cancelled"):
            return
        lines = [json.loads(x) for x in self.files[b["input_file_id"]]["data"].decode().splitlines()
                 if x.strip()]
        problems = [{"code": "invalid_request", "message": "url must be /v1/chat/completions",
                     "param": "url", "line": n}
                    for n, x in enumerate(lines, 1) if x.get("url") != "/v1/chat/completions"]
        problems += [{"code": "model_not_found", "message": f"The model {x['body'].get('model')} "
                      "does not exist", "param": "body.model", "line": n}
                     for n, x in enumerate(lines, 1) if x["body"].get("model") not in self.models]
        if problems:
            b.update(status="failed", failed_at=int(time.time()),
                     errors={"object": "list", "data": problems})
            return
        b["request_counts"]["total"] = len(lines)
        steps = ["validating", "in_progress", "finalizing", self.final_status]
        b["status"] = steps[min(b["_polls"] * 3 // max(1, self.polls_to_finish), 3)]
        if b["status"] in ("completed", "expired"):
            self.finish(b, lines)

    def finish(self, b: dict, lines: list[dict]) -> None:
        out, err = [], []
        for n, line in enumerate(lines):
            self.submissions[line["custom_id"]] += 1
            what = self.answer(line["body"], self.submissions[line["custom_id"]])
            rid = f"req_{b['id']}_{n}"
            if what[0] == "ok":
                out.append({"id": f"batch_req_{n}", "custom_id": line["custom_id"], "error": None,
                            "response": {"status_code": 200, "request_id": rid,
                                         "body": completion(what[1], line["body"]["model"])}})
            elif what[0] == "status":
                err.append({"id": f"batch_req_{n}", "custom_id": line["custom_id"], "error": None,
                            "response": {"status_code": what[1], "request_id": rid,
                                         "body": {"error": {"message": what[2], "type": "server_error"}}}})
            elif what[0] == "error":
                err.append({"id": f"batch_req_{n}", "custom_id": line["custom_id"], "response": None,
                            "error": {"code": what[1], "message": what[2]}})
        self.lines_answered += len(out) + len(err)
        out.reverse()  # the order of results is not the order of the input
        if out:
            b["output_file_id"] = self.new_file(
                "".join(json.dumps(x) + "\n" for x in out).encode(), "batch_output", "out.jsonl")["id"]
        if err:
            b["error_file_id"] = self.new_file(
                "".join(json.dumps(x) + "\n" for x in err).encode(), "batch_output", "err.jsonl")["id"]
        b["request_counts"].update(completed=len(out), failed=len(err))
        b[f"{b['status']}_at"] = int(time.time())


# ---- the judge through it ---------------------------------------------------------------------------

CAND = [("p1", "Was ist Fieber?", "Temperatur +++"), ("p2", "Was ist Metformin?", "Mittel +"),
        ("p3", "Was ist ein Puls?", "Herzschlag ++")]
BASE = [("p1", "Was ist Fieber?", "Hitze +"), ("p2", "Was ist Metformin?", "Biguanid ++"),
        ("p3", "Was ist ein Puls?", "Schlagrate ++")]
NAMES = {"candidate_name": "q/7b/c05", "baseline_name": "q/7b/base"}
EXPECTED = {("p1", "cand_first"): "A", ("p1", "base_first"): "B", ("p2", "cand_first"): "B",
            ("p2", "base_first"): "A", ("p3", "cand_first"): "0", ("p3", "base_first"): "0"}


def write(path, rows):
    write_jsonl(path, [{"id": i, "instruction": q, "response": r} for i, q, r in rows])
    return str(path)


@pytest.fixture
def files(tmp_path):
    return write(tmp_path / "c05.jsonl", CAND), write(tmp_path / "base.jsonl", BASE)


def valid(body, n):
    return ("ok", json.dumps({"winner": plus_verdict(body["messages"][-1]["content"])}))


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("BATCH_KEY", FAKE_KEY)
    server = FakeBatchAPI(valid)
    yield server
    server.close()


def block(api, **over):
    return resolve_block("judge", {"model": "gpt-4.1-mini", "base_url": api.base_url,
                                   "api_key_env": "BATCH_KEY", "batch": True, "batch_poll_s": 0.02,
                                   "prices_per_mtok": {"input": 0.4, "output": 1.6}, **over})


def judge_fast(files, out, cfg_block, cache, ledger=None, **knobs):
    cfg = dataclasses.replace(JudgeConfig.from_block(cfg_block), **{"backoff_base_s": 0.01, **knobs})
    return run_pair(*files, str(out), cfg, str(cache), ledger, None, **NAMES)


def verdicts(path) -> dict:
    return {(r["prompt_id"], r["order"]): r["winner"] for r in pl.read_parquet(path).iter_rows(named=True)}


def test_batch_judges_through_files_and_batches(api, files, tmp_path):
    out, cache, ledger = tmp_path / "j.parquet", tmp_path / "cache", tmp_path / "ledger.jsonl"
    usage = judge_pair(*files, str(out), block(api), str(cache), ledger=str(ledger), **NAMES)
    assert verdicts(out) == EXPECTED  # matched by custom_id, whatever the order of the results
    # the protocol: one input file, purpose batch, one line per game, one batch over it
    assert len(api.uploads) == 1 and len(api.created) == 1
    lines = api.uploads[0]
    assert len(lines) == 6 and {x["method"] for x in lines} == {"POST"}
    assert {x["url"] for x in lines} == {"/v1/chat/completions"}
    df = pl.read_parquet(out)
    assert sorted(x["custom_id"] for x in lines) == sorted(df["key"])
    body = lines[0]["body"]
    assert body["model"] == "gpt-4.1-mini" and body["temperature"] == 0.0 and body["max_tokens"] == 32
    assert body["response_format"]["json_schema"]["strict"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert api.created[0]["completion_window"] == "24h"
    assert api.created[0]["endpoint"] == "/v1/chat/completions"
    assert api.created[0]["metadata"]["job"] == str(out)
    assert set(df["status"]) == {"valid"} and df["attempts"].to_list() == [1] * 6
    # the ledger: one record per result line, batch: true, at the batch price
    records = ledger_file.read(ledger)
    assert len(records) == api.lines_answered == 6
    assert {(r["kind"], r["status"], r["valid"], r["batch"]) for r in records} == {("answer", 200, True, True)}
    assert records[0]["cost_usd"] == pytest.approx(0.5 * (300 * 0.4 + 5 * 1.6) / 1e6)
    assert usage["cost_usd"] == pytest.approx(6 * 0.5 * (300 * 0.4 + 5 * 1.6) / 1e6)
    assert not list((cache / "batches").glob("*.json"))  # the batch is done with: nothing to resume
    # a rerun: all from the same cache, no file, no batch
    judge_pair(*files, str(out), block(api), str(cache), ledger=str(ledger), **NAMES)
    assert len(api.uploads) == 1 and len(api.created) == 1
    # and the online transport finds the same cache entries
    judge_pair(*files, str(tmp_path / "online.parquet"), block(api, batch=False), str(cache), **NAMES)
    assert verdicts(tmp_path / "online.parquet") == EXPECTED


def test_errors_in_the_batch_are_failed_attempts_asked_again(api, files, tmp_path, capfd):
    """A 500 inside response.body, an error line, an invalid answer: asked again in a new batch;
    a 400 is not (no retry fixes it); a game past max_invalid_retries stays without a winner."""
    def answer(body, n):
        user = body["messages"][-1]["content"]
        cand_first = user.index("Temperatur" if "Fieber" in user else "Mittel" if "Metformin" in user
                                else "Herzschlag") < user.index("Response B:")
        if "Fieber" in user and cand_first:
            return ("status", 500, "The server had an error") if n == 1 else valid(body, n)
        if "Fieber" in user:
            return ("error", "batch_expired", "not processed in time") if n == 1 else valid(body, n)
        if "Metformin" in user and cand_first:
            return ("ok", '{"winner": "A"') if n < 3 else valid(body, n)  # truncated, twice
        if "Metformin" in user:
            return ("status", 400, "Invalid 'messages'")
        return ("ok", "tie-breaker: A")  # p3 never validly
    api.answer = answer
    out, cache, ledger = tmp_path / "j.parquet", tmp_path / "cache", tmp_path / "ledger.jsonl"
    usage = judge_fast(files, out, block(api, max_invalid_fraction=0.5), cache, str(ledger))
    got = verdicts(out)
    assert got == {**EXPECTED, ("p2", "base_first"): None, ("p3", "cand_first"): None,
                   ("p3", "base_first"): None}
    df = pl.read_parquet(out).sort("prompt_id", "order")
    rows = {(r["prompt_id"], r["order"]): r for r in df.iter_rows(named=True)}
    assert rows[("p2", "base_first")]["status"] == "missing"
    assert rows[("p2", "base_first")]["invalid_reason"] == "HTTP 400 in the batch: Invalid 'messages'"
    assert rows[("p2", "base_first")]["attempts"] == 1  # a 400 is not asked again
    assert rows[("p3", "cand_first")]["status"] == "invalid" and rows[("p3", "cand_first")]["attempts"] == 3
    assert rows[("p3", "cand_first")]["raw"] == "tie-breaker: A"
    assert rows[("p2", "cand_first")]["attempts"] == 3 and rows[("p1", "cand_first")]["attempts"] == 2
    # three rounds: every game, then the five that failed but may succeed, then the three left
    assert [len(x) for x in api.uploads] == [6, 5, 3] and len(api.created) == 3
    records = ledger_file.read(ledger)
    assert len(records) == api.lines_answered == 14 and all(r["batch"] for r in records)
    kinds = collections.Counter((r["kind"], r["status"], r["valid"]) for r in records)
    assert kinds == {("answer", 200, True): 3, ("answer", 200, False): 8, ("answer", 500, None): 1,
                     ("answer", 400, None): 1, ("error", None, None): 1}
    assert usage["invalid"] == 2 and usage["missing"] == 1 and usage["valid"] == 3
    err = capfd.readouterr().err
    assert "asking again in a new batch (round 2/3)" in err and "round 3/3" in err


def test_a_rerun_resumes_the_submitted_batch(api, files, tmp_path):
    """The job stops waiting (here after 0.3 s; in production a killed job): the batch keeps
    running, its id stays beside the cache, and the rerun picks it up instead of paying again."""
    api.polls_to_finish = 10_000
    out, cache, ledger = tmp_path / "j.parquet", tmp_path / "cache", tmp_path / "ledger.jsonl"
    with pytest.raises(LLMError, match=r"batch batch_0001 is still validating after 0.3 s of waiting; "
                                       r"it keeps running at .*: rerun the job"):
        judge_fast(files, out, block(api), cache, str(ledger), batch_wait_s=0.3)
    state = list((cache / "batches").glob("*.json"))
    assert len(state) == 1 and json.loads(state[0].read_text())["batch_id"] == "batch_0001"
    assert not out.exists() and ledger_file.read(ledger) == []
    api.polls_to_finish = 1
    judge_fast(files, out, block(api), cache, str(ledger))
    assert verdicts(out) == EXPECTED
    assert len(api.uploads) == 1 and len(api.created) == 1  # resumed, not submitted again
    assert len(ledger_file.read(ledger)) == 6 and not list((cache / "batches").glob("*.json"))


def test_a_batch_created_but_not_recorded_is_found_by_its_input_file(api, files, tmp_path):
    api.fail_create_after_creating = True
    out, cache = tmp_path / "j.parquet", tmp_path / "cache"
    with pytest.raises(LLMError, match=r"create the batch at .*InternalServerError 500"):
        judge_fast(files, out, block(api, max_retries=0), cache)
    assert len(api.created) == 1  # it exists at the API; only its id was lost
    api.fail_create_after_creating = False
    judge_fast(files, out, block(api, max_retries=0), cache)
    assert verdicts(out) == EXPECTED and len(api.created) == 1 and len(api.uploads) == 1


def test_a_failed_batch_names_its_errors(api, files, tmp_path):
    with pytest.raises(LLMError, match=r"batch batch_0001 at .* failed: model_not_found: The model "
                                       r"gpt-4\.2-nano does not exist \(line 1\)"):
        judge_fast(files, tmp_path / "j.parquet", block(api, model="gpt-4.2-nano"), tmp_path / "cache")
    assert not list((tmp_path / "cache" / "batches").glob("*.json"))  # a rerun submits anew


def test_batch_needs_a_cache_dir(api, files, tmp_path):
    with pytest.raises(LLMError, match="judge.batch: needs an answer cache directory"):
        judge_pair(*files, str(tmp_path / "j.parquet"), block(api), None, **NAMES)
    assert api.uploads == []


def test_fake_speaks_the_sdk_protocol(api):
    """The fake's shapes are the SDK's types (a guard on the fake itself)."""
    client = openai.OpenAI(api_key="k", base_url=api.base_url, max_retries=0)
    f = client.files.create(file=("in.jsonl", b'{"custom_id": "x", "method": "POST", "url": '
                                  b'"/v1/chat/completions", "body": {"model": "m", "messages": []}}\n',
                                  "application/jsonl"), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert (f.purpose, b.status, b.input_file_id) == ("batch", "validating", f.id)
    assert [x.id for x in client.batches.list(limit=10)] == [b.id]
