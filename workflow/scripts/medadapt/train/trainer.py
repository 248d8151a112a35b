"""Continual pre-training (CPT): one epoch of full-parameter causal-LM training over packed blocks.

The transformers Trainer does the optimisation (AdamW, cosine schedule with warmup; the seed's
Table 1: effective batch 128 sequences, LR 2e-5, weight decay 0.1, warmup ratio 0.1) and, through
accelerate, DDP or FSDP2 when launched with torchrun (see `medadapt.cluster.Cluster.launch_command`).
We save the checkpoints ourselves: `train.checkpoints.count` full models (weights + tokenizer with
chat template, loadable by vLLM, lm-eval and mergekit) at log-spaced optimizer steps, each written
atomically by rank 0.

The run is resolved into a `medadapt.train.plan.Plan` before the model is loaded, so configuration
errors surface in seconds; resuming (a later issue) slots in as: skip the plan's checkpoints that
already exist and pass `resume_from_checkpoint` to `trainer.train`.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from transformers import TrainerCallback

from medadapt.io import write_json, write_table
from medadapt.runtime import software_versions
from medadapt.train.compute import non_embedding_params, train_flops
from medadapt.train.pack import read_stats
from medadapt.train.plan import Plan, fsdp_arguments, make_plan, window_mean_loss


def collate_blocks(features: list[dict]) -> dict:
    """Packed blocks need no padding; labels are the inputs (the model shifts them)."""
    import torch

    ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
    return {"input_ids": ids, "labels": ids.clone()}


def cast_saved_weights(model_dir: Path, dtype: str) -> None:
    """Rewrite a saved model's floating-point weights in `dtype` (bf16 runs: half the disk, and raw
    checkpoints then match the precision of the merged ones they are compared with)."""
    import torch
    from safetensors.torch import load_file, save_file

    target = getattr(torch, dtype)
    for f in sorted(model_dir.glob("*.safetensors")):
        tensors = {k: v.to(target) if v.is_floating_point() else v for k, v in load_file(f).items()}
        save_file(tensors, f, metadata={"format": "pt"})
    cfg_path = model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["dtype" if "dtype" in cfg else "torch_dtype"] = dtype
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def save_checkpoint(trainer, out_dir: str, use_cache: bool = True, save_dtype: str | None = None) -> None:
    """Save the full model + tokenizer into `out_dir` atomically (every rank joins, rank 0 writes).

    Not `medadapt.io.atomic_path`: its temporary name is random per process, while every rank must
    call `save_model` (FSDP gathers the shards collectively) with the same directory.
    """
    target = Path(out_dir)
    tmp = target.with_name(f".{target.name}.partial")
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
    trainer.accelerator.wait_for_everyone()
    config = trainer.accelerator.unwrap_model(trainer.model).config
    training_cache, config.use_cache = config.use_cache, use_cache  # a saved model is for inference
    try:
        trainer.save_model(str(tmp))  # gathers FSDP shards on all ranks; writes on rank 0
    finally:
        config.use_cache = training_cache
    if main:
        (tmp / "training_args.bin").unlink(missing_ok=True)
        if save_dtype:
            cast_saved_weights(tmp, save_dtype)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    trainer.accelerator.wait_for_everyone()


class SaveAtSteps(TrainerCallback):
    """Trainer callback: save a model at each scheduled optimizer step."""

    def __init__(self, targets: dict[int, str], use_cache: bool = True, save_dtype: str | None = None):
        self.targets, self.use_cache, self.save_dtype = targets, use_cache, save_dtype
        self.trainer = None  # set after the Trainer exists (it needs the callback first)
        self.saved: dict[int, str] = {}

    def on_step_end(self, args, state, control, **kwargs):
        out = self.targets.get(state.global_step)
        if out is not None:
            save_checkpoint(self.trainer, out, self.use_cache, self.save_dtype)
            self.saved[state.global_step] = out
            control.should_log = True  # a loss entry at every checkpoint step (window_mean_loss)
        return control


def load_model(model_dir: str, attn_implementation: str | None):
    """fp32 master weights (bf16 runs use autocast); transformers >= 5 would otherwise load bf16."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    kwargs = {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)


