"""SLERP of a CPT checkpoint with its source model (mergekit 0.1.5).

Semantics (mergekit's `slerp` method): `base_model` is the source; `t` is the weight towards the
other model, the CPT checkpoint: t = 0 returns the source, t = 1 the checkpoint, t = 0.5 the
spherical midpoint. mergekit 0.1.5 interpolates each output row (leading axis) on the sphere and
falls back to linear interpolation for (nearly) parallel rows and for 1-D tensors (norm weights).
The tokenizer files (and the chat template, generation config) are copied from the source, so the
merged model behaves as an instruct model in vLLM and lm-eval.
"""
from __future__ import annotations

import time
from pathlib import Path

from medadapt.io import atomic_path

DTYPES = ("float32", "bfloat16", "float16")


def _model_dir(path: str, what: str) -> str:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{what}: {path} is not a Hugging Face model directory (no config.json)")
    # Absolute: mergekit's model card treats an existing relative path as a possible hub id and
    # queries the hub for it.
    return str(p.resolve())


def merge_config(checkpoint: str, source: str, t: float, dtype: str) -> dict:
    """The mergekit configuration (a plain dict, as it would appear in a mergekit YAML)."""
    if not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"merge.t={t}: expected a weight in [0, 1] (0 = source, 1 = checkpoint)")
    if dtype not in DTYPES:
        raise ValueError(f"merge.dtype={dtype!r}: expected one of {DTYPES}")
    return {
        "merge_method": "slerp",
        "base_model": source,
        "models": [{"model": source}, {"model": checkpoint}],
        "parameters": {"t": float(t)},
        "dtype": dtype,
    }


def slerp(checkpoint: str, source: str, out_dir: str, t: float, dtype: str, *,
          device: str = "cpu", out_shard_size: str | int = "2B") -> dict:
    """Stage `merge`: write SLERP(source -> checkpoint, t) to `out_dir` (atomically)."""
    from mergekit.common import parse_kmb
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    cfg = merge_config(_model_dir(checkpoint, "checkpoint"), _model_dir(source, "source"), t, dtype)
    options = MergeOptions(
        copy_tokenizer=True,          # from base_model = source: keeps its chat template
        lazy_unpickle=True,           # bounds memory for .bin checkpoints
        out_shard_size=parse_kmb(out_shard_size),
        device=device,
        cuda=device.startswith("cuda"),
        write_model_card=True,        # README.md + mergekit_config.yml record the recipe
        quiet=True,
    )
    start = time.time()
    with atomic_path(out_dir) as tmp:
        run_merge(MergeConfiguration.model_validate(cfg), out_path=str(tmp), options=options)
        if not any(tmp.glob("*.safetensors")):
            raise RuntimeError(f"mergekit wrote no weights for {out_dir}")
        if not (tmp / "tokenizer_config.json").is_file():
            raise RuntimeError(f"mergekit did not copy the tokenizer from {source} into {out_dir}")
    return {"t": float(t), "dtype": dtype, "checkpoint": checkpoint, "source": source,
            "seconds": round(time.time() - start, 2)}
