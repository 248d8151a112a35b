"""Figures 1/2 (x = training tokens) and 5/6 (x = FLOPs) of the paper: a 2x2 grid per family."""
from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from medadapt.figures._style import (X_LABELS, Out, family_rows, include_y, log_x_axis,
                                     new_figure, no_data, save, size_styles, source_x, theme,
                                     with_plot_x)
from medadapt.tables import sorted_sizes

MCQA_COLUMNS = ["family", "size", "next_size", "ckpt", "variant", "task", "acc", "tokens", "flops",
                "g_rel_source", "g_rel_next"]
RANKING_COLUMNS = ["family", "size", "baseline", "ckpt", "tokens", "flops", "score", "score_lo",
                   "score_hi"]
MILESTONE_COLUMNS = ["family", "size", "trajectory", "task", "first_gain_ckpt", "parity_ckpt"]
PANELS = (("(a) MCQA: against source model", "G_rel = accuracy / source accuracy (ratio)"),
          ("(b) MCQA: against next larger model", "G_rel = accuracy / next-larger accuracy (ratio)"),
          ("(c) Generative rankings: against source model", "Davidson score (strength share, 0-1)"),
          ("(d) Generative rankings: against next larger model",
           "Davidson score (strength share, 0-1)"))
GAIN_MARKER = {"marker": "*", "ms": 13, "mfc": "white", "mew": 1.4, "ls": "none", "zorder": 4}
PARITY_MARKER = {"marker": "P", "ms": 10, "mfc": "white", "mew": 1.4, "ls": "none", "zorder": 4}
GAIN_LABEL = "first significant MCQA gain (McNemar, Holm)"
PARITY_LABEL = "first point not significantly below next larger"
# The milestones' task for the macro mean: all items of all tasks (the tests are per item).
MILESTONE_TASK = {"mean": "pooled"}


def draw_line(ax, rows: pl.DataFrame, y: str, color, label: str, band: tuple[str, str] | None = None,
              linestyle: str = "-", marker: str = "o", zorder: float = 2.0, band_fill: bool = True,
              hollow: bool = False, band_alpha: float = 0.12) -> None:
    """One trajectory: from the first checkpoint on in its style, dotted from the source point to it.

    The band (when both bound columns have values) is a translucent fill edged by thin lines of the
    trajectory's style, so overlapping bands stay apart in grayscale; `band_fill` False draws only
    the edges, `hollow` draws white-filled markers (a line drawn over another stays see-through)."""
    rows = rows.filter(pl.col(y).is_not_null()).sort("_x")
    src, ckpts = rows.filter(pl.col("ckpt") == "base"), rows.filter(pl.col("ckpt") != "base")
    if ckpts.height:
        ax.plot(ckpts["_x"], ckpts[y], color=color, ls=linestyle, marker=marker, ms=4.5, lw=1.6,
                label=label, zorder=zorder, **({"mfc": "white", "mew": 1.2} if hollow else {}))
        if band and all(c in ckpts.columns for c in band):
            b = ckpts.filter(pl.col(band[0]).is_not_null() & pl.col(band[1]).is_not_null())
            if b.height and band_fill:
                ax.fill_between(b["_x"], b[band[0]], b[band[1]], color=color, alpha=band_alpha, lw=0,
                                zorder=zorder - 1)
            if b.height:
                for edge in band:
                    ax.plot(b["_x"], b[edge], color=color, ls=linestyle, lw=0.6, alpha=0.6,
                            zorder=zorder - 0.5)
    if src.height:
        ax.plot(src["_x"][:1], src[y][:1], color=color, marker=marker, ms=6, ls="none", mfc="white",
                label=None if ckpts.height else label, zorder=zorder)
        if ckpts.height:
            ax.plot([src["_x"][0], ckpts["_x"][0]], [src[y][0], ckpts[y][0]], color=color, ls=":",
                    lw=1.2, zorder=zorder)


def _milestone_points(milestones: pl.DataFrame | None, family: str, task: str,
                      column: str) -> dict[str, str]:
    """{size: ckpt} of the merged trajectory's first gain (or parity) on `task`."""
    if milestones is None or milestones.is_empty():
        return {}
    missing = [c for c in MILESTONE_COLUMNS if c not in milestones.columns]
    if missing:
        raise ValueError(f"milestones table: missing column(s) {missing}")
    rows = milestones.filter((pl.col("family") == family) & (pl.col("trajectory") == "merged")
                             & (pl.col("task") == MILESTONE_TASK.get(task, task))
                             & pl.col(column).is_not_null())
    return dict(rows.select("size", column).rows())


def _mark(ax, data: pl.DataFrame, y: str, points: dict[str, str], style: dict, spec: dict) -> bool:
    drawn = False
    for size, ckpt in points.items():
        hit = data.filter((pl.col("size") == size) & (pl.col("ckpt") == ckpt) & pl.col(y).is_not_null())
        if hit.height and size in style:
            ax.plot(hit["_x"][:1], hit[y][:1], mec=style[size]["color"], **spec)
            drawn = True
    return drawn


