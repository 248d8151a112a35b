"""Cost of the training path on the CPU: tokens/s of the workflow's Trainer setup against a minimal
plain PyTorch loop on the same model and the same batches (overhead ratio), MFU against this
machine's measured GEMM FLOP/s, and the cost in seconds of a full state save and of a resume.

Usage: .venv/bin/python benchmarks/train.py [--hidden 384 --layers 6 --steps 12 --rounds 2 --threads 2]

Both loops run in this one process, interleaved step by step (a Trainer callback runs one plain step
after each Trainer step), so a shared machine's load hits them alike; the ratios are what to compare
across machines. "Ours" is what the `train`
stage runs per optimizer step: the transformers Trainer with `training_arguments`, `collate_blocks`
and the `SegmentControl` callback (stop/save checks every step), state saves off while timing.
The plain loop: AdamW, the same cosine schedule with warmup, gradient clipping at 1.0 (the Trainer's
default), gradient accumulation, fp32. Tokens/s count the timed steps only (after `--warmup` steps).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

SEQ, PER_DEVICE, ACCUM = 128, 4, 2


def gemm_flops(threads: int, n: int = 1024, repeat: int = 20) -> float:
    """Peak-ish FP32 matmul FLOP/s of this machine with `threads` threads (best of `repeat`)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def setup(work: Path, hidden: int, layers: int, steps: int) -> tuple[str, str, dict]:
    """A tokenizer and a Qwen2-shaped model built from the demo text, and packed blocks for `steps`
    optimizer steps."""
    import polars as pl

    from medadapt.models.tiny import build_causal_lm, build_chat_tokenizer, read_texts
    from medadapt.train.pack import pack

    texts = read_texts(sorted(str(p) for p in (ROOT / "resources" / "demo" / "corpus").glob("shard-*.jsonl")))
    build_chat_tokenizer(texts, str(work / "tok"), vocab_size=2048)
    arch = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": hidden // 64,
            "num_key_value_heads": max(1, hidden // 192), "intermediate_size": int(hidden * 8 / 3) // 64 * 64}
    build_causal_lm(str(work / "tok"), str(work / "model"), arch, seed=0)
    need = steps * PER_DEVICE * ACCUM
    repeat = 1
    while True:
        pl.DataFrame({"text": texts * repeat}).write_parquet(work / "corpus.parquet")
        shutil.rmtree(work / "packed", ignore_errors=True)
        if pack(str(work / "corpus.parquet"), str(work / "tok"), SEQ, str(work / "packed"), seed=0)["blocks"] >= need:
            return str(work / "model"), str(work / "packed"), arch
        repeat *= 2


class Interleaved:
    """A Trainer callback that runs one step of the plain loop after every Trainer step, so that both
    see the same machine load; it times each Trainer step (since the plain step before it) and each
    plain step."""

    def __init__(self, plain_step):
        from transformers import TrainerCallback

        self.ours: list[float] = []
        self.plain: list[float] = []
        bench = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                bench.mark = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                now = time.perf_counter()
                bench.ours.append(now - bench.mark)
                plain_step(len(bench.plain))
                bench.mark = time.perf_counter()
                bench.plain.append(bench.mark - now)

        self.callback = _Callback()
        self.mark = 0.0


class Begin:
    """A Trainer callback: when training begins (model, optimizer, scheduler and state are loaded)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                timer.at = time.perf_counter()

        self.callback = _Callback()
        self.at = 0.0


def train_block(steps: int) -> dict:
    return {"effective_batch_size": PER_DEVICE * ACCUM, "per_device_batch_size": PER_DEVICE, "seq_len": SEQ,
            "learning_rate": 2e-5, "weight_decay": 0.1, "warmup_ratio": 0.1, "lr_scheduler": "cosine",
            "optim": "adamw_torch", "epochs": 1, "bf16": False, "gradient_checkpointing": False, "fsdp": "",
            "fsdp_config": None, "attn_implementation": None, "logging_steps": 1, "dataloader_num_workers": 0,
            "checkpoints": {"count": 1, "first_fraction": 0.5},
            "state": {"save_every_steps": 0, "save_every_minutes": 0, "keep": 2}}


def make_trainer(model_dir: str, packed: str, state_dir: Path, steps: int, extra=None):
    """The Trainer exactly as the `train` stage builds it (one process, CPU)."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer, Trainer

    from medadapt.train import state as states
    from medadapt.train.plan import make_plan
    from medadapt.train.trainer import SegmentControl, collate_blocks, load_model, training_arguments

    dataset = load_from_disk(packed)
    block = train_block(steps)
    plan = make_plan(len(dataset), SEQ, 1, PER_DEVICE * ACCUM, PER_DEVICE, block["checkpoints"])
    args = training_arguments(block, plan, 0, PER_DEVICE, state_dir / states.STAGING, gpu=False)
    control = SegmentControl(steps, state_dir, "bench", 0, 0, 2)
    callbacks = [control] + ([extra.callback] if extra else [])
    trainer = Trainer(model=load_model(model_dir, None), args=args, train_dataset=dataset,
                      data_collator=collate_blocks, processing_class=AutoTokenizer.from_pretrained(model_dir),
                      callbacks=callbacks)
    control.trainer = trainer
    states.clear_staging(state_dir)
    return trainer, control, plan


def plain_loop(model_dir: str, packed: str, total_steps: int):
    """A minimal loop on the same model and blocks: AdamW + cosine with warmup, clip 1.0, gradient
    accumulation; returns a function that runs optimizer step i."""
    import torch
    from datasets import load_from_disk
    from transformers import get_cosine_schedule_with_warmup

    from medadapt.train.trainer import collate_blocks, load_model

    model = load_model(model_dir, None)
    model.train()
    data = load_from_disk(packed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-5)
    sched = get_cosine_schedule_with_warmup(opt, int(0.1 * total_steps + 0.999), total_steps)

    def step(i: int) -> None:
        for micro in range(ACCUM):
            start = (i * ACCUM + micro) * PER_DEVICE
            batch = collate_blocks([data[j] for j in range(start, start + PER_DEVICE)])
            (model(**batch).loss / ACCUM).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)

    return step


