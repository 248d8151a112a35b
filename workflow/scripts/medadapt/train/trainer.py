"""Continual pre-training (CPT), one checkpoint segment per job: the `train` stage trains from the
previous checkpoint's full state to checkpoint k (one epoch over packed blocks in all, log-spaced
checkpoints) and writes checkpoint k's model.

The transformers Trainer does the optimisation (AdamW, cosine schedule with warmup over the whole
epoch: `max_steps` is the epoch's, a segment only stops early; the seed's Table 1: effective batch
128 sequences, LR 2e-5, weight decay 0.1, warmup ratio 0.1) and, through accelerate, DDP or FSDP
when launched with torchrun (see `medadapt.cluster.Cluster.launch_command`). Its own checkpoint
format is the training state (weights, optimizer, scheduler, RNG states, trainer state with the
data position and the log history) and `resume_from_checkpoint` restores it exactly, skipping the
batches already seen. `medadapt.train.state` keeps those states outside the job's declared outputs;
see docs/ARCHITECTURE.md ("Training and checkpoints") for why.

A segment saves the state at its last step, every `train.state.save_every_steps` steps, every
`save_every_minutes` minutes, and when it gets a stop signal (SIGURG: the Slurm profiles' warning
before the time limit; SIGUSR1; SIGTERM: preemption, scancel, Snakemake stopping), after which it
exits with an error so that the retry (or the next run) resumes from that state.
"""
from __future__ import annotations

import inspect
import json
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

from transformers import TrainerCallback

from medadapt.cluster import GPU_CPUS_ENV
from medadapt.runtime import software_versions
from medadapt.train import state as states
from medadapt.train.compute import non_embedding_params
from medadapt.train.pack import read_stats
from medadapt.train.plan import Plan, fsdp_arguments, make_plan, window_mean_loss
from medadapt.train.records import RECORD, accelerator_name, read_record

# Stop signals: save the state at the end of the current optimizer step, then exit. SIGURG is ignored
# by default by every other process of a Slurm job step (Snakemake, the shell, torchrun, apptainer),
# so the profiles' `--signal=URG@...` reaches only the training workers; SIGUSR1 is the usual choice
# where the workers are the step's only processes.
STOP_SIGNALS = ("SIGURG", "SIGUSR1", "SIGTERM")


class TrainingInterrupted(RuntimeError):
    """A stop signal ended the segment early; its state is saved and a rerun resumes from it."""


def collate_blocks(features: list[dict]) -> dict:
    """Packed blocks need no padding; labels are the inputs (the model shifts them)."""
    import torch

    ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
    return {"input_ids": ids, "labels": ids.clone()}


class StopFlag:
    """Set by a stop signal; read at the end of each optimizer step (a handler must not save)."""

    def __init__(self):
        self.signal: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for name in STOP_SIGNALS:
            sig = getattr(signal, name)
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        # A repeated signal changes nothing: Slurm and torchrun both pass SIGTERM on (scancel), and
        # both follow it with SIGKILL after their grace time when the save takes longer.
        name = signal.Signals(signum).name
        self.signal = self.signal or name
        print(f"[train] {name}: saving the training state at the end of this step, then stopping", flush=True)


class SegmentControl(TrainerCallback):
    """Stops the Trainer at the segment's last step, asks it for a state save there, every N steps,
    every M minutes and on a stop signal, and publishes each saved state (`medadapt.train.state`)."""

    def __init__(self, stop: int, state_dir: Path, run: str, every_steps: int, every_minutes: float, keep: int):
        self.stop, self.state_dir, self.run = stop, state_dir, run
        self.every_steps, self.every_seconds, self.keep = every_steps, every_minutes * 60, keep
        self.flag = StopFlag()
        self.trainer = None  # set once the Trainer exists (it needs its callbacks first)
        self.last_save = time.monotonic()
        self.saved: list[int] = []
        self.reason = ""

    def on_train_begin(self, args, state, control, **kwargs):
        self.flag.install()
        self.last_save = time.monotonic()

    def on_train_end(self, args, state, control, **kwargs):
        self.flag.restore()

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        timed = bool(self.every_seconds) and time.monotonic() - self.last_save >= self.every_seconds
        timed, signalled = _any_rank(args, timed, self.flag.signal is not None)
        if step >= self.stop or signalled:
            control.should_training_stop = True
        every = bool(self.every_steps) and step % self.every_steps == 0
        if step >= self.stop or signalled or timed or every:
            self.reason = ("the segment's end" if step >= self.stop else
                           f"{self.flag.signal or 'a stop signal (on another rank)'}" if signalled else
                           f"every {self.every_steps} steps" if every else
                           f"every {self.every_seconds / 60:g} minutes")
            control.should_save = True
            # A loss entry at every save, so that the log windows (and window_mean_loss) of a resumed
            # run are the uninterrupted run's: the loss summed since the last log is not in the state.
            control.should_log = True
        return control

    def on_save(self, args, state, control, **kwargs):
        accelerator = self.trainer.accelerator
        accelerator.wait_for_everyone()  # every rank has written its part (e.g. its RNG state)
        if self.trainer.is_world_process_zero():
            saved = self.state_dir / states.STAGING / f"{states.PREFIX}{state.global_step}"
            target = states.publish(saved, self.state_dir, {"step": state.global_step, "run": self.run,
                                                             "saved_at": time.time()})
            states.rotate(self.state_dir, self.keep, protect=target)
            print(f"[train] state saved at step {state.global_step} ({self.reason}): {target}", flush=True)
            states.journal(self.state_dir, f"state saved at step {state.global_step} ({self.reason})")
        accelerator.wait_for_everyone()
        self.last_save = time.monotonic()
        self.saved.append(state.global_step)
        return control


