"""Tiny random models built from configs, the pattern of Hugging Face's tiny-random test models.

The demo and the tests cannot reach a model hub, so they build small models of the real
architectures locally: a byte-level BPE tokenizer trained on shipped text (with a Qwen-style chat
template, so vLLM and lm-eval treat it like an instruct model), Qwen2-shaped causal LMs on top of it
and an XLM-RoBERTa sequence classifier. head_dim must be 64 or more for vLLM's CPU attention.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from medadapt.io import atomic_path

# ChatML, as Qwen2.5 uses it (system message optional).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MLM_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def _train_bpe(texts: Iterable[str], vocab_size: int, specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def build_chat_tokenizer(texts: Iterable[str], out_dir: str, vocab_size: int = 2048) -> None:
    """Train a byte-level BPE tokenizer with ChatML specials and save it as a HF tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(texts, vocab_size, CHAT_SPECIALS),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        bos_token=None, model_max_length=4096, chat_template=CHAT_TEMPLATE,
    )
    with atomic_path(out_dir) as tmp:
        tok.save_pretrained(tmp)


def build_causal_lm(tokenizer_dir: str, out_dir: str, arch: dict, seed: int = 0) -> dict:
    """Build a randomly initialised Qwen2ForCausalLM of shape `arch` with the given tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    heads = arch["num_attention_heads"]
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=arch["hidden_size"],
        intermediate_size=arch.get("intermediate_size", 2 * arch["hidden_size"]),
        num_hidden_layers=arch["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=arch.get("num_key_value_heads", heads),
        head_dim=arch["hidden_size"] // heads,
        max_position_embeddings=arch.get("max_position_embeddings", 1024),
        tie_word_embeddings=arch.get("tie_word_embeddings", True),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        torch_dtype="float32",
    )
    if cfg.head_dim < 64:
        raise ValueError(f"arch: head_dim {cfg.head_dim} < 64 (hidden_size/num_attention_heads); "
                         "vLLM's CPU backend rejects it")
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.eos_token_id = cfg.eos_token_id
    model.generation_config.pad_token_id = cfg.pad_token_id
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tok)}


def build_classifier(texts: Iterable[str], out_dir: str, arch: dict, seed: int = 0,
                     vocab_size: int = 2048) -> dict:
    """Build a randomly initialised XLMRobertaForSequenceClassification (2 labels) + tokenizer."""
    import torch
    from transformers import (PreTrainedTokenizerFast, XLMRobertaConfig,
                              XLMRobertaForSequenceClassification)

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(texts, vocab_size, MLM_SPECIALS),
        bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", model_max_length=512,
    )
    from tokenizers import processors
    tok.backend_tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tok.convert_tokens_to_ids("</s>")), ("<s>", tok.convert_tokens_to_ids("<s>")))
    cfg = XLMRobertaConfig(
        vocab_size=len(tok), hidden_size=arch["hidden_size"],
        num_hidden_layers=arch["num_hidden_layers"], num_attention_heads=arch["num_attention_heads"],
        intermediate_size=arch.get("intermediate_size", 2 * arch["hidden_size"]),
        max_position_embeddings=514, pad_token_id=tok.pad_token_id, num_labels=2,
        id2label={0: "not_medical", 1: "medical"}, label2id={"not_medical": 0, "medical": 1},
    )
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(cfg)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return {"parameters": sum(p.numel() for p in model.parameters())}


def read_texts(paths: Iterable[str], field: str = "text", optional_field: str | None = None) -> list[str]:
    """Texts from JSONL or parquet files (used to train the demo tokenizers).

    Each row needs `field`, or `optional_field` where given (e.g. prompts carry `instruction`); a
    JSONL row without either may be a chat, `messages` [{role, content}], whose contents count
    (the demo world's pre-training files mix documents and chats).
    """
    import json

    import polars as pl

    out: list[str] = []
    for p in paths:
        if str(p).endswith(".parquet"):
            df = pl.read_parquet(p)
            col = field if field in df.columns else optional_field
            if col not in df.columns:
                raise ValueError(f"{p}: no '{field}' column (found {df.columns})")
            out.extend(df[col].to_list())
            continue
        with open(p, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                text = next((row[k] for k in (field, optional_field) if k and isinstance(row.get(k), str)), None)
                if text is None and isinstance(row.get("messages"), list):
                    text = " ".join(m["content"] for m in row["messages"])
                if text is None:
                    raise ValueError(f"{p}:{n}: no '{field}' string"
                                     + (f" or '{optional_field}'" if optional_field else "")
                                     + " and no 'messages' list")
                out.append(text)
    return out
