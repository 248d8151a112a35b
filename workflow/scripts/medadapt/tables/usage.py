"""The study's LLM usage from the ledgers (judge, corpus annotation): requests, answers, tokens,
estimated cost and cache hits per stage and model, and in total.

A ledger is JSONL, one record per event, appended as it happens (so failed and killed runs count):
kind "answer" (an HTTP answer received, billed or not; `valid` says whether it held a usable
verdict), "error" (a request that got no usable answer: an HTTP error or no answer at all) or
"cache_hit" (served from the cache: nothing sent, nothing paid), with stage, model, prompt_tokens,
completion_tokens, cost_usd (null without prices) and batch (the Batch API's job, else null).
A ledger that does not exist means nothing went through that stage's client: no rows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import polars as pl

from medadapt.tables.common import PathLike

KINDS = ("answer", "error", "cache_hit")
USAGE_COLUMNS = ["stage", "model", "requests", "answers", "valid", "invalid", "errors", "cache_hits",
                 "batch_answers", "prompt_tokens", "completion_tokens", "cost_usd"]
SCHEMA = {"stage": pl.String, "model": pl.String, **{c: pl.Int64 for c in USAGE_COLUMNS[2:-1]},
          "cost_usd": pl.Float64}


def read_ledgers(paths: Sequence[PathLike]) -> tuple[list[dict], dict]:
    """The records of every ledger that exists, and facts: ledgers read, missing, unreadable lines
    (a run killed while writing can leave a torn line; it is counted, not fatal)."""
    records, found, missing, unreadable = [], [], [], 0
    for path in paths:
        if not Path(path).is_file():
            missing.append(str(path))
            continue
        found.append(str(path))
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                unreadable += 1
                continue
            if not isinstance(rec, dict) or rec.get("kind") not in KINDS:
                raise ValueError(f"{path}:{n}: a ledger record needs kind in {list(KINDS)}, got "
                                 f"{rec.get('kind') if isinstance(rec, dict) else rec!r}")
            records.append(rec)
    return records, {"ledgers": found, "missing": missing, "unreadable_lines": unreadable}


def usage_table(paths: Sequence[PathLike]) -> tuple[pl.DataFrame, dict]:
    """USAGE_COLUMNS, one row per (stage, model) and a total row (stage and model "all"); empty
    when no ledger exists. requests = answers + errors (what was sent); tokens and cost count what
    was sent and answered, never cache hits; cost_usd is null where no record carries a price."""
    records, facts = read_ledgers(paths)
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        groups.setdefault((str(rec.get("stage") or "?"), str(rec.get("model") or "?")), []).append(rec)
    rows = [_row(stage, model, recs) for (stage, model), recs in sorted(groups.items())]
    if rows:
        rows.append(_row("all", "all", records))
    return pl.DataFrame(rows, schema=SCHEMA), facts


def _row(stage: str, model: str, recs: list[dict]) -> dict:
    sent = [r for r in recs if r["kind"] != "cache_hit"]
    answers = [r for r in recs if r["kind"] == "answer"]
    costs = [float(r["cost_usd"]) for r in sent if r.get("cost_usd") is not None]
    return {"stage": stage, "model": model, "requests": len(sent), "answers": len(answers),
            "valid": sum(r.get("valid") is True for r in answers),
            "invalid": sum(r.get("valid") is False for r in answers),
            "errors": sum(r["kind"] == "error" for r in recs),
            "cache_hits": sum(r["kind"] == "cache_hit" for r in recs),
            "batch_answers": sum(bool(r.get("batch")) for r in answers),
            "prompt_tokens": sum(int(r.get("prompt_tokens") or 0) for r in sent),
            "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in sent),
            "cost_usd": sum(costs) if costs else None}