def _any_rank(args, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true if it is true on any rank: every rank must save and stop at the same step
    (saves are collective), though signals and clocks reach the ranks at different times."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return flags
    t = torch.tensor([float(f) for f in flags], device=args.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


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
    """TrainingArguments from the resolved `train` config block and the plan. The Trainer saves only
    when `SegmentControl` asks it to, into `work_dir` (the state directory's staging area)."""
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
        save_strategy="no", save_total_limit=None, report_to=[], ddp_find_unused_parameters=False,
        **warmup, **extra)


def bind_gpu_cpus() -> list[int] | None:
    """Pin this worker to the CPU cores of its GPU (LUMI-G: each GCD has its own CCD), when the launch
    command exported the platform's `gpu_cpus`; returns the cores, or None without binding."""
    table = os.environ.get(GPU_CPUS_ENV, "").split()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= len(table):
        return None
    cores = [c for part in table[local].split(",")
             for c in (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1))]
    os.sched_setaffinity(0, cores)
    return cores


def run_fingerprint(train: dict, seed: int, per_device_batch_size: int, plan: Plan, stats: dict, model: str) -> str:
    """What makes two runs the same trajectory (the state-saving knobs do not)."""
    hp = {k: v for k, v in train.items() if k not in ("state", "logging_steps", "dataloader_num_workers")}
    return states.fingerprint(train=hp, seed=seed, per_device_batch_size=per_device_batch_size, plan=asdict(plan),
                              data=stats, model=str(Path(model).resolve()))


def _check_previous(previous: str, run: str, first: int) -> None:
    """The previous checkpoint must be this run's, at this segment's first step."""
    record = read_record(previous)
    if record["run"] != run or record["step"] != first:
        raise RuntimeError(
            f"{previous}: trained by another run (fingerprint {record['run']} at step {record['step']}; this "
            f"segment is run {run} from step {first}): the data, hyper-parameters or world size changed "
            "since. Retrain every checkpoint of this run (snakemake --forcerun train) or restore the config.")


