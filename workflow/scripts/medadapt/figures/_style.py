"""Shared plotting helpers: theme, colours per size, the log x axis with the source model, saving.

The source model sits at 0 tokens / 0 FLOPs, which a log axis cannot show. We draw it at
SOURCE_FACTOR times the smallest positive x of the figure, label that tick "source", connect it to
the first checkpoint with a dotted segment and mark the axis break with "//". Everything right of
the break is to scale; symlog was rejected because its linear segment distorts the first decade,
where the paper's trajectories change fastest.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Iterable, Iterator, Sequence

os.environ.setdefault("MPLBACKEND", "Agg")  # headless batch jobs; a user's explicit choice wins

import matplotlib as mpl  # noqa: E402
import polars as pl  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from medadapt.io import atomic_path  # noqa: E402
from medadapt.tables import fmt_count, sorted_sizes  # noqa: E402

DPI = 150
SOURCE_FACTOR = 1 / 3
# Units and scale of the x axes; SOURCE_NOTES: how the source model (at 0, which a log axis cannot
# show) is drawn. X_LABELS = both, two lines, for panels wide enough.
X_UNITS = {"tokens": "training tokens (count, log scale)",
           "flops": "training compute (FLOPs = 6·N·D, log scale)"}
SOURCE_NOTES = {"tokens": "source model: 0 tokens, drawn left of the // break (not to scale)",
                "flops": "source model: 0 FLOPs, drawn left of the // break (not to scale)"}
X_LABELS = {x: f"{X_UNITS[x]}\n{SOURCE_NOTES[x]}" for x in X_UNITS}
OUTCOME_COLORS = {"win": "#2e8b57", "tie": "#b8b8b8", "loss": "#c0392b"}
OUTCOME_HATCHES = {"win": "//", "tie": "", "loss": "xx"}  # so that outcomes read in grayscale too


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """Seaborn's whitegrid/notebook look for one figure, without touching global rcParams."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.8),
          "savefig.dpi": DPI, "figure.dpi": DPI, "legend.frameon": True, "legend.framealpha": 0.85}
    with mpl.rc_context(rc):
        yield


def new_figure(nrows: int, ncols: int, panel: tuple[float, float], **kw) -> tuple[Figure, list]:
    """A constrained-layout Figure (no pyplot state) and its axes as a row-major 2-D list."""
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, [list(row) for row in axes]


FORMATS = ("png", "svg")  # every figure is written in both; the format comes from the suffix
# Where a plot function writes its figure: nothing, one path or several (e.g. its PNG and its SVG).
Out = str | os.PathLike | Sequence[str | os.PathLike] | None


