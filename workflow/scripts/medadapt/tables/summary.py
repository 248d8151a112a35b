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


def _score(row: dict | None, col: str = "score") -> str:
    if row is None:
        return "–"
    return f"{_f(row[col])} [{_f(row[col + '_lo'])}, {_f(row[col + '_hi'])}]"


def _interval(row: dict | None, col: str) -> str:
    """'1.150 [1.100, 1.200]' (value and item-bootstrap interval), or the value alone."""
    if row is None:
        return "–"
    lo, hi = row.get(col + "_lo"), row.get(col + "_hi")
    return _f(row[col]) + (f" [{_f(lo)}, {_f(hi)}]" if lo is not None and hi is not None else "")


def milestone_cell(row: dict | None, what: str) -> str:
    """A milestone as the summary shows it: 'c02 (4M tokens, 1.2e16 FLOPs)', 'source (0 tokens)',
    'none' when no checkpoint reached it, '–' without tests. '(then lost)' when a later checkpoint
    loses it again."""
    if row is None:
        return "–"
    ckpt = row[f"{what}_ckpt"]
    if ckpt is None:
        return "none"
    if ckpt == "base":
        return "source (0 tokens)"
    kept = "" if row[f"{what}_sustained"] else ", then lost"
    return (f"{ckpt} ({fmt_count(row[f'{what}_tokens'])} tokens, "
            f"{fmt_sci(row[f'{what}_flops'])} FLOPs{kept})")


def _pooled(milestones: pl.DataFrame | None, family: str, size: str) -> dict | None:
    """The merged trajectory's milestones over all items (pooled) of one run."""
    if milestones is None:
        return None
    m = milestones.filter((pl.col("family") == family) & (pl.col("size") == size)
                          & (pl.col("trajectory") == "merged") & (pl.col("task") == "pooled"))
    return m.row(0, named=True) if m.height else None


def _family_rows(family: str, compute: pl.DataFrame, mcqa: pl.DataFrame,
                 ranking: pl.DataFrame | None, milestones: pl.DataFrame | None = None) -> list[dict]:
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
            "G_rel vs source": _interval(fin, "g_rel_source"),
            "G_rel vs next (source → final)": (f"{_f(src['g_rel_next'])} → "
                                               f"{_interval(fin, 'g_rel_next')} ({nxt})"
                                               if nxt and src and fin else "–"),
            "first significant MCQA gain vs source": milestone_cell(
                _pooled(milestones, family, size), "first_gain"),
            "MCQA parity with next": milestone_cell(_pooled(milestones, family, size), "parity"),
            "score vs source": _score(rank["source"][1]),
            "score vs next (source → final)": (f"{_f(rank['next'][0] and rank['next'][0]['score'])} → "
                                               f"{_score(rank['next'][1])}" if rank["next"][1] else "–"),
            "expected score vs source": _score(rank["source"][1], "expected_score"),
            "expected score vs next": _score(rank["next"][1], "expected_score"),
        })
    return rows


def _fit_table(ranking: pl.DataFrame) -> pl.DataFrame:
    """Per comparison (family, size, baseline): the fit's shared parameters and what went into it."""
    fitted = ranking.filter(pl.col("fitted"))
    out = (fitted.group_by("family", "size", "baseline", maintain_order=True)
           .agg(pl.col("status").first(), pl.col("nu").first(), pl.col("gamma").first(),
                pl.col("games").sum(), pl.col("invalid").sum(), pl.col("prompts_dropped").sum(),
                pl.col("position_consistency").mean(),
                pl.col("ckpt").filter(pl.col("degenerate")).str.join(",").alias("degenerate")))
    return out.with_columns(pl.col("degenerate").replace("", None))


