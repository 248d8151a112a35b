"""A short Markdown summary of the study's key numbers, for the Snakemake report.

Per family and adapted size: the final merged checkpoint (most tokens) against the source model
(0 tokens), i.e. where each trajectory of the paper's Figures 1/2 starts and ends.
"""
from __future__ import annotations

import math

import polars as pl

from medadapt.tables.common import sorted_sizes


def fmt_count(v: float | None) -> str:
    """1.23e9 -> '1.23B' (tokens, parameters)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def fmt_sci(v: float | None) -> str:
    """4.0e20 -> '4.00e20' (FLOPs)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return "0" if v == 0 else f"{v:.2e}".replace("e+", "e")


def _f(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown_table(df: pl.DataFrame, max_rows: int = 50) -> str:
    """GitHub-style pipe table; floats to 4 significant digits."""
    def cell(v) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.head(max_rows).rows()]
    if df.height > max_rows:
        lines.append(f"\n({df.height - max_rows} more rows in the CSV)")
    return "\n".join(lines)


def _final(df: pl.DataFrame) -> dict | None:
    """The row with the most training tokens (the last checkpoint) of a filtered table."""
    return df.sort("tokens").row(-1, named=True) if df.height else None


def _score(row: dict | None) -> str:
    if row is None:
        return "–"
    return f"{_f(row['score'])} [{_f(row['score_lo'])}, {_f(row['score_hi'])}]"


def _family_rows(family: str, compute: pl.DataFrame, mcqa: pl.DataFrame,
                 ranking: pl.DataFrame | None) -> list[dict]:
    mean = mcqa.filter((pl.col("family") == family) & (pl.col("task") == "mean"))
    adapted = mean.filter(pl.col("variant") == "merged")["size"].to_list()
    rows = []
    for size in sorted_sizes(adapted):
        m = mean.filter(pl.col("size") == size)
        src = _final(m.filter(pl.col("variant") == "base"))
        fin = _final(m.filter(pl.col("variant") == "merged"))
        comp = _final(compute.filter((pl.col("family") == family) & (pl.col("size") == size)))
        rank = {}
        for bl in ("source", "next"):
            r = (ranking.filter((pl.col("family") == family) & (pl.col("size") == size)
                                & (pl.col("baseline") == bl)) if ranking is not None else None)
            rank[bl] = (_final(r.filter(pl.col("ckpt") == "base")) if r is not None else None,
                        _final(r.filter(pl.col("ckpt") != "base")) if r is not None else None)
        nxt = fin["next_size"] if fin else None
        rows.append({
            "size": size, "final": fin["ckpt"] if fin else "–",
            "tokens": fmt_count(fin["tokens"] if fin else None),
            "FLOPs": fmt_sci(comp["flops"] if comp else None),
            "MCQA acc (source → final)": f"{_f(src and src['acc'])} → {_f(fin and fin['acc'])}",
            "G_rel vs source": _f(fin and fin["g_rel_source"]),
            "G_rel vs next (source → final)": (f"{_f(src['g_rel_next'])} → {_f(fin['g_rel_next'])} ({nxt})"
                                               if nxt and src and fin else "–"),
            "score vs source": _score(rank["source"][1]),
            "score vs next (source → final)": (f"{_f(rank['next'][0] and rank['next'][0]['score'])} → "
                                               f"{_score(rank['next'][1])}" if rank["next"][1] else "–"),
        })
    return rows


def _judge_lines(judgments: pl.DataFrame) -> list[str]:
    n = int(judgments["n_judgments"].sum())
    lines = [f"- judgments: {n} ({int(judgments['invalid'].sum())} without a valid verdict)"]
    agree = judgments["order_agreement"].drop_nulls()
    first = judgments["first_shown_win_rate"].drop_nulls()
    if len(agree):
        lines.append(f"- prompts whose two orders (A/B swapped) agree: {agree.mean():.3f} "
                     "(mean over comparisons)")
    if len(first):
        lines.append(f"- first-shown response wins {first.mean():.3f} of decisive verdicts "
                     "(0.5 = no position bias)")
    usage = [c for c in ("prompt_tokens", "completion_tokens", "cache_hits")
             if c in judgments.columns and judgments[c].null_count() < judgments.height]
    if usage:
        lines.append("- judge usage: " + ", ".join(f"{c.replace('_', ' ')} {int(judgments[c].sum())}"
                                                   for c in usage))
    return lines


def summary_markdown(compute: pl.DataFrame, mcqa: pl.DataFrame, ranking: pl.DataFrame | None = None,
                     judgments: pl.DataFrame | None = None, corpus_stats: pl.DataFrame | None = None,
                     corpus_validation: pl.DataFrame | None = None) -> str:
    """Key numbers per family/size (final G_rel, final scores vs source/next, tokens, FLOPs) as Markdown."""
    if mcqa.is_empty():
        raise ValueError("summary: the MCQA table is empty")
    parts = ["# Results summary", "",
             "Final = the last merged checkpoint (CPT + SLERP, most training tokens); source = the model "
             "CPT started from (0 tokens). G_rel = accuracy ratio (mean over MCQA tasks, paper eq. 1); "
             "score = Davidson strength share π_c/(π_c+π_baseline), 0.5 = parity, [bootstrap 95 % CI]."]
    for family in sorted(mcqa["family"].unique().to_list()):
        rows = _family_rows(family, compute, mcqa, ranking)
        parts += ["", f"## {family}", ""]
        parts.append(markdown_table(pl.DataFrame(rows)) if rows else "(no adapted checkpoints)")
    if judgments is not None and judgments.height:
        parts += ["", "## Judge", ""] + _judge_lines(judgments)
    for title, table in (("Corpus", corpus_stats), ("Corpus validation", corpus_validation)):
        if table is not None:
            parts += ["", f"## {title}", "", markdown_table(table)]
    return "\n".join(parts) + "\n"
