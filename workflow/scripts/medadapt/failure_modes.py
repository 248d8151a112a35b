"""Failure modes of generated responses: language mixing, verbosity, truncation and repetition.

One row per response of one model (`RESPONSE_COLUMNS`), measured as follows.

- Language mixing. A response is cut at line breaks first (list items, headings and paragraphs are
  units of their own in LLM answers), then each line into sentences by pysbd's German rules
  (abbreviations such as "z. B.", "ca.", "Dr." and ordinals such as "3. Tag" do not end a
  sentence). A sentence with at least `min_words` words gets a language from lingua, which chooses
  among `languages` (its models ship in its wheel); shorter ones, and sentences lingua cannot
  decide, are not identified: on one or two words every identifier guesses ("Ja." reads as Polish).
  `other_language_share` = identified sentences not in `language` / identified sentences (null
  when none is identified). Words are runs of letters or digits; each Chinese, Japanese or Korean
  character counts as one word, since those scripts put no spaces between words.
- Verbosity. `n_tokens` (generated tokens, as the engine counted them), `n_chars`, and both
  relative to the source model's response to the same prompt (`tokens_vs_source`,
  `chars_vs_source`; null when the source's response is empty). The source of `{size}/base` is
  itself (ratio 1).
- Truncation. `truncated`: the engine stopped at max_tokens (finish_reason "length").
- Repetition. `repetition` = 1 - distinct word n-grams / word n-grams (seq-rep-n of Welleck et al.
  2020, "Neural text generation with unlikelihood training"; words lower-cased; null with fewer
  than n words): 0 when no n-gram recurs, about 1 - 1/k for k copies of one text. `repetitive`:
  repetition >= `repetition_threshold`.
"""
from __future__ import annotations

import functools
import re
from typing import Sequence

import polars as pl

from medadapt.io import read_jsonl, write_table

RESPONSE_COLUMNS = ["family", "size", "ckpt", "id", "n_tokens", "n_chars", "finish_reason",
                    "truncated", "sentences", "sentences_identified", "sentences_other",
                    "other_language_share", "other_languages", "repetition", "repetitive",
                    "source_tokens", "source_chars", "tokens_vs_source", "chars_vs_source"]
RESPONSE_SCHEMA = {"family": pl.String, "size": pl.String, "ckpt": pl.String, "id": pl.String,
                   "n_tokens": pl.Int64, "n_chars": pl.Int64, "finish_reason": pl.String,
                   "truncated": pl.Boolean, "sentences": pl.Int64,
                   "sentences_identified": pl.Int64, "sentences_other": pl.Int64,
                   "other_language_share": pl.Float64, "other_languages": pl.String,
                   "repetition": pl.Float64, "repetitive": pl.Boolean,
                   "source_tokens": pl.Int64, "source_chars": pl.Int64,
                   "tokens_vs_source": pl.Float64, "chars_vs_source": pl.Float64}

# Hiragana, katakana, CJK ideographs (and extension A, compatibility), Hangul syllables.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_WORD = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+")


def words(text: str) -> list[str]:
    """Runs of letters or digits; each CJK character alone (see the module docstring)."""
    return _WORD.findall(text)


@functools.cache
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="de", clean=False)


def sentences(text: str) -> list[str]:
    """Lines, each cut into sentences by pysbd's German rules; empty pieces dropped."""
    out = []
    for line in text.splitlines():
        if line.strip():
            out += [s.strip() for s in _segmenter().segment(line) if s.strip()]
    return out


@functools.cache
def detector(languages: tuple[str, ...]):
    """lingua's detector restricted to `languages` (ISO 639-1), its models loaded once."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = []
    for code in languages:
        try:
            codes.append(IsoCode639_1.from_str(code))
        except ValueError:
            raise ValueError(f"failure_modes.languages: '{code}' is not an ISO 639-1 code lingua "
                             "knows") from None
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).with_preloaded_language_models().build()


def identify(sentence: str, languages: Sequence[str], min_words: int) -> str | None:
    """The sentence's ISO 639-1 code; None when it is too short or lingua cannot decide."""
    if sum(1 for w in words(sentence) if not w.isdigit()) < min_words:
        return None
    found = detector(tuple(languages)).detect_language_of(sentence)
    return None if found is None else found.iso_code_639_1.name.lower()


