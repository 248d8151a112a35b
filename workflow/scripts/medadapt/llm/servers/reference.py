"""The demo's stand-in for the two large LLMs that cannot run here: an OpenAI-compatible server
that annotates and judges by the demo world's known facts (`medadapt.demo.world`, facts.json).

The paper's annotator (Mixtral-8x7B) and judge (GPT-4.1-mini) are replaced by transparent rules,
so that the pipeline around them can be checked against known answers:

- ANNOTATOR: a request whose `response_format` schema asks for `medical` (or, without a schema,
  whose prompt holds a `Dokument:` block) gets {"medical": true|false} by the world's vocabulary
  rule: distinct generic medical terms, plus a weight if a world entity is named, against a
  threshold (facts.json, `annotator_rule`).
- JUDGE: a request asking for `winner` (or holding the Figure 4 prompt's "Response A:"/"Response B:")
  gets {"winner": "A"|"B"|"0"}. Each response's evidence is the number of the query's expected
  facts it states (the answer entity named) minus the number of wrong entities of the same type
  it names (the world's and, for diseases, the pre-training ones); the higher evidence wins. Position bias: when the evidence is tied, "A" (the response
  shown first) wins with probability `position_bias`, else a tie. Noise: with probability `noise`
  the evidence is ignored ("A" with probability `position_bias`, else uniformly A/B/0). All draws
  are seeded by (seed, request messages), so a rerun gives the same verdict.

Protocol: POST /v1/chat/completions (JSON `response_format` json_schema / json_object / text;
`max_tokens` or `max_completion_tokens` truncate the answer with finish_reason "length", as a real
server would), GET /v1/models, GET /health; errors are OpenAI-shaped JSON bodies (400 bad request,
404 unknown model or path, 405, 413). Token counts in `usage` are estimates (4 characters a token).

Run it like the vLLM judge server (a Snakemake service job, `exec`'d so SIGTERM reaches it):
`python -m medadapt.llm.servers.reference --facts facts.json --port 0 --marker server.json`
writes the marker {base_url, model, pid, ready} once it listens, removes it on SIGTERM/SIGINT or
when its parent exits.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from medadapt.demo.world import annotator_rule
from medadapt.io import write_json
from medadapt.llm.servers import failure_note, write_failure_note

CHARS_PER_TOKEN = 4
MAX_BODY_BYTES = 8 << 20

# The Figure 4 user message (medadapt.judge.template): every line of an inserted value after its
# first is indented, so these markers at the start of a line can only be the template's own.
_JUDGE_RE = re.compile(r"^Query:\n(?P<query>.*?)\n\n\n^Response A:\n(?P<a>.*?)\n\n^Response B:\n"
                       r"(?P<b>.*?)\n\n\n^Based on the query", re.S | re.M)
# The annotation prompt (medadapt.corpus.annotate.PROMPT) puts the document between triple quotes.
_DOC_RE = re.compile(r'Dokument:\n"""\n(?P<doc>.*)\n"""', re.S)


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str, param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code

    def body(self) -> dict:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": self.code}}


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _dedent(block: str) -> str:
    return "\n".join(line.strip() for line in block.split("\n")).strip()


class Reference:
    """The annotator and judge rules over one facts.json (no HTTP here; `complete` is the
    request handler's whole logic, so it is testable without a socket)."""

    def __init__(self, facts: dict, served_names: list[str], position_bias: float = 0.0,
                 noise: float = 0.0, seed: int = 0):
        for name, p in (("position_bias", position_bias), ("noise", noise)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {p}")
        if not served_names:
            raise ValueError("served_names: at least one model name")
        self.facts, self.served = facts, list(served_names)
        self.position_bias, self.noise, self.seed = float(position_bias), float(noise), int(seed)
        self.rule = facts["annotator_rule"]
        # entity type -> {name: compiled pattern}
        self.entities = {
            "drug": {d["name"]: re.compile(d["pattern"]) for d in facts["drugs"]},
            "organ": {o["name"]: re.compile(o["pattern"]) for o in facts["organs"]},
            "disease": {d["name"]: re.compile(d["pattern"]) for d in facts["diseases"]},
        }
        # The annotator's rule knows the world's own names only (as the corpus was labelled).
        self.patterns = [p.pattern for kind in self.entities.values() for p in kind.values()]
        # The judge also knows the pre-training diseases: naming one where a world disease is
        # asked for is as wrong as naming another world disease (without this a source that
        # answers with a disease it learnt in pre-training would look neutral, and beat a model
        # whose wrong answer happens to be a world disease).
        self.wrong_names = {t: dict(named) for t, named in self.entities.items()}
        self.wrong_names["disease"].update(
            {d["name"]: re.compile(d["pattern"]) for d in facts.get("pretrain_diseases", [])})
        self.prompts = {_norm(p["instruction"]): p["facts"] for p in facts["prompts"]}
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "annotate": 0, "judge": 0, "errors": 0,
                      "verdicts": {"A": 0, "B": 0, "0": 0}, "noisy": 0, "tied_evidence": 0}
        self.created = int(time.time())

    # --- the rules ------------------------------------------------------------------------
    def annotate(self, document: str) -> dict:
        medical, _ = annotator_rule(document, self.patterns, self.rule["terms"],
                                    self.rule["entity_weight"], self.rule["threshold"])
        return {"medical": medical}

    def expected_facts(self, query: str) -> list[dict]:
        """The facts a good answer to `query` states: the prompt's own list when the query is a
        world prompt, else every fact about the world entities the query names."""
        known = self.prompts.get(_norm(query))
        if known is not None:
            return known
        low = query.lower()
        out = []
        for d in self.facts["diseases"]:
            named = {"disease": d["name"], "drug": d["drug"], "organ": d["organ"]}
            if self.entities["disease"][d["name"]].search(low) or self.entities["drug"][d["drug"]].search(low):
                out += [{"type": t, "answer": v} for t, v in named.items()
                        if not self.entities[t][v].search(low)]
        return out

    def evidence(self, query: str, response: str) -> int:
        """Expected facts stated minus wrong entities (of an expected fact's type) named."""
        low = response.lower()
        expected = self.expected_facts(query)
        right = {(f["type"], f["answer"]) for f in expected}
        score = sum(1 for t, a in right if self.entities[t][a].search(low))
        for t in {t for t, _ in right}:
            score -= sum(1 for name, pat in self.wrong_names[t].items()
                         if (t, name) not in right and pat.search(low))
        return score

    def _rng(self, messages: list[dict]) -> random.Random:
        key = json.dumps([self.seed, messages], sort_keys=True, ensure_ascii=False)
        return random.Random(hashlib.sha256(key.encode()).hexdigest())

    def judge(self, query: str, response_a: str, response_b: str, rng: random.Random) -> dict:
        e_a, e_b = self.evidence(query, response_a), self.evidence(query, response_b)
        noisy = rng.random() < self.noise
        if noisy:
            winner = "A" if rng.random() < self.position_bias else rng.choice(["A", "B", "0"])
        elif e_a != e_b:
            winner = "A" if e_a > e_b else "B"
        else:
            winner = "A" if rng.random() < self.position_bias else "0"
        with self.lock:
            self.stats["verdicts"][winner] += 1
            self.stats["noisy"] += noisy
            self.stats["tied_evidence"] += (not noisy and e_a == e_b)
        return {"winner": winner}

    # --- the protocol -----------------------------------------------------------------------
    def models(self) -> dict:
        return {"object": "list", "data": [{"id": n, "object": "model", "created": self.created,
                                            "owned_by": "medadapt-reference"} for n in self.served]}

    def complete(self, body: Any) -> dict:
        """A chat.completion for a request body, or RequestError."""
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError(HTTPStatus.BAD_REQUEST, "'model' is required", "model")
        if model not in self.served:
            raise RequestError(HTTPStatus.NOT_FOUND, f"The model `{model}` does not exist "
                               f"(served: {self.served})", "model", "model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise RequestError(HTTPStatus.BAD_REQUEST, "'messages' must be a non-empty list of "
                               "{role, content} objects with string content", "messages")
        if body.get("stream"):
            raise RequestError(HTTPStatus.BAD_REQUEST, "streaming is not supported", "stream")
        if body.get("n", 1) != 1:
            raise RequestError(HTTPStatus.BAD_REQUEST, "only n = 1 is supported", "n")
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise RequestError(HTTPStatus.BAD_REQUEST, "max_tokens must be a positive integer", "max_tokens")
        role = self._role(body.get("response_format"), messages)
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if role == "annotate":
            m = _DOC_RE.search(user)
            answer = self.annotate(m.group("doc") if m else user)
        else:
            m = _JUDGE_RE.search(user)
            if m is None:
                raise RequestError(HTTPStatus.BAD_REQUEST, "judge request: the user message has no "
                                   "'Query:' / 'Response A:' / 'Response B:' blocks", "messages")
            answer = self.judge(_dedent(m.group("query")), _dedent(m.group("a")), _dedent(m.group("b")),
                                self._rng(messages))
        with self.lock:
            self.stats[role] += 1
        content = json.dumps(answer)
        finish = "stop"
        if limit is not None and self._tokens(content) > limit:
            content, finish = content[: limit * CHARS_PER_TOKEN], "length"
        prompt_tokens = sum(self._tokens(m["content"]) for m in messages)
        completion_tokens = self._tokens(content)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "logprobs": None, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    @staticmethod
    def _tokens(text: str) -> int:
        return max(1, -(-len(text) // CHARS_PER_TOKEN))

    @staticmethod
    def _role(response_format: Any, messages: list[dict]) -> str:
        """'annotate' or 'judge', from the requested schema, else from the prompt's shape."""
        if response_format is not None:
            if not isinstance(response_format, dict) or response_format.get("type") not in (
                    "json_schema", "json_object", "text"):
                raise RequestError(HTTPStatus.BAD_REQUEST, "response_format.type must be one of "
                                   "json_schema, json_object, text", "response_format")
            if response_format["type"] == "json_schema":
                spec = response_format.get("json_schema")
                schema = spec.get("schema") if isinstance(spec, dict) else None
                props = schema.get("properties") if isinstance(schema, dict) else None
                if not isinstance(props, dict):
                    raise RequestError(HTTPStatus.BAD_REQUEST, "response_format.json_schema.schema "
                                       "must be an object schema with properties", "response_format")
                if "medical" in props:
                    return "annotate"
                if "winner" in props:
                    return "judge"
                raise RequestError(HTTPStatus.BAD_REQUEST, "this server answers schemas with a "
                                   "'medical' or a 'winner' property only", "response_format")
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if _JUDGE_RE.search(user):
            return "judge"
        if _DOC_RE.search(user):
            return "annotate"
        raise RequestError(HTTPStatus.BAD_REQUEST, "cannot tell an annotation from a judge request: "
                           "send a response_format schema with 'medical' or 'winner'", "messages")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client (httpx) expects
    server: "_Server"

    def log_message(self, fmt, *args):  # one line per request is noise in a job log
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: RequestError) -> None:
        with self.server.ref.lock:
            self.server.ref.stats["errors"] += 1
        self._send(err.status, err.body())

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            self._send(200, self.server.ref.models())
        elif path == "/health":
            self._send(200, {"status": "ok"})
        elif path == "/v1/chat/completions":
            self._error(RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "use POST"))
        else:
            self._error(RequestError(HTTPStatus.NOT_FOUND, f"no route {self.path}"))

    def do_POST(self):
        path = self.path.split("?")[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would corrupt the next request
            return self._error(RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large"))
        raw = self.rfile.read(length)
        if path != "/v1/chat/completions":
            return self._error(RequestError(HTTPStatus.NOT_FOUND, f"no route {self.path}"))
        with self.server.ref.lock:
            self.server.ref.stats["requests"] += 1
        try:
            body = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return self._error(RequestError(HTTPStatus.BAD_REQUEST, f"request body is not JSON ({exc})"))
        try:
            self._send(200, self.server.ref.complete(body))
        except RequestError as err:
            self._error(err)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, ref: Reference):
        super().__init__(address, _Handler)
        self.ref = ref


def make_server(facts_path: str, served_names: list[str], host: str = "127.0.0.1", port: int = 0,
                position_bias: float = 0.0, noise: float = 0.0, seed: int = 0) -> _Server:
    """A bound (not yet serving) server; `server.server_address` has the port it got."""
    facts = json.loads(Path(facts_path).read_text(encoding="utf-8"))
    return _Server((host, int(port)), Reference(facts, served_names, position_bias, noise, seed))


def serve(facts: str, marker: str, served_names: list[str], port: int, position_bias: float,
          noise: float, seed: int, host: str = "127.0.0.1") -> dict:
    """Serve until SIGTERM/SIGINT or until the parent process exits; the marker exists meanwhile.

    Returns the request statistics (also printed), e.g. how many verdicts favoured "A".
    """
    for stale in (Path(marker), failure_note(marker)):  # a killed run's marker or failure note
        stale.unlink(missing_ok=True)
    try:
        server = make_server(facts, served_names, host, port, position_bias, noise, seed)
    except Exception as exc:
        write_failure_note(marker, f"{type(exc).__name__}: {exc}")  # consumers stop waiting
        raise
    base_url = f"http://{host}:{server.server_address[1]}/v1"
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    parent = os.getppid()
    try:
        thread.start()
        # Listening already (bound in make_server, accepting in the thread): ready at once.
        write_json(marker, {"base_url": base_url, "model": served_names[0], "pid": os.getpid(),
                            "ready": True})
        print(f"[reference] serving {served_names} at {base_url} (position_bias={position_bias}, "
              f"noise={noise}, seed={seed})", flush=True)
        while not stop.wait(0.5):
            if os.getppid() != parent:  # our job's shell died without signalling us
                print("[reference] parent process exited", flush=True)
                break
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(marker)  # consumers must never see a marker of a stopped server
        server.shutdown()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"[reference] stopped; {json.dumps(server.ref.stats)}", flush=True)
    return server.ref.stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medadapt.llm.servers.reference",
                                 description="Serve the demo world's stand-in annotator and judge "
                                             "(OpenAI chat-completions protocol) until SIGTERM.")
    ap.add_argument("--facts", required=True, help="the world's facts.json")
    ap.add_argument("--marker", "--out", dest="marker", required=True,
                    help="marker JSON {base_url, model, pid, ready} written while serving")
    ap.add_argument("--served-name", action="append", dest="served_names",
                    help="a model name clients may ask for (repeatable; default: reference)")
    ap.add_argument("--port", type=int, default=0, help="0: pick a free port")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--position-bias", type=float, default=0.0,
                    help="P(the first-shown response wins) when the evidence is tied or ignored")
    ap.add_argument("--noise", type=float, default=0.0, help="P(a verdict ignores the evidence)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    serve(a.facts, a.marker, a.served_names or ["reference"], a.port, a.position_bias, a.noise,
          a.seed, a.host)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
