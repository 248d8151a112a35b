"""The paper's figures from the result tables (seaborn theme, matplotlib without pyplot, PNG + SVG).

Each plot function takes the tidy tables of `medadapt.tables` and one family, writes the figure
atomically when `out` is given (one path or several: the format comes from the suffix, .png or
.svg), and returns the matplotlib Figure (for tests and notebooks).
"""
from __future__ import annotations

import os

from medadapt.figures._style import DPI, FORMATS, SOURCE_FACTOR
from medadapt.figures.flows import plot_judge_flows
from medadapt.figures.mcqa import plot_mcqa_raw_vs_merged, plot_mcqa_tasks
from medadapt.figures.outcomes import plot_win_tie_loss
from medadapt.figures.trajectories import plot_trajectories
from medadapt.tables import read_table

__all__ = ["plot_trajectories", "plot_mcqa_raw_vs_merged", "plot_mcqa_tasks", "plot_win_tie_loss",
           "plot_judge_flows", "write_figures", "FIGURES", "FORMATS", "DPI", "SOURCE_FACTOR"]

# figure kind -> (tables needed, how to draw it); the rule's named outputs are the kinds (PNG) and
# the kinds with "_svg" (SVG).
FIGURES = {
    "trajectories_tokens": (("mcqa", "ranking", "milestones"), lambda t, f, o: plot_trajectories(
        t["mcqa"], t["ranking"], f, "tokens", o, milestones=t["milestones"])),
    "trajectories_flops": (("mcqa", "ranking", "milestones"), lambda t, f, o: plot_trajectories(
        t["mcqa"], t["ranking"], f, "flops", o, milestones=t["milestones"])),
    "mcqa_raw_vs_merged": (("mcqa",), lambda t, f, o: plot_mcqa_raw_vs_merged(t["mcqa"], f, o)),
    "mcqa_tasks": (("mcqa",), lambda t, f, o: plot_mcqa_tasks(t["mcqa"], f, o)),
    "win_tie_loss": (("ranking",), lambda t, f, o: plot_win_tie_loss(t["ranking"], f, o)),
    "judge_flows": (("prompt_outcomes",), lambda t, f, o: plot_judge_flows(t["prompt_outcomes"], f, o)),
}
SVG = "_svg"


def write_figures(family: str, mcqa: str | None = None, rankings: str | None = None,
                  milestones: str | None = None, prompt_outcomes: str | None = None,
                  **outputs: str | os.PathLike) -> dict[str, str]:
    """Stage `figures`: draw every figure named in `outputs` for one family from the result tables.

    `outputs`: {kind: PNG path} and {kind + "_svg": SVG path}; each kind is drawn once and written
    in every format asked for."""
    kinds: dict[str, list] = {}
    for name, out in outputs.items():
        kinds.setdefault(name.removesuffix(SVG), []).append(out)
    unknown = sorted(set(kinds) - set(FIGURES))
    if unknown:
        raise ValueError(f"figures: unknown output name(s) {unknown}; known: {sorted(FIGURES)} "
                         f"(and each with {SVG!r})")
    paths = {"mcqa": mcqa, "ranking": rankings, "milestones": milestones,
             "prompt_outcomes": prompt_outcomes}
    needed = {t for kind in kinds for t in FIGURES[kind][0]}
    optional = {"milestones"}  # without it, the trajectories carry no milestone markers
    missing = sorted(t for t in needed - optional if not paths[t])
    if missing:
        raise ValueError(f"figures: outputs {sorted(outputs)} need the {missing} table(s) as input")
    tables = {t: read_table(paths[t]) if paths[t] else None for t in needed}
    for kind, outs in kinds.items():
        FIGURES[kind][1](tables, family, outs)
    return {name: str(out) for name, out in outputs.items()}
