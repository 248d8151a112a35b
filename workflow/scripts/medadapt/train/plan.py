"""The training plan: everything about a CPT run that follows from the packed data's size and the
config, before any model is loaded (optimizer steps, gradient accumulation, which step saves which
checkpoint, the per-checkpoint log rows), so configuration errors surface in seconds.

Pure arithmetic: no torch or transformers here (tests and the workflow import it cheaply).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

from medadapt.train.compute import train_flops
from medadapt.train.schedule import checkpoint_fractions, checkpoint_steps, ckpt_names


def gradient_accumulation(effective: int, per_device: int, world_size: int) -> int:
    per_step = per_device * world_size
    if effective % per_step:
        raise ValueError(f"train.effective_batch_size {effective} is not a multiple of per_device_batch_size "
                         f"{per_device} x world size {world_size} = {per_step}")
    return effective // per_step


@dataclass(frozen=True)
class Plan:
    """Everything about the run that follows from the data size and the config, before any model exists."""
    blocks: int
    seq_len: int
    world_size: int
    grad_accum: int
    effective_batch_size: int
    total_steps: int
    names: list[str]
    fractions: list[float]  # scheduled (log-spaced)
    steps: list[int]        # optimizer steps they round to

    def tokens(self, step: int) -> int:
        return step * self.effective_batch_size * self.seq_len

    def segment(self, ckpt: str) -> tuple[int, int]:
        """(first, last) optimizer step of the segment that ends at checkpoint `ckpt`: it trains steps
        first+1 .. last, from the previous checkpoint's state (step 0 for the first checkpoint)."""
        if ckpt not in self.names:
            raise ValueError(f"train: checkpoint {ckpt!r} is not one of this run's {self.names} "
                             "(train.checkpoints.count)")
        i = self.names.index(ckpt)
        return (self.steps[i - 1] if i else 0), self.steps[i]

    def rows(self, n_params: int, losses: list[float], **columns) -> list[dict]:
        """One log row per checkpoint: `columns` (e.g. family, size) first, then where it was saved
        (step, fraction of the epoch, tokens, FLOPs) and the mean training loss of its window."""
        return [{**columns, "ckpt": name, "step": step, "fraction": step / self.total_steps,
                 "tokens": self.tokens(step), "flops": train_flops(n_params, self.tokens(step)), "train_loss": loss}
                for name, step, loss in zip(self.names, self.steps, losses)]


def make_plan(blocks: int, seq_len: int, world_size: int, effective_batch_size: int, per_device_batch_size: int,
              checkpoints: dict, source: str = "packed data") -> Plan:
    """One epoch of full batches over `blocks` packed blocks; `checkpoints` is train.checkpoints
    ({count, first_fraction}); `source` names the data in errors."""
    eff = effective_batch_size
    accum = gradient_accumulation(eff, per_device_batch_size, world_size)
    count = checkpoints["count"]
    fractions = checkpoint_fractions(count, checkpoints["first_fraction"])
    total = blocks // eff  # one epoch of full batches; the < eff leftover blocks are not seen
    if total < count:
        raise ValueError(f"{source}: {blocks} blocks of {seq_len} tokens give {total} optimizer steps at "
                         f"effective batch {eff}; {count} checkpoints need at least {count} steps")
    return Plan(blocks, seq_len, world_size, accum, eff, total, ckpt_names(count), fractions,
                checkpoint_steps(total, fractions))


def window_mean_loss(history: list[dict], steps: list[int]) -> list[float]:
    """Mean training loss over the optimizer steps since the previous checkpoint.

    A "loss" log entry at step s is the mean over the steps since the previous log; logs are
    forced at every checkpoint step, so each log falls inside exactly one checkpoint window.
    """
    sums, spans, prev = [0.0] * len(steps), [0] * len(steps), 0
    for entry in history:
        if "loss" not in entry:
            continue
        step = int(entry["step"])
        i = bisect.bisect_left(steps, step)
        if i < len(steps):
            sums[i] += float(entry["loss"]) * (step - prev)
            spans[i] += step - prev
        prev = step
    return [s / n if n else float("nan") for s, n in zip(sums, spans)]

