"""Pre-train a tiny source model on the demo world's general German (and knowledge tiers).

A random tiny model knows nothing, so every checkpoint of it scores at chance and every judge
verdict is a coin flip. Before CPT the demo therefore gives each source a short, seeded
pre-training on plain documents and chat turns (ChatML through the tokenizer's chat template, so
the source answers a user turn like an instruct model). Every source sees the world's
`pretrain/general.jsonl` (everyday German) and `pretrain/medicine.jsonl` (medical German about
other diseases, treated by the world's drugs); larger sources also see knowledge tiers of the
world's own facts (`pretrain/knowledge-K.jsonl`), so the next-larger baseline knows more than the
model it is compared with. Which files a size sees is the caller's choice (config).

The optimisation mirrors the CPT stage's Trainer setup (AdamW with weight decay on all but biases
and norm weights, linear warmup then cosine decay, gradient clipping at 1.0) in a plain loop:
for a model this small the Trainer's per-step overhead is a large share of the time.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

from medadapt.io import atomic_path


def read_rows(paths: list[str], repeats: list[int] | None = None) -> list[dict]:
    """Rows {id, text} or {id, messages} from JSONL files, in file order; the rows of `paths[i]`
    `repeats[i]` times in a row (default once), which up-weights a small file (the knowledge
    tiers: read once among ~370k tokens of general text, a tiny source does not learn them)."""
    paths = list(paths)
    repeats = [1] * len(paths) if repeats is None else list(repeats)
    if len(repeats) != len(paths) or any(not isinstance(k, int) or k < 1 for k in repeats):
        raise ValueError(f"repeats {repeats}: expected one positive integer per file of {paths}")
    rows: list[dict] = []
    for p, k in zip(paths, repeats):
        file_rows = []
        with open(p, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row.get("text"), str) and not isinstance(row.get("messages"), list):
                    raise ValueError(f"{p}:{lineno}: expected a 'text' string or a 'messages' list")
                file_rows.append(row)
        rows += file_rows * k
    if not rows:
        raise ValueError(f"pre-training files {paths}: no rows")
    return rows


def render(rows: list[dict], tokenizer) -> list[str]:
    """Documents end with the tokenizer's EOS; chat turns are rendered with its chat template
    (which closes every turn with <|im_end|>, the EOS of the tiny tokenizers)."""
    out = []
    for row in rows:
        if "messages" in row:
            out.append(tokenizer.apply_chat_template(row["messages"], tokenize=False))
        else:
            out.append(row["text"] + tokenizer.eos_token)
    return out


def pack(texts: list[str], tokenizer, seq_len: int, seed: int):
    """Shuffle, tokenize, concatenate and cut into blocks of `seq_len` (remainder dropped), as
    the CPT stage's packing does: a LongTensor [blocks, seq_len]."""
    import random

    import torch

    texts = list(texts)
    random.Random(seed).shuffle(texts)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    stream = [t for doc in ids for t in doc]
    n = len(stream) // seq_len
    if n == 0:
        raise ValueError(f"pack: {len(stream)} tokens make no block of {seq_len}")
    return torch.tensor(stream[: n * seq_len], dtype=torch.long).view(n, seq_len)


def _optimizer(model, learning_rate: float, weight_decay: float):
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # The Trainer's rule: no decay on biases and normalisation weights.
        (no_decay if name.endswith("bias") or "norm" in name.lower() else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=learning_rate, betas=(0.9, 0.999), eps=1e-8)


def train_blocks(model, blocks, steps: int, learning_rate: float, seed: int, batch_size: int = 8,
                 warmup_ratio: float = 0.1, weight_decay: float = 0.1,
                 on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """`steps` optimizer steps over `blocks` (reshuffled each pass); returns the loss per step.

    `on_step(step, loss)` is called after every step (1-based), e.g. to save checkpoints.
    """
    import torch
    from transformers import get_cosine_schedule_with_warmup

    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    g = torch.Generator().manual_seed(seed)
    opt = _optimizer(model, learning_rate, weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(warmup_ratio * steps), steps)
    model.train()
    order, pos, losses = torch.randperm(len(blocks), generator=g), 0, []
    for step in range(1, steps + 1):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(blocks), generator=g), 0
        batch = blocks[order[pos:pos + batch_size]]
        pos += batch_size
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


def pretrain_tiny(tokenizer_dir: str, files: list[str], arch: dict, steps: int, learning_rate: float,
                  seed: int, out_dir: str, seq_len: int = 128, batch_size: int = 8,
                  threads: int | None = None, repeats: list[int] | None = None) -> dict:
    """Build a random tiny Qwen2 model of shape `arch` (medadapt.models.tiny) and pre-train it for
    `steps` steps on the rows of `files` (each read `repeats[i]` times, default once); save
    model + tokenizer to `out_dir` atomically."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medadapt.models.tiny import build_causal_lm

    if threads:
        torch.set_num_threads(int(threads))
    start = time.time()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    blocks = pack(render(read_rows(files, repeats), tokenizer), tokenizer, seq_len, seed)
    with tempfile.TemporaryDirectory() as tmp:
        build_causal_lm(tokenizer_dir, f"{tmp}/init", arch, seed=seed)
        model = AutoModelForCausalLM.from_pretrained(f"{tmp}/init", dtype=torch.float32)
    torch.manual_seed(seed)
    losses = train_blocks(model, blocks, steps, learning_rate, seed, batch_size)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    tail = losses[-max(1, steps // 10):]
    return {"blocks": len(blocks), "steps": steps, "epochs": round(steps * batch_size / len(blocks), 2),
            "first_loss": round(losses[0], 4), "final_loss": round(sum(tail) / len(tail), 4),
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": round(time.time() - start, 1), "files": [str(Path(f)) for f in files],
            "repeats": list(repeats) if repeats is not None else [1] * len(files)}
