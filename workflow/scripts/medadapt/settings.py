"""Which config keys change a result (study settings) and which only change how a job runs (run knobs).

Snakemake reruns a job when a param it recorded for the job's outputs changes (the `params` rerun
trigger). It records a param only when the param is a value or a function of the wildcards; a
function that takes threads, resources, input or output is not recorded. So the rules hand every
study setting to their jobs as recorded params and the run knobs through unrecorded ones (a shell
rule's job JSON; a script rule's `run_knobs` param, merged back by `with_run_knobs`). Changing a
study setting then reruns exactly the jobs that use it; changing a run knob reruns nothing.

`RUN_KNOBS` is the one list of run knobs (dotted config keys; `*` matches any key at that level).
The same split names what a results directory was made with (`study_config`, `config_differences`;
see medadapt.results_record).
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

# Run knobs: how often state is saved, logged, how many requests run at once, how long to wait,
# how to launch, where a job runs. None of these changes what a job computes.
RUN_KNOBS: frozenset[str] = frozenset({
    # where the output goes, what hardware runs which family, which part of a split grid runs here
    "results", "platforms", "run_platforms", "families.*.platform", "accept_foreign_results",
    # training: state saves (and their lock waits), logging, TensorBoard; how the engine spends memory
    # and time (sharding, activation checkpointing, compilation); how the global batch is split over
    # processes (per-device batch, GPUs): the engine trains on the same global batches at any split
    "train.state", "train.logging_steps", "train.tensorboard", "train.sharding", "train.activation_checkpointing",
    "train.compile", "train.per_device_batch_size", "families.*.per_device_batch_size", "families.*.train_gpus",
    # LLM clients: concurrency, retries, timeouts, the Batch API transport and its polling, the
    # prices of the cost estimate (recorded per request in the ledgers, never in a result) and preflight's
    # limit on it, ports
    "corpus.annotator.max_concurrency", "corpus.annotator.max_retries", "corpus.annotator.timeout_s",
    "corpus.annotator.serve.port",
    "generate.translate.max_concurrency", "generate.translate.max_retries", "generate.translate.timeout_s",
    "judge.max_concurrency", "judge.max_retries", "judge.timeout_s", "judge.batch", "judge.batch_poll_s",
    "judge.batch_price_factor", "judge.prices_per_mtok", "judge.max_cost", "judge.serve.port",
})


def _split(path: str) -> list[str]:
    return path.split(".") if path else []


def _knob_tails(section: str, knobs=RUN_KNOBS) -> list[list[str]]:
    """The run knobs under `section` (a dotted key), relative to it."""
    head, tails = _split(section), []
    for knob in knobs:
        parts = _split(knob)
        if len(parts) > len(head) and all(p in ("*", h) for p, h in zip(parts, head)):
            tails.append(parts[len(head):])
    return tails


def _matches(tail: list[str], path: list[str]) -> bool:
    return len(path) >= len(tail) and all(t in ("*", p) for t, p in zip(tail, path))


def _filter(node: Any, tails: list[list[str]], keep_knobs: bool, path: list[str]) -> Any:
    if not isinstance(node, dict):
        return node
    out = {}
    # sorted keys: a recorded value that does not change when the config file's keys are reordered
    for key, value in sorted(node.items(), key=lambda kv: str(kv[0])):
        sub = [*path, str(key)]
        if any(_matches(t, sub) and len(t) == len(sub) for t in tails):
            if keep_knobs:
                out[key] = copy.deepcopy(value)
            continue
        deeper = [t for t in tails if len(t) > len(sub) and _matches(t[:len(sub)], sub)]
        if deeper:
            kept = _filter(value, deeper, keep_knobs, sub)
            if kept or not keep_knobs:
                out[key] = kept
        elif not keep_knobs:
            out[key] = copy.deepcopy(value)
    return out


def study(block: Any, section: str = "", knobs=RUN_KNOBS) -> Any:
    """`block` (the config at dotted key `section`) without its run knobs: what the job computes with."""
    return _filter(block, _knob_tails(section, knobs), keep_knobs=False, path=[])


def run_knobs(block: Any, section: str = "", knobs=RUN_KNOBS) -> dict:
    """Only the run knobs of `block` (nested as in the config), for a job's unrecorded params."""
    return _filter(block, _knob_tails(section, knobs), keep_knobs=True, path=[]) if isinstance(block, dict) else {}


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in extra.items()}}
    return copy.deepcopy(extra)


# The job param that carries run knobs back into the params they were taken from:
# {param name: run knobs of that param's block}.
RUN_KNOBS_PARAM = "run_knobs"


def with_run_knobs(params: dict[str, Any]) -> dict[str, Any]:
    """A job's params with `run_knobs` merged back into the blocks they were split from."""
    params = dict(params)
    for name, knobs in (params.pop(RUN_KNOBS_PARAM, None) or {}).items():
        # a param that is a run knob as a whole (e.g. a server's port) has no recorded part
        params[name] = _merge(params[name], knobs) if name in params else knobs
    return params


# --- the record of what made a results directory -------------------------------------------------
def study_config(config: dict) -> dict:
    """The whole config without its run knobs: two configs that agree here make the same results."""
    return study(json.loads(json.dumps(config, default=str)))


def digest(settings: Any) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def config_differences(recorded: Any, current: Any, path: str = "") -> list[str]:
    """The dotted keys whose values differ (a key present on one side only counts as differing)."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        keys = list(dict.fromkeys([*recorded, *current]))
        out = []
        for key in keys:
            sub = f"{path}.{key}" if path else str(key)
            if key not in recorded or key not in current:
                out.append(sub)
            else:
                out += config_differences(recorded[key], current[key], sub)
        return out
    return [] if recorded == current else [path or "<whole config>"]