def train(model: str, packed: str, previous: str | None, out_dir: str, state_dir: str, ckpt: str, train: dict,
          seed: int, per_device_batch_size: int, world_size: int, device: str, family: str, size: str) -> dict:
    """One segment of the CPT of `model` on the `packed` dataset: train from the state at the previous
    checkpoint (`previous`, None for the first) to checkpoint `ckpt` and write its model to `out_dir`
    with `out_dir/training.json` (its log row - family, size, ckpt, step, fraction, tokens, flops,
    train_loss - and the segment's log history). Training states live in `state_dir`.

    `train` is the resolved `train:` block; `per_device_batch_size` the family/size's value (it
    overrides train.per_device_batch_size); `world_size` the processes the workflow launched;
    `device` "cuda" (GPUs: ROCm reports as cuda too) or "cpu".
    """
    from datasets import load_from_disk
    from transformers import AutoTokenizer, Trainer

    started = time.time()
    stats = read_stats(packed)
    dataset = load_from_disk(packed)
    if train["seq_len"] != int(stats["seq_len"]):
        raise ValueError(f"{packed}: packed with seq_len {stats['seq_len']}, train.seq_len is {train['seq_len']}")
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != world_size:
        raise RuntimeError(f"train: the workflow planned {world_size} processes but {launched} were launched")
    plan = make_plan(len(dataset), int(stats["seq_len"]), world_size, train["effective_batch_size"],
                     per_device_batch_size, train["checkpoints"], packed)
    first, stop = plan.segment(ckpt)
    sharded = bool(fsdp_arguments(train["fsdp"], train["fsdp_config"], plan.world_size))  # errors before loading
    run = run_fingerprint(train, seed, per_device_batch_size, plan, stats, model)
    state_root = Path(state_dir)
    main = int(os.environ.get("RANK", "0")) == 0
    if previous is not None and main:
        _check_previous(previous, run, first)
    if main:
        for old in states.discard_other_runs(state_root, run):
            states.journal(state_root, f"{ckpt}: deleted the state at step {old.step} of another run "
                                       f"(fingerprint {old.record['run']}; this run {run})")
    resume = states.resume_point(state_root, run, stop)  # other runs' states never qualify
    if first and (resume is None or resume.step < first):
        print(f"[train] no training state at step {first} (checkpoint {ckpt}'s start) in {state_root}: "
              f"recomputing from step {resume.step if resume else 0}", flush=True)
    gpu = device == "cuda"
    bf16 = train["bf16"] and gpu
    if train["bf16"] and not bf16:
        print("[train] train.bf16 is set but the job computes on the CPU: training in float32", flush=True)
    cores = bind_gpu_cpus()
    print(f"[train] {ckpt}: steps {first + 1}..{stop} of {plan.total_steps}, resuming from "
          f"{resume.path if resume else 'the base model (step 0)'}; cpus {cores or 'unbound'}", flush=True)

    control = None
    if resume is None or resume.step < stop:
        tokenizer = AutoTokenizer.from_pretrained(model)
        lm = load_model(model, train["attn_implementation"])
        vocab = lm.get_input_embeddings().num_embeddings
        if int(stats.get("vocab_size", 0)) > vocab:
            raise ValueError(f"{packed}: packed with a {stats['vocab_size']}-token tokenizer "
                             f"({stats.get('tokenizer')}), but {model} embeds only {vocab} tokens")
        args = training_arguments(train, plan, seed, per_device_batch_size, state_root / states.STAGING, gpu)
        if args.world_size != plan.world_size:
            raise RuntimeError(f"WORLD_SIZE={plan.world_size} but the Trainer sees {args.world_size} processes")
        if args.n_gpu > 1:  # the Trainer would fall back to DataParallel and change the effective batch
            raise RuntimeError(f"{args.n_gpu} GPUs visible to one process: launch one process per GPU "
                               "(torchrun) or set CUDA_VISIBLE_DEVICES to one GPU")
        control = SegmentControl(stop, state_root, run, train["state"]["save_every_steps"],
                                 train["state"]["save_every_minutes"], train["state"]["keep"])
        trainer = Trainer(model=lm, args=args, train_dataset=dataset, data_collator=collate_blocks,
                          processing_class=tokenizer, callbacks=[control])
        control.trainer = trainer
        if main:
            states.clear_staging(state_root)
            states.journal(state_root, f"{ckpt}: steps {first + 1}..{stop}, resuming from step "
                                       f"{resume.step if resume else 0}")
        trainer.accelerator.wait_for_everyone()
        print(f"[train] plan: {asdict(plan)}", flush=True)
        trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
        if control.flag.signal:
            if main:
                states.journal(state_root, f"{ckpt}: stopped by {control.flag.signal} at step "
                                           f"{trainer.state.global_step}")
            raise TrainingInterrupted(
                f"train {family}/{size} {ckpt}: stopped by {control.flag.signal} at step "
                f"{trainer.state.global_step} of {stop}; the training state is saved in {state_root}, "
                "and the next attempt resumes from it")
        if not main:  # rank 0 writes the checkpoint; the job ends when every worker has
            trainer.accelerator.wait_for_everyone()
            return {"ckpt": ckpt, "step": stop}
    elif not main:
        return {"ckpt": ckpt, "step": stop}

    final = states.resume_point(state_root, run, stop)
    if final is None or final.step != stop:
        raise RuntimeError(f"train {family}/{size} {ckpt}: no training state at step {stop} after training")
    history = json.loads((final.path / "trainer_state.json").read_text())["log_history"]
    n_params = non_embedding_params(model)
    row = plan.rows(n_params, window_mean_loss(history, plan.steps), family=family, size=size)[plan.names.index(ckpt)]
    record = {**row, "first_step": first, "resumed_from_step": resume.step if resume else 0,
              "run": run, "plan": asdict(plan), "non_embedding_params": n_params, "bf16": bf16,
              "fsdp": sharded, "world_size": world_size, "accelerator": accelerator_name(gpu), "seed": seed,
              "per_device_batch_size": per_device_batch_size, "train": train, "model": str(model),
              "packed": str(packed), "versions": software_versions(),
              "seconds": round(time.time() - started, 2), "state_saves": control.saved if control else [],
              "log_history": [h for h in history if first < int(h.get("step", 0)) <= stop]}
    states.export_model(final, out_dir, save_dtype="bfloat16" if bf16 else None, record={RECORD: record})
    if control:
        control.trainer.accelerator.wait_for_everyone()
    print(f"[train] {ckpt} written: {out_dir} (step {stop}, {row['tokens']} tokens)", flush=True)
    states.journal(state_root, f"{ckpt}: written at step {stop}")
    return {k: record[k] for k in ("ckpt", "step", "tokens", "flops", "train_loss", "resumed_from_step")}