def interleaved(model_dir: str, packed: str, work: Path, steps: int) -> tuple[list[float], list[float]]:
    bench = Interleaved(plain_loop(model_dir, packed, steps))
    trainer, _, _ = make_trainer(model_dir, packed, work / "state-ours", steps, bench)
    trainer.train()
    return bench.ours, bench.plain


def save_and_resume(model_dir: str, packed: str, work: Path, steps: int) -> dict:
    """Seconds: a full state save (Trainer checkpoint + publishing it) vs writing the weights alone;
    a resume (model, optimizer, scheduler, RNG and data position restored) vs a fresh start."""
    from safetensors.torch import save_model

    from medadapt.train import state as states

    state_dir = work / "state-save"
    trainer, control, _ = make_trainer(model_dir, packed, state_dir, 2, None)
    trainer.train()  # two steps, then a state save at the stop step (as at every checkpoint)
    model = trainer.model
    save = []
    for _ in range(3):
        trainer.state.global_step += 1  # a new step each time, as in a run: publish, then rotate (keep 2)
        start = time.perf_counter()
        trainer._save_checkpoint(model, None)  # what control.should_save triggers
        control.on_save(trainer.args, trainer.state, trainer.control)
        save.append(time.perf_counter() - start)
    weights = []
    for i in range(3):
        out = work / f"weights-{i}.safetensors"
        start = time.perf_counter()
        save_model(model, str(out), metadata={"format": "pt"})  # the weights alone (tied ones once)
        weights.append(time.perf_counter() - start)
    last = states.states(state_dir)[-1]
    size = sum(f.stat().st_size for f in last.path.iterdir())
    weight_bytes = (work / "weights-0.safetensors").stat().st_size

    def load_seconds(resume: str | None) -> float:
        """From trainer.train() to the loop's start: model, optimizer, scheduler (and state) loaded."""
        begin = Begin()
        trainer2, _, _ = make_trainer(model_dir, packed, work / "state-resume", 3, begin)
        start = time.perf_counter()
        trainer2.train(resume_from_checkpoint=resume)
        return begin.at - start

    fresh, resumed = [], []
    for _ in range(3):  # alternating, like the training loops
        fresh.append(load_seconds(None))
        resumed.append(load_seconds(str(last.path)))
    fresh, resumed = statistics.median(fresh), statistics.median(resumed)
    return {"state_save_s": statistics.median(save), "weights_only_save_s": statistics.median(weights),
            "state_mb": size / 1e6, "weights_mb": weight_bytes / 1e6,
            "start_fresh_s": fresh, "start_resumed_s": resumed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--steps", type=int, default=12, help="timed optimizer steps per round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--skip-loops", action="store_true", help="only the state save and resume costs")
    args = ap.parse_args()

    import torch

    from medadapt.train.compute import non_embedding_params

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="medadapt-bench-"))
    try:
        total = args.warmup + args.steps
        model_dir, packed, arch = setup(work, args.hidden, args.layers, total)
        n_params = non_embedding_params(model_dir)
        ours_t, plain_t = [], []
        for _ in range(0 if args.skip_loops else args.rounds):
            o, p = interleaved(model_dir, packed, work, total)
            ours_t += o[args.warmup:]
            plain_t += p[args.warmup:]
        tokens_per_step = PER_DEVICE * ACCUM * SEQ
        peak = gemm_flops(args.threads)
        io = save_and_resume(model_dir, packed, work, total)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"shape": arch, "non_embedding_params": n_params, "threads": args.threads,
              "tokens_per_step": tokens_per_step, "gemm_gflops": peak / 1e9, **io,
              "save_ratio": io["state_save_s"] / io["weights_only_save_s"],
              "resume_s": io["start_resumed_s"] - io["start_fresh_s"]}
    print(f"shape {arch}, {n_params / 1e6:.2f} M non-embedding parameters, {args.threads} threads, "
          f"{tokens_per_step} tokens/step, GEMM {peak / 1e9:.1f} GFLOP/s")
    if ours_t:
        ours_tps = tokens_per_step / statistics.median(ours_t)
        plain_tps = tokens_per_step / statistics.median(plain_t)
        result |= {"timed_steps": len(ours_t), "ours_tokens_per_s": ours_tps, "plain_tokens_per_s": plain_tps,
                   "overhead_ratio": plain_tps / ours_tps,
                   "per_step_ratio_median": statistics.median(o / p for o, p in zip(ours_t, plain_t)),
                   "ours_mfu": 6 * n_params * ours_tps / peak, "plain_mfu": 6 * n_params * plain_tps / peak}
        print(f"tokens/s   ours {ours_tps:8.0f}   plain loop {plain_tps:8.0f}   overhead ratio "
              f"{result['overhead_ratio']:.3f} (median of per-step ratios {result['per_step_ratio_median']:.3f}; "
              f"{len(ours_t)} timed steps each)")
        print(f"MFU        ours {result['ours_mfu']:8.1%}   plain loop {result['plain_mfu']:8.1%}   "
              "(6·N·tokens/s over the measured GEMM FLOP/s)")
    print(f"state save {io['state_save_s']:.3f} s ({io['state_mb']:.1f} MB) vs weights alone "
          f"{io['weights_only_save_s']:.3f} s ({io['weights_mb']:.1f} MB): ratio {result['save_ratio']:.2f}")
    print(f"resume     training starts {io['start_resumed_s']:.2f} s after train() vs {io['start_fresh_s']:.2f} s "
          f"fresh: loading the state costs {result['resume_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
