"""The paper's figures from the result tables (seaborn theme, matplotlib without pyplot, PNG).

Each plot function takes the tidy tables of `medadapt.tables` and one family, writes a PNG
atomically when `out` is given, and returns the matplotlib Figure (for tests and notebooks).
"""
from __future__ import annotations

import os
from typing import Mapping

from medadapt.figures._style import DPI, SOURCE_FACTOR
from medadapt.figures.mcqa import plot_mcqa_raw_vs_merged, plot_mcqa_tasks
from medadapt.figures.outcomes import plot_win_tie_loss
from medadapt.figures.trajectories import plot_trajectories
from medadapt.tables import read_table

__all__ = ["plot_trajectories", "plot_mcqa_raw_vs_merged", "plot_mcqa_tasks", "plot_win_tie_loss",
           "write_figures", "FIGURES", "DPI", "SOURCE_FACTOR"]

# output name -> (tables needed, how to draw it); the names are the rule's named outputs.
FIGURES = {
    "trajectories_tokens": (("mcqa", "ranking"), lambda t, f, o: plot_trajectories(
        t["mcqa"], t["ranking"], f, "tokens", o)),
    "trajectories_flops": (("mcqa", "ranking"), lambda t, f, o: plot_trajectories(
        t["mcqa"], t["ranking"], f, "flops", o)),
    "mcqa_raw_vs_merged": (("mcqa",), lambda t, f, o: plot_mcqa_raw_vs_merged(t["mcqa"], f, o)),
    "mcqa_tasks": (("mcqa",), lambda t, f, o: plot_mcqa_tasks(t["mcqa"], f, o)),
    "win_tie_loss": (("ranking",), lambda t, f, o: plot_win_tie_loss(t["ranking"], f, o)),
}


def write_figures(family: str, mcqa: str | None = None, rankings: str | None = None,
                  **outputs: str | os.PathLike) -> dict[str, str]:
    """Stage `figures`: draw every figure named in `outputs` ({name: png path}) for one family from
    the MCQA and rankings tables."""
    unknown = sorted(set(outputs) - set(FIGURES))
    if unknown:
        raise ValueError(f"figures: unknown output name(s) {unknown}; known: {sorted(FIGURES)}")
    paths = {"mcqa": mcqa, "ranking": rankings}
    needed = {t for name in outputs for t in FIGURES[name][0]}
    missing = sorted(t for t in needed if not paths[t])
    if missing:
        raise ValueError(f"figures: outputs {sorted(outputs)} need the {missing} table(s) as input")
    tables = {t: read_table(paths[t]) for t in needed}
    for name, out in outputs.items():
        FIGURES[name][1](tables, family, out)
    return {name: str(out) for name, out in outputs.items()}
