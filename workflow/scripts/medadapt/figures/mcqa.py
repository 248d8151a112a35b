"""Figure 3 of the paper: absolute MCQA accuracy, raw CPT vs CPT + SLERP, per size (and per task)."""
from __future__ import annotations

import math

import polars as pl
import seaborn as sns
from matplotlib.figure import Figure

from medadapt.figures._style import (SOURCE_NOTES, X_UNITS, Out, family_rows, log_x_axis,
                                     new_figure, no_data, save, source_x, theme, with_plot_x)
from medadapt.figures.trajectories import draw_line
from medadapt.tables import sorted_sizes

COLUMNS = ["family", "size", "next_size", "ckpt", "variant", "task", "acc", "acc_stderr", "tokens"]
_PAL = sns.color_palette("colorblind")
# (variant, label, colour, line style, marker, drawn on top, filled band, hollow markers): the
# merged line is drawn first with a filled band; the raw CPT line is drawn over it, dashed, with
# hollow markers and an edge-only band, so that where the two coincide both stay visible.
VARIANTS = (("merged", "CPT + SLERP (merged)", _PAL[0], "-", "o", 2.0, True, False),
            ("raw", "raw CPT", _PAL[1], "--", "^", 3.0, False, True))
SOURCE_LABEL = "source model (0 tokens)"
NEXT_LABEL = "next larger model"


def _prepare(mcqa_df: pl.DataFrame, family: str) -> tuple[pl.DataFrame, pl.DataFrame, list[str], float]:
    """Adapted sizes' rows with plot x and ±stderr columns; base rows of every size (for next-larger)."""
    rows = family_rows(mcqa_df, family, "MCQA", COLUMNS)
    sizes = sorted_sizes(rows.filter(pl.col("variant") != "base")["size"])
    if not sizes:
        raise ValueError(f"MCQA table has no checkpoints (cNN / raw-cNN) for family {family!r}")
    x_src = source_x(rows["tokens"].to_list())
    rows = with_plot_x(rows, "tokens", x_src).with_columns(
        _lo=(pl.col("acc") - pl.col("acc_stderr").fill_null(0.0)).clip(0.0, 1.0),
        _hi=(pl.col("acc") + pl.col("acc_stderr").fill_null(0.0)).clip(0.0, 1.0))
    return rows.filter(pl.col("size").is_in(sizes)), rows.filter(pl.col("variant") == "base"), sizes, x_src


def _next_size(rows: pl.DataFrame, size: str) -> str | None:
    nxt = rows.filter(pl.col("size") == size)["next_size"].drop_nulls()
    return nxt[0] if len(nxt) else None


def _panel(ax, rows: pl.DataFrame, bases: pl.DataFrame, size: str, task: str, x_src: float,
           x_max: float) -> None:
    """Raw and merged accuracy of one size on one task, the source's and the next model's levels.
    Line labels are the same in every panel (the figure's one legend); the next larger model's
    size is in the panel title."""
    data = rows.filter((pl.col("size") == size) & (pl.col("task") == task))
    if data.filter(pl.col("variant") != "base").is_empty():
        no_data(ax)
        return
    src = data.filter(pl.col("variant") == "base")
    for variant, label, color, ls, marker, z, fill, hollow in VARIANTS:
        line = pl.concat([src, data.filter(pl.col("variant") == variant)])
        draw_line(ax, line, "acc", color, label, band=("_lo", "_hi"), linestyle=ls, marker=marker,
                  zorder=z, band_fill=fill, hollow=hollow)
    if src.height:
        ax.axhline(src["acc"][0], color="0.35", ls="--", lw=1, zorder=1.5, label=SOURCE_LABEL)
    nxt = _next_size(rows, size)
    ref = bases.filter((pl.col("size") == nxt) & (pl.col("task") == task)) if nxt else bases.clear()
    if ref.height:
        ax.axhline(ref["acc"][0], color="0.35", ls=(0, (1, 1.5)), lw=1.4, zorder=1.5,
                   label=NEXT_LABEL)
    log_x_axis(ax, "tokens", x_src, x_max)


def _title(rows: pl.DataFrame, size: str) -> str:
    nxt = _next_size(rows, size)
    return f"{size} (next larger: {nxt})" if nxt else f"{size} (no larger model)"


def _figure_legend(fig, axes) -> None:
    """One legend for the figure, from the union of the panels' labelled lines."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=len(seen),
               fontsize="small", title=f"x axis: {SOURCE_NOTES['tokens']}", title_fontsize="x-small")


def plot_mcqa_raw_vs_merged(mcqa_df: pl.DataFrame, family: str, out: Out = None,
                            task: str = "mean", max_cols: int = 4) -> Figure:
    """One panel per adapted size: accuracy vs tokens for raw CPT and CPT + SLERP checkpoints.

    Both lines start at the source model; merged: solid, filled circles, filled band; raw: dashed,
    hollow triangles, edge-only band, drawn on top. Grey dashed: source accuracy, grey dotted: the
    next-larger base model (named in the panel title). Bands are ±1 stderr of the accuracy
    (lm-eval's acc_stderr; for "mean", combined over tasks), clipped to [0, 1].
    """
    rows, bases, sizes, x_src = _prepare(mcqa_df, family)
    if rows.filter(pl.col("task") == task).is_empty():
        raise ValueError(f"MCQA table has no {task!r} rows for family {family!r}")
    ncols = min(len(sizes), max_cols)
    nrows = math.ceil(len(sizes) / ncols)
    with theme():
        fig, axes = new_figure(nrows, ncols, (4.2, 3.4), sharex=True)
        flat = [a for row in axes for a in row]
        for i, (ax, size) in enumerate(zip(flat, sizes)):
            _panel(ax, rows, bases, size, task, x_src, rows["_x"].max())
            ax.set_title(_title(rows, size), fontsize="medium")
            if i % ncols == 0:
                ax.set_ylabel(f"MCQA accuracy ({task}, share correct)")
        for ax in flat[len(sizes):]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel(X_UNITS["tokens"])
        _figure_legend(fig, flat[:len(sizes)])
        fig.suptitle(f"{family}: absolute MCQA accuracy, raw CPT vs CPT + SLERP")
        return save(fig, out) if out else fig


def plot_mcqa_tasks(mcqa_df: pl.DataFrame, family: str, out: Out = None) -> Figure:
    """Faceted Figure 3: rows = MCQA tasks (then the mean), columns = adapted sizes."""
    rows, bases, sizes, x_src = _prepare(mcqa_df, family)
    tasks = sorted(set(rows["task"]) - {"mean"}) + ["mean"]
    with theme():
        fig, axes = new_figure(len(tasks), len(sizes), (3.4, 2.5), sharex=True, sharey="row")
        for r, task in enumerate(tasks):
            for c, size in enumerate(sizes):
                ax = axes[r][c]
                _panel(ax, rows, bases, size, task, x_src, rows["_x"].max())
                if r == 0:
                    ax.set_title(_title(rows, size), fontsize="medium")
                if c == 0:
                    ax.set_ylabel(f"{task}\naccuracy (share)", fontsize="small")
                if r == len(tasks) - 1:
                    ax.set_xlabel(X_UNITS["tokens"], fontsize="small")
        _figure_legend(fig, [a for row in axes for a in row])
        fig.suptitle(f"{family}: MCQA accuracy per task, raw CPT vs CPT + SLERP")
        return save(fig, out) if out else fig
