"""Failure modes on responses whose language and length are known: German, English, mixed,
truncated and repetitive answers, against a source model's answers to the same prompts; the
per-checkpoint table, its trajectory figure and the tables stage that writes both."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from medadapt.failure_modes import (RESPONSE_COLUMNS, failure_modes, language_mix, repetition_rate,
                                    response_table, sentences, words)
from medadapt.tables import compute_table, read_table, write_tables
from medadapt.tables.failure_modes import FAILURE_COLUMNS, failure_index, failure_table, response_rows
from test_tables import make_inputs

MODES = {"language": "de", "languages": ["de", "en", "fr", "es", "it", "nl", "pl", "pt", "ru", "zh", "ja"],
         "min_words": 3, "ngram": 4, "repetition_threshold": 0.2}

GERMAN = ("Bei Fieber über 39 Grad sollte ein Arzt aufgesucht werden. Trinken Sie ausreichend Wasser "
          "und ruhen Sie sich aus. Die Symptome deuten auf eine echte Grippe hin.")
ENGLISH = ("The symptoms point to influenza. Drink plenty of water and get some rest. You should see a "
           "doctor if the fever rises.")
# Three German sentences, one English, and two list items too short to identify.
MIXED = ("Die Symptome deuten auf eine Grippe hin.\n1. Fieber\n2. Husten\nPlease take the tablets "
         "twice a day. Trinken Sie viel Wasser und bleiben Sie im Bett.")
TRUNCATED = "Die Behandlung der Grippe besteht vor allem aus Ruhe und"
REPETITIVE = "Nehmen Sie die Tablette ein. " * 4
# (id, response, n_tokens, finish_reason) of the checkpoint, and n_tokens of the source's answer.
ANSWERS = [("g", GERMAN, 40, "stop", 40), ("e", ENGLISH, 60, "stop", 30), ("m", MIXED, 50, "stop", 50),
           ("t", TRUNCATED, 64, "length", 20), ("r", REPETITIVE, 100, "stop", 25)]
SOURCE_TEXT = "Kurze Antwort des Ausgangsmodells."  # 34 characters


def write_generation(path: Path, rows: list[tuple]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": i, "instruction": "Frage?", "response": text,
                                        "n_tokens": n, "finish_reason": reason},
                                       ensure_ascii=False) + "\n" for i, text, n, reason in rows))
    return str(path)


def model_files(root: Path, key: str) -> tuple[str, str]:
    """(the checkpoint's generation file, the source's), the source answering every prompt briefly."""
    family, size, _ = key.split("/")
    own = write_generation(root / "generate" / f"{key}.jsonl", [a[:4] for a in ANSWERS])
    src = write_generation(root / "generate" / family / size / "base.jsonl",
                           [(a[0], SOURCE_TEXT, a[4], "stop") for a in ANSWERS])
    return own, src


def test_words_count_cjk_characters_one_by_one():
    assert words("Der HbA1c-Wert liegt bei 7,5 %.") == ["Der", "HbA1c", "Wert", "liegt", "bei", "7", "5"]
    assert words("患者应该就医。OK") == ["患", "者", "应", "该", "就", "医", "OK"]


def test_sentences_cut_lines_then_german_sentences():
    text = "Nehmen Sie z. B. Ibuprofen ca. 3-mal täglich. Am 3. Tag geht es besser!\n\n- Ruhe\nEnde."
    assert sentences(text) == ["Nehmen Sie z. B. Ibuprofen ca. 3-mal täglich.",
                               "Am 3. Tag geht es besser!", "- Ruhe", "Ende."]


@pytest.mark.parametrize("text, expected", [
    (GERMAN, (3, 3, 0, 0.0, "")),
    (ENGLISH, (3, 3, 3, 1.0, "en")),
    (MIXED, (5, 3, 1, 1 / 3, "en")),  # "1. Fieber", "2. Husten": one word each, not identified
    ("Der Patient sollte sofort zum Arzt gehen.\n患者应该立即去看医生。", (2, 2, 1, 0.5, "zh")),
    ("Ja.\nOK.", (2, 0, 0, None, "")),  # too short to say: nothing identified, no share
])
def test_language_mix_of_known_texts(text, expected):
    got = language_mix(text, "de", MODES["languages"], MODES["min_words"])
    assert (got["sentences"], got["sentences_identified"], got["sentences_other"],
            got["other_language_share"], got["other_languages"]) == expected


def test_repetition_rate_by_hand():
    # 20 words, 17 4-grams, 5 distinct (the 5-word cycle): 1 - 5/17
    assert repetition_rate(REPETITIVE, 4) == pytest.approx(12 / 17)
    assert repetition_rate("a b c d a b c d", 4) == pytest.approx(1 - 4 / 5)
    assert repetition_rate(GERMAN, 4) == 0.0
    assert repetition_rate("zu kurz", 4) is None


def test_response_table_of_known_answers(tmp_path):
    own, src = model_files(tmp_path, "tiny/s/c01")
    df = response_table(own, src, {"family": "tiny", "size": "s", "ckpt": "c01"}, MODES)
    assert df.columns == RESPONSE_COLUMNS
    rows = {r["id"]: r for r in df.to_dicts()}
    assert [rows[i]["n_chars"] for i in "gemtr"] == [160, 117, 146, 56, 116]
    assert [rows[i]["truncated"] for i in "gemtr"] == [False, False, False, True, False]
    assert [rows[i]["repetitive"] for i in "gemtr"] == [False, False, False, False, True]
    assert [rows[i]["tokens_vs_source"] for i in "gemtr"] == [1.0, 2.0, 1.0, 3.2, 4.0]
    assert rows["g"]["chars_vs_source"] == pytest.approx(160 / 34)
    assert [rows[i]["other_language_share"] for i in "gemtr"] == [0.0, 1.0, pytest.approx(1 / 3), 0.0, 0.0]
    assert rows["t"]["sentences_identified"] == 1 and rows["r"]["sentences_identified"] == 4
    assert rows["r"]["repetition"] == pytest.approx(12 / 17)
    assert (rows["e"]["family"], rows["e"]["size"], rows["e"]["ckpt"]) == ("tiny", "s", "c01")


def test_source_must_answer_the_same_prompts(tmp_path):
    own, _ = model_files(tmp_path, "tiny/s/c01")
    src = write_generation(tmp_path / "src.jsonl", [("g", "Antwort.", 3, "stop")])
    with pytest.raises(ValueError, match=r"no response of the source model to prompt\(s\) \['e', 'm', 'r', 't'\]"):
        response_table(own, src, {"family": "tiny", "size": "s", "ckpt": "c01"}, MODES)


def test_stage_writes_the_parquet(tmp_path):
    own, src = model_files(tmp_path, "tiny/s/c01")
    out = tmp_path / "failure_modes" / "tiny" / "s" / "c01.parquet"
    result = failure_modes(own, src, str(out), {"family": "tiny", "size": "s", "ckpt": "c01"}, MODES)
    assert result == {"responses": 5, "truncated": 1, "repetitive": 1, "sentences_identified": 14,
                      "sentences_other": 4}
    assert pl.read_parquet(out).columns == RESPONSE_COLUMNS


def per_model(root: Path, keys: list[str]) -> tuple[list[str], list[str]]:
    """Per-response parquets for `keys` (the source, `base`, answers the same as its own source)."""
    paths = []
    for key in keys:
        own, src = model_files(root, key)
        if key.endswith("/base"):
            own = src
        out = root / "failure_modes" / f"{key}.parquet"
        family, size, ckpt = key.split("/")
        failure_modes(own, src, str(out), {"family": family, "size": size, "ckpt": ckpt}, MODES)
        paths.append(str(out))
    return paths, keys


def test_checkpoint_table_by_hand(tmp_path):
    inputs = make_inputs(tmp_path / "results")
    compute = compute_table(inputs["checkpoints"])
    keys = ["qwen2.5/0.5b/base", "qwen2.5/0.5b/c01", "qwen2.5/0.5b/c02"]
    paths, keys = per_model(tmp_path, keys)
    table = failure_table(response_rows(failure_index(paths, keys)), compute)
    assert table.columns == FAILURE_COLUMNS
    c01 = table.filter(pl.col("ckpt") == "c01").to_dicts()[0]
    assert (c01["variant"], c01["tokens"], c01["responses"]) == ("merged", 1_000_000, 5)
    assert c01["tokens_vs_source"] == pytest.approx(314 / 165)  # (40+60+50+64+100) / (40+30+50+20+25)
    assert c01["chars_vs_source"] == pytest.approx((160 + 117 + 146 + 56 + 116) / (5 * 34))
    assert c01["mean_tokens"] == pytest.approx(314 / 5) and c01["mean_chars"] == pytest.approx(595 / 5)
    assert c01["truncated_share"] == pytest.approx(0.2) and c01["repetitive_share"] == pytest.approx(0.2)
    assert c01["sentences_identified"] == 14  # 3 + 3 + 3 + 1 + 4
    assert c01["other_language_share"] == pytest.approx(4 / 14)  # 3 English + 1 in the mixed answer
    assert c01["responses_other_language_share"] == pytest.approx(2 / 5)
    assert c01["mean_repetition"] == pytest.approx((12 / 17) / 5)
    base = table.filter(pl.col("ckpt") == "base").to_dicts()[0]
    assert (base["tokens"], base["tokens_vs_source"], base["chars_vs_source"]) == (0, 1.0, 1.0)
    assert base["other_language_share"] == 0.0  # "Kurze Antwort des Ausgangsmodells." is German
    assert table["ckpt"].to_list() == ["base", "c01", "c02"]


def test_keys_name_the_files(tmp_path):
    paths, keys = per_model(tmp_path, ["qwen2.5/0.5b/c01"])
    with pytest.raises(ValueError, match=r"rows for \[\('qwen2.5', '0.5b', 'c01'\)\], but its key is qwen2.5/0.5b/c02"):
        response_rows(failure_index(paths, ["qwen2.5/0.5b/c02"]))
    with pytest.raises(ValueError, match="1 file"):
        failure_index(paths, [])


def test_tables_stage_writes_the_table_and_the_responses(tmp_path):
    inputs = make_inputs(tmp_path / "results")
    paths, keys = per_model(tmp_path, ["qwen2.5/0.5b/base", "qwen2.5/0.5b/c01", "qwen2.5/0.5b/c03"])
    out = {k: str(tmp_path / f"{k}.csv") for k in ("compute", "mcqa", "ranking", "failures")}
    write_tables(inputs["checkpoints"], inputs["mcqa"], inputs["mcqa_keys"], inputs["fits"],
                 inputs["pairs"], out["compute"], out["mcqa"], out["ranking"], str(tmp_path / "s.md"),
                 failure_modes=paths, failure_mode_keys=keys, out_failure_modes=out["failures"],
                 out_failure_responses=str(tmp_path / "responses.parquet"),
                 mcqa_alpha=0.05, mcqa_n_boot=0, mcqa_seed=0)
    table = read_table(out["failures"])
    assert table.columns == FAILURE_COLUMNS
    assert table.select("ckpt", "tokens").rows() == [("base", 0), ("c01", 1_000_000), ("c03", 16_000_000)]
    responses = pl.read_parquet(tmp_path / "responses.parquet")
    assert responses.height == 15 and responses.columns == RESPONSE_COLUMNS


def test_trajectory_figure(tmp_path):
    from medadapt.figures.failure_modes import plot_failure_modes, write_failure_mode_figure

    inputs = make_inputs(tmp_path / "results")
    keys = ["qwen2.5/0.5b/base", "qwen2.5/0.5b/c01", "qwen2.5/0.5b/c02", "qwen2.5/0.5b/c03",
            "qwen2.5/1.5b/base", "qwen2.5/1.5b/c01"]
    paths, keys = per_model(tmp_path, keys)
    csv = tmp_path / "failure_modes.csv"
    failure_table(response_rows(failure_index(paths, keys)),
                  compute_table(inputs["checkpoints"])).write_csv(csv)
    fig = plot_failure_modes(read_table(csv), "qwen2.5")
    axes = fig.get_axes()
    assert [ax.get_title(loc="left") for ax in axes] == ["(a) Language mixing", "(b) Verbosity",
                                                          "(c) Truncation", "(d) Repetition"]
    assert {t.get_text() for t in axes[0].get_legend().get_texts()} == {"0.5b", "1.5b"}
    # (b): the 0.5b line runs source (1.0) then c01..c03 (314/165 each)
    ys = [list(line.get_ydata()) for line in axes[1].get_lines() if len(line.get_ydata()) == 3]
    assert ys and ys[0] == pytest.approx([314 / 165] * 3)
    out, svg = tmp_path / "fig" / "failure_modes.png", tmp_path / "fig" / "failure_modes.svg"
    assert write_failure_mode_figure(str(csv), "qwen2.5", str(out), str(svg)) == {
        "family": "qwen2.5", "out": str(out), "out_svg": str(svg)}
    assert out.stat().st_size > 20_000 and b"<svg" in svg.read_bytes()[:2000]
    with pytest.raises(ValueError, match="no rows for family 'qwen3'"):
        plot_failure_modes(read_table(csv), "qwen3")
