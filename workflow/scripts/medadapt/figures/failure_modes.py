"""Failure modes over training tokens: a 2x2 grid per family (language mixing, length against the
source, truncation, repetition), one line per adapted size from its source model on."""
from __future__ import annotations


import polars as pl
from matplotlib.figure import Figure

from medadapt.figures._style import (X_LABELS, Out, family_rows, include_y, log_x_axis,
                                     new_figure, no_data, save, size_styles, source_x, theme,
                                     with_plot_x)
from medadapt.figures.trajectories import draw_line
from medadapt.tables import read_table, sorted_sizes

COLUMNS = ["family", "size", "ckpt", "variant", "tokens", "flops", "other_language_share",
           "tokens_vs_source", "truncated_share", "repetitive_share"]
# (column, title, y label, reference line or None)
PANELS = (("other_language_share", "(a) Language mixing",
           "sentences in another language (share, 0-1)", None),
          ("tokens_vs_source", "(b) Verbosity", "response tokens / source's tokens (ratio)", 1.0),
          ("truncated_share", "(c) Truncation", "responses cut at max_tokens (share, 0-1)", None),
          ("repetitive_share", "(d) Repetition", "responses repeating themselves (share, 0-1)", None))


def plot_failure_modes(df: pl.DataFrame, family: str, x: str = "tokens", out: Out = None) -> Figure:
    """The failure-mode table's trajectories of one family (merged checkpoints of adapted sizes)."""
    rows = family_rows(df, family, "failure-mode", COLUMNS)
    adapted = sorted_sizes(rows.filter(pl.col("variant") == "merged")["size"])
    if not adapted:
        raise ValueError(f"failure-mode table has no merged checkpoint of family {family!r}")
    rows = rows.filter(pl.col("size").is_in(adapted) & pl.col("variant").is_in(["base", "merged"]))
    x_src = source_x(rows[x].to_list())
    rows = with_plot_x(rows, x, x_src)
    style = size_styles(adapted)
    with theme():
        fig, axes = new_figure(2, 2, (5.6, 4.0), sharex=True)
        for ax, (y, title, ylabel, ref) in zip([a for row in axes for a in row], PANELS):
            ax.set_title(title, loc="left", fontsize="medium")
            data = rows.filter(pl.col(y).is_not_null())
            if data.is_empty():
                no_data(ax)
                continue
            for size in adapted:
                draw_line(ax, data.filter(pl.col("size") == size), y, style[size]["color"], size,
                          linestyle=style[size]["linestyle"], marker=style[size]["marker"])
            if ref is not None:
                ax.axhline(ref, color="0.2", ls="--", lw=1.1, zorder=1.5)
                include_y(ax, ref)
            log_x_axis(ax, x, x_src, rows["_x"].max())
            ax.set_ylabel(ylabel, fontsize="small")
            ax.legend(fontsize="small", title="size", title_fontsize="small")
        for ax in axes[1]:
            ax.set_xlabel(X_LABELS[x])
        fig.suptitle(f"{family}: failure modes of the responses over training")
        return save(fig, out) if out else fig


def write_failure_mode_figure(failure_modes: str, family: str, out: str, out_svg: str) -> dict:
    """Stage `failure_mode_figures`: the failure-mode trajectories of one family (PNG `out`, SVG
    `out_svg`)."""
    plot_failure_modes(read_table(failure_modes), family, "tokens", [out, out_svg])
    return {"family": family, "out": str(out), "out_svg": str(out_svg)}
