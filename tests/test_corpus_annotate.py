"""LLM annotation: prompt/label helpers, the openai backend against a local protocol server (see
test_llm_client), and the vLLM backend on the tiny random chat model (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest
from test_llm_client import FakeOpenAI

from medadapt.corpus.annotate import (PROMPT, SCHEMA, annotate, chunk_bounds, messages_for,
                                      parse_label, truncate_texts)

DOCS = ["Der Patient erhielt Metformin gegen Diabetes.", "Der Verein gewann das Heimspiel.",
        "Bei Fieber sollte ein Arzt aufgesucht werden.", "Die Bibliothek öffnet am Montag.",
        "Die Antibiotikatherapie wurde beendet.", "Das Wetter bleibt regnerisch."]


def write_sample(path, texts=DOCS):
    pl.DataFrame({"id": [f"d{i}" for i in range(len(texts))], "text": texts,
                  "shard": ["s"] * len(texts), "is_validation": [False] * len(texts)}).write_parquet(path)
    return str(path)


def test_parse_label():
    assert parse_label('{"medical": true}') == 1
    assert parse_label('{"medical":false}') == 0
    assert parse_label('Antwort: {"medical": TRUE} ok') == 1  # lenient fallback
    for bad in ['{"medical": "yes"}', '{"medical": tr', "", None, "[1]"]:
        assert parse_label(bad) is None


def test_chunks_cover_rows_once():
    for n_rows, n_chunks in [(10, 3), (2, 4), (0, 2), (7, 1)]:
        rows = [r for c in range(n_chunks) for r in range(*chunk_bounds(n_rows, c, n_chunks))]
        assert rows == list(range(n_rows))
    with pytest.raises(ValueError, match="chunk must be in"):
        chunk_bounds(10, 3, 3)


def test_prompt_holds_document_and_schema():
    msg = messages_for("Ein {Dokument} mit Klammern")
    assert len(msg) == 1 and msg[0]["role"] == "user"
    assert "Ein {Dokument} mit Klammern" in msg[0]["content"] and "{document}" not in msg[0]["content"]
    assert '{"medical": true}' in PROMPT and SCHEMA["required"] == ["medical"]


def test_truncation_fits_context(tiny_tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    long = "Der Patient klagt über Brustschmerzen und Atemnot. " * 400
    texts, n_cut = truncate_texts([long, "kurz"], tok, max_model_len=1024, max_tokens=16)
    assert n_cut == 1 and texts[1] == "kurz" and long.startswith(texts[0][:100])
    ids = tok.apply_chat_template(messages_for(texts[0]), tokenize=True, add_generation_prompt=True,
                                  return_dict=False)
    assert 900 < len(ids) <= 1024 - 16
    with pytest.raises(ValueError, match="max_model_len 512 leaves no room"):
        truncate_texts(["x"], tok, max_model_len=512, max_tokens=16)


def label_by_keyword(body) -> str:
    """The fake annotator: medical by keyword; one document gets a malformed answer."""
    text = body["messages"][0]["content"]
    if "Bibliothek" in text:
        return "kaputt"
    return json.dumps({"medical": any(w in text for w in ("Patient", "Arzt", "Antibiotika"))})


def annotator_cfg(**over) -> dict:
    """A resolved corpus.annotator block (every key the schema defines)."""
    return {"backend": "openai", "model": "judge-x", "base_url": None, "api_key_env": "",
            "max_model_len": 4096, "max_tokens": 16, "temperature": 0, "seed": 0,
            "max_concurrency": 3, "tensor_parallel_size": 1, "chunks": 2, **over}


@pytest.fixture
def fake_server():
    server = FakeOpenAI(label_by_keyword, models=("judge-x",))
    yield server
    server.close()


def test_openai_backend(tmp_path, fake_server, monkeypatch, capfd):
    monkeypatch.setenv("TEST_ANNOTATOR_KEY", "sk-secret-123")
    sample = write_sample(tmp_path / "sample.parquet")
    cfg = annotator_cfg(base_url=fake_server.base_url, api_key_env="TEST_ANNOTATOR_KEY")
    out = tmp_path / "chunk-1.parquet"
    summary = annotate(sample, str(out), chunk=1, n_chunks=2, annotator=cfg)
    df = pl.read_parquet(out)
    assert df.columns == ["id", "label", "raw"]
    assert df["id"].to_list() == ["d3", "d4", "d5"]  # rows 3..5: the second of two chunks
    assert df["label"].to_list() == [None, 1, 0]
    assert summary["unparseable"] == 1 and summary["medical"] == 1
    req = fake_server.requests[0]
    assert fake_server.headers[0]["authorization"] == "Bearer sk-secret-123"
    assert req["temperature"] == 0 and req["max_tokens"] == 16
    assert req["response_format"]["json_schema"]["schema"] == SCHEMA
    assert "sk-secret-123" not in "".join(capfd.readouterr())


def test_openai_backend_cache_ledger_and_retries(tmp_path, fake_server):
    """Through the LLM client: answers cached, usage in the ledger, the client's retry policy."""
    sample = write_sample(tmp_path / "sample.parquet")
    cfg = annotator_cfg(base_url=fake_server.base_url)
    fake_server.hook = lambda body, n, h: ("status", 429, {"retry-after-ms": "10"},
                                           {"error": {"message": "slow down"}}) if n == 1 else None
    cache, ledger = str(tmp_path / "cache"), str(tmp_path / "ledger.jsonl")
    args = (sample, str(tmp_path / "chunk-0.parquet"), 0, 1, cfg)
    first = annotate(*args, cache_dir=cache, ledger=ledger)
    assert len(fake_server.requests) == 7  # six documents and one retried 429
    assert first["unparseable"] == 1 and first["medical"] == 3 and first["not_medical"] == 2
    labels = pl.read_parquet(tmp_path / "chunk-0.parquet")["label"].to_list()
    assert labels == [1, 0, 1, None, 1, 0]
    # a rerun sends only the document whose answer did not parse
    second = annotate(*args, cache_dir=cache, ledger=ledger)
    assert len(fake_server.requests) == 8 and second == first
    # the ledger: one record per answer received (the 429 too) and per cache hit
    records = [json.loads(x) for x in open(ledger).read().splitlines()]
    assert [(r["kind"], r["status"], r["valid"]) for r in records].count(("answer", 200, True)) == 5
    assert sorted((r["kind"], r["status"]) for r in records) == \
        [("answer", 200)] * 7 + [("answer", 429)] + [("cache_hit", None)] * 5
    assert sum(r["kind"] == "answer" for r in records) == len(fake_server.requests)
    assert {(r["job"], r["stage"], r["model"]) for r in records} == \
        {(str(tmp_path / "chunk-0.parquet"), "annotate", "judge-x")}
    assert sum(r["prompt_tokens"] or 0 for r in records) == 700 and {r["cost_usd"] for r in records} == {None}


