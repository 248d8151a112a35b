"""One writer per run's training state at a time: a lock file in the state directory.

Two jobs of the same segment can run at once (a retry submitted while a job that Snakemake lost
track of still trains; two Snakemake instances on one results tree). Both would empty `staging/`,
publish, rotate and delete states under each other. The lock names its holder (Slurm job id, host,
pid) and carries a heartbeat that the holder refreshes while it trains. A second job waits for it
(`train.state.lock_wait_minutes`) and then stops with an error naming the holder; a lock whose
holder is gone - its pid dead on this host, its heartbeat older than `stale_minutes`, or Slurm
saying its job no longer runs - is taken over, with a line in the run's journal.

No torch here: rank 0 takes the lock before the model is loaded.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

LOCK = "writer.lock"


class StateLocked(RuntimeError):
    """Another job holds the run's state directory."""


def _me() -> dict:
    return {"job": os.environ.get("SLURM_JOB_ID") or None, "host": socket.gethostname(), "pid": os.getpid()}


def _describe(holder: dict) -> str:
    job = f"Slurm job {holder['job']}" if holder.get("job") else "a job outside Slurm"
    return f"{job} (host {holder.get('host')}, pid {holder.get('pid')})"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # torn by a crash mid-write (writes are renames, so only a foreign writer): stale


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _slurm_job_running(job: str) -> bool | None:
    """Whether Slurm still runs `job`; None where squeue is missing or does not answer."""
    if not shutil.which("squeue"):
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:  # squeue errors on a job id it no longer knows
        return False if "Invalid job id" in out.stderr else None
    return out.stdout.strip() in ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED")


def stale_reason(holder: dict, stale_seconds: float, now: float | None = None) -> str | None:
    """Why the lock's holder is gone, or None if it may still be training."""
    if not holder or "pid" not in holder:
        return "the lock file is unreadable"
    now = time.time() if now is None else now
    if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder["pid"])):
        return f"pid {holder['pid']} is not running on {holder['host']}"
    age = now - float(holder.get("heartbeat", 0))
    if age > stale_seconds:
        return f"its heartbeat is {age / 60:.1f} minutes old"
    if holder.get("job") and holder.get("job") != _me()["job"] and _slurm_job_running(holder["job"]) is False:
        return f"Slurm job {holder['job']} is not running"
    return None


class StateLock:
    """The writer lock of one state directory, held by rank 0 of the training job."""

    def __init__(self, state_dir: str | Path, wait_minutes: float, stale_minutes: float,
                 heartbeat_seconds: float = 30.0, journal=None):
        self.root = Path(state_dir)
        self.path = self.root / LOCK
        self.wait_seconds, self.stale_seconds = wait_minutes * 60, stale_minutes * 60
        self.heartbeat_seconds = heartbeat_seconds
        self.journal = journal or (lambda event: None)
        self.holder = _me()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, replace: bool) -> bool:
        """Write our lock record; without `replace`, only if there is no lock (os.link is atomic)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{LOCK}.{self.holder['host']}.{self.holder['pid']}"
        tmp.write_text(json.dumps({**self.holder, "heartbeat": time.time()}) + "\n")
        try:
            if replace:
                os.replace(tmp, self.path)
                return True
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
        finally:
            tmp.unlink(missing_ok=True)

    def _mine(self, record: dict | None) -> bool:
        return bool(record) and all(record.get(k) == v for k, v in self.holder.items())

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait_seconds
        announced = False
        while True:
            if self._write(replace=False):
                break
            holder = _read(self.path)
            if holder is None:  # released between our attempt and the read
                continue
            reason = stale_reason(holder, self.stale_seconds)
            if reason:
                self._write(replace=True)
                if self._mine(_read(self.path)):  # two jobs taking over at once: one wins
                    self.journal(f"took over the state lock of {_describe(holder)}: {reason}")
                    break
                continue
            if time.monotonic() >= deadline:
                raise StateLocked(
                    f"{self.root}: the training state is being written by {_describe(holder)} (lock {self.path}, "
                    f"heartbeat {time.time() - float(holder.get('heartbeat', 0)):.0f} s ago); this job "
                    f"({_describe(self.holder)}) waited {self.wait_seconds / 60:g} minutes "
                    "(train.state.lock_wait_minutes) and leaves the state untouched. Cancel the other job, "
                    "or wait for it to finish.")
            if not announced:
                print(f"[train] waiting for {_describe(holder)}, which holds {self.path}", flush=True)
                announced = True
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._beat, name="state-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            if not self._mine(_read(self.path)):  # taken over: never overwrite the new holder's lock
                print(f"[train] lost the state lock {self.path} to another job", flush=True)
                return
            self._write(replace=True)

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self._mine(_read(self.path)):
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
