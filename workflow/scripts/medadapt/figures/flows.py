"""Figures 7/8 of the paper: judge flows from the first to the last checkpoint (BL -> FT).

For each size and baseline, two stacked columns of the judged prompts (win / tie / loss of the
adapted model, each prompt's two orders aggregated; "no verdict" where neither order gave one): the
first judged checkpoint on the left (against the next larger model that is the source itself, the
untrained "BL"), the last on the right ("FT"), and one band per (left, right) outcome pair whose
height is the number of prompts that moved that way: a parallel-categories (alluvial) view drawn
with matplotlib. Blocks carry hatches and text labels, so the figure reads in grayscale.
"""
from __future__ import annotations


import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from medadapt.figures._style import (OUTCOME_COLORS, OUTCOME_HATCHES, Out, family_rows, new_figure,
                                     save, theme)
from medadapt.tables import fmt_count, sorted_sizes

COLUMNS = ["family", "size", "ckpt", "baseline", "prompt_id", "tokens", "outcome"]
# top to bottom; "none": no valid verdict in either order
CATEGORIES = ("win", "tie", "loss", "none")
LABELS = {"win": "win", "tie": "tie", "loss": "loss", "none": "no verdict"}
COLORS = {**OUTCOME_COLORS, "none": "#ffffff"}
HATCHES = {**OUTCOME_HATCHES, "none": ".."}
BASELINE_TITLES = {"source": "against the source model", "next": "against the next larger model"}
BLOCK_W = 0.12  # width of a column, in axis units (the columns sit at x = 0 and x = 1)


def flow_counts(rows: pl.DataFrame, first: str, last: str) -> dict[tuple[str, str], int]:
    """{(outcome at `first`, outcome at `last`): prompts}, over the prompts judged at both."""
    def at(ckpt):
        return dict(rows.filter(pl.col("ckpt") == ckpt).select("prompt_id", "outcome").rows())
    a, b = at(first), at(last)
    out: dict[tuple[str, str], int] = {}
    for pid in sorted(set(a) & set(b)):
        key = (a[pid] or "none", b[pid] or "none")
        out[key] = out.get(key, 0) + 1
    return out


def _stack(totals: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Bottom and top of each category in a column, win on top."""
    pos, top = {}, float(sum(totals.values()))
    for c in CATEGORIES:
        pos[c] = (top - totals.get(c, 0), top)
        top -= totals.get(c, 0)
    return pos


def _curve(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(BLOCK_W / 2, 1 - BLOCK_W / 2, n)
    t = (x - x[0]) / (x[-1] - x[0])
    return x, 3 * t ** 2 - 2 * t ** 3  # smoothstep: 0 -> 1 with flat ends


def draw_flows(ax, flows: dict[tuple[str, str], int], left: str, right: str) -> None:
    """Two stacked columns and the bands between them; `left`/`right`: the columns' tick labels."""
    lt = {c: sum(v for (a, _), v in flows.items() if a == c) for c in CATEGORIES}
    rt = {c: sum(v for (_, b), v in flows.items() if b == c) for c in CATEGORIES}
    lpos, rpos = _stack(lt), _stack(rt)
    lcur = {c: lpos[c][1] for c in CATEGORIES}  # next free top inside each block
    rcur = {c: rpos[c][1] for c in CATEGORIES}
    xs, s = _curve()
    for a in CATEGORIES:
        for b in CATEGORIES:
            n = flows.get((a, b), 0)
            if not n:
                continue
            y0_top, y1_top = lcur[a], rcur[b]
            lcur[a] -= n
            rcur[b] -= n
            top = y0_top + (y1_top - y0_top) * s
            ax.fill_between(xs, top - n, top, color=COLORS[a] if a != "none" else "0.8", alpha=0.45,
                            lw=0.4, edgecolor="0.3", label=f"_{a}->{b}")
    for x, totals, pos in ((0.0, lt, lpos), (1.0, rt, rpos)):
        for c in CATEGORIES:
            if not totals[c]:
                continue
            lo, hi = pos[c]
            ax.add_patch(Rectangle((x - BLOCK_W / 2, lo), BLOCK_W, hi - lo, facecolor=COLORS[c],
                                   edgecolor="0.15", hatch=HATCHES[c], lw=0.8, zorder=3,
                                   label=f"_{c}@{x:g}"))
            ax.text(x + (-1 if x == 0 else 1) * (BLOCK_W / 2 + 0.02), (lo + hi) / 2,
                    f"{LABELS[c]} {totals[c]}", ha="right" if x == 0 else "left", va="center",
                    fontsize="x-small", zorder=4)
    total = sum(lt.values())
    ax.set_xlim(-0.45, 1.45)
    ax.set_ylim(0, max(total, 1))
    ax.set_xticks([0, 1], [left, right], fontsize="x-small")
    ax.grid(False)


def plot_judge_flows(outcomes_df: pl.DataFrame, family: str, out: Out = None) -> Figure:
    """Rows: baselines (source, next larger); columns: adapted sizes. Each panel: how the judged
    prompts' outcomes move from the first judged checkpoint to the last."""
    rows = family_rows(outcomes_df, family, "prompt outcome", COLUMNS)
    baselines = [b for b in ("source", "next") if b in set(rows["baseline"])]
    baselines += sorted(set(rows["baseline"]) - set(baselines))
    sizes = sorted_sizes(rows["size"])
    with theme():
        # at least ~8 inches wide, so that one size still has room for the legend and the title
        fig, axes = new_figure(len(baselines), len(sizes), (max(3.4, 8.0 / len(sizes)), 3.2))
        for r, baseline in enumerate(baselines):
            for c, size in enumerate(sizes):
                ax = axes[r][c]
                part = rows.filter((pl.col("baseline") == baseline) & (pl.col("size") == size))
                ckpts = (part.select("ckpt", "tokens").unique().sort("tokens", "ckpt").rows())
                ax.set_title(f"{size}, {BASELINE_TITLES.get(baseline, 'against ' + baseline)}",
                             fontsize="small")
                if len(ckpts) < 2:
                    ax.text(0.5, 0.5, "fewer than two judged checkpoints", transform=ax.transAxes,
                            ha="center", va="center", color="0.4", fontsize="small")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.grid(False)
                    continue
                (first, t0), (last, t1) = ckpts[0], ckpts[-1]
                name = {"base": "source"}
                draw_flows(ax, flow_counts(part, first, last),
                           f"{name.get(first, first)}\n{fmt_count(t0)} tokens",
                           f"{name.get(last, last)}\n{fmt_count(t1)} tokens")
                if c == 0:
                    ax.set_ylabel("judged prompts (count)", fontsize="small")
        for ax in axes[-1]:
            ax.set_xlabel("checkpoint (training tokens)", fontsize="small")
        fig.legend(handles=[Patch(facecolor=COLORS[c], edgecolor="0.15", hatch=HATCHES[c],
                                  label=LABELS[c]) for c in CATEGORIES],
                   loc="outside lower center", ncols=len(CATEGORIES), fontsize="small",
                   title="outcome of the adapted model (both orders of a prompt aggregated)",
                   title_fontsize="small")
        fig.suptitle(f"{family}: judge outcomes per prompt, first → last checkpoint")
        return save(fig, out) if out else fig
