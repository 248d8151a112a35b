"""Cost of the training path on the CPU, one process: tokens/s of the workflow's FSDP2 engine
(`medadapt.train.engine`, as the `train` stage runs it) against a plain hand-written FSDP2 loop on
the same model and batches (overhead ratio, goal <= 1.05) and against the previous path, the
transformers Trainer (plain training at world size 1); MFU against this machine's measured GEMM
FLOP/s; and the state save: how long training is blocked by a sharded (DCP, asynchronous) state
save, and how long the whole write takes, against writing the weights alone (goal <= 2x).

Usage: .venv/bin/python benchmarks/train.py [--hidden 384 --layers 6 --steps 12 --rounds 2 --threads 2]

The three loops run in this one process, interleaved step by step (a Trainer callback runs one
engine step and one plain step after each Trainer step), so a shared machine's load hits them
alike; the ratios are what to compare across machines. "Engine" is `Trainer.train_step` plus
`after_step` (the stop/save agreement, one all-reduce) and the log entry, state saves off while
timing. The plain loop: the same `fully_shard` per layer and root, AdamW, cosine schedule with
warmup, clipping at 1.0, gradient accumulation, fp32 - and nothing else. Tokens/s count the timed
steps only (after `--warmup` steps).
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
    """A Trainer callback that runs one engine step and one plain step after every Trainer step, so
    that all three see the same machine load; it times each Trainer step (since the other two steps
    before it), each engine step and each plain step."""

    def __init__(self, engine_step, plain_step):
        from transformers import TrainerCallback

        self.trainer: list[float] = []
        self.engine: list[float] = []
        self.plain: list[float] = []
        bench = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                bench.mark = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                now = time.perf_counter()
                bench.trainer.append(now - bench.mark)
                engine_step(len(bench.engine) + 1)
                mid = time.perf_counter()
                bench.engine.append(mid - now)
                plain_step(len(bench.plain) + 1)
                bench.mark = time.perf_counter()
                bench.plain.append(bench.mark - mid)

        self.callback = _Callback()
        self.mark = 0.0


def train_block(steps: int) -> dict:
    return {"effective_batch_size": PER_DEVICE * ACCUM, "per_device_batch_size": PER_DEVICE, "seq_len": SEQ,
            "learning_rate": 2e-5, "weight_decay": 0.1, "warmup_ratio": 0.1, "lr_scheduler": "cosine",
            "epochs": 1, "bf16": False, "max_grad_norm": 1.0, "activation_checkpointing": False, "compile": False,
            "tensorboard": False, "sharding": {"reshard_after_forward": True}, "attn_implementation": None,
            "logging_steps": 1, "checkpoints": {"count": 1, "first_fraction": 0.5},
            "state": {"save_every_steps": 0, "save_every_minutes": 0, "keep": 2, "async_save": True,
                      "lock_wait_minutes": 0, "lock_stale_minutes": 30}}


def previous_trainer(model_dir: str, packed: str, work: Path, steps: int, callback):
    """The previous path: the transformers Trainer as the `train` stage built it before the engine
    (one process: plain training; AdamW, cosine with warmup, clipping at 1.0, accumulation)."""
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    def collate(features):
        ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
        return {"input_ids": ids, "labels": ids.clone()}

    args = TrainingArguments(
        output_dir=str(work / "trainer-out"), max_steps=steps, per_device_train_batch_size=PER_DEVICE,
        gradient_accumulation_steps=ACCUM, learning_rate=2e-5, weight_decay=0.1, lr_scheduler_type="cosine",
        warmup_steps=0.1, optim="adamw_torch", seed=0, logging_steps=1, disable_tqdm=True, use_cpu=True,
        save_strategy="no", report_to=[], dataloader_drop_last=True, dataloader_pin_memory=False)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return Trainer(model=model, args=args, train_dataset=load_from_disk(packed), data_collator=collate,
                   callbacks=[callback])


def engine_trainer(model_dir: str, packed: str, state_dir: Path, steps: int, dist_):
    """The engine exactly as the `train` stage builds it (no state saves while timing)."""
    from datasets import load_from_disk

    from medadapt.train import engine
    from medadapt.train.compute import non_embedding_params
    from medadapt.train.trainer import StopFlag

    cfg = engine.EngineConfig.from_train(train_block(steps), model_dir, 0)
    ckpt = engine.Checkpointer(state_dir, dist_, cfg.checkpoint, {"run": "bench"}, lambda event: None)
    trainer = engine.Trainer(cfg, dist_, load_from_disk(packed), steps, PER_DEVICE * ACCUM, PER_DEVICE,
                             non_embedding_params(model_dir), SEQ, StopFlag(), ckpt)
    trainer.setup()
    trainer.last_save = time.monotonic()
    return trainer


def plain_fsdp_loop(model_dir: str, packed: str, total_steps: int, dist_):
    """A minimal FSDP2 loop on the same model and blocks: fully_shard per decoder layer and root,
    AdamW + cosine with warmup, clip 1.0, gradient accumulation; returns a function running step i."""
    import math

    import torch
    from datasets import load_from_disk
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mesh=dist_.mesh)
    fully_shard(model, mesh=dist_.mesh, reshard_after_forward=False)
    model.train()
    data = load_from_disk(packed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-5, foreach=True)
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(0.1 * total_steps), total_steps)

    def step(i: int) -> None:
        for micro in range(ACCUM):
            start = ((i - 1) * ACCUM + micro) * PER_DEVICE
            ids = torch.tensor(data[start:start + PER_DEVICE]["input_ids"], dtype=torch.long)
            (model(input_ids=ids, labels=ids).loss / ACCUM).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)

    return step


def interleaved(model_dir: str, packed: str, work: Path, steps: int, dist_):
    eng = engine_trainer(model_dir, packed, work / "state-engine", steps, dist_)

    def engine_step(i: int) -> None:  # what Trainer.run does per step, state saves off
        eng._window.append(eng.train_step(i))
        eng.step = i
        eng.after_step(i, steps + 1)
        eng.log(i)

    bench = Interleaved(engine_step, plain_fsdp_loop(model_dir, packed, steps, dist_))
    previous_trainer(model_dir, packed, work, steps, bench.callback).train()
    return bench.trainer, bench.engine, bench.plain


def state_saves(model_dir: str, packed: str, work: Path, dist_) -> dict:
    """Seconds training is blocked by a state save (sharded model + optimizer + trainer state + RNG,
    asynchronous DCP) and until it is written and published; vs writing the weights alone."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM

    from medadapt.train import state as states

    state_dir = work / "state-save"
    eng = engine_trainer(model_dir, packed, state_dir, 8, dist_)
    for i in range(1, 3):  # two steps: the optimizer has its moments
        eng.train_step(i)
        eng.step = i
    blocked, total, sync = [], [], []
    for i in range(3):
        step = eng.step + 1 + 2 * i  # a new step each time, as in a run: publish, then rotate (keep 2)
        start = time.perf_counter()
        eng.ckpt.save(eng.model, eng.optimizer, step, eng.trainer_state(), "bench", wait=False)
        blocked.append(time.perf_counter() - start)
        eng.ckpt.wait()
        total.append(time.perf_counter() - start)
        # the same state written synchronously (train.state.async_save: false)
        start = time.perf_counter()
        eng.ckpt.save(eng.model, eng.optimizer, step + 1, eng.trainer_state(), "bench", wait=True)
        sync.append(time.perf_counter() - start)
    plain = AutoModelForCausalLM.from_pretrained(model_dir)
    weights = []
    for i in range(3):
        out = work / f"weights-{i}.safetensors"
        start = time.perf_counter()
        save_model(plain, str(out), metadata={"format": "pt"})  # the weights alone (tied ones once)
        weights.append(time.perf_counter() - start)
    last = states.states(state_dir)[-1]
    size = sum(f.stat().st_size for f in last.path.rglob("*") if f.is_file())
    return {"state_save_blocking_s": statistics.median(blocked), "state_save_total_s": statistics.median(total),
            "state_save_sync_s": statistics.median(sync),
            "weights_only_save_s": statistics.median(weights), "state_mb": size / 1e6,
            "weights_mb": (work / "weights-0.safetensors").stat().st_size / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--steps", type=int, default=12, help="timed optimizer steps per round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--skip-loops", action="store_true", help="only the state save costs")
    args = ap.parse_args()

    import torch

    from medadapt.train import engine
    from medadapt.train.compute import non_embedding_params

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="medadapt-bench-"))
    try:
        total = args.warmup + args.steps
        model_dir, packed, arch = setup(work, args.hidden, args.layers, total)
        n_params = non_embedding_params(model_dir)
        dist_ = engine.init_distributed("cpu")  # a mesh of one, as the stage runs on one CPU
        trainer_t, engine_t, plain_t = [], [], []
        for _ in range(0 if args.skip_loops else args.rounds):
            t, e, p = interleaved(model_dir, packed, work, total, dist_)
            trainer_t += t[args.warmup:]
            engine_t += e[args.warmup:]
            plain_t += p[args.warmup:]
        tokens_per_step = PER_DEVICE * ACCUM * SEQ
        peak = gemm_flops(args.threads)
        io = state_saves(model_dir, packed, work, dist_)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"shape": arch, "non_embedding_params": n_params, "threads": args.threads,
              "tokens_per_step": tokens_per_step, "gemm_gflops": peak / 1e9, **io,
              "save_blocking_ratio": io["state_save_blocking_s"] / io["weights_only_save_s"],
              "save_total_ratio": io["state_save_total_s"] / io["weights_only_save_s"],
              "save_sync_ratio": io["state_save_sync_s"] / io["weights_only_save_s"]}
    print(f"shape {arch}, {n_params / 1e6:.2f} M non-embedding parameters, {args.threads} threads, "
          f"{tokens_per_step} tokens/step, GEMM {peak / 1e9:.1f} GFLOP/s")
    if engine_t:
        tps = {name: tokens_per_step / statistics.median(t)
               for name, t in (("engine", engine_t), ("plain_fsdp2", plain_t), ("trainer", trainer_t))}
        result |= {"timed_steps": len(engine_t), **{f"{k}_tokens_per_s": v for k, v in tps.items()},
                   "overhead_vs_plain_fsdp2": tps["plain_fsdp2"] / tps["engine"],
                   "per_step_ratio_median": statistics.median(e / p for e, p in zip(engine_t, plain_t)),
                   "speed_vs_trainer": tps["engine"] / tps["trainer"],
                   **{f"{k}_mfu": 6 * n_params * v / peak for k, v in tps.items()}}
        print(f"tokens/s   engine {tps['engine']:8.0f}   plain FSDP2 {tps['plain_fsdp2']:8.0f}   previous Trainer "
              f"{tps['trainer']:8.0f}   overhead vs plain {result['overhead_vs_plain_fsdp2']:.3f} (median of "
              f"per-step ratios {result['per_step_ratio_median']:.3f}; {len(engine_t)} timed steps each); "
              f"engine / Trainer {result['speed_vs_trainer']:.3f}")
        print(f"MFU        engine {result['engine_mfu']:8.1%}   plain FSDP2 {result['plain_fsdp2_mfu']:8.1%}   "
              f"Trainer {result['trainer_mfu']:8.1%}   (6·N·tokens/s over the measured GEMM FLOP/s)")
    print(f"state save blocks training {io['state_save_blocking_s']:.3f} s, written and published after "
          f"{io['state_save_total_s']:.3f} s ({io['state_mb']:.1f} MB) vs weights alone "
          f"{io['weights_only_save_s']:.3f} s ({io['weights_mb']:.1f} MB): ratios "
          f"{result['save_blocking_ratio']:.2f} (blocking), {result['save_total_ratio']:.2f} (whole write); "
          f"synchronous save {io['state_save_sync_s']:.3f} s, ratio {result['save_sync_ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
