"""The judgments table: per comparison, outcome counts, the judge's reliability and its usage."""
from __future__ import annotations

from typing import Mapping, Sequence

import polars as pl

from medadapt.tables.common import PathLike, keyed, nonempty, size_order

JUDGMENT_COLUMNS = ["prompt_id", "order", "winner_raw", "outcome"]
JUDGMENT_KEY = ("family", "size", "ckpt", "baseline")


def judgment_index(paths: Sequence[PathLike],
                   keys: Sequence[str]) -> dict[tuple[str, str, str, str], str]:
    """{(family, size, ckpt, baseline): path} from the judgment parquet paths and their
    "family/size/ckpt/baseline" keys (same order)."""
    return keyed(paths, keys, JUDGMENT_KEY, "judgment table")


def judgment_table(judgments: Mapping[tuple[str, str, str, str], PathLike]) -> pl.DataFrame:
    """Per comparison: outcome counts, judge reliability (order agreement, first-shown win rate) and usage.

    order_agreement: share of prompts judged in both orders whose two outcomes agree (a judge without
    position bias scores 1). first_shown_win_rate: share of decisive verdicts won by response A.
    """
    nonempty(judgments, "judgment table")
    rows = []
    for (family, size, ckpt, baseline), path in sorted(judgments.items()):
        try:
            df = pl.read_parquet(path)
        except (OSError, pl.exceptions.ComputeError) as exc:
            raise ValueError(f"{path}: cannot read judgment parquet ({exc})") from None
        missing = [c for c in JUDGMENT_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        bad = set(df["outcome"].drop_nulls().unique()) - {"win", "tie", "loss"}
        if bad:
            raise ValueError(f"{path}: column outcome must be win/tie/loss (or null), got {sorted(bad)}")
        both = (df.filter(pl.col("outcome").is_not_null()).group_by("prompt_id")
                .agg(pl.col("outcome").n_unique().alias("k"), pl.len().alias("m"))
                .filter(pl.col("m") >= 2))
        decisive = df.filter(pl.col("winner_raw").is_in(["A", "B"]))
        rows.append({
            "family": family, "size": size, "ckpt": ckpt, "baseline": baseline,
            "judge_model": _first(df, "judge_model"),
            "n_prompts": df["prompt_id"].n_unique(), "n_judgments": df.height,
            "wins": _count(df, "win"), "ties": _count(df, "tie"), "losses": _count(df, "loss"),
            "invalid": df["outcome"].null_count(),
            "order_agreement": (both["k"] == 1).mean() if both.height else None,
            "first_shown_win_rate": ((decisive["winner_raw"] == "A").mean()
                                     if decisive.height else None),
            "prompt_tokens": _sum(df, "prompt_tokens"), "completion_tokens": _sum(df, "completion_tokens"),
            "cache_hits": _sum(df, "cache_hit"),
        })
    out = pl.DataFrame(rows, infer_schema_length=None)
    return out.sort(["family", size_order(out), "baseline", "ckpt"])


def _count(df: pl.DataFrame, outcome: str) -> int:
    return int((df["outcome"] == outcome).sum())


def _sum(df: pl.DataFrame, col: str) -> int | None:
    return int(df[col].cast(pl.Int64).sum()) if col in df.columns else None


def _first(df: pl.DataFrame, col: str) -> str | None:
    vals = df[col].drop_nulls().unique().to_list() if col in df.columns else []
    return ",".join(sorted(map(str, vals))) or None
