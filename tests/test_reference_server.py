"""The stand-in annotator/judge server over real HTTP (127.0.0.1), started as the workflow would
start it (its CLI, a marker file), spoken to with the `openai` client."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from medadapt.corpus.annotate import SCHEMA as ANNOTATE_SCHEMA
from medadapt.corpus.annotate import messages_for
from medadapt.judge.template import WINNER_SCHEMA, render

ROOT = Path(__file__).resolve().parents[1]
FACTS = ROOT / "resources" / "demo" / "world" / "facts.json"
JUDGE_FORMAT = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": WINNER_SCHEMA, "strict": True}}
ANNOTATE_FORMAT = {"type": "json_schema",
                   "json_schema": {"name": "medical_label", "schema": ANNOTATE_SCHEMA, "strict": True}}


def _start(tmp_path: Path, name: str, *args: str):
    marker = tmp_path / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow" / "scripts")}
    proc = subprocess.Popen([sys.executable, "-m", "medadapt.llm.servers.reference", "--facts", str(FACTS),
                             "--port", "0", "--marker", str(marker), "--served-name", "ref-judge",
                             "--served-name", "ref-annotator", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"reference server did not start: {proc.communicate()[0]}")
        time.sleep(0.05)
    return proc, marker, json.loads(marker.read_text())


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=10)[0]


@pytest.fixture(scope="module")
def facts() -> dict:
    return json.loads(FACTS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def unbiased(tmp_path_factory):
    proc, marker, info = _start(tmp_path_factory.mktemp("srv"), "unbiased", "--position-bias", "0", "--noise", "0")
    yield info
    _stop(proc)


@pytest.fixture(scope="module")
def biased(tmp_path_factory):
    proc, marker, info = _start(tmp_path_factory.mktemp("srv"), "biased", "--position-bias", "1", "--noise", "0")
    yield info
    _stop(proc)


def _client(info):
    from openai import OpenAI

    return OpenAI(base_url=info["base_url"], api_key="EMPTY", max_retries=0, timeout=10)


def _verdict(info, query: str, a: str, b: str) -> str:
    r = _client(info).chat.completions.create(model="ref-judge", messages=render(query, a, b),
                                              response_format=JUDGE_FORMAT, max_tokens=16, temperature=0)
    return json.loads(r.choices[0].message.content)["winner"]


def _case(facts: dict, relation: str = "treats"):
    """A world prompt of `relation`, its right answer entity and a wrong one of the same type."""
    prompt = next(p for p in facts["prompts"] if [f["relation"] for f in p["facts"]] == [relation])
    right = prompt["facts"][0]["answer"]
    key = {"drug": "drugs", "organ": "organs", "disease": "diseases"}[prompt["facts"][0]["type"]]
    wrong = next(e["name"] for e in facts[key] if e["name"] != right)
    return prompt["instruction"], right, wrong


def test_marker_and_models(unbiased):
    assert unbiased["ready"] is True and unbiased["model"] == "ref-judge"
    assert unbiased["base_url"].startswith("http://127.0.0.1:")
    ids = [m.id for m in _client(unbiased).models.list().data]
    assert ids == ["ref-judge", "ref-annotator"]


def test_completion_shape(unbiased, facts):
    query, right, wrong = _case(facts)
    r = _client(unbiased).chat.completions.create(
        model="ref-judge", messages=render(query, f"Man nimmt {right}.", f"Man nimmt {wrong}."),
        response_format=JUDGE_FORMAT, max_tokens=16)
    assert r.object == "chat.completion" and r.model == "ref-judge" and r.id.startswith("chatcmpl-")
    assert len(r.choices) == 1 and r.choices[0].index == 0 and r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.role == "assistant"
    assert json.loads(r.choices[0].message.content) == {"winner": "A"}
    assert r.usage.prompt_tokens > 100 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@pytest.mark.parametrize("relation", ["treats", "affects", "treated_by"])
def test_right_fact_beats_wrong_fact_in_both_orders(unbiased, facts, relation):
    query, right, wrong = _case(facts, relation)
    good, bad = f"Das ist ganz einfach: {right}.", f"Das ist ganz einfach: {wrong}."
    assert _verdict(unbiased, query, good, bad) == "A"
    assert _verdict(unbiased, query, bad, good) == "B"
    # Stating the right fact and a wrong one is no better than stating nothing.
    assert _verdict(unbiased, query, f"{right} oder {wrong}.", "Ich weiß es nicht.") == "0"


def test_a_pretraining_disease_is_a_wrong_answer_too(unbiased, facts):
    """Asked which disease a world drug treats, naming a disease the sources learnt in
    pre-training is wrong exactly as naming another world disease is (not neutral)."""
    query, right, wrong = _case(facts, "treated_by")
    learnt = facts["pretrain_diseases"][0]["name"]
    assert _verdict(unbiased, query, f"Es hilft gegen die {learnt}.", "Ich weiß es nicht.") == "B"
    assert _verdict(unbiased, query, f"Es hilft gegen die {learnt}.", f"Es hilft gegen die {wrong}.") == "0"
    assert _verdict(unbiased, query, f"Es hilft gegen die {learnt}.", f"Es hilft gegen die {right}.") == "B"


def test_position_bias_decides_tied_evidence(unbiased, biased, facts):
    query, right, wrong = _case(facts)
    for a, b in [("Gute Besserung!", "Ich weiß es nicht."), (f"Es ist {right}.", f"Sicher {right}.")]:
        assert _verdict(biased, query, a, b) == "A" and _verdict(biased, query, b, a) == "A"
        assert _verdict(unbiased, query, a, b) == "0" and _verdict(unbiased, query, b, a) == "0"
    # Evidence still beats the bias.
    assert _verdict(biased, query, "Ich weiß es nicht.", f"Es ist {right}.") == "B"


def test_annotation_labels(unbiased, facts):
    drug, disease = facts["diseases"][0]["drug"], facts["diseases"][0]["name"]
    docs = {
        f"Die Patientin erhielt gegen die Erkrankung {drug}. Die Behandlung dauerte zwei Wochen.": True,
        f"Wir berichten über einen Patienten mit {disease}. Die Therapie wurde gut vertragen, "
        "die Laborwerte sind unauffällig.": True,
        "Am Samstag gewann der FC Nordstern das Heimspiel mit drei zu eins Toren.": False,
        "Für die Kartoffelsuppe brauchen Sie Zwiebeln und etwas Salz. Das Rezept reicht für vier.": False,
    }
    client = _client(unbiased)
    for text, medical in docs.items():
        r = client.chat.completions.create(model="ref-annotator", messages=messages_for(text),
                                           response_format=ANNOTATE_FORMAT, max_tokens=24)
        assert json.loads(r.choices[0].message.content) == {"medical": medical}, text


def test_role_from_prompt_without_schema(unbiased, facts):
    query, right, wrong = _case(facts)
    client = _client(unbiased)
    r = client.chat.completions.create(model="ref-judge", messages=render(query, wrong, right))
    assert json.loads(r.choices[0].message.content) == {"winner": "B"}
    r = client.chat.completions.create(model="ref-annotator", messages=messages_for("Das Wetter bleibt sonnig."),
                                       response_format={"type": "json_object"})
    assert json.loads(r.choices[0].message.content) == {"medical": False}


def test_max_tokens_truncates_like_a_real_server(unbiased, facts):
    query, right, wrong = _case(facts)
    r = _client(unbiased).chat.completions.create(model="ref-judge", messages=render(query, right, wrong),
                                                  response_format=JUDGE_FORMAT, max_tokens=2)
    assert r.choices[0].finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.choices[0].message.content)


def test_errors(unbiased):
    import openai

    client = _client(unbiased)
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-4.1-mini", messages=messages_for("x"))
    assert exc.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="ref-judge", messages=[])
    assert exc.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError):  # neither a judge nor an annotation prompt
        client.chat.completions.create(model="ref-judge", messages=[{"role": "user", "content": "Hallo"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="ref-judge", messages=messages_for("x"),
                                       response_format={"type": "json_schema", "json_schema": {
                                           "name": "x", "schema": {"type": "object", "properties": {"score": {}}}}})
    base = unbiased["base_url"]
    for url, data, code in [(f"{base}/chat/completions", b"{not json", 400), (f"{base}/nothing", None, 404),
                            (f"{base}/chat/completions", None, 405)]:
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=5)
        assert exc.value.code == code
        assert set(json.loads(exc.value.read())["error"]) >= {"message", "type", "param", "code"}


def test_noise_is_seeded_by_request(tmp_path, facts):
    """Full noise, no bias: verdicts ignore the evidence, spread over A/B/0, and repeat exactly."""
    proc, _, info = _start(tmp_path, "noisy", "--position-bias", "0", "--noise", "1", "--seed", "3")
    try:
        query, right, wrong = _case(facts)
        first = [_verdict(info, query, f"{right} ({k})", wrong) for k in range(60)]
        again = [_verdict(info, query, f"{right} ({k})", wrong) for k in range(60)]
    finally:
        log = _stop(proc)
    assert first == again
    assert all(first.count(w) >= 10 for w in "AB0"), first
    assert '"judge": 120' in log  # the statistics line at shutdown


def test_stops_on_sigterm_and_removes_marker(tmp_path):
    proc, marker, info = _start(tmp_path, "short")
    out = _stop(proc)
    assert proc.returncode == 0, out
    assert not marker.exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{info['base_url']}/models", timeout=2)


def test_annotate_stage_reaches_the_server_through_its_marker(tmp_path, facts):
    """The workflow's corpus_annotate job with a served stand-in: the openai backend, base_url and
    model taken from the service job's marker (as the judge does), labels by the world's rule."""
    import polars as pl

    from medadapt.corpus.annotate import annotate

    proc, marker, _ = _start(tmp_path, "annotator")
    try:
        drug = facts["diseases"][0]["drug"]
        texts = [f"Der Arzt verordnet {drug} gegen die Beschwerden.",
                 "Am Samstag gewann der FC Nordstern das Heimspiel mit drei zu eins Toren."]
        pl.DataFrame({"id": ["a", "b"], "text": texts}).write_parquet(tmp_path / "sample.parquet")
        block = {"backend": "openai", "model": "not-the-served-name", "base_url": None,
                 "api_key_env": "", "max_model_len": 4096, "max_tokens": 16, "temperature": 0.0,
                 "max_concurrency": 2}
        summary = annotate(str(tmp_path / "sample.parquet"), str(tmp_path / "chunk-0.parquet"), 0, 1,
                           block, cache_dir=str(tmp_path / "cache"), ledger=str(tmp_path / "ledger.jsonl"),
                           server_file=str(marker))
        out = pl.read_parquet(tmp_path / "chunk-0.parquet")
        assert out["label"].to_list() == [1, 0] and summary["unparseable"] == 0
        ledger = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
        assert {r["model"] for r in ledger} == {"ref-judge"}  # the marker's model, not the config's
        block_vllm = {**block, "backend": "vllm"}
        with pytest.raises(ValueError, match="backend openai"):
            annotate(str(tmp_path / "sample.parquet"), str(tmp_path / "x.parquet"), 0, 1, block_vllm,
                     server_file=str(marker))
    finally:
        _stop(proc)
