"""The translation step: MedInstruct-test fetched, translated through the LLM layer (the OpenAI-
compatible client against a local HTTP server, and the offline vLLM engine with a tiny model), every
answer cached, and the prompts file written with the source text and the settings beside each row."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medadapt.llm import InvalidAnswer, TooManyFailures
from medadapt.llm import ledger as ledger_file
from medadapt.sources import fetch_medinstruct, prepare_prompts
from medadapt.translate import PROMPT, read_source, read_translation, translate_prompts
from test_llm_client import FakeOpenAI

FIXTURE = Path(__file__).parent / "data" / "medinstruct" / "MedInstruct-test.jsonl"
# The resolved generate.translate block (the schema's defaults) for the openai backend.
OPENAI = {"language": "German", "backend": "openai", "model": "fake-model", "base_url": None,
          "api_key_env": "", "max_concurrency": 4, "max_retries": 1, "timeout_s": 10,
          "use_json_schema": True, "max_model_len": 4096, "max_tokens": 1024, "temperature": 0.0,
          "seed": 0, "tensor_parallel_size": 1, "max_invalid_retries": 2,
          "max_missing_fraction": 0.0}


def source_text(body) -> str:
    """The text a request asks to translate (between the prompt's triple quotes)."""
    return body["messages"][-1]["content"].split('"""\n', 1)[1].rsplit('\n"""', 1)[0]


def german(body) -> str:
    return json.dumps({"translation": "DE: " + source_text(body)}, ensure_ascii=False)


@pytest.fixture
def fake():
    server = FakeOpenAI(german)
    yield server
    server.close()


def config(fake, **kw):
    return {**OPENAI, "base_url": fake.base_url, **kw}


@pytest.mark.parametrize("answer, value", [
    ('{"translation": "Was misst ein EKG?"}', "Was misst ein EKG?"),
    ('{"translation":"Zeile 1\nZeile 2"}', "Zeile 1\nZeile 2"),  # a raw line break in the string
    ('  {"translation": "Ja"}\n', "Ja"),
])
def test_read_translation_takes_exactly_one_object(answer, value):
    assert read_translation(answer) == value


@pytest.mark.parametrize("answer, reason", [
    (None, "empty answer"), ("  ", "empty answer"),
    ("Hier ist die Übersetzung: Was misst ein EKG?", "not a JSON object"),
    ('```json\n{"translation": "x"}\n```', "not a JSON object"),
    ('{"translation": "x"} Danke', "not a JSON object"),
    ('["x"]', "JSON list, not an object"),
    ('{"translation": "x", "note": "y"}', "expected only 'translation'"),
    ('{"text": "x"}', "expected only 'translation'"),
    ('{"translation": ""}', "not a non-empty string"),
    ('{"translation": 3}', "not a non-empty string"),
    ('{"translation": "abc', "not a JSON object"),  # cut off at max_tokens
])
def test_read_translation_refuses_everything_else(answer, reason):
    with pytest.raises(InvalidAnswer, match=reason):
        read_translation(answer)


def test_read_source_keeps_the_published_layout(tmp_path):
    rows = read_source(str(FIXTURE))
    assert [r["id"] for r in rows] == ["0", "1", "2", "4"]
    assert rows[0] == {"id": "0", "instruction": rows[0]["instruction"], "input": None,
                       "difficulty": "2"}
    marked = tmp_path / "m.jsonl"
    marked.write_text("".join(json.dumps({"id": k, "instruction": "Q", "input": v}) + "\n"
                              for k, v in enumerate(["<noinput>", "NA", "", " ", "Kontext"])))
    assert [r["input"] for r in read_source(str(marked))] == [None, None, None, None, "Kontext"]
    marked.write_text('{"id": 1, "instruction": "Q"}\n{"id": 1, "instruction": "R"}\n')
    with pytest.raises(ValueError, match="row 2: duplicate id 1"):
        read_source(str(marked))
    marked.write_text('{"id": 1, "prompt": "Q"}\n')
    with pytest.raises(ValueError, match="row 1 needs 'id' and a non-empty 'instruction'"):
        read_source(str(marked))


def test_fetch_checks_the_count_before_anything_is_translated(tmp_path):
    out = tmp_path / "medinstruct" / "MedInstruct-test.jsonl"
    result = fetch_medinstruct({"jsonl": str(FIXTURE)}, str(out), expected_count=4)
    assert out.read_bytes() == FIXTURE.read_bytes()  # copied as published, answers and all
    assert result["rows"] == 4 and result["with_input"] == 0 and len(result["sha256"]) == 64
    with pytest.raises(ValueError, match=r"holds 4 prompts, but generate\.expected_count is 217"):
        fetch_medinstruct({"jsonl": str(FIXTURE)}, str(tmp_path / "x.jsonl"), expected_count=217)
    assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(FileNotFoundError, match="generate.translate.source.jsonl"):
        fetch_medinstruct({"jsonl": str(tmp_path / "nope.jsonl")}, str(out))


def test_fetch_from_the_hub_needs_the_internet(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = {"hub": "xz97/MedInstruct", "revision": None, "file": "data/MedInstruct-test.jsonl",
              "jsonl": None}
    with pytest.raises(RuntimeError, match="cannot download dataset 'xz97/MedInstruct': HF_HUB_OFFLINE"):
        fetch_medinstruct(source, str(tmp_path / "m" / "MedInstruct-test.jsonl"))


def test_endpoint_translation_rows_cache_and_ledger(tmp_path, fake):
    src = tmp_path / "src.jsonl"
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    rows[1]["input"] = "Patient, 54, eGFR 38."
    rows[2]["input"] = "<noinput>"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, cache, ledger = tmp_path / "de.jsonl", tmp_path / "cache", tmp_path / "ledger.jsonl"
    first = translate_prompts(str(src), str(out), config(fake), cache_dir=str(cache),
                              ledger=str(ledger))
    assert first["prompts"] == 4 and first["texts"] == 5 and first["translated"] == 5
    assert first["cache_hits"] == 0 and first["failed"] == 0 and first["sent"] == 5
    sent = [source_text(body) for body in fake.requests]
    assert sorted(sent) == sorted([r["instruction"] for r in rows] + ["Patient, 54, eGFR 38."])
    body = fake.requests[0]
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["temperature"] == 0.0 and body["seed"] == 0
    assert body["messages"][0]["content"].startswith("Translate the text below from English into German.")
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in written] == ["0", "1", "2", "4"]
    assert written[1] == {
        "id": "1", "instruction": "DE: " + rows[1]["instruction"], "input": "DE: Patient, 54, eGFR 38.",
        "difficulty": "1", "source_instruction": rows[1]["instruction"],
        "source_input": "Patient, 54, eGFR 38.",
        "translation": {"model": "fake-model", "backend": "openai", "language": "German",
                        "temperature": 0.0, "max_tokens": 1024, "seed": 0, "use_json_schema": True}}
    assert "input" not in written[2] and written[2]["source_input"] is None
    # The line break of the source survives the round trip.
    assert written[2]["instruction"] == "DE: " + rows[2]["instruction"] and "\n" in rows[2]["instruction"]

    # A rerun sends nothing: every text is a cache hit, the file is the same.
    before = out.read_bytes()
    again = translate_prompts(str(src), str(out), config(fake), cache_dir=str(cache),
                              ledger=str(ledger))
    assert len(fake.requests) == 5
    assert again["cache_hits"] == 5 and again["translated"] == 0 and again["sent"] == 0
    assert out.read_bytes() == before
    kinds = [(r["kind"], r["stage"]) for r in ledger_file.read(ledger)]
    assert kinds == [("answer", "translate")] * 5 + [("cache_hit", "translate")] * 5

    # The prompts stage takes the translation whole; its count check still applies.
    prompts = tmp_path / "prompts.jsonl"
    assert prepare_prompts(None, str(prompts), expected_count=4, translated=str(out)) == \
        {"prompts": 4}
    assert prompts.read_bytes() == before
    with pytest.raises(ValueError, match="holds 4 prompts, but generate.expected_count is 5"):
        prepare_prompts(None, str(tmp_path / "p2.jsonl"), expected_count=5, translated=str(out))
    with pytest.raises(ValueError, match="not both"):
        prepare_prompts(str(out), str(tmp_path / "p3.jsonl"), translated=str(out))


def test_unusable_answers_are_asked_again_counted_and_bounded(tmp_path, fake):
    """One instruction always gets prose back: asked 1 + max_invalid_retries times, then counted.
    With no missing prompt allowed the step fails and writes nothing; allowing a quarter of the
    texts, the prompt is left out and named, and a rerun asks only for it."""
    bad = read_source(str(FIXTURE))[3]["instruction"]
    fake.answer = lambda body: ("Gerne! Hier ist die Übersetzung." if source_text(body) == bad
                                else german(body))
    out, cache = tmp_path / "de.jsonl", tmp_path / "cache"
    with pytest.raises(TooManyFailures, match=r"1 of 4 requests have no valid answer .* more than the 0 "
                                              r"allowed; most common reason: not a JSON object"):
        translate_prompts(str(FIXTURE), str(out), config(fake), cache_dir=str(cache))
    assert not out.exists()
    assert [source_text(b) for b in fake.requests].count(bad) == 3
    result = translate_prompts(str(FIXTURE), str(out), config(fake, max_missing_fraction=0.25),
                               cache_dir=str(cache))
    assert result["untranslated"] == {"4": "instruction: invalid (not a JSON object (Expecting value "
                                            "at character 0))"}
    assert result["prompts"] == 3 and result["failed"] == 1
    assert result["cache_hits"] == 3  # the three good ones came from the first run's cache
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["0", "1", "2"]
    assert len(fake.requests) == 9  # 3 + 3 asks in the first run, 3 asks of the bad text now


def test_prompt_asks_for_the_translation_only():
    text = PROMPT.format(language="German", text="What is an ECG?")
    assert "Do not answer it" in text and "Keep its formatting" in text
    assert text.endswith('Text:\n"""\nWhat is an ECG?\n"""')
    assert '{"translation": "<the German text>"}' in text


TRANSLATOR = {**OPENAI, "backend": "vllm", "model": None, "api_key_env": None,
              "max_model_len": 1024, "max_tokens": 64}


def scripted_translator(tokenizer_dir: str, out_dir: str, word: str) -> str:
    """A tiny Qwen2 model whose weights make greedy decoding under the engine's JSON grammar answer
    {"translation":"<word>"}: every layer's output projection is zero (the residual stream is the
    token's embedding), three embeddings are unit vectors, and the untied LM head maps the quote
    to `word`, `word` to the quote and the closing brace to end-of-turn. A random tiny model almost
    never closes a JSON string (the quote is 1 of 512 tokens), so it could not show the step."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conftest import TINY_ARCH
    from medadapt.models.tiny import build_causal_lm

    build_causal_lm(tokenizer_dir, out_dir, {**TINY_ARCH, "tie_word_embeddings": False}, seed=0)
    tok, model = AutoTokenizer.from_pretrained(out_dir), AutoModelForCausalLM.from_pretrained(out_dir)
    ids = {name: tok.convert_tokens_to_ids(t)
           for name, t in (("quote", '"'), ("word", word), ("close", "}"), ("eos", "<|im_end|>"))}
    assert tok.unk_token_id not in ids.values() and None not in ids.values()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        emb[:, :3] = 0
        head.zero_()
        for dim, (token, successor) in enumerate((("quote", "word"), ("word", "quote"),
                                                  ("close", "eos"))):
            emb[ids[token]] = 0
            emb[ids[token], dim] = 1.0
            head[ids[successor], dim] = 10.0
    model.save_pretrained(out_dir)
    return out_dir


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_engine_translation_and_a_rerun_that_starts_no_engine(tmp_path, tiny_tokenizer, monkeypatch):
    import medadapt.llm.engine

    model = scripted_translator(tiny_tokenizer, str(tmp_path / "translator"), "Der")
    out, cache = tmp_path / "de.jsonl", tmp_path / "cache"
    cfg = {**TRANSLATOR, "model": {"tiny": {"hidden_size": 128}}}
    first = translate_prompts(str(FIXTURE), str(out), cfg, model=model, cache_dir=str(cache))
    assert first["engine_started"] and first["translated"] == 4 and first["failed"] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["0", "1", "2", "4"]
    assert {r["instruction"] for r in rows} == {"Der"}
    assert rows[0]["source_instruction"].startswith("My father has had a dry cough")
    assert rows[0]["translation"]["model"] == {"tiny": {"hidden_size": 128}}
    assert rows[0]["translation"]["backend"] == "vllm"

    def no_engine(*args, **kwargs):
        raise AssertionError("a rerun with every text cached must not start the engine")

    monkeypatch.setattr(medadapt.llm.engine, "Engine", no_engine)
    shutil.copy(out, tmp_path / "first.jsonl")
    again = translate_prompts(str(FIXTURE), str(out), cfg, model=model, cache_dir=str(cache))
    assert not again["engine_started"] and again["cache_hits"] == 4 and again["translated"] == 0
    assert out.read_bytes() == (tmp_path / "first.jsonl").read_bytes()


def demo_config(tmp_path, translate: dict) -> str:
    import yaml

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config" / "demo.yaml").read_text())
    cfg["generate"] |= {"prompts": None, "expected_count": 4,
                        "translate": {"source": {"jsonl": str(FIXTURE)}, **translate}}
    path = tmp_path / "demo-translate.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))  # models are listed small to large
    return str(path)


def test_the_dag_translates_before_anything_is_generated(tmp_path):
    """Without generate.prompts: fetch -> translate (with the translator model the workflow builds
    for vllm, without one for an API) -> prompts -> generate, and the failure modes of every
    generation file reach the tables."""
    from test_fit import dry_run, jobs

    tiny = {"tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2}}
    text = dry_run(demo_config(tmp_path, {"backend": "vllm", "model": tiny}))
    [fetch] = jobs(text, "eval_medinstruct")
    [translate] = jobs(text, "eval_translate")
    [prompts] = jobs(text, "eval_prompts")
    assert fetch["output"] == ["results/data/eval/medinstruct/MedInstruct-test.jsonl"]
    assert sorted(translate["input"]) == ["results/data/eval/medinstruct/MedInstruct-test.jsonl",
                                          "results/models/aux/translator"]
    assert prompts["input"] == translate["output"] == ["results/data/eval/medinstruct_de.jsonl"]
    assert "results/models/aux/translator" in {o for j in jobs(text, "aux_model") for o in j["output"]}
    generated = sorted(o for j in jobs(text, "generate") for o in j["output"])
    modes = jobs(text, "failure_modes")
    assert sorted(j["input"][0] for j in modes) == generated
    [tables] = jobs(text, "tables")
    assert {o for j in modes for o in j["output"]} <= set(tables["input"])

    api = dry_run(demo_config(tmp_path, {"backend": "openai", "model": "gpt-x",
                                         "api_key_env": "OPENAI_API_KEY"}))
    [translate] = jobs(api, "eval_translate")
    assert translate["input"] == ["results/data/eval/medinstruct/MedInstruct-test.jsonl"]


def test_the_config_needs_prompts_or_a_translator():
    import copy

    import yaml

    from medadapt.config import ConfigError, resolve

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config" / "demo.yaml").read_text())
    no_prompts = copy.deepcopy(cfg)
    no_prompts["generate"]["prompts"] = None
    with pytest.raises(ConfigError, match="set generate.prompts .* or generate.translate"):
        resolve(no_prompts)
    tiny = copy.deepcopy(no_prompts)
    tiny["generate"]["translate"] = {"model": {"tiny": {"hidden_size": 128, "num_hidden_layers": 2,
                                                        "num_attention_heads": 2}}}
    del tiny["tiny_tokenizer"], tiny["judge"]["serve"]
    tiny["corpus"]["annotator"]["model"] = "hub/annotator"
    tiny["corpus"]["classifier"]["base_model"] = {"source": "hub/encoder"}
    tiny["families"]["tiny"]["models"] = {s: {"source": f"hub/{s}"} for s in ("s", "m", "l")}
    with pytest.raises(ConfigError, match="tiny_tokenizer: required"):
        resolve(tiny)
    resolved = resolve(copy.deepcopy(no_prompts) | {"generate": {
        **no_prompts["generate"], "translate": {"model": "gpt-x", "backend": "openai"}}})
    block = resolved["generate"]["translate"]
    assert block["source"] == {"hub": "xz97/MedInstruct", "revision": None,
                               "file": "data/MedInstruct-test.jsonl", "jsonl": None}
    assert (block["language"], block["max_missing_fraction"], block["use_json_schema"]) == \
        ("German", 0.0, True)
    modes = copy.deepcopy(cfg)
    modes["failure_modes"] = {"language": "de", "languages": ["en", "fr"]}
    with pytest.raises(ConfigError, match="failure_modes.languages: must include failure_modes.language 'de'"):
        resolve(modes)
