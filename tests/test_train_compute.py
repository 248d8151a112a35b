"""FLOPs = 6·N·D with N = all parameters but the input embedding reproduces the paper's Table 2.

tests/data/hf_configs/ holds the published config.json values of the paper's eight models.
"""
import json
from pathlib import Path

import pytest
from transformers import Qwen2Config

from medadapt.train.compute import (load_config, non_embedding_params, param_counts,
                                    train_flops)

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
TOKENS = 9.5e9  # FineMed-de, Qwen2.5 tokenizer
# Table 2 of the paper: training FLOPs for 9.5B tokens.
TABLE2 = {"Qwen2.5-0.5B-Instruct": 2.03e19, "Qwen2.5-1.5B-Instruct": 7.42e19,
          "Qwen2.5-3B-Instruct": 1.57e20, "Qwen2.5-7B-Instruct": 4.00e20,
          "Qwen3-0.6B": 2.49e19, "Qwen3-1.7B": 7.98e19, "Qwen3-4B": 2.06e20, "Qwen3-8B": 4.29e20}
# The model cards' parameter counts (billions): total, and non-embedding as the cards count it
# (without the input embedding and without an untied LM head).
CARDS = {"Qwen2.5-0.5B-Instruct": (0.49, 0.36), "Qwen2.5-1.5B-Instruct": (1.54, 1.31),
         "Qwen2.5-3B-Instruct": (3.09, 2.77), "Qwen2.5-7B-Instruct": (7.61, 6.53),
         "Qwen3-0.6B": (0.6, 0.44), "Qwen3-1.7B": (1.7, 1.4), "Qwen3-4B": (4.0, 3.6),
         "Qwen3-8B": (8.2, 6.95)}


@pytest.mark.parametrize("name", list(TABLE2))
def test_table2_flops(name):
    flops = train_flops(non_embedding_params(CONFIGS / f"{name}.json"), TOKENS)
    assert flops == pytest.approx(TABLE2[name], rel=0.01)


@pytest.mark.parametrize("name", list(CARDS))
def test_fixtures_match_the_model_cards(name):
    config = load_config(CONFIGS / f"{name}.json")
    total, non_embedding = param_counts(config)
    embedding = config.vocab_size * config.hidden_size
    head = 0 if config.tie_word_embeddings else embedding
    for ours, card in ((total, CARDS[name][0]), (non_embedding - head, CARDS[name][1])):
        last_digit = 10.0 ** -len(str(card).split(".")[1])  # the card's precision
        assert abs(ours / 1e9 - card) <= last_digit, (ours, card)
    assert total - non_embedding == embedding


def test_tied_head_is_the_embedding_untied_head_counts():
    """By hand: vocab 10, hidden 4, one layer, 2 query heads and 1 key/value head of size 2."""
    shape = dict(vocab_size=10, hidden_size=4, intermediate_size=6, num_hidden_layers=1,
                 num_attention_heads=2, num_key_value_heads=1)
    layer = ((4 * 4 + 4) + 2 * (4 * 2 + 2) + 4 * 4  # q, k, v (with bias), o
             + 3 * 4 * 6                             # gate, up, down
             + 2 * 4)                                # two RMSNorms
    embedding, final_norm, head = 10 * 4, 4, 10 * 4
    tied = param_counts(Qwen2Config(**shape, tie_word_embeddings=True))
    untied = param_counts(Qwen2Config(**shape, tie_word_embeddings=False))
    assert tied == (embedding + layer + final_norm, layer + final_norm) == (180, 140)
    assert untied == (embedding + layer + final_norm + head, layer + final_norm + head) == (220, 180)
    assert train_flops(140, 1000) == 6 * 140 * 1000


def test_model_instance_directory_and_file_agree(tiny_lm):
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    n = non_embedding_params(model)
    assert n == non_embedding_params(tiny_lm) == non_embedding_params(AutoConfig.from_pretrained(tiny_lm))
    assert n == non_embedding_params(Path(tiny_lm) / "config.json")
    total = sum(p.numel() for p in model.parameters())
    assert n == total - model.get_input_embeddings().weight.numel()


def test_load_config_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.json: no such file"):
        load_config(tmp_path / "nope.json")
    (tmp_path / "text.json").write_text("hidden_size: 4")
    with pytest.raises(ValueError, match=r"text\.json: not a JSON file"):
        load_config(tmp_path / "text.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_config(tmp_path / "list.json")
    (tmp_path / "untyped.json").write_text(json.dumps({"hidden_size": 4}))
    with pytest.raises(ValueError, match="no model_type"):
        load_config(tmp_path / "untyped.json")
    (tmp_path / "odd.json").write_text(json.dumps({"model_type": "qwen99"}))
    with pytest.raises(ValueError, match="unknown model_type 'qwen99'"):
        load_config(tmp_path / "odd.json")


def test_rejects_other_objects():
    with pytest.raises(TypeError, match="config"):
        non_embedding_params(42)
