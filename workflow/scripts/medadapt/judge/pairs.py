"""Judge a candidate's responses against a baseline's, prompt by prompt, in both orders."""
from __future__ import annotations

from typing import Any

import polars as pl

from medadapt.io import read_jsonl, write_table
from medadapt.judge.config import JudgeConfig
from medadapt.judge.template import parse_winner, render

ORDERS = ("cand_first", "base_first")
# winner as the judge saw it -> outcome from the candidate's view, per order
_OUTCOME = {"cand_first": {"A": "win", "B": "loss", "0": "tie"},
            "base_first": {"A": "loss", "B": "win", "0": "tie"}}
# One row per game. winner_raw/outcome: the candidate-vs-baseline view the tables read;
# model_a/model_b/winner: who was shown as A and B and who won, the view of a Davidson fit.
SCHEMA = {"prompt_id": pl.Utf8, "order": pl.Utf8, "winner_raw": pl.Utf8, "outcome": pl.Utf8,
          "judge_model": pl.Utf8, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64,
          "cache_hit": pl.Boolean, "key": pl.Utf8, "raw": pl.Utf8,
          "model_a": pl.Utf8, "model_b": pl.Utf8, "winner": pl.Utf8}


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
    run = cfg.client(cache_dir, ledger).run(
        requests, cfg.sampling_params(), parse_winner,
        ledger_context={"candidate": candidate, "baseline": baseline, "out": out,
                        "judge_model": cfg.model})
    rows = [{"prompt_id": pid, "order": order, "winner_raw": j.value,
             "outcome": _OUTCOME[order].get(j.value) if j.value else None,
             "judge_model": cfg.model, "prompt_tokens": j.prompt_tokens,
             "completion_tokens": j.completion_tokens, "cache_hit": j.cache_hit, "key": j.key,
             "raw": j.raw, "model_a": names[order][0], "model_b": names[order][1], "winner": j.value}
            for (pid, order), j in zip(games, run.results)]
    write_table(out, pl.DataFrame(rows, schema=SCHEMA))
    if run.usage["unparseable"]:
        print(f"[judge] {run.usage['unparseable']} unparseable judgment(s): winner null, not cached",
              flush=True)
    return run.usage


def judge_pair(candidate: str, baseline: str, out: str, judge: dict[str, Any],
               cache_dir: str | None, ledger: str | None = None, server_file: str | None = None,
               *, candidate_name: str, baseline_name: str) -> dict[str, Any]:
    """Judge every prompt twice (candidate as A, then baseline as A) and write one row per game.

    `judge`: the resolved `judge` config block. `server_file`: the marker JSON of a local judge
    server, whose base_url/model replace the configured ones. `candidate_name`/`baseline_name`:
    the models' names in the model_a/model_b columns. Returns the usage record that is also
    appended to `ledger` (JSONL, or CSV by extension).
    """
    return run_pair(candidate, baseline, out, JudgeConfig.from_block(judge), cache_dir, ledger,
                    server_file, candidate_name, baseline_name)
