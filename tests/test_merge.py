"""SLERP merge with mergekit on two tiny Qwen2 models (real mergekit, ~seconds per merge)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medadapt.merge import merge_config, slerp


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        out.update(load_file(f))
    return out


@pytest.fixture(scope="module")
def merged(tmp_path_factory, tiny_lm, tiny_lm_other):
    """tiny_lm_other plays the CPT checkpoint, tiny_lm its source."""
    root = tmp_path_factory.mktemp("merged")
    out = {}
    for t in (0.0, 0.5, 1.0):
        out[t] = str(root / f"t{t}")
        assert slerp(tiny_lm_other, tiny_lm, out[t], t=t, dtype="float32")["t"] == t
    return out


def test_endpoints_equal_inputs(merged, tiny_lm, tiny_lm_other):
    src, ckpt = _weights(tiny_lm), _weights(tiny_lm_other)
    at0, at1 = _weights(merged[0.0]), _weights(merged[1.0])
    assert set(at0) == set(src)
    for name in src:
        torch.testing.assert_close(at0[name], src[name], msg=f"t=0 != source for {name}")
        torch.testing.assert_close(at1[name], ckpt[name], msg=f"t=1 != checkpoint for {name}")


def test_midpoint_is_spherical(merged, tiny_lm, tiny_lm_other):
    src, ckpt, mid = _weights(tiny_lm), _weights(tiny_lm_other), _weights(merged[0.5])
    name = "model.layers.0.mlp.up_proj.weight"  # random, far from parallel
    a, b, m = src[name], ckpt[name], mid[name]
    lerp = 0.5 * (a + b)
    assert not torch.allclose(m, lerp, atol=1e-4), "t=0.5 equals linear interpolation"
    # At t=0.5 SLERP is c * (a + b) with c = 1 / (2 cos(theta/2)) > 0.5: same direction as the
    # linear midpoint, strictly longer (per row for mergekit 0.1.5).
    cos = torch.nn.functional.cosine_similarity(m, lerp, dim=1)
    assert torch.all(cos > 0.9999)
    assert torch.all(m.norm(dim=1) > lerp.norm(dim=1) * 1.01)
    # ... and it lies between the endpoints: closer to each than they are to one another.
    assert (m - a).norm() < (b - a).norm() and (m - b).norm() < (b - a).norm()


def test_output_loads_and_keeps_chat_template(merged, tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(merged[0.5])
    assert tok.chat_template == AutoTokenizer.from_pretrained(tiny_lm).chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "Hallo"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(merged[0.5])
    ids = tok("Der Patient", return_tensors="pt").input_ids
    assert torch.isfinite(model(ids).logits).all()
    assert (Path(merged[0.5]) / "mergekit_config.yml").is_file()
    assert not list(Path(merged[0.5]).parent.glob(".t0.5.*")), "temporary dir left behind"


def test_bfloat16_output(tmp_path, tiny_lm, tiny_lm_other):
    slerp(tiny_lm_other, tiny_lm, str(tmp_path / "bf16"), t=0.3, dtype="bfloat16")
    w = _weights(str(tmp_path / "bf16"))
    assert {v.dtype for v in w.values()} == {torch.bfloat16}


def test_untied_lm_head(tmp_path, tiny_tokenizer):
    """Qwen2.5-7B and larger have an untied LM head: it must be merged too."""
    from medadapt.models.tiny import build_causal_lm

    arch = {"hidden_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
            "tie_word_embeddings": False}
    for name, seed in (("src", 0), ("ckpt", 1)):
        build_causal_lm(tiny_tokenizer, str(tmp_path / name), arch, seed=seed)
    slerp(str(tmp_path / "ckpt"), str(tmp_path / "src"), str(tmp_path / "out"), t=1.0, dtype="float32")
    out, ckpt = _weights(str(tmp_path / "out")), _weights(str(tmp_path / "ckpt"))
    assert "lm_head.weight" in out
    torch.testing.assert_close(out["lm_head.weight"], ckpt["lm_head.weight"])


def test_bad_input(tmp_path, tiny_lm):
    with pytest.raises(ValueError, match=r"t=1.5"):
        merge_config(tiny_lm, tiny_lm, 1.5, dtype="float32")
    with pytest.raises(ValueError, match="dtype"):
        merge_config(tiny_lm, tiny_lm, 0.5, dtype="int8")
    with pytest.raises(FileNotFoundError, match="checkpoint: .*no config.json"):
        slerp(str(tmp_path / "missing"), tiny_lm, str(tmp_path / "out"), t=0.5, dtype="float32")
    assert not (tmp_path / "out").exists()
