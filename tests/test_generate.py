"""Generation stage: prompt validation (fast) and a real vLLM run of the tiny model (slow)."""
from __future__ import annotations

import json

import pytest

from medadapt.generate import conversations, generate, load_prompts, template_digest

PROMPTS = [
    {"id": "p1", "instruction": "Was ist Bluthochdruck?", "difficulty": 2},
    {"id": "p2", "instruction": "Erkläre die Wirkung von Metformin.", "input": "Kurz, bitte."},
    {"id": "p3", "instruction": "Wann sollte man bei Fieber zum Arzt gehen?"},
]
# The resolved settings the workflow passes (generate block, seed, family, GPUs), greedy decoding.
SETTINGS = {"temperature": 0.0, "top_p": 1.0, "seed": 0, "system_prompt": None,
            "chat_template_kwargs": None, "tensor_parallel_size": 1}


def test_load_prompts_validates(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in PROMPTS))
    assert [r["id"] for r in load_prompts(str(p))] == ["p1", "p2", "p3"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "prompt": "?"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: row 1 has no 'instruction'"):
        load_prompts(str(bad))
    with pytest.raises(ValueError, match="duplicate id 'p1'"):
        load_prompts([PROMPTS[0], PROMPTS[0]])


def test_conversations():
    conv = conversations(PROMPTS, system_prompt="Du bist ein hilfreicher Assistent.")
    assert conv[0][0] == {"role": "system", "content": "Du bist ein hilfreicher Assistent."}
    assert conv[1][1] == {"role": "user", "content": "Erkläre die Wirkung von Metformin.\n\nKurz, bitte."}
    assert conversations(PROMPTS[:1])[0] == [{"role": "user", "content": "Was ist Bluthochdruck?"}]


def test_each_model_brings_its_own_chat_template(tiny_tokenizer):
    import hashlib

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    assert template_digest(tok, "m") == hashlib.sha256(tok.chat_template.encode()).hexdigest()
    tok.chat_template = None
    with pytest.raises(ValueError, match="m: the tokenizer has no chat template"):
        template_digest(tok, "m")


def test_max_tokens_must_fit(tmp_path, tiny_lm):
    with pytest.raises(ValueError, match="max_tokens=512"):
        generate(tiny_lm, PROMPTS, str(tmp_path / "o.jsonl"), max_model_len=512, max_tokens=512,
                 **SETTINGS)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_generate_tiny_lm(tmp_path, tiny_lm):
    out = tmp_path / "gen" / "tiny.jsonl"
    prompts = PROMPTS + [{**PROMPTS[0], "id": "p1-again"}]
    summary = generate(tiny_lm, prompts, str(out), max_model_len=512, max_tokens=16,
                       **{**SETTINGS, "chat_template_kwargs": {"enable_thinking": False}})
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p1", "p2", "p3", "p1-again"]
    assert set(rows[0]) == {"id", "instruction", "response", "n_tokens", "finish_reason"}
    for r in rows:
        assert 1 <= r["n_tokens"] <= 16 and isinstance(r["response"], str)
        assert r["finish_reason"] in ("stop", "length")
        assert r["finish_reason"] == "stop" or r["n_tokens"] == 16
    tokens = sum(r["n_tokens"] for r in rows)
    assert summary["n"] == 4 and summary["output_tokens"] == tokens
    assert summary["mean_tokens"] == pytest.approx(tokens / 4)
    # Both rates are over the one generation call, not the engine start.
    gen_s = summary["generation_seconds"]
    assert 0 < gen_s and summary["load_seconds"] > 0
    assert summary["prompts_per_s"] == pytest.approx(4 / gen_s, rel=0.05)
    assert summary["output_tokens_per_s"] == pytest.approx(tokens / gen_s, rel=0.05)
    assert summary["sampling"] == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 16, "seed": 0}
    assert len(summary["chat_template_sha256"]) == 64
    # greedy decoding is deterministic: the same instruction under another id gives the same text
    assert rows[3]["response"] == rows[0]["response"]
