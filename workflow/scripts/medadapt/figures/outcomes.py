"""Figures 7/8 of the paper: win/tie/loss distributions of the judge, as stacked bars.

The paper draws parallel-category flows; stacked shares carry the same counts and stay readable
with 18 checkpoints. Top row: all checkpoints of each size pooled; one row per size below, one bar
per checkpoint (the source model first). Columns: one per baseline (source, next larger, ...).
"""
from __future__ import annotations


import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from medadapt.figures._style import (OUTCOME_COLORS, OUTCOME_HATCHES, Out, family_rows, new_figure,
                                     save, theme)
from medadapt.tables import fmt_count, sorted_sizes

COLUMNS = ["family", "size", "baseline", "ckpt", "tokens", "wins", "ties", "losses"]
BASELINE_TITLES = {"source": "against source model", "next": "against next larger model"}
OUTCOMES = (("wins", "win"), ("ties", "tie"), ("losses", "loss"))


def _baselines(ranking: pl.DataFrame) -> list[str]:
    present = set(ranking["baseline"])
    return [b for b in ("source", "next") if b in present] + sorted(present - {"source", "next"})


def _stacked(ax, labels: list[str], counts: pl.DataFrame, annotate: bool) -> None:
    """Stacked percentage bars; `counts` has wins/ties/losses in the order of `labels`."""
    totals = (counts["wins"] + counts["ties"] + counts["losses"]).to_numpy().astype(float)
    shares = {c: np.divide(counts[c].to_numpy() * 100.0, totals, out=np.zeros_like(totals),
                           where=totals > 0) for c, _ in OUTCOMES}
    pos, bottom = np.arange(len(labels)), np.zeros(len(labels))
    for col, outcome in OUTCOMES:
        ax.bar(pos, shares[col], bottom=bottom, color=OUTCOME_COLORS[outcome], width=0.8,
               edgecolor="0.15", lw=0.5, hatch=OUTCOME_HATCHES[outcome])
        if annotate:
            for x, b, s in zip(pos, bottom, shares[col]):
                if s >= 8:
                    ax.text(x, b + s / 2, f"{s:.0f}%", ha="center", va="center", fontsize="x-small",
                            color="black" if outcome == "tie" else "white")
        bottom += shares[col]
    ax.set_xticks(pos, labels, rotation=45 if len(labels) > 6 else 0,
                  ha="right" if len(labels) > 6 else "center", fontsize="x-small")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.grid(axis="x", visible=False)


def plot_win_tie_loss(ranking_df: pl.DataFrame, family: str, out: Out = None) -> Figure:
    """Judge outcomes (from the adapted model's view) per size and per checkpoint, per baseline."""
    ranking = family_rows(ranking_df, family, "ranking", COLUMNS)
    baselines, sizes = _baselines(ranking), sorted_sizes(ranking["size"])
    with theme():
        fig, axes = new_figure(1 + len(sizes), len(baselines), (6.2, 2.5), sharey=True)
        for c, baseline in enumerate(baselines):
            data = ranking.filter(pl.col("baseline") == baseline)
            title = BASELINE_TITLES.get(baseline, f"against {baseline}")
            pooled = (data.filter(pl.col("ckpt") != "base").group_by("size")
                      .agg(pl.col("wins", "ties", "losses").sum()))
            pooled = pl.DataFrame({"size": sizes}).join(pooled, on="size", how="left").fill_null(0)
            _stacked(axes[0][c], sizes, pooled, annotate=True)
            axes[0][c].set_title(f"{title}: all checkpoints pooled", fontsize="medium")
            axes[0][c].set_xlabel("model size", fontsize="small")
            for r, size in enumerate(sizes, start=1):
                ax = axes[r][c]
                # rows without games: the source's own point against itself (0.5, never judged)
                rows = data.filter((pl.col("size") == size)
                                   & (pl.col("wins") + pl.col("ties") + pl.col("losses") > 0)).sort("tokens")
                if rows.is_empty():
                    ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="0.4")
                    ax.set_xticks([])
                    continue
                labels = ["source" if k == "base" else f"{k}\n{fmt_count(t)}" if len(rows) <= 6
                          else fmt_count(t) for k, t in rows.select("ckpt", "tokens").rows()]
                _stacked(ax, labels, rows, annotate=len(rows) <= 6)
                bl = rows["baseline_model"][0] if "baseline_model" in rows.columns else None
                ax.set_title(f"{size} {title}" + (f" ({bl})" if bl else ""), fontsize="small")
        for row in axes:
            row[0].set_ylabel("judgments (% of valid verdicts)", fontsize="small")
        for c in range(len(baselines)):
            axes[-1][c].set_xlabel("checkpoint (training tokens)", fontsize="small")
        fig.legend(handles=[Patch(facecolor=OUTCOME_COLORS[o], edgecolor="0.15", hatch=OUTCOME_HATCHES[o],
                                  label=o) for _, o in OUTCOMES],
                   loc="outside upper right", ncols=3, fontsize="small")
        fig.suptitle(f"{family}: judge outcomes (win / tie / loss of the adapted model)")
        return save(fig, out) if out else fig
