"""Stages that provide models: a hub snapshot, or a tiny model built locally from a config shape."""
from __future__ import annotations

from medadapt.models import tiny


def build_tokenizer(texts: list[str], out_dir: str, vocab_size: int) -> dict:
    """Stage `tiny_tokenizer`: one BPE chat tokenizer for every tiny causal LM, trained on `texts`."""
    tiny.build_chat_tokenizer(tiny.read_texts(texts, field="text", optional_field="instruction"),
                              out_dir, vocab_size=vocab_size)
    return {"texts": texts, "vocab_size": vocab_size}


def build_model(kind: str, spec: dict, out_dir: str, seed: int, tokenizer: list[str] = (),
                texts: list[str] = ()) -> dict:
    """Stages `model_base`, `aux_model`: fetch `{source: hub id or path}` or build `{tiny: shape}`.

    `tokenizer`: the tiny tokenizer directory (a one-element list; empty for hub models); `texts`:
    files whose text trains a tiny classifier's own tokenizer.
    """
    if "source" in spec:
        from medadapt.models.fetch import fetch_model

        fetch_model(spec["source"], out_dir)
        return {"kind": kind, "source": spec["source"]}
    if kind == "causal_lm":
        if len(tokenizer) != 1:
            raise ValueError(f"{out_dir}: a tiny causal LM needs the tiny tokenizer as its one input")
        return tiny.build_causal_lm(tokenizer[0], out_dir, spec["tiny"], seed=seed)
    if kind == "classifier":
        return tiny.build_classifier(tiny.read_texts(texts, field="text", optional_field="instruction"),
                                     out_dir, spec["tiny"], seed=seed)
    raise ValueError(f"unknown model kind '{kind}' (expected causal_lm or classifier)")
