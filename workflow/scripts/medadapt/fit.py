"""Davidson fit of one comparison: every checkpoint of a (family, size) against one baseline.

One joint fit per comparison: player 0 = the baseline, fixed at π = 1; players 1..K = checkpoints,
each judged only against the baseline; one tie parameter ν (the Davidson model's) and, with
`order_effect`, one position effect γ for the whole comparison (medadapt.davidson). Every prompt is
judged in both orders (two games); a prompt whose verdict is missing or invalid in either order is
dropped for that checkpoint (both orders together, so the design stays balanced) and counted.

The source model never plays itself: in the comparison against the source, its own point (the
0-token start of the curve) is 0.5 by definition, written as an unfitted row (`self_ckpt`).

Two scores per checkpoint, each with a percentile bootstrap interval over prompts (each prompt's
games resampled together, for all checkpoints at once):
- `score`, the strength share π_c / (π_c + π_baseline): the Davidson ranking score the figures
  plot. It separates preference from the judge's propensity to call ties (ν) and, with the order
  effect, from its position bias (γ), so checkpoints judged with different tie rates compare;
- `expected_score`, (W + T/2) / n: model-free, but pulled toward 0.5 wherever ties are common.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from medadapt.davidson import fit_shares
from medadapt.io import read_parquet, write_table

ORDERS = {"cand_first": 1, "base_first": -1}  # who was shown first: +1 the candidate (player k)
# winner as the judge saw it (A = shown first) -> result for the candidate: 1 win, 0.5 tie, 0 loss
RESULT = {"cand_first": {"A": 1.0, "0": 0.5, "B": 0.0}, "base_first": {"A": 0.0, "0": 0.5, "B": 1.0}}
OUTCOME = {1.0: "win", 0.5: "tie", 0.0: "loss"}
REQUIRED = ("prompt_id", "order", "winner")
FIT_COLUMNS = ["family", "size", "baseline", "baseline_model", "ckpt", "fitted", "games", "valid",
               "invalid", "prompts", "prompts_dropped", "wins", "ties", "losses", "score",
               "score_lo", "score_hi", "expected_score", "expected_score_lo", "expected_score_hi",
               "strength", "nu", "gamma", "position_consistency", "degenerate", "status"]
FLOATS = ("score_lo", "score_hi", "expected_score_lo", "expected_score_hi", "nu", "gamma",
          "position_consistency")


def read_judgments(path: str) -> pl.DataFrame:
    """All games of one judgment parquet, checked, with `result` (the candidate's 1 / 0.5 / 0; null
    without a valid verdict) and `first` (+1 candidate shown first, −1 baseline) columns. A game is
    valid iff its winner is not null."""
    df = read_parquet(path, REQUIRED, "judgment parquet")
    if {"model_a", "model_b"} <= set(df.columns):
        same = df.filter(pl.col("model_a") == pl.col("model_b"))
        if same.height:
            raise ValueError(f"{path}: {same['model_a'][0]!r} is judged against itself; a model "
                             "never plays itself (its score against itself is 0.5 by definition)")
    df = df.with_columns(pl.col("prompt_id").cast(pl.Utf8), pl.col("winner").cast(pl.Utf8))
    bad = sorted(set(df["order"].drop_nulls()) - set(ORDERS)) + (["null"] if df["order"].null_count() else [])
    if bad:
        raise ValueError(f"{path}: order must be one of {list(ORDERS)}, got {bad}")
    bad = sorted(set(df["winner"].drop_nulls()) - {"A", "B", "0"})
    if bad:
        raise ValueError(f"{path}: winner must be A, B, 0 or null (no valid verdict), got {bad}")
    twice = df.group_by("prompt_id", "order").len().filter(pl.col("len") > 1)
    if twice.height:
        raise ValueError(f"{path}: prompt {twice['prompt_id'][0]!r} is judged {twice['len'][0]} times "
                         f"in order {twice['order'][0]}; expected one game per prompt and order")
    df = df.with_columns(
        result=pl.struct("order", "winner").map_elements(
            lambda r: RESULT[r["order"]].get(r["winner"]) if r["winner"] is not None else None,
            return_dtype=pl.Float64),
        first=pl.col("order").replace_strict(ORDERS, return_dtype=pl.Int64))
    if "outcome" in df.columns:  # the judge's own candidate view must agree with the verdict
        theirs = df["outcome"]
        ours = df["result"].replace_strict(OUTCOME, default=None, return_dtype=pl.Utf8)
        agree = (theirs.is_null() & ours.is_null()) | (theirs == ours).fill_null(False)
        if not agree.all():
            row = int((~agree).arg_max())
            raise ValueError(f"{path}: row {row + 1}: outcome {theirs[row]!r} does not match winner "
                             f"{df['winner'][row]!r} in order {df['order'][row]!r}")
    return df


def complete_games(df: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The games that enter the fit (complete prompts: both orders with a valid verdict) and the
    counts: games, valid, invalid, prompts, prompts_dropped."""
    complete = (df.group_by("prompt_id")
                .agg(ok=pl.col("result").is_not_null().all() & (pl.col("order").n_unique() == 2)))
    keep = complete.filter("ok")["prompt_id"]
    counts = {"games": df.height, "valid": int(df["winner"].is_not_null().sum()),
              "invalid": int(df["winner"].null_count()), "prompts": complete.height,
              "prompts_dropped": complete.height - keep.len()}
    return df.filter(pl.col("prompt_id").is_in(keep.implode())), counts