def repetition_rate(text: str, n: int) -> float | None:
    """1 - distinct word n-grams / word n-grams; None with fewer than n words."""
    tokens = [w.lower() for w in words(text)]
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else None


def language_mix(text: str, language: str, languages: Sequence[str], min_words: int) -> dict:
    found = [identify(s, languages, min_words) for s in sentences(text)]
    known = [code for code in found if code is not None]
    other = [code for code in known if code != language]
    return {"sentences": len(found), "sentences_identified": len(known),
            "sentences_other": len(other),
            "other_language_share": len(other) / len(known) if known else None,
            "other_languages": ",".join(sorted(set(other)))}


def _ratio(a: int, b: int | None) -> float | None:
    return a / b if b else None


def response_modes(row: dict, source_row: dict | None, modes: dict) -> dict:
    """The failure-mode columns of one generated row {id, response, n_tokens, finish_reason}."""
    text = str(row.get("response") or "")
    rep = repetition_rate(text, modes["ngram"])
    src_tokens = None if source_row is None else int(source_row["n_tokens"])
    src_chars = None if source_row is None else len(str(source_row.get("response") or ""))
    return {"id": str(row["id"]), "n_tokens": int(row["n_tokens"]), "n_chars": len(text),
            "finish_reason": row.get("finish_reason"),
            "truncated": row.get("finish_reason") == "length",
            **language_mix(text, modes["language"], modes["languages"], modes["min_words"]),
            "repetition": rep, "repetitive": rep is not None and rep >= modes["repetition_threshold"],
            "source_tokens": src_tokens, "source_chars": src_chars,
            "tokens_vs_source": _ratio(int(row["n_tokens"]), src_tokens),
            "chars_vs_source": _ratio(len(text), src_chars)}


def _by_id(path: str, what: str) -> dict[str, dict]:
    rows = read_jsonl(path)
    for n, row in enumerate(rows, 1):
        missing = [k for k in ("id", "response", "n_tokens") if k not in row]
        if missing:
            raise ValueError(f"{path}: row {n} has no {missing} (a generation file of {what})")
    return {str(r["id"]): r for r in rows}


def response_table(responses: str, source: str, meta: dict, modes: dict) -> pl.DataFrame:
    """RESPONSE_COLUMNS for every response in `responses`, against the source's `source` file."""
    own, src = _by_id(responses, "the model"), _by_id(source, "the source model")
    missing = sorted(set(own) - set(src))
    if missing:
        raise ValueError(f"{source}: no response of the source model to prompt(s) {missing[:5]} "
                         f"of {responses}: both must answer the same prompts")
    rows = [{"family": meta["family"], "size": meta["size"], "ckpt": meta["ckpt"],
             **response_modes(row, src[pid], modes)} for pid, row in own.items()]
    return pl.DataFrame(rows, schema=RESPONSE_SCHEMA).select(RESPONSE_COLUMNS)


def failure_modes(responses: str, source: str, out: str, meta: dict, modes: dict) -> dict:
    """Stage `failure_modes`: the per-response table (parquet `out`) of one model's generation
    file `responses`, verbosity against the source model's file `source`.

    `meta`: {family, size, ckpt}; `modes`: the resolved `failure_modes` block (language, languages,
    min_words, ngram, repetition_threshold)."""
    df = response_table(responses, source, meta, modes)
    write_table(out, df)
    return {"responses": df.height, "truncated": int(df["truncated"].sum()),
            "repetitive": int(df["repetitive"].sum()),
            "sentences_identified": int(df["sentences_identified"].sum()),
            "sentences_other": int(df["sentences_other"].sum())}
