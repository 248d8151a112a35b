"""The training state on disk: sharded training states (weights, optimizer, LR schedule, RNG states,
data position and log history; written by `medadapt.train.engine`) kept in one directory per run,
outside every job's declared outputs, so that no failed job's clean-up can delete them.

Layout of a run's state directory (`results/train/<family>/<size>/state/`):

    checkpoint-<step>/        a complete state:
      dcp/                    model and AdamW state, one `.distcp` file per rank that wrote it and
                              DCP's `.metadata` (torch.distributed.checkpoint: loads at any world size)
      trainer_state.json      step, blocks seen, seed, LR scheduler state, log history
      rng-rank<r>.pt          each rank's RNG states
      medadapt_state.json     our record: step, the run's fingerprint - written last, so a directory
                              without it is incomplete and never resumed from
    staging/                  where a state is written before it is published (renamed into place,
                              atomic on one file system); leftovers of a killed save are removed at
                              the next start - by the job holding the lock, never under another's save
    writer.lock               the job writing this run's states (`medadapt.train.lock`)
    journal.log               one line per event of the run (segment started, state saved and why,
                              stopped by a signal, checkpoint written): a job's own log is replaced
                              when Snakemake retries it, this history is not

A state is used only by a run with the same fingerprint (the hash of everything that shapes the
trajectory: data, hyper-parameters, seed, world size, base model); states of another run are
deleted when a segment of this one starts (Snakemake retrains when those change). No torch at import: the workflow lists states cheaply.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = "medadapt_state.json"
JOURNAL = "journal.log"
PREFIX = "checkpoint-"
STAGING = "staging"


@dataclass(frozen=True)
class State:
    step: int
    path: Path
    record: dict


def fingerprint(**facts) -> str:
    """A short stable hash of the facts that determine a training trajectory (JSON-serialisable)."""
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def states(state_dir: str | Path) -> list[State]:
    """Complete states in `state_dir`, by step."""
    root = Path(state_dir)
    found = []
    for path in root.glob(f"{PREFIX}*") if root.is_dir() else []:
        marker = path / MARKER
        if marker.is_file():
            record = json.loads(marker.read_text())
            found.append(State(int(record["step"]), path, record))
    return sorted(found, key=lambda s: s.step)


def resume_point(state_dir: str | Path, run: str, stop: int) -> State | None:
    """The newest state of run `run` at or before optimizer step `stop`; None to start from step 0."""
    usable = [s for s in states(state_dir) if s.record["run"] == run and s.step <= stop]
    return usable[-1] if usable else None


def discard_other_runs(state_dir: str | Path, run: str) -> list[State]:
    """Delete the states of other runs (another fingerprint: the data, hyper-parameters, seed, world
    size or base model changed, and Snakemake is retraining): resuming one would mix trajectories."""
    other = [s for s in states(state_dir) if s.record["run"] != run]
    for s in other:
        shutil.rmtree(s.path, ignore_errors=True)
    return other


def journal(state_dir: str | Path, event: str) -> None:
    """Append a timestamped event (with host and Slurm job id) to the run's journal."""
    root = Path(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    where = f"{socket.gethostname()} job {os.environ.get('SLURM_JOB_ID', '-')}"
    with open(root / JOURNAL, "a") as fh:
        fh.write(f"{stamp} {where}: {event}\n")


def clear_staging(state_dir: str | Path) -> Path:
    """The staging directory, emptied (what a killed save left there is incomplete)."""
    staging = Path(state_dir) / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def publish(saved: str | Path, state_dir: str | Path, record: dict) -> Path:
    """Mark the written state `saved` complete and move it into `state_dir` (atomically)."""
    saved = Path(saved)
    (saved / MARKER).write_text(json.dumps(record, indent=2) + "\n")
    target = Path(state_dir) / saved.name
    if target.exists():  # the same step saved again (a rerun): the new one is as good
        shutil.rmtree(target)
    os.replace(saved, target)
    return target


def rotate(state_dir: str | Path, keep: int, protect: Path) -> list[Path]:
    """Delete all but the newest `keep` states (never `protect`, the one just published)."""
    found = [s.path for s in states(state_dir)]
    doomed = [p for p in found[:max(0, len(found) - keep)] if p != protect]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed

