"""Davidson fit of one comparison: every checkpoint of a (family, size) against one baseline.

One joint fit per comparison (player 0 = the baseline, fixed at π = 1; players 1..K = checkpoints,
each judged only against the baseline; one shared ν). Each prompt contributes two games per
checkpoint (both orders), kept as separate games; a prompt whose judgment failed in either order
is dropped for that checkpoint (both orders together, so position bias still cancels). Intervals:
percentile bootstrap over prompts, resampling each prompt's games for all checkpoints together.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from medadapt.davidson import fit_shares
from medadapt.io import write_table

OUTCOME_VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}
REQUIRED = ("prompt_id", "order", "outcome")


def load_judgments(path: str) -> tuple[pl.DataFrame, int]:
    """Complete games of one judgment parquet and the number of prompts dropped as incomplete."""
    df = pl.read_parquet(path)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(REQUIRED)}")
    bad = df.filter(pl.col("outcome").is_not_null() & ~pl.col("outcome").is_in(list(OUTCOME_VALUE)))
    if bad.height:
        raise ValueError(f"{path}: outcome must be win/tie/loss or null, got {bad['outcome'][0]!r}")
    df = df.with_columns(pl.col("prompt_id").cast(pl.Utf8))
    complete = (df.group_by("prompt_id")
                .agg(ok=pl.col("outcome").is_not_null().all() & (pl.col("order").n_unique() == 2)))
    keep = complete.filter("ok")["prompt_id"]
    return df.filter(pl.col("prompt_id").is_in(keep.implode())), complete.height - keep.len()


def fit_comparison(judgments: list[str], out: str, family: str, size: str, baseline: str,
                   baseline_model: str, ckpts: list[str], n_boot: int, seed: int) -> dict[str, Any]:
    """Write the fit CSV (one row per ckpt, in the order given); `judgments[k]` belongs to `ckpts[k]`.

    `n_boot` (config fit.n_boot): bootstrap replicates, 0 = no interval; `seed` (config seed)."""
    if len(judgments) != len(ckpts):
        raise ValueError(f"fit: {len(judgments)} judgment files for {len(ckpts)} checkpoints")
    if len(set(ckpts)) != len(ckpts):
        raise ValueError(f"fit: duplicate checkpoints in {ckpts}")
    i, y, groups, counts, dropped = [], [], [], [], {}
    for k, (path, ckpt) in enumerate(zip(judgments, ckpts), start=1):
        df, dropped[ckpt] = load_judgments(path)
        if df.height == 0:
            raise ValueError(f"{path}: no complete judgments for checkpoint {ckpt}")
        outcomes = df["outcome"].to_list()
        i += [k] * len(outcomes)
        y += [OUTCOME_VALUE[o] for o in outcomes]
        groups += df["prompt_id"].to_list()
        counts.append({o: outcomes.count(o) for o in OUTCOME_VALUE})
        if dropped[ckpt]:
            print(f"[fit] {path}: dropped {dropped[ckpt]} prompt(s) with a failed judgment", flush=True)
    i, j, y = np.array(i), np.zeros(len(i), dtype=np.int64), np.array(y)
    res = fit_shares(i, j, y, groups, ref=0, n_boot=n_boot, seed=seed, n_players=len(ckpts) + 1)
    fit = res.fit
    if not fit.converged:
        print(f"[fit] warning: Davidson fit did not converge: {fit.message}", flush=True)
    rows = [{"family": family, "size": size, "baseline": baseline, "baseline_model": baseline_model,
             "ckpt": ckpt, "wins": c["win"], "ties": c["tie"], "losses": c["loss"],
             "strength": float(fit.strengths[k]), "score": float(res.share[k]),
             "score_lo": float(res.low[k]) if res.low is not None else None,
             "score_hi": float(res.high[k]) if res.high is not None else None, "nu": fit.nu}
            for k, (ckpt, c) in enumerate(zip(ckpts, counts), start=1)]
    write_table(out, pl.DataFrame(rows, schema_overrides={"score_lo": pl.Float64,
                                                          "score_hi": pl.Float64}))
    return {"nu": fit.nu, "loglik": fit.loglik, "converged": fit.converged,
            "dropped_prompts": dropped, "n_games": int(len(y))}