def test_openai_backend_missing_key(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cfg = annotator_cfg(base_url="http://127.0.0.1:9/v1", api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR is not set"):
        annotate(write_sample(tmp_path / "s.parquet"), str(tmp_path / "o.parquet"), 0, 1, cfg)
    with pytest.raises(ValueError, match="annotator.backend"):
        annotate(str(tmp_path / "s.parquet"), str(tmp_path / "o.parquet"), 0, 1, {"backend": "hf"})


VLLM_SCRIPT = """
import json, sys
from medadapt.corpus.annotate import annotate
if __name__ == "__main__":
    cfg = json.loads(sys.argv[3])
    print("SUMMARY", json.dumps(annotate(sys.argv[1], sys.argv[2], 0, 1, cfg)))
"""


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_vllm_backend_tiny_model(tmp_path, tiny_lm):
    # max_tokens 24: the tiny tokenizer spells {"medical":false} in 17 tokens (a real one in ~6).
    texts = DOCS[:3] + ["Der Patient klagt über Atemnot. " * 300]  # the last one must be truncated
    sample = write_sample(tmp_path / "sample.parquet", texts)
    out = tmp_path / "chunk-0.parquet"
    cfg = annotator_cfg(backend="vllm", model=tiny_lm, max_model_len=1024, max_tokens=24)
    script = tmp_path / "run.py"
    script.write_text(VLLM_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run([sys.executable, str(script), sample, str(out), json.dumps(cfg)],
                          capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    df = pl.read_parquet(out)
    assert df.height == 4 and df["id"].to_list() == ["d0", "d1", "d2", "d3"]
    assert set(df["label"].to_list()) <= {0, 1}  # guided decoding: valid JSON even from a random model
    line = next(x for x in proc.stdout.splitlines() if x.startswith("SUMMARY "))
    summary = json.loads(line.removeprefix("SUMMARY "))
    assert summary["truncated"] == 1 and summary["unparseable"] == 0