def save(fig: Figure, out: Out) -> Figure:
    """Write `fig` atomically to one path or to several (e.g. its PNG and its SVG)."""
    for path in [out] if isinstance(out, (str, os.PathLike)) else out:
        fmt = os.fspath(path).rsplit(".", 1)[-1].lower()
        if fmt not in FORMATS:
            raise ValueError(f"figure {path}: suffix must be one of {list(FORMATS)}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    return fig


def size_colors(sizes: Iterable[str]) -> dict[str, tuple]:
    """One colour per size, small to large along a perceptual palette, stable across panels."""
    ordered = sorted_sizes(sizes)
    palette = sns.color_palette("viridis", max(len(ordered), 2) + 1)  # drop the pale yellow end
    return {s: palette[i] for i, s in enumerate(ordered)}


# Line styles and markers per size (small to large), so that sizes stay apart in grayscale too.
SIZE_LINESTYLES = ("-", "--", "-.", ":")
SIZE_MARKERS = ("o", "s", "^", "D", "v", "P")


def size_styles(sizes: Iterable[str]) -> dict[str, dict]:
    """Per size: color, linestyle and marker (matplotlib keywords), stable across panels."""
    colors = size_colors(sizes)
    return {s: {"color": colors[s], "linestyle": SIZE_LINESTYLES[i % len(SIZE_LINESTYLES)],
                "marker": SIZE_MARKERS[i % len(SIZE_MARKERS)]}
            for i, s in enumerate(sorted_sizes(colors))}


def family_rows(df: pl.DataFrame | None, family: str, what: str, required: Sequence[str]) -> pl.DataFrame:
    """Rows of one family, with a clear error when there is nothing to plot."""
    if df is None or df.is_empty():
        raise ValueError(f"{what} table is empty: nothing to plot")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{what} table: missing column(s) {missing}")
    rows = df.filter(pl.col("family") == family)
    if rows.is_empty():
        raise ValueError(f"{what} table has no rows for family {family!r} "
                         f"(families present: {sorted(df['family'].unique().to_list())})")
    return rows


def source_x(values: Iterable[float]) -> float:
    positive = [v for v in values if v is not None and v > 0]
    if not positive:
        raise ValueError("nothing to plot on a log axis: no checkpoint with more than 0 tokens/FLOPs")
    return min(positive) * SOURCE_FACTOR


def with_plot_x(df: pl.DataFrame, x: str, x_src: float) -> pl.DataFrame:
    """Column `_x`: the x value, with the source model (0) moved to `x_src`."""
    if x not in ("tokens", "flops"):
        raise ValueError(f"x must be 'tokens' or 'flops', got {x!r}")
    return df.with_columns(_x=pl.when(pl.col(x) > 0).then(pl.col(x).cast(pl.Float64))
                           .otherwise(pl.lit(x_src)))


def fmt_tick(v: float, x: str) -> str:
    if x == "tokens":
        return fmt_count(v)
    exp = math.floor(math.log10(v))
    mant = v / 10 ** exp
    return f"$10^{{{exp}}}$" if math.isclose(mant, 1) else f"${mant:.2g}\\times10^{{{exp}}}$"


def _ticks(lo: float, hi: float, min_count: int = 2) -> list[float]:
    """Decades if there are enough in range, else 1-2-5 steps, else every integer mantissa."""
    ticks: list[float] = []
    for subs in ((1.0,), (1.0, 2.0, 5.0), tuple(float(i) for i in range(1, 10))):
        ticks = [t for t in LogLocator(base=10, subs=subs, numticks=50).tick_values(lo, hi)
                 if lo <= t <= hi]
        if len(ticks) >= min_count:
            break
    return ticks


def log_x_axis(ax, x: str, x_src: float, x_max: float) -> None:
    """Log x axis from the source position to the last checkpoint, 'source' tick and '//' break."""
    ax.set_xscale("log")
    lo, hi = x_src / 1.6, x_max * 1.6
    ax.set_xlim(lo, hi)
    first = x_src / SOURCE_FACTOR  # the smallest checkpoint x
    major = [t for t in _ticks(first * 0.8, hi) if t > x_src * 2.2]
    ax.xaxis.set_major_locator(FixedLocator([x_src, *major]))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: "source" if math.isclose(v, x_src, rel_tol=1e-9) else fmt_tick(v, x)))
    minor = [t for t in LogLocator(base=10, subs="auto", numticks=50).tick_values(lo, hi)
             if x_src * 2.2 < t <= hi and t not in major]
    ax.xaxis.set_minor_locator(FixedLocator(minor))
    ax.xaxis.set_minor_formatter(NullFormatter())
    brk = math.sqrt(x_src * first)  # geometric midpoint of the break
    ax.text(brk, 0, "//", transform=blended_transform_factory(ax.transData, ax.transAxes),
            ha="center", va="center", fontsize=9, clip_on=False,
            bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none"})


def no_data(ax, text: str = "no data") -> None:
    """Mark an empty panel; tick locators stay untouched because shared axes share them."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.tick_params(labelleft=False, labelbottom=False)
    ax.grid(False)


def include_y(ax, value: float, pad: float = 0.02) -> None:
    """Keep a reference line (parity) inside the y range."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(min(lo, value - pad), max(hi, value + pad))
