"""The judgments table: per comparison, what the judge returned (games, valid and invalid verdicts,
prompts the fit drops), the outcomes, the judge's position bias and its usage."""
from __future__ import annotations

from typing import Mapping, Sequence

import polars as pl

from medadapt.fit import complete_games, position_consistency, read_judgments
from medadapt.tables.common import PathLike, keyed, nonempty, size_order

JUDGMENT_KEY = ("family", "size", "ckpt", "baseline")


def judgment_index(paths: Sequence[PathLike],
                   keys: Sequence[str]) -> dict[tuple[str, str, str, str], str]:
    """{(family, size, ckpt, baseline): path} from the judgment parquet paths and their
    "family/size/ckpt/baseline" keys (same order)."""
    return keyed(paths, keys, JUDGMENT_KEY, "judgment table")


def judgment_table(judgments: Mapping[tuple[str, str, str, str], PathLike]) -> pl.DataFrame:
    """Per comparison: counts, outcomes, position bias and usage.

    games: rows the judge stage wrote (every prompt in both orders); valid/invalid: with and without
    a verdict (winner null); prompts_dropped: prompts the fit leaves out (a verdict missing in either
    order). wins/ties/losses: valid verdicts from the candidate's view. order_agreement: share of the
    prompts with both verdicts whose two orders agree (a judge without position effect scores 1);
    first_shown_win_rate: share of decisive verdicts won by response A (0.5 = no position bias).
    """
    nonempty(judgments, "judgment table")
    rows = []
    for (family, size, ckpt, baseline), path in sorted(judgments.items()):
        df = read_judgments(str(path))
        complete, counts = complete_games(df)
        decisive = df.filter(pl.col("winner").is_in(["A", "B"]))
        rows.append({
            "family": family, "size": size, "ckpt": ckpt, "baseline": baseline,
            "judge_model": _first(df, "judge_model"), **counts,
            "wins": _count(df, 1.0), "ties": _count(df, 0.5), "losses": _count(df, 0.0),
            "order_agreement": position_consistency(complete),
            "first_shown_win_rate": ((decisive["winner"] == "A").mean() if decisive.height else None),
            "prompt_tokens": _sum(df, "prompt_tokens"), "completion_tokens": _sum(df, "completion_tokens"),
            "cache_hits": _sum(df, "cache_hit"),
        })
    out = pl.DataFrame(rows, infer_schema_length=None)
    return out.sort(["family", size_order(out), "baseline", "ckpt"])


def _count(df: pl.DataFrame, result: float) -> int:
    return int((df["result"] == result).sum())


def _sum(df: pl.DataFrame, col: str) -> int | None:
    return int(df[col].cast(pl.Int64).sum()) if col in df.columns else None


def _first(df: pl.DataFrame, col: str) -> str | None:
    vals = df[col].drop_nulls().unique().to_list() if col in df.columns else []
    return ",".join(sorted(map(str, vals))) or None


PROMPT_OUTCOME_COLUMNS = ["family", "size", "ckpt", "baseline", "prompt_id", "tokens", "flops",
                          "wins", "ties", "losses", "valid", "score", "outcome"]


def prompt_outcome_table(judgments: Mapping[tuple[str, str, str, str], PathLike],
                         compute: pl.DataFrame) -> pl.DataFrame:
    """One row per (comparison, prompt): the prompt's games in both orders aggregated.

    wins/ties/losses/valid count the prompt's valid verdicts (0..2, one per order) from the
    candidate's view; score is their mean (1 win, 0.5 tie, 0 loss); outcome is "win" (score > 0.5),
    "tie" (= 0.5: two ties, or one win and one loss, i.e. the orders disagree), "loss" (< 0.5), or
    null without any valid verdict. tokens/flops place the checkpoint on the x axes (the flows
    figures read it).
    """
    from medadapt.tables.compute import join_compute

    nonempty(judgments, "prompt outcome table")
    frames = []
    for (family, size, ckpt, baseline), path in sorted(judgments.items()):
        df = read_judgments(str(path))
        frames.append(
            df.group_by("prompt_id")
            .agg(wins=(pl.col("result") == 1.0).sum(), ties=(pl.col("result") == 0.5).sum(),
                 losses=(pl.col("result") == 0.0).sum(), valid=pl.col("result").is_not_null().sum(),
                 score=pl.col("result").mean())
            .with_columns(family=pl.lit(family), size=pl.lit(size), ckpt=pl.lit(ckpt),
                          baseline=pl.lit(baseline)))
    df = pl.concat(frames).with_columns(
        pl.col("wins", "ties", "losses", "valid").cast(pl.Int64),
        outcome=pl.when(pl.col("score") > 0.5).then(pl.lit("win"))
        .when(pl.col("score") == 0.5).then(pl.lit("tie"))
        .when(pl.col("score") < 0.5).then(pl.lit("loss")).otherwise(pl.lit(None, pl.String)))
    df = join_compute(df, compute, "prompt outcome")
    return df.select(PROMPT_OUTCOME_COLUMNS).sort(["family", size_order(df), "baseline", "tokens",
                                                   "prompt_id"])
