"""Training compute: FLOPs = 6 · N · D (Kaplan et al.), as the paper's Table 2 reports it.

N counts all parameters except the input embedding. An untied LM head is a real matmul and counts;
a tied head is the embedding matrix itself, so it is not counted again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def load_config(path: str | os.PathLike):
    """A Hugging Face config.json (the file, or the model directory holding it) as a transformers
    config; errors name the file and what is wrong with it."""
    from transformers import CONFIG_MAPPING, AutoConfig

    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object (a config.json), got {type(data).__name__}")
    model_type = data.pop("model_type", None)
    if not model_type:
        raise ValueError(f"{p}: no model_type; a Hugging Face config.json names its architecture "
                         "family there (e.g. \"qwen2\")")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"{p}: unknown model_type {model_type!r} (not known to this transformers)")
    return AutoConfig.for_model(model_type, **data)


def _as_model(model_or_config):
    """A module as is; a config (or a model directory) instantiated on the meta device: no memory."""
    import torch
    from transformers import AutoModelForCausalLM, PretrainedConfig

    if isinstance(model_or_config, torch.nn.Module):
        return model_or_config
    config = model_or_config
    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    if not isinstance(config, PretrainedConfig):
        raise TypeError(f"expected a torch module, a transformers config or a model directory, "
                        f"got {type(model_or_config).__name__}")
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def param_counts(model_or_config) -> tuple[int, int]:
    """(all parameters, all except the input embedding); tied weights count once."""
    model = _as_model(model_or_config)
    total = sum(p.numel() for p in model.parameters())  # parameters() yields a tied matrix once
    return int(total), int(total - model.get_input_embeddings().weight.numel())


def non_embedding_params(model_or_config) -> int:
    """All parameters except the input embedding (an untied LM head counts, a tied one does not)."""
    return param_counts(model_or_config)[1]


def train_flops(n_params: int, tokens: int | float) -> float:
    return 6.0 * float(n_params) * float(tokens)


def mfu(n_params: int, tokens_per_second_per_device: float, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation: the training FLOP/s of one device (6·N per token) over its peak;
    None where no peak is known (CPUs)."""
    if not peak_tflops:
        return None
    return train_flops(n_params, tokens_per_second_per_device) / (peak_tflops * 1e12)