def load_judgments(path: str) -> tuple[pl.DataFrame, dict[str, int]]:
    """`complete_games` of one judgment parquet (`read_judgments`)."""
    return complete_games(read_judgments(path))


def position_consistency(games: pl.DataFrame) -> float | None:
    """Share of (complete) prompts whose two orders gave the same result for the candidate: 1 for a
    judge without position effect, lower the more its verdict follows the position."""
    per_prompt = games.group_by("prompt_id").agg(pl.col("result").n_unique().alias("k"))
    return float((per_prompt["k"] == 1).mean()) if per_prompt.height else None


def fit_comparison(judgments: list[str], out: str, family: str, size: str, baseline: str,
                   baseline_model: str, ckpts: list[str], n_boot: int, seed: int,
                   order_effect: bool, self_ckpt: str | None = None) -> dict[str, Any]:
    """Write the fit CSV (FIT_COLUMNS; one row per ckpt, `self_ckpt` first); `judgments[k]`
    belongs to `ckpts[k]`.

    `n_boot` (config fit.n_boot): bootstrap replicates, 0 = no interval; `seed` (config seed);
    `order_effect` (config fit.order_effect): fit γ; `self_ckpt`: the checkpoint that is the
    baseline itself (the source, in the comparison against the source): not judged, not fitted,
    written at score 0.5.
    """
    if len(judgments) != len(ckpts):
        raise ValueError(f"fit: {len(judgments)} judgment files for {len(ckpts)} checkpoints")
    if len(set(ckpts)) != len(ckpts):
        raise ValueError(f"fit: duplicate checkpoints in {ckpts}")
    if self_ckpt is not None and self_ckpt in ckpts:
        raise ValueError(f"fit: {self_ckpt!r} is the baseline {baseline_model} itself and never "
                         "plays it; leave it out of the fitted checkpoints")
    i, y, first, groups, stats = [], [], [], [], []
    for k, (path, ckpt) in enumerate(zip(judgments, ckpts), start=1):
        games, counts = load_judgments(path)
        if games.height == 0:
            raise ValueError(f"{path}: no prompt of checkpoint {ckpt} has a valid verdict in both "
                             f"orders ({counts['games']} games, {counts['invalid']} invalid)")
        results = games["result"].to_list()
        i += [k] * len(results)
        y += results
        first += games["first"].to_list()
        groups += games["prompt_id"].to_list()
        stats.append({**counts, "wins": results.count(1.0), "ties": results.count(0.5),
                      "losses": results.count(0.0), "position_consistency": position_consistency(games)})
        if counts["invalid"] or counts["prompts_dropped"]:
            print(f"[fit] {path}: {counts['invalid']} of {counts['games']} games without a valid "
                  f"verdict; {counts['prompts_dropped']} of {counts['prompts']} prompts dropped",
                  flush=True)
    i, y = np.array(i), np.array(y)
    res = fit_shares(i, np.zeros(len(i), dtype=np.int64), y, groups, ref=0, n_boot=n_boot,
                     seed=seed, n_players=len(ckpts) + 1, first=np.array(first),
                     order_effect=order_effect)
    fit = res.fit
    names = [baseline_model, *ckpts]
    if fit.status != "converged":
        print(f"[fit] warning: {fit.status}: {fit.describe_runaway(names) or fit.message}", flush=True)

    def interval(values, k):
        return float(values[k]) if values is not None else None

    rows = []
    if self_ckpt is not None:
        rows.append({"ckpt": self_ckpt, "fitted": False, "games": 0, "valid": 0, "invalid": 0,
                     "prompts": 0, "prompts_dropped": 0, "wins": 0, "ties": 0, "losses": 0,
                     "score": 0.5, "expected_score": 0.5, "strength": 1.0,
                     "degenerate": False, "status": "not fitted (the baseline itself)"})
    for k, (ckpt, s) in enumerate(zip(ckpts, stats), start=1):
        rows.append({"ckpt": ckpt, "fitted": True, **s,
                     "score": float(res.share[k]), "score_lo": interval(res.low, k),
                     "score_hi": interval(res.high, k), "expected_score": float(res.expected[k]),
                     "expected_score_lo": interval(res.expected_low, k),
                     "expected_score_hi": interval(res.expected_high, k),
                     "strength": float(fit.strengths[k]), "nu": fit.nu,
                     "gamma": fit.gamma if order_effect else None,
                     "degenerate": bool(fit.runaway_strengths[k]), "status": fit.status})
    key = {"family": family, "size": size, "baseline": baseline, "baseline_model": baseline_model}
    table = pl.DataFrame([{**key, **r} for r in rows],
                         schema_overrides={c: pl.Float64 for c in FLOATS}, infer_schema_length=None)
    write_table(out, table.select(FIT_COLUMNS))
    return {"status": fit.status, "runaway": fit.describe_runaway(names), "nu": fit.nu,
            "gamma": fit.gamma if order_effect else None, "loglik": fit.loglik,
            "n_games": int(len(y)), "invalid": {c: s["invalid"] for c, s in zip(ckpts, stats)},
            "dropped_prompts": {c: s["prompts_dropped"] for c, s in zip(ckpts, stats)},
            "degenerate_replicates": int(res.boot.degenerate.sum()) if res.boot is not None else 0}