def training_arguments(train: dict, plan: Plan, seed: int, per_device_batch_size: int, work_dir: Path, gpu: bool):
    """TrainingArguments from the resolved `train` config block and the plan."""
    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments.__init__).parameters
    # transformers 5 folded warmup_ratio into warmup_steps (a float < 1 is a ratio).
    warmup = {"warmup_ratio" if "warmup_ratio" in params else "warmup_steps": float(train["warmup_ratio"])}
    extra = fsdp_arguments(train["fsdp"], train["fsdp_config"], plan.world_size)
    if train["gradient_checkpointing"]:
        extra["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    return TrainingArguments(
        output_dir=str(work_dir), max_steps=plan.total_steps, num_train_epochs=1,
        per_device_train_batch_size=per_device_batch_size,
        gradient_accumulation_steps=plan.grad_accum, learning_rate=float(train["learning_rate"]),
        weight_decay=float(train["weight_decay"]), lr_scheduler_type=train["lr_scheduler"], optim=train["optim"],
        seed=seed, data_seed=seed, bf16=train["bf16"] and gpu,
        gradient_checkpointing=train["gradient_checkpointing"],
        dataloader_num_workers=train["dataloader_num_workers"], dataloader_drop_last=True,
        logging_steps=train["logging_steps"], logging_first_step=True, disable_tqdm=True,
        dataloader_pin_memory=gpu, use_cpu=not gpu,
        save_strategy="no", report_to=[], ddp_find_unused_parameters=False, **warmup, **extra)


def world_size() -> int:
    """Processes of this run, as torchrun tells each worker (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def train(model: str, packed: str, ckpts: list[str], log_csv: str, train: dict, seed: int,
          per_device_batch_size: int, family: str, size: str) -> dict:
    """CPT of `model` on the `packed` dataset: checkpoint i goes to ckpts[i], one row per checkpoint to
    `log_csv` (family, size, ckpt, step, fraction, tokens, flops, train_loss).

    `train` is the resolved `train:` config block; `per_device_batch_size` the family/size's value
    (it overrides train.per_device_batch_size). Also writes `<log_csv>.history.json` (the Trainer's
    log history, the plan and the config it ran with).
    """
    import torch
    from datasets import load_from_disk
    from transformers import AutoTokenizer, Trainer

    stats = read_stats(packed)
    dataset = load_from_disk(packed)
    if train["seq_len"] != int(stats["seq_len"]):
        raise ValueError(f"{packed}: packed with seq_len {stats['seq_len']}, train.seq_len is {train['seq_len']}")
    plan = make_plan(len(dataset), int(stats["seq_len"]), world_size(), train["effective_batch_size"],
                     per_device_batch_size, train["checkpoints"], packed)
    targets = plan.targets(ckpts)
    sharded = bool(fsdp_arguments(train["fsdp"], train["fsdp_config"], plan.world_size))  # errors before loading

    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = load_model(model, train["attn_implementation"])
    vocab = lm.get_input_embeddings().num_embeddings
    if int(stats.get("vocab_size", 0)) > vocab:
        raise ValueError(f"{packed}: packed with a {stats['vocab_size']}-token tokenizer "
                         f"({stats.get('tokenizer')}), but {model} embeds only {vocab} tokens")
    n_params = non_embedding_params(lm)  # before FSDP shards the parameters
    gpu = torch.cuda.is_available()  # ROCm builds report through torch.cuda too
    bf16 = train["bf16"] and gpu
    if train["bf16"] and not bf16:
        print("[train] train.bf16 is set but no GPU is visible: training in float32", flush=True)

    work_dir = Path(log_csv).parent / f".{Path(log_csv).name}.trainer"  # Trainer scratch; resume state later
    saver = SaveAtSteps(targets, use_cache=bool(lm.config.use_cache), save_dtype="bfloat16" if bf16 else None)
    args = training_arguments(train, plan, seed, per_device_batch_size, work_dir, gpu)
    if args.world_size != plan.world_size:
        raise RuntimeError(f"WORLD_SIZE={plan.world_size} but the Trainer sees {args.world_size} processes")
    if args.n_gpu > 1:  # the Trainer would fall back to DataParallel and change the effective batch
        raise RuntimeError(f"{args.n_gpu} GPUs visible to one process: launch one process per GPU "
                           "(torchrun) or set CUDA_VISIBLE_DEVICES to one GPU")
    trainer = Trainer(model=lm, args=args, train_dataset=dataset, data_collator=collate_blocks,
                      processing_class=tokenizer, callbacks=[saver])
    saver.trainer = trainer
    print(f"[train] plan: {asdict(plan)}", flush=True)
    trainer.train()

    if sorted(saver.saved) != plan.steps:
        raise RuntimeError(f"train: saved checkpoints at steps {sorted(saver.saved)}, planned {plan.steps}")
    tokens = plan.tokens(plan.total_steps)
    summary = {"plan": asdict(plan), "non_embedding_params": n_params, "bf16": bf16,
               "fsdp": sharded, "tokens": tokens,
               "flops": train_flops(n_params, tokens)}
    if trainer.is_world_process_zero():
        import polars as pl

        history = trainer.state.log_history
        rows = plan.rows(n_params, window_mean_loss(history, plan.steps), family=family, size=size)
        write_table(log_csv, pl.DataFrame(rows))
        write_json(f"{log_csv}.history.json", {
            "log_history": history, "train": train, "seed": seed, "per_device_batch_size": per_device_batch_size,
            "model": str(model), "packed": str(packed), "versions": software_versions(), **summary})
        shutil.rmtree(work_dir, ignore_errors=True)
    return summary
