"""Judge a candidate's responses against a baseline's, prompt by prompt, in both orders."""
from __future__ import annotations

import math
from typing import Any

import polars as pl

from medadapt.io import read_jsonl, write_table
from medadapt.judge.config import JudgeConfig
from medadapt.judge.template import read_winner, render
from medadapt.llm import LLMError, TooManyFailures

ORDERS = ("cand_first", "base_first")
# winner as the judge saw it -> outcome from the candidate's view, per order
_OUTCOME = {"cand_first": {"A": "win", "B": "loss", "0": "tie"},
            "base_first": {"A": "loss", "B": "win", "0": "tie"}}
# One row per game; a game is valid iff `winner` is not null. winner_raw/outcome: the
# candidate-vs-baseline view the tables read; model_a/model_b/winner: who was shown as A and B and
# who won, the view of a Davidson fit. status: "valid" | "invalid" (answered, never with a verdict;
# raw is the last answer, invalid_reason why) | "missing" (no answer: retries exhausted).
# attempts: requests sent for the game's request in this run (0: from the cache).
SCHEMA = {"prompt_id": pl.Utf8, "order": pl.Utf8, "winner_raw": pl.Utf8, "outcome": pl.Utf8,
          "judge_model": pl.Utf8, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64,
          "cache_hit": pl.Boolean, "key": pl.Utf8, "raw": pl.Utf8,
          "model_a": pl.Utf8, "model_b": pl.Utf8, "winner": pl.Utf8,
          "status": pl.Utf8, "attempts": pl.Int64, "invalid_reason": pl.Utf8}


class JudgeFailed(LLMError):
    """Too many of a comparison's games ended without a verdict (the message names the counts)."""


def load_responses(path: str) -> dict[str, dict[str, Any]]:
    """id -> row of a generate JSONL (id, instruction, response; optional context), checked."""
    rows: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(read_jsonl(path), 1):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: line {n} is not a JSON object")
        for field in ("id", "instruction", "response"):
            if field not in row or row[field] is None:
                raise ValueError(f"{path}: line {n} lacks field {field!r} "
                                 "(expected id, instruction, response)")
        for field in ("instruction", "response"):
            if not isinstance(row[field], str):
                raise ValueError(f"{path}: line {n}: field {field!r} must be a string")
        pid = str(row["id"])
        if pid in rows:
            raise ValueError(f"{path}: duplicate id {pid!r} (line {n})")
        rows[pid] = row
    if not rows:
        raise ValueError(f"{path}: no responses")
    return rows


def check_matching(cand: dict, base: dict, cand_path: str, base_path: str) -> None:
    only_c, only_b = sorted(cand.keys() - base.keys()), sorted(base.keys() - cand.keys())
    if only_c or only_b:
        raise ValueError(
            f"prompt ids differ between candidate {cand_path} and baseline {base_path}: "
            f"{len(only_c)} only in candidate {only_c[:5]}, {len(only_b)} only in baseline {only_b[:5]}")
    for pid, row in cand.items():
        if row["instruction"] != base[pid]["instruction"]:
            raise ValueError(f"prompt {pid!r}: instruction differs between {cand_path} and {base_path}")


def run_pair(candidate: str, baseline: str, out: str, cfg: JudgeConfig, cache_dir: str | None,
             ledger: str | None, server_file: str | None, candidate_name: str,
             baseline_name: str) -> dict[str, Any]:
    """`judge_pair` with the settings already built."""
    if candidate_name == baseline_name:
        raise ValueError(f"candidate and baseline have the same name {candidate_name!r}: "
                         "the games could not tell them apart")
    cand, base = load_responses(candidate), load_responses(baseline)
    check_matching(cand, base, candidate, baseline)
    cfg = cfg.with_server(server_file)  # after the checks: the wait for a server can be long
    names = {"cand_first": (candidate_name, baseline_name),
             "base_first": (baseline_name, candidate_name)}
    games, requests = [], []
    for pid, row in cand.items():
        q, c, b, ctx = row["instruction"], row["response"], base[pid]["response"], row.get("context")
        for order, (a, bb) in zip(ORDERS, ((c, b), (b, c))):
            games.append((pid, order))
            requests.append(render(q, a, bb, context=ctx))
    # failed > fraction * n  <=>  failed > floor(fraction * n), as failed is whole
    allowed = math.floor(cfg.max_invalid_fraction * len(games) + 1e-9)
    try:
        run = cfg.client(cache_dir, ledger).run(requests, cfg.sampling_params(), read_winner,
                                                job=out, max_failed=allowed)
    except TooManyFailures as exc:
        n = exc.counts
        raise JudgeFailed(
            f"{out}: {n['invalid'] + n['missing']} of {n['requests']} games have no verdict "
            f"({n['invalid']} invalid after up to {cfg.max_invalid_retries + 1} answers each, "
            f"{n['missing']} without an answer, {n['unasked']} of these not asked once the job "
            f"stopped); judge.max_invalid_fraction {cfg.max_invalid_fraction} allows {allowed}. "
            f"Most common reason: {exc.example}. Valid verdicts are cached: a rerun asks only "
            "for the rest.") from None
    rows = [{"prompt_id": pid, "order": order, "winner_raw": j.value,
             "outcome": _OUTCOME[order].get(j.value) if j.value else None,
             "judge_model": cfg.model, "prompt_tokens": j.prompt_tokens,
             "completion_tokens": j.completion_tokens, "cache_hit": j.cache_hit, "key": j.key,
             "raw": j.raw, "model_a": names[order][0], "model_b": names[order][1], "winner": j.value,
             "status": j.status, "attempts": j.attempts, "invalid_reason": j.reason}
            for (pid, order), j in zip(games, run.results)]
    write_table(out, pl.DataFrame(rows, schema=SCHEMA))
    return {**run.usage, "allowed": allowed}


def judge_pair(candidate: str, baseline: str, out: str, judge: dict[str, Any],
               cache_dir: str | None, ledger: str | None = None, server_file: str | None = None,
               *, candidate_name: str, baseline_name: str) -> dict[str, Any]:
    """Judge every prompt twice (candidate as A, then baseline as A) and write one row per game.

    `judge`: the resolved `judge` config block. `server_file`: the marker JSON of a local judge
    server, whose base_url/model replace the configured ones. `candidate_name`/`baseline_name`:
    the models' names in the model_a/model_b columns. `ledger`: the usage ledger (JSONL) that
    gets one record per answer as it arrives. Fails (JudgeFailed) when more than
    `judge.max_invalid_fraction` of the games end without a verdict. Returns this run's counts.
    """
    u = run_pair(candidate, baseline, out, JudgeConfig.from_block(judge), cache_dir, ledger,
                 server_file, candidate_name, baseline_name)
    print(f"[judge] {out}: {u['requests']} games, {u['valid']} valid, {u['invalid']} invalid, "
          f"{u['missing']} missing ({u['allowed']} allowed); {u['cache_hits']} from the cache, "
          f"{u['sent']} requests sent, {u['answers']} answers, {u['retries']} retries, "
          f"{u['reasks']} re-asks", flush=True)
    return u
