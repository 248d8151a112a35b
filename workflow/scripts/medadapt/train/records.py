"""The run's training log: one row per checkpoint (`checkpoints.csv`, the contract with the tables)
and the whole log history, gathered from the records each segment wrote into its checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

from medadapt.io import write_json, write_table

RECORD = "training.json"  # in every raw checkpoint: its log row, the segment's log history, the plan
COLUMNS = ["family", "size", "ckpt", "step", "fraction", "tokens", "flops", "train_loss"]


def accelerator_name(gpu: bool) -> str:
    """The accelerator model the segment ran on (torch's device name of this rank's GPU, e.g.
    "NVIDIA H100 80GB HBM3" or "AMD Instinct MI250X"), or "cpu". Never fails: a record is
    written after the training it describes."""
    if not gpu:
        return "cpu"
    import torch

    try:
        return torch.cuda.get_device_name(torch.cuda.current_device())
    except (RuntimeError, AssertionError) as exc:  # no device visible after all
        return f"unknown ({exc.__class__.__name__})"


def read_record(ckpt_dir: str | Path) -> dict:
    """The training record of a raw checkpoint directory."""
    path = Path(ckpt_dir) / RECORD
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {ckpt_dir} is not a checkpoint written by the train stage")
    return json.loads(path.read_text())


def write_log(ckpts: list[str], log_csv: str, history: str) -> dict:
    """`log_csv`: family, size, ckpt, step, fraction, tokens, flops, train_loss for every checkpoint
    directory in `ckpts` (in checkpoint order); `history`: the log history over the whole run (per
    step: loss, grad norm, learning rate, tokens/s, MFU), the plan and config it ran with, and per
    segment where it resumed from, its throughput and the engine it ran on."""
    import polars as pl

    records = [read_record(c) for c in ckpts]
    runs = {r["run"] for r in records}
    if len(runs) != 1:
        raise ValueError(f"checkpoints {ckpts} come from {len(runs)} different training runs {sorted(runs)}")
    steps = [r["step"] for r in records]
    if steps != sorted(set(steps)):
        raise ValueError(f"checkpoints {ckpts}: steps {steps} are not increasing")
    write_table(log_csv, pl.DataFrame([{k: r[k] for k in COLUMNS} for r in records]))
    last = records[-1]
    write_json(history, {
        "log_history": [h for r in records for h in r["log_history"]],
        "segments": [{**{k: r[k] for k in ("ckpt", "first_step", "step", "resumed_from_step", "state_saves",
                                            "seconds", "world_size")},
                      **{k: r.get(k) for k in ("accelerator", "tokens_per_second", "tokens_per_second_per_device",
                                               "mfu", "engine")}}  # older records: null
                     for r in records],
        **{k: last[k] for k in ("run", "plan", "train", "seed", "per_device_batch_size", "model", "packed",
                                "non_embedding_params", "bf16", "fsdp", "tokens", "flops", "versions")}})
    return {"checkpoints": len(records), "tokens": last["tokens"]}