def _fit_lines(ranking: pl.DataFrame) -> list[str]:
    table = _fit_table(ranking)
    lines = ["One Davidson fit per comparison: every checkpoint against the baseline, one tie "
             "parameter ν and (with fit.order_effect) one position effect γ (the response shown "
             "first plays with its strength times γ; 1 = none). games: judged games (prompts × 2 "
             "orders), invalid: without a valid verdict, dropped: prompts left out of the fit "
             "(a verdict missing in either order), position consistency: share of prompts whose two "
             "orders agree (mean over checkpoints). degenerate: checkpoints whose strength has no "
             "finite estimate (e.g. never lost); the weak prior kept them finite, read them as bounds.",
             "", markdown_table(table)]
    bad = table.filter(pl.col("status") != "converged")
    if bad.height:
        lines += ["", f"**{bad.height} fit(s) not cleanly converged** (status above)."]
    return lines


def _judge_lines(judgments: pl.DataFrame) -> list[str]:
    games, invalid = int(judgments["games"].sum()), int(judgments["invalid"].sum())
    dropped, prompts = int(judgments["prompts_dropped"].sum()), int(judgments["prompts"].sum())
    lines = [f"- games judged: {games}; without a valid verdict: {invalid}; prompts dropped from the "
             f"fits: {dropped} of {prompts}"]
    agree = judgments["order_agreement"].drop_nulls()
    first = judgments["first_shown_win_rate"].drop_nulls()
    if len(agree):
        lines.append(f"- prompts whose two orders (A/B swapped) agree: {agree.mean():.3f} "
                     "(mean over comparisons)")
    if len(first):
        lines.append(f"- first-shown response wins {first.mean():.3f} of decisive verdicts "
                     "(0.5 = no position bias)")
    return lines


def _usage_lines(usage: pl.DataFrame, facts: dict | None) -> list[str]:
    facts = facts or {}
    if usage.is_empty():
        return ["No LLM requests were recorded (no ledger: nothing was annotated or judged through "
                "an API client)."]
    lines = ["Every request sent by the judge and the corpus annotator, from their ledgers (failed "
             "and killed runs included): requests = answers + errors; tokens and cost count what was "
             "sent, never cache hits; cost_usd is an estimate from the configured prices (empty: no "
             "prices).", "", markdown_table(usage)]
    if facts.get("unreadable_lines"):
        lines += ["", f"{facts['unreadable_lines']} ledger line(s) could not be read (a run killed "
                      "while writing) and are not counted."]
    return lines


def _medqa_lines(info: dict) -> list[str]:
    pool = info.get("fewshot_pool_items", 0)
    return [f"- German MedQA (medqa_de): the whole translated test split, {info['test_items']} items "
            f"({info.get('member')}, corpus {info.get('corpus')}). The data have no translated "
            f"non-test split, so the one-shot examples come from the test split: each question's "
            f"example is the first test item that is not the question itself; the pool took {pool} "
            f"test item(s) ({', '.join(info.get('fewshot_pool_ids', []))})."]


MILESTONE_NOTE = (
    "G_rel intervals: 95 % bootstrap over MCQA items, paired (the checkpoint and its baseline on the "
    "same resampled items). MCQA milestones (merged checkpoints, all items of all tasks pooled): the "
    "first checkpoint whose gain over the source is significant, and the first point (the source "
    "included) whose accuracy is no longer significantly below the next-larger model's (parity); "
    "exact McNemar tests, Holm-corrected over the points of the trajectory, alpha {alpha}. "
    "'then lost': a later checkpoint no longer holds it; 'none': no checkpoint reached it.")


def _alpha(milestones: pl.DataFrame) -> str:
    alphas = milestones["alpha"].unique().to_list()
    return f"{alphas[0]:g}" if len(alphas) == 1 else "–"


def _milestone_lines(milestones: pl.DataFrame) -> list[str]:
    rows = [{"family": r["family"], "size": r["size"], "next": r["next_size"] or "–",
             "trajectory": r["trajectory"], "task": r["task"],
             "first significant gain vs source": milestone_cell(r, "first_gain"),
             "gains": f"{r['gains']}/{r['checkpoints']}",
             "parity with next": milestone_cell(r, "parity") if r["next_size"] else "–",
             "below next": "–" if r["below_next"] is None else f"{r['below_next']}/{r['checkpoints'] + 1}"}
            for r in milestones.iter_rows(named=True)]
    return ["Per run, trajectory (merged: CPT + SLERP; raw: CPT) and task (pooled: all items of all "
            "tasks): gains = checkpoints significantly above the source, below next = points (the "
            "source included) significantly below the next-larger model; the tests are in "
            "mcqa_tests.csv.", "", markdown_table(pl.DataFrame(rows), max_rows=200)]