def plot_trajectories(mcqa_df: pl.DataFrame, ranking_df: pl.DataFrame, family: str,
                      x: str = "tokens", out: Out = None,
                      task: str = "mean", milestones: pl.DataFrame | None = None) -> Figure:
    """2x2 grid: (a) MCQA G_rel vs source, (b) vs next-larger, (c) ranking score vs source, (d) vs next.

    One line per adapted size (merged checkpoints, starting at the source model; colour, line style
    and marker per size); bands are the bootstrap 95 % intervals (MCQA: paired item bootstrap of
    G_rel, rankings: prompt bootstrap of the score); dashed lines mark parity (G_rel 1, score 0.5).
    With `milestones` (the mcqa_milestones table), a star marks each size's first checkpoint whose
    MCQA gain over the source is significant (merged trajectory; "pooled" items for the mean), and
    a plus the first point no longer significantly below the next larger model.
    """
    if x not in X_LABELS:
        raise ValueError(f"x must be 'tokens' or 'flops', got {x!r}")
    mcqa = family_rows(mcqa_df, family, "MCQA", MCQA_COLUMNS)
    ranking = family_rows(ranking_df, family, "ranking", RANKING_COLUMNS)
    mcqa = mcqa.filter((pl.col("task") == task) & pl.col("variant").is_in(["base", "merged"]))
    adapted = set(mcqa.filter(pl.col("variant") == "merged")["size"]) | set(ranking["size"])
    if mcqa.is_empty():
        raise ValueError(f"MCQA table has no {task!r} rows for family {family!r}")
    mcqa = mcqa.filter(pl.col("size").is_in(list(adapted)))
    x_src = source_x([*mcqa[x].to_list(), *ranking[x].to_list()])
    mcqa, ranking = with_plot_x(mcqa, x, x_src), with_plot_x(ranking, x, x_src)
    x_max = max(mcqa["_x"].max(), ranking["_x"].max())
    style = size_styles(adapted)
    # overlapping bands of several sizes add up: keep their sum translucent (no solid block)
    band_alpha = min(0.12, 0.3 / len(adapted))
    nxt = dict(mcqa.select("size", "next_size").unique().rows())
    gains = _milestone_points(milestones, family, task, "first_gain_ckpt")
    parity = _milestone_points(milestones, family, task, "parity_ckpt")

    with theme():
        fig, axes = new_figure(2, 2, (5.6, 4.0), sharex=True)
        panels = [(mcqa, "g_rel_source", ("g_rel_source_lo", "g_rel_source_hi"), 1.0, False, gains,
                   GAIN_MARKER, GAIN_LABEL),
                  (mcqa, "g_rel_next", ("g_rel_next_lo", "g_rel_next_hi"), 1.0, True, parity,
                   PARITY_MARKER, PARITY_LABEL),
                  (ranking.filter(pl.col("baseline") == "source"), "score", ("score_lo", "score_hi"),
                   0.5, False, {}, None, None),
                  (ranking.filter(pl.col("baseline") == "next"), "score", ("score_lo", "score_hi"),
                   0.5, True, {}, None, None)]
        for ax, (title, ylabel), (data, y, band, par, vs_next, marks, spec, mlabel) in zip(
                [a for row in axes for a in row], PANELS, panels):
            ax.set_title(title, loc="left", fontsize="medium")
            data = data.filter(pl.col(y).is_not_null())
            if data.is_empty():
                no_data(ax, "no comparison of this kind")
                continue
            for size in sorted_sizes(data["size"]):
                label = f"{size} vs {nxt[size]}" if vs_next and nxt.get(size) else size
                draw_line(ax, data.filter(pl.col("size") == size), y, style[size]["color"], label, band,
                          linestyle=style[size]["linestyle"], marker=style[size]["marker"],
                          band_alpha=band_alpha)
            ax.axhline(par, color="0.2", ls="--", lw=1.1, zorder=1.5, label="parity")
            include_y(ax, par)
            log_x_axis(ax, x, x_src, x_max)
            ax.set_ylabel(ylabel, fontsize="small")
            handles, labels = ax.get_legend_handles_labels()
            if spec and _mark(ax, data, y, marks, style, spec):
                handles.append(Line2D([], [], mec="0.2", **spec))
                labels.append(mlabel)
            ax.legend(handles, labels, fontsize="x-small", title="size", title_fontsize="x-small")
        for ax in axes[1]:
            ax.set_xlabel(X_LABELS[x])
        what = "training tokens" if x == "tokens" else "training compute (FLOPs)"
        fig.suptitle(f"{family}: adaptation trajectories over {what}")
        return save(fig, out) if out else fig
