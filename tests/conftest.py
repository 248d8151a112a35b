"""Shared fixtures: tiny models built once per test session (no hub access here)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Subprocesses (snakemake, the medadapt command, torchrun workers) import this checkout's library,
# whatever else an editable install points at.
_SCRIPTS = str(Path(__file__).resolve().parents[1] / "workflow" / "scripts")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SCRIPTS, os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

GERMAN = [
    "Der Patient klagt über Brustschmerzen und Atemnot seit zwei Tagen.",
    "Die Blutdruckwerte lagen bei 150 zu 95 mmHg, eine Hypertonie wurde diagnostiziert.",
    "Metformin ist das Mittel der ersten Wahl bei Diabetes mellitus Typ 2.",
    "Das Wetter in Hamburg bleibt am Wochenende regnerisch und kühl.",
    "Der Verein gewann das Heimspiel mit drei zu eins Toren.",
    "Die Stadtbibliothek öffnet ab Montag wieder zu den gewohnten Zeiten.",
    "Bei Fieber über 39 Grad sollte ein Arzt aufgesucht werden.",
    "Die Antibiotikatherapie wurde nach sieben Tagen beendet.",
] * 8

TINY_ARCH = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 256}


@pytest.fixture(scope="session")
def german_texts() -> list[str]:
    return list(GERMAN)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory, german_texts) -> str:
    from medadapt.models.tiny import build_chat_tokenizer

    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    build_chat_tokenizer(german_texts, str(out), vocab_size=512)
    return str(out)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, tiny_tokenizer) -> str:
    """A tiny random Qwen2 chat model (hidden 128, 2 heads: head_dim 64 for vLLM CPU)."""
    from medadapt.models.tiny import build_causal_lm

    out = tmp_path_factory.mktemp("lm") / "model"
    build_causal_lm(tiny_tokenizer, str(out), TINY_ARCH, seed=0)
    return str(out)


@pytest.fixture(scope="session")
def tiny_lm_other(tmp_path_factory, tiny_tokenizer) -> str:
    """A second tiny model with the same tokenizer and shape (different weights): merge partner."""
    from medadapt.models.tiny import build_causal_lm

    out = tmp_path_factory.mktemp("lm2") / "model"
    build_causal_lm(tiny_tokenizer, str(out), TINY_ARCH, seed=1)
    return str(out)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, german_texts) -> str:
    from medadapt.models.tiny import build_classifier

    out = tmp_path_factory.mktemp("clf") / "model"
    build_classifier(german_texts, str(out), {"hidden_size": 64, "num_hidden_layers": 2,
                                              "num_attention_heads": 2}, vocab_size=512)
    return str(out)