def _runs_lines(runs: pl.DataFrame) -> str:
    """Table 2: FLOPs, wall time, accelerators and GPU-hours per run."""
    table = runs.select(
        "family", "size", "checkpoints", pl.col("tokens").map_elements(fmt_count, return_dtype=pl.String),
        pl.col("flops").map_elements(fmt_sci, return_dtype=pl.String), "accelerator",
        pl.col("accelerators").alias("devices"),
        pl.col("wall_hours").round(2).alias("wall time (h)"),
        pl.col("gpu_hours").round(2).alias("GPU-hours (wall h × devices)"))
    return ("Wall time sums the training segments' job times (model loading and state saves "
            "included, queue waits not).\n\n" + markdown_table(table))


def summary_markdown(compute: pl.DataFrame, mcqa: pl.DataFrame, ranking: pl.DataFrame | None = None,
                     judgments: pl.DataFrame | None = None, corpus_stats: pl.DataFrame | None = None,
                     corpus_validation: pl.DataFrame | None = None, usage: pl.DataFrame | None = None,
                     usage_facts: dict | None = None, medqa_de: dict | None = None,
                     mcqa_milestones: pl.DataFrame | None = None,
                     runs: pl.DataFrame | None = None) -> str:
    """Key numbers per family/size (final G_rel, final scores vs source/next, tokens, FLOPs, the
    MCQA milestones), the paired MCQA tests' milestones per task, the fits, the judge's counts and
    the study's LLM usage, as Markdown."""
    if mcqa.is_empty():
        raise ValueError("summary: the MCQA table is empty")
    parts = ["# Results summary", "",
             "Final = the last merged checkpoint (CPT + SLERP, most training tokens); source = the model "
             "CPT started from (0 tokens). G_rel = accuracy ratio (mean over MCQA tasks, paper eq. 1); "
             "score = Davidson strength share π_c/(π_c+π_baseline), 0.5 = parity, [bootstrap 95 % CI "
             "over prompts]. The figures plot this score: it is the paper's ranking score, and it "
             "separates preference from the judge's tie propensity (ν) and position bias (γ). The "
             "rankings table also gives the expected score (W + T/2)/n with its interval, which is "
             "model-free but drawn toward 0.5 wherever ties are common. The source's score against "
             "itself is 0.5 by definition (not judged, not fitted)."]
    if mcqa_milestones is not None:
        parts += ["", MILESTONE_NOTE.format(alpha=_alpha(mcqa_milestones))]
    for family in sorted(mcqa["family"].unique().to_list()):
        rows = _family_rows(family, compute, mcqa, ranking, mcqa_milestones)
        parts += ["", f"## {family}", ""]
        parts.append(markdown_table(pl.DataFrame(rows)) if rows else "(no adapted checkpoints)")
    if mcqa_milestones is not None and mcqa_milestones.height:
        parts += ["", "## MCQA significance", ""] + _milestone_lines(mcqa_milestones)
    if medqa_de:
        parts += ["", "## MCQA data", ""] + _medqa_lines(medqa_de)
    if ranking is not None and ranking.filter(pl.col("fitted")).height:
        parts += ["", "## Davidson fits", ""] + _fit_lines(ranking)
    if judgments is not None and judgments.height:
        parts += ["", "## Judge", ""] + _judge_lines(judgments)
    if runs is not None and runs.height:
        parts += ["", "## Training cost per run (Table 2)", "", _runs_lines(runs)]
    if usage is not None:
        parts += ["", "## LLM usage", ""] + _usage_lines(usage, usage_facts)
    for title, table in (("Corpus", corpus_stats), ("Corpus validation", corpus_validation)):
        if table is not None:
            parts += ["", f"## {title}", "", markdown_table(table)]
    return "\n".join(parts) + "\n"
