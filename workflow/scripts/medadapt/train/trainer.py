"""Continual pre-training (CPT), one checkpoint segment per job: the `train` stage trains from the
previous checkpoint's state to checkpoint k (one epoch over packed blocks in all, log-spaced
checkpoints) and writes checkpoint k's model.

The optimisation is `medadapt.train.engine` (FSDP2 at every world size, DCP states; the seed's
Table 1: effective batch 128 sequences, AdamW, LR 2e-5 with cosine decay after a warmup of 10% of
the epoch's steps - `max_steps` is the epoch's, a segment only stops early -, weight decay 0.1,
gradients clipped at `train.max_grad_norm`). `medadapt.train.state` keeps the states outside the
job's declared outputs and `medadapt.train.lock` lets one job at a time write them; see
docs/ARCHITECTURE.md ("Training and checkpoints") for why.

A segment saves the state at its last step, every `train.state.save_every_steps` steps, every
`save_every_minutes` minutes, and when it gets a stop signal (SIGURG: the Slurm profiles' warning
before the time limit; SIGUSR1; SIGTERM: preemption, scancel, Snakemake stopping), after which it
exits with an error so that the retry (or the next run) resumes from that state.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

from medadapt.cluster import GPU_CPUS_ENV
from medadapt.runtime import software_versions
from medadapt.settings import study
from medadapt.train import engine
from medadapt.train import state as states
from medadapt.train.compute import mfu, non_embedding_params
from medadapt.train.lock import StateLock
from medadapt.train.pack import read_stats
from medadapt.train.plan import Plan, make_plan, window_mean_loss
from medadapt.train.records import RECORD, accelerator_name, read_record

# Stop signals: save the state at the end of the current optimizer step, then exit. SIGURG is ignored
# by default by every other process of a Slurm job step (Snakemake, the shell, torchrun, apptainer),
# so the profiles' `--signal=URG@...` reaches only the training workers; SIGUSR1 is the usual choice
# where the workers are the step's only processes.
STOP_SIGNALS = ("SIGURG", "SIGUSR1", "SIGTERM")


class TrainingInterrupted(RuntimeError):
    """A stop signal ended the segment early; its state is saved and a rerun resumes from it."""


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
    """What makes two runs the same trajectory. Not the state-saving or memory knobs, and not the
    world size nor the per-device batch: the global batch of every step is the same blocks at any
    world size (`engine.BlockOrder`), so a state saved on 4 processes resumes on 2. The argument
    `per_device_batch_size` stays for the callers; it is deliberately left out."""
    hp = study(train, "train")  # the study settings of the block (medadapt.settings): one list of knobs
    facts = {k: v for k, v in asdict(plan).items() if k not in ("world_size", "grad_accum")}
    return states.fingerprint(train=hp, seed=seed, plan=facts, data=stats, model=str(Path(model).resolve()))


def _check_previous(previous: str, run: str, first: int) -> None:
    """The previous checkpoint must be this run's, at this segment's first step."""
    record = read_record(previous)
    if record["run"] != run or record["step"] != first:
        raise RuntimeError(
            f"{previous}: trained by another run (fingerprint {record['run']} at step {record['step']}; this "
            f"segment is run {run} from step {first}): the data, hyper-parameters, seed or base model changed "
            "since. Retrain every checkpoint of this run (snakemake --forcerun train) or restore the config.")


def _on_rank0(dist_: engine.Dist, action) -> object:
    """Run `action` on rank 0 only; its exception is raised on every rank (the others must not go
    on into collectives that rank 0 never joins)."""
    import torch.distributed as dist

    failure = [None]
    result = None
    if dist_.main:
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            failure = [exc]
    if dist_.world > 1:
        message = [f"{type(failure[0]).__name__}: {failure[0]}" if failure[0] else None]
        dist.broadcast_object_list(message, src=0, group=dist_.ckpt_group)
        if message[0] and not dist_.main:
            raise RuntimeError(f"rank 0 failed: {message[0]}")
    if failure[0] is not None:
        raise failure[0]
    return result


def _throughput(log: list[dict], first: int, plan: Plan, world_size: int, peak_tflops: float | None,
                n_params: int) -> dict:
    """The segment's training throughput: tokens/s (all devices, and per device) over its steps
    (total tokens over total seconds; a log entry covers the steps since the previous one), and MFU
    where the peak is known."""
    ends = [int(h["step"]) for h in log]
    seconds = sum((end - start) * plan.effective_batch_size * plan.seq_len / h["tokens_per_second"]
                  for start, end, h in zip([first] + ends[:-1], ends, log))
    if not seconds:  # nothing trained here (the state was already at the checkpoint)
        return {"tokens_per_second": None, "tokens_per_second_per_device": None, "mfu": None}
    tps = (ends[-1] - first) * plan.effective_batch_size * plan.seq_len / seconds
    return {"tokens_per_second": tps, "tokens_per_second_per_device": tps / world_size,
            "mfu": mfu(n_params, tps / world_size, peak_tflops)}


def train(model: str, packed: str, previous: str | None, out_dir: str, state_dir: str, ckpt: str, train: dict,
          seed: int, per_device_batch_size: int, world_size: int, device: str, family: str, size: str,
          peak_tflops: float | None = None) -> dict:
    """One segment of the CPT of `model` on the `packed` dataset: train from the state at the previous
    checkpoint (`previous`, None for the first) to checkpoint `ckpt` and write its model to `out_dir`
    with `out_dir/training.json` (its log row - family, size, ckpt, step, fraction, tokens, flops,
    train_loss - and the segment's log history). Training states live in `state_dir`.

    `train` is the resolved `train:` block; `per_device_batch_size` the family/size's value (it
    overrides train.per_device_batch_size); `world_size` the processes the workflow launched;
    `device` "cuda" (GPUs: ROCm reports as cuda too) or "cpu"; `peak_tflops` the platform's peak
    dense FLOP/s per device (MFU in the log; None - not computed).
    """
    from datasets import load_from_disk

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
    cfg = engine.EngineConfig.from_train(train, model, seed, peak_tflops if device == "cuda" else None)
    run = run_fingerprint(train, seed, per_device_batch_size, plan, stats, model)
    state_root = Path(state_dir)
    gpu = device == "cuda"
    bf16 = train["bf16"] and gpu
    if train["bf16"] and not bf16:
        print("[train] train.bf16 is set but the job computes on the CPU: training in float32", flush=True)
    cores = bind_gpu_cpus()
    dist_ = engine.init_distributed(device)
    journal = (lambda event: states.journal(state_root, event)) if dist_.main else (lambda event: None)
    lock = StateLock(state_root, float(train["state"]["lock_wait_minutes"]),
                     float(train["state"]["lock_stale_minutes"]), journal=journal)

    def start():
        if previous is not None:
            _check_previous(previous, run, first)
        lock.acquire()  # before anything in the state directory is touched
        try:
            for old in states.discard_other_runs(state_root, run):
                journal(f"{ckpt}: deleted the state at step {old.step} of another run "
                        f"(fingerprint {old.record['run']}; this run {run})")
            states.clear_staging(state_root)
        except BaseException:
            lock.release()
            raise

    _on_rank0(dist_, start)
    flag = StopFlag()
    trainer = None
    try:
        resume = states.resume_point(state_root, run, stop)  # other runs' states never qualify
        if first and (resume is None or resume.step < first):
            print(f"[train] no training state at step {first} (checkpoint {ckpt}'s start) in {state_root}: "
                  f"recomputing from step {resume.step if resume else 0}", flush=True)
        journal(f"{ckpt}: steps {first + 1}..{stop}, resuming from step {resume.step if resume else 0}")
        print(f"[train] {ckpt}: steps {first + 1}..{stop} of {plan.total_steps}, resuming from "
              f"{resume.path if resume else 'the base model (step 0)'}; cpus {cores or 'unbound'}; "
              f"plan {asdict(plan)}", flush=True)
        n_params = non_embedding_params(model)
        checkpointer = engine.Checkpointer(state_root, dist_, cfg.checkpoint, {"run": run}, journal)
        trainer = engine.Trainer(cfg, dist_, dataset, plan.total_steps, plan.effective_batch_size,
                                 per_device_batch_size, n_params, plan.seq_len, flag, checkpointer,
                                 log_dir=state_root.parent / "tensorboard")
        trainer.setup()
        vocab = trainer.model.get_input_embeddings().num_embeddings
        if int(stats.get("vocab_size", 0)) > vocab:
            raise ValueError(f"{packed}: packed with a {stats['vocab_size']}-token tokenizer "
                             f"({stats.get('tokenizer')}), but {model} embeds only {vocab} tokens")
        facts = engine.describe(cfg, dist_, accelerator_name(gpu))
        print(f"[train] engine: {facts}", flush=True)
        if resume is not None:
            trainer.restore(resume.path)
        flag.install()
        try:
            trainer.run(stop)
        finally:
            flag.restore()
        if flag.signal or trainer.step < stop:
            journal(f"{ckpt}: stopped by {flag.signal or 'a stop signal on another rank'} at step {trainer.step}")
            raise TrainingInterrupted(
                f"train {family}/{size} {ckpt}: stopped by {flag.signal or 'a stop signal on another rank'} at "
                f"step {trainer.step} of {stop}; the training state is saved in {state_root}, and the next "
                "attempt resumes from it")
        history = trainer.log_history
        segment_log = [h for h in history if first < int(h.get("step", 0)) <= stop]
        throughput = _throughput(segment_log, first, plan, world_size, cfg.metrics.peak_tflops, n_params)
        row = plan.rows(n_params, window_mean_loss(history, plan.steps), family=family,
                        size=size)[plan.names.index(ckpt)]
        record = {**row, "first_step": first, "resumed_from_step": resume.step if resume else 0,
                  "run": run, "plan": asdict(plan), "non_embedding_params": n_params, "bf16": bf16,
                  "fsdp": 2, "engine": facts, "world_size": world_size, "accelerator": facts["accelerator"],
                  "seed": seed, "per_device_batch_size": per_device_batch_size, "train": train,
                  "model": str(model), "packed": str(packed), "versions": software_versions(),
                  "seconds": round(time.time() - started, 2), "state_saves": checkpointer.saved,
                  "save_blocking_seconds": [round(s, 4) for s in checkpointer.blocked_seconds],
                  **throughput, "log_history": segment_log}
        engine.export_hf(trainer.model, model, out_dir, dist_, "bfloat16" if bf16 else None, {RECORD: record})
        print(f"[train] {ckpt} written: {out_dir} (step {stop}, {row['tokens']} tokens)", flush=True)
        journal(f"{ckpt}: written at step {stop}")
        return {k: record[k] for k in ("ckpt", "step", "tokens", "flops", "train_loss", "resumed_from_step")}
    finally:
        if trainer is not None:
            trainer.close()
        if dist_.main:
            lock.release()
