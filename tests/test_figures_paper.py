"""The paper's figures and the tables they need, from small hand-made tables: axes (labels, log
scale), lines and their labels, bands, markers; assertions that fail if raw and merged were
swapped, a baseline mislabelled or a milestone misplaced."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle

from medadapt.figures import (SOURCE_FACTOR, plot_judge_flows, plot_mcqa_raw_vs_merged,
                              plot_mcqa_tasks, plot_trajectories, write_figures)
from medadapt.figures.failure_modes import plot_failure_modes, write_failure_mode_figure
from medadapt.figures.flows import flow_counts
from medadapt.figures.mcqa import NEXT_LABEL, SOURCE_LABEL
from medadapt.figures.trajectories import GAIN_LABEL, PARITY_LABEL
from medadapt.tables import compute_table, prompt_outcome_table, runs_table

F = "fam"
TOK = {"base": 0, "c01": 1_000_000, "c02": 10_000_000}
NPARAM = {"s": 1e8, "m": 1e9, "l": 1e10}
NEXT = {"s": "m", "m": "l"}
BASE_ACC = {"s": 0.40, "m": 0.50, "l": 0.60}
# merged gains 10 %/20 %, raw CPT only 2 %/4 %: a swap changes every plotted value
GAIN = {"merged": {"c01": 1.10, "c02": 1.20}, "raw": {"c01": 1.02, "c02": 1.04}}


def _mcqa() -> pl.DataFrame:
    rows = []
    for size, base in BASE_ACC.items():
        nxt = NEXT.get(size)
        models = [("base", "base", 1.0)]
        if nxt:
            models += [(c, "merged", GAIN["merged"][c]) for c in ("c01", "c02")]
            models += [(f"raw-{c}", "raw", GAIN["raw"][c]) for c in ("c01", "c02")]
        for task, shift in (("t1", 0.0), ("mean", 0.01)):
            for ckpt, variant, g in models:
                tok = TOK[ckpt.removeprefix("raw-")]
                acc = (base + shift) * g
                g_next = acc / (BASE_ACC[nxt] + shift) if nxt else None
                rows.append({"family": F, "size": size, "next_size": nxt, "ckpt": ckpt,
                             "variant": variant, "task": task, "acc": acc, "acc_stderr": 0.01,
                             "tokens": tok, "flops": 6 * NPARAM[size] * tok,
                             "g_rel_source": g, "g_rel_next": g_next,
                             "g_rel_source_lo": g - 0.03 if ckpt != "base" else None,
                             "g_rel_source_hi": g + 0.03 if ckpt != "base" else None,
                             "g_rel_next_lo": g_next - 0.03 if g_next and ckpt != "base" else None,
                             "g_rel_next_hi": g_next + 0.03 if g_next and ckpt != "base" else None})
    return pl.DataFrame(rows)


def _ranking() -> pl.DataFrame:
    rows = []
    for size in NEXT:
        for baseline, start in (("source", 0.5), ("next", 0.3)):
            for k, ckpt in enumerate(("base", "c01", "c02")):
                own = baseline == "source" and ckpt == "base"
                score = start + 0.1 * k
                rows.append({"family": F, "size": size, "baseline": baseline, "ckpt": ckpt,
                             "tokens": TOK[ckpt], "flops": 6 * NPARAM[size] * TOK[ckpt],
                             "score": score, "score_lo": None if own else score - 0.05,
                             "score_hi": None if own else score + 0.05,
                             "wins": 0 if own else 5, "ties": 0 if own else 3,
                             "losses": 0 if own else 2})
    return pl.DataFrame(rows)


def _milestones() -> pl.DataFrame:
    return pl.DataFrame({"family": [F] * 4, "size": ["s", "m", "s", "m"],
                         "trajectory": ["merged", "merged", "raw", "merged"],
                         "task": ["pooled", "pooled", "pooled", "t1"],
                         "first_gain_ckpt": ["c02", "c01", "raw-c01", "c02"],
                         "parity_ckpt": ["c02", None, None, None]})


@pytest.fixture(scope="module")
def mcqa():
    return _mcqa()


def _line(ax, label):
    lines = [ln for ln in ax.lines if ln.get_label() == label]
    assert len(lines) == 1, (label, [ln.get_label() for ln in ax.lines])
    return lines[0]


@pytest.mark.parametrize("x", ["tokens", "flops"])
def test_trajectories_axes_lines_bands_and_milestones(mcqa, x):
    fig = plot_trajectories(mcqa, _ranking(), F, x, milestones=_milestones())
    fig.draw_without_rendering()  # tick labels exist once drawn
    a, b, c, d = fig.axes
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        fmt, ticks = ax.xaxis.get_major_formatter(), ax.get_xticks()
        assert fmt(ticks[0], 0) == "source" and fmt(ticks[1], 1) != "source"
    assert "tokens" in c.get_xlabel() if x == "tokens" else "FLOPs" in c.get_xlabel()
    assert "log scale" in c.get_xlabel() and "not to scale" in c.get_xlabel()  # how the source is shown
    assert "source accuracy" in a.get_ylabel() and "next-larger" in b.get_ylabel()
    assert "Davidson" in c.get_ylabel()
    # (a): the merged trajectory of "s" (mean task), not the raw one, from the first checkpoint on
    s_line = _line(a, "s")
    want_x = [TOK["c01"], TOK["c02"]] if x == "tokens" else [6e8 * 1e6, 6e8 * 1e7]
    assert list(s_line.get_xdata()) == pytest.approx(want_x)
    assert list(s_line.get_ydata()) == pytest.approx([1.10, 1.20])
    # source point at SOURCE_FACTOR x the smallest positive x of the figure
    smallest = TOK["c01"] if x == "tokens" else 6e8 * 1e6
    src = [ln for ln in a.lines if ln.get_linestyle() == "None" and ln.get_marker() not in ("*", "P")]
    assert src and all(ln.get_xdata()[0] == pytest.approx(smallest * SOURCE_FACTOR) for ln in src)
    # sizes apart in grayscale: different line styles and markers
    m_line = _line(a, "m")
    assert s_line.get_linestyle() != m_line.get_linestyle()
    assert s_line.get_marker() != m_line.get_marker()
    # (b) names the next-larger model per size; (d) too
    for ax in (b, d):
        assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["s vs m", "m vs l"]
    assert [t.get_text() for t in c.get_legend().get_texts()][:2] == ["s", "m"]
    # bands: MCQA bootstrap (a, b) and ranking bootstrap (c, d), one per size
    for ax in fig.axes:
        assert len([p for p in ax.collections if isinstance(p, PolyCollection)]) == 2
    # parity lines
    for ax, level in ((a, 1.0), (b, 1.0), (c, 0.5), (d, 0.5)):
        assert _line(ax, "parity").get_ydata()[0] == level
    # milestones: star at s/c02 and m/c01 on (a) (merged, pooled), plus at s/c02 on (b)
    stars = [ln for ln in a.lines if ln.get_marker() == "*"]
    got = sorted((ln.get_ydata()[0], ln.get_xdata()[0]) for ln in stars)
    m_c01 = TOK["c01"] if x == "tokens" else 6e9 * 1e6
    assert [v for pt in got for v in pt] == pytest.approx([1.10, m_c01, 1.20, want_x[1]])
    plus = [ln for ln in b.lines if ln.get_marker() == "P"]
    assert [v for p in plus for v in (p.get_xdata()[0], p.get_ydata()[0])] == pytest.approx(
        [want_x[1], 0.41 * 1.2 / 0.51])
    assert GAIN_LABEL in [t.get_text() for t in a.get_legend().get_texts()]
    assert PARITY_LABEL in [t.get_text() for t in b.get_legend().get_texts()]


def test_trajectories_without_milestones_have_no_markers(mcqa):
    fig = plot_trajectories(mcqa, _ranking(), F)
    assert not [ln for ax in fig.axes for ln in ax.lines if ln.get_marker() in ("*", "P")]


def test_mcqa_raw_vs_merged_both_visible_and_not_swapped(mcqa):
    fig = plot_mcqa_raw_vs_merged(mcqa, F)
    assert [ax.get_title() for ax in fig.axes] == ["s (next larger: m)", "m (next larger: l)"]
    for ax, size in zip(fig.axes, ("s", "m")):
        assert ax.get_xscale() == "log" and "tokens" in ax.get_xlabel()
        merged, raw = _line(ax, "CPT + SLERP (merged)"), _line(ax, "raw CPT")
        base = BASE_ACC[size] + 0.01
        assert list(merged.get_ydata()) == pytest.approx([base * 1.10, base * 1.20])
        assert list(raw.get_ydata()) == pytest.approx([base * 1.02, base * 1.04])
        # drawn so that neither hides the other: raw on top, dashed, hollow markers
        assert raw.get_zorder() > merged.get_zorder()
        assert raw.get_linestyle() != merged.get_linestyle() and raw.get_marker() != merged.get_marker()
        assert raw.get_markerfacecolor() == "white"
        # only the merged band is filled (two filled bands overlapping read as one grey block)
        assert len([p for p in ax.collections if isinstance(p, PolyCollection)]) == 1
        # reference lines: the source's and the next-larger model's accuracy
        assert _line(ax, SOURCE_LABEL).get_ydata()[0] == pytest.approx(base)
        assert _line(ax, NEXT_LABEL).get_ydata()[0] == pytest.approx(BASE_ACC[NEXT[size]] + 0.01)
        assert ax.get_legend() is None
    assert "share correct" in fig.axes[0].get_ylabel()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "CPT + SLERP (merged)", "raw CPT", SOURCE_LABEL, NEXT_LABEL]


def test_mcqa_tasks_one_legend_and_next_model_per_column(mcqa):
    fig = plot_mcqa_tasks(mcqa, F)
    assert len(fig.axes) == 2 * 2 and len(fig.legends) == 1
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["s (next larger: m)", "m (next larger: l)"]
    # second column, first row (task t1): the next-larger line is l's t1 accuracy, not m's
    assert _line(fig.axes[1], NEXT_LABEL).get_ydata()[0] == pytest.approx(BASE_ACC["l"])
    assert fig.axes[0].get_ylabel().startswith("t1") and fig.axes[2].get_ylabel().startswith("mean")


def _outcomes() -> pl.DataFrame:
    # s vs source: c01 -> c02; prompts p1..p5: tie->win, tie->win, loss->tie, win->win, none->loss
    first = {"p1": "tie", "p2": "tie", "p3": "loss", "p4": "win", "p5": None}
    last = {"p1": "win", "p2": "win", "p3": "tie", "p4": "win", "p5": "loss"}
    rows = []
    for ckpt, outs in (("c01", first), ("c02", last)):
        rows += [{"family": F, "size": "s", "ckpt": ckpt, "baseline": "source", "prompt_id": p,
                  "tokens": TOK[ckpt], "outcome": o} for p, o in outs.items()]
    # s vs next: source (base) -> c02, all three prompts loss -> tie; c01 in between is skipped
    for ckpt, o in (("base", "loss"), ("c01", "win"), ("c02", "tie")):
        rows += [{"family": F, "size": "s", "ckpt": ckpt, "baseline": "next", "prompt_id": p,
                  "tokens": TOK[ckpt], "outcome": o} for p in ("p1", "p2", "p3")]
    return pl.DataFrame(rows, schema_overrides={"outcome": pl.String})


def test_flow_counts():
    rows = _outcomes().filter(pl.col("baseline") == "source")
    assert flow_counts(rows, "c01", "c02") == {("tie", "win"): 2, ("loss", "tie"): 1,
                                               ("win", "win"): 1, ("none", "loss"): 1}


def test_judge_flows_columns_bands_and_labels():
    fig = plot_judge_flows(_outcomes(), F)
    fig.draw_without_rendering()
    src, nxt = fig.axes
    assert src.get_title() == "s, against the source model"
    assert nxt.get_title() == "s, against the next larger model"
    assert [t.get_text() for t in src.get_xticklabels()] == ["c01\n1M tokens", "c02\n10M tokens"]
    assert [t.get_text() for t in nxt.get_xticklabels()] == ["source\n0 tokens", "c02\n10M tokens"]
    assert "prompts" in src.get_ylabel() and "tokens" in nxt.get_xlabel()

    def blocks(ax, x):
        return {r.get_label().split("@")[0].lstrip("_"): r.get_height() for r in ax.patches
                if isinstance(r, Rectangle) and r.get_label().endswith(f"@{x}")}
    assert blocks(src, 0) == {"win": 1, "tie": 2, "loss": 1, "none": 1}
    assert blocks(src, 1) == {"win": 3, "tie": 1, "loss": 1}
    assert blocks(nxt, 0) == {"loss": 3} and blocks(nxt, 1) == {"tie": 3}
    # one band per (first, last) outcome pair, as thick as its prompts
    bands = {c.get_label().lstrip("_"): c for c in src.collections if isinstance(c, PolyCollection)}
    assert set(bands) == {"tie->win", "loss->tie", "win->win", "none->loss"}
    verts = bands["tie->win"].get_paths()[0].vertices
    assert np.ptp(verts[:, 1][verts[:, 0] == verts[0, 0]]) == pytest.approx(2)
    # the win block is on top of each column
    wins = [r for r in src.patches if r.get_label().startswith("_win@")]
    assert all(r.get_y() + r.get_height() == pytest.approx(5) for r in wins)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["win", "tie", "loss", "no verdict"]


def _failures() -> pl.DataFrame:
    rows = []
    for size in NEXT:
        for ckpt, variant in (("base", "base"), ("c01", "merged"), ("c02", "merged")):
            k = {"base": 0, "c01": 1, "c02": 2}[ckpt]
            rows.append({"family": F, "size": size, "ckpt": ckpt, "variant": variant,
                         "tokens": TOK[ckpt], "flops": 6 * NPARAM[size] * TOK[ckpt],
                         "other_language_share": 0.01 * k, "tokens_vs_source": 1 + 0.1 * k,
                         "truncated_share": 0.05 * k, "repetitive_share": None})
    return pl.DataFrame(rows, schema_overrides={"repetitive_share": pl.Float64})


def test_failure_modes_figure():
    fig = plot_failure_modes(_failures(), F)
    mixing, verbosity, truncation, repetition = fig.axes
    assert "share" in mixing.get_ylabel() and "ratio" in verbosity.get_ylabel()
    assert "tokens" in truncation.get_xlabel() and mixing.get_xscale() == "log"
    s, m = _line(truncation, "s"), _line(truncation, "m")
    assert list(s.get_ydata()) == pytest.approx([0.05, 0.10])
    assert s.get_linestyle() != m.get_linestyle()
    assert _line(verbosity, "m").get_ydata()[-1] == pytest.approx(1.2)
    assert any("no data" in t.get_text() for t in repetition.texts)


def test_every_figure_as_png_and_svg(mcqa, tmp_path):
    paths = {}
    for name, df in (("mcqa", mcqa), ("rankings", _ranking()), ("milestones", _milestones()),
                     ("prompt_outcomes", _outcomes()), ("failure_modes", _failures())):
        paths[name] = str(tmp_path / f"{name}.csv")
        df.write_csv(paths[name])
    kinds = ("trajectories_tokens", "trajectories_flops", "mcqa_raw_vs_merged", "mcqa_tasks",
             "win_tie_loss", "judge_flows")
    outputs = {}
    for kind in kinds:
        outputs[kind] = tmp_path / "fig" / f"{kind}.png"
        outputs[f"{kind}_svg"] = tmp_path / "fig" / f"{kind}.svg"
    write_figures(F, **{k: v for k, v in paths.items() if k != "failure_modes"}, **outputs)
    write_failure_mode_figure(paths["failure_modes"], F, str(tmp_path / "fig" / "fm.png"),
                              str(tmp_path / "fig" / "fm.svg"))
    for kind in [*kinds, "fm"]:
        png, svg = tmp_path / "fig" / f"{kind}.png", tmp_path / "fig" / f"{kind}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", kind
        assert b"<svg" in svg.read_bytes()[:2000], kind
    with pytest.raises(ValueError, match=r"need the \['prompt_outcomes'\] table"):
        write_figures(F, judge_flows=tmp_path / "x.png")
    with pytest.raises(ValueError, match="suffix must be one of"):
        plot_judge_flows(_outcomes(), F, tmp_path / "x.pdf")


def test_prompt_outcome_table_aggregates_both_orders(tmp_path):
    compute = compute_table([_checkpoints(tmp_path)])
    # candidate's view: cand_first A = win, base_first A = loss; "0" = tie
    games = {"p1": ("A", "B"),   # win, win -> win
             "p2": ("A", "A"),   # win, loss -> tie (the orders disagree)
             "p3": ("0", "A"),   # tie, loss -> loss
             "p4": (None, "0")}  # no verdict, tie -> tie from one game
    rows = [{"prompt_id": p, "order": o, "winner": w}
            for p, (a, b) in games.items() for o, w in (("cand_first", a), ("base_first", b))]
    path = tmp_path / "j.parquet"
    pl.DataFrame(rows, schema={"prompt_id": pl.String, "order": pl.String,
                               "winner": pl.String}).write_parquet(path)
    df = prompt_outcome_table({(F, "s", "c02", "source"): str(path)}, compute)
    got = {r["prompt_id"]: (r["wins"], r["ties"], r["losses"], r["valid"], r["outcome"])
           for r in df.iter_rows(named=True)}
    assert got == {"p1": (2, 0, 0, 2, "win"), "p2": (1, 0, 1, 2, "tie"),
                   "p3": (0, 1, 1, 2, "loss"), "p4": (0, 1, 0, 1, "tie")}
    assert set(df["tokens"]) == {TOK["c02"]}


def _checkpoints(tmp_path) -> str:
    path = tmp_path / "checkpoints.csv"
    pl.DataFrame({"family": F, "size": "s", "ckpt": ["c01", "c02"], "step": [1, 10],
                  "fraction": [0.1, 1.0], "tokens": [TOK["c01"], TOK["c02"]],
                  "flops": [6e8 * TOK["c01"], 6e8 * TOK["c02"]],
                  "train_loss": [3.0, 2.0]}).write_csv(path)
    return str(path)


def test_runs_table_from_histories(tmp_path):
    gpu = {"tokens": 10_000_000, "flops": 6e15,
           "segments": [{"ckpt": "c01", "first_step": 0, "step": 1, "resumed_from_step": 0,
                         "seconds": 1800, "world_size": 8, "accelerator": "AMD Instinct MI250X"},
                        {"ckpt": "c02", "first_step": 1, "step": 10, "resumed_from_step": 5,
                         "seconds": 5400, "world_size": 8, "accelerator": "AMD Instinct MI250X"}]}
    old = {"tokens": 100, "flops": 6.0,
           "segments": [{"ckpt": "c01", "first_step": 0, "step": 1, "resumed_from_step": 0,
                         "seconds": 36, "world_size": 1}]}
    paths = []
    for name, h in (("gpu", gpu), ("old", old)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(h))
    df = runs_table([str(p) for p in paths], [f"{F}/m", f"{F}/s"])
    s, m = df.rows(named=True)  # sorted small to large
    assert (m["size"], m["checkpoints"], m["accelerator"], m["accelerators"]) == (
        "m", 2, "AMD Instinct MI250X", 8)
    assert m["wall_hours"] == pytest.approx(2.0) and m["gpu_hours"] == pytest.approx(16.0)
    assert m["flops"] == pytest.approx(6e15) and m["resumed_segments"] == 1
    assert (s["accelerator"], s["gpu_hours"]) == ("not recorded", pytest.approx(0.01))
    with pytest.raises(ValueError, match="segments"):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"tokens": 1, "flops": 1.0, "segments": []}))
        runs_table([str(bad)], [f"{F}/s"])


def test_training_record_names_the_accelerator(tmp_path):
    """train_log carries each segment's accelerator into history.json (null for older records)."""
    from medadapt.train.records import RECORD, accelerator_name, write_log

    assert accelerator_name(False) == "cpu"
    dirs = []
    for i, (ckpt, acc) in enumerate((("c01", "cpu"), ("c02", None))):
        d = tmp_path / f"raw-{ckpt}"
        d.mkdir()
        rec = {"family": F, "size": "s", "ckpt": ckpt, "step": i + 1, "fraction": 0.5 * (i + 1),
               "tokens": 10 * (i + 1), "flops": 60.0 * (i + 1), "train_loss": 2.0, "run": "r",
               "first_step": i, "resumed_from_step": i, "state_saves": [], "seconds": 3.0,
               "world_size": 1, "log_history": [], "plan": {}, "train": {}, "seed": 0,
               "per_device_batch_size": 1, "model": "m", "packed": "p", "non_embedding_params": 1,
               "bf16": False, "fsdp": False, "versions": {}}
        if acc:
            rec["accelerator"] = acc
        (d / RECORD).write_text(json.dumps(rec))
        dirs.append(str(d))
    write_log(dirs, str(tmp_path / "log.csv"), str(tmp_path / "history.json"))
    history = json.loads((tmp_path / "history.json").read_text())
    assert [s["accelerator"] for s in history["segments"]] == ["cpu", None]
    row = runs_table([str(tmp_path / "history.json")], [f"{F}/s"]).row(0, named=True)
    assert (row["accelerator"], row["accelerators"], row["checkpoints"]) == ("cpu, not recorded", 1, 2)
    assert row["wall_hours"] == pytest.approx(6 / 3600)


def test_judge_examples_side_by_side(tmp_path):
    from medadapt.tables.examples import choose, write_examples

    # candidate's view: p1 win (A, B), p2 tie (A, A: the orders disagree), p3 loss (B, A), p4 win
    games = {"p1": ("A", "B"), "p2": ("A", "A"), "p3": ("B", "A"), "p4": ("A", "0")}
    rows = [{"prompt_id": p, "order": o, "winner": w, "raw": f'{{"winner": "{w}"}}', "status": "valid"}
            for p, (a, b) in games.items() for o, w in (("cand_first", a), ("base_first", b))]
    judg = tmp_path / "c02_vs_source.parquet"
    pl.DataFrame(rows).write_parquet(judg)
    for name, who in (("cand", "checkpoint"), ("src", "source")):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"id": p, "instruction": f"Frage {p} | mit Pipe",
                        "response": f"{who} {p}\nzweite Zeile"}) + "\n"
            for p in games))
    csv, md = tmp_path / "ex.csv", tmp_path / "ex.md"
    assert write_examples([str(judg)], [str(tmp_path / "cand.jsonl")], [str(tmp_path / "src.jsonl")],
                          [f"{F}/s/c02"], str(csv), str(md)) == {"examples": 3}
    df = pl.read_csv(csv)
    assert df["prompt_id"].to_list() == ["p1", "p2", "p3"]             # first win, tie, loss
    assert df["outcome"].to_list() == ["win", "tie", "loss"]
    p1 = df.row(0, named=True)
    assert p1["source_response"].startswith("source p1") and p1["ckpt_response"].startswith("checkpoint p1")
    assert p1["verdict_cand_first"] == "A (first shown): win for the checkpoint"
    assert p1["verdict_base_first"] == "B (second shown): win for the checkpoint"
    text = md.read_text()
    assert "| source p1<br>zweite Zeile | checkpoint p1<br>zweite Zeile |" in text
    assert "Frage p1 \\| mit Pipe" in text and "## fam s, c02: prompt p2 (tie)" in text
    assert choose({"a": "win", "b": "win", "c": None}, 2) == ["a", "b"]


def test_report_rules_bind_to_their_stages():
    """The names the report rules use (rules/report.smk) are the stages' parameters."""
    from medadapt.figures.failure_modes import write_failure_mode_figure
    from medadapt.runtime import Job, bind
    from medadapt.tables import write_tables
    from medadapt.tables.examples import write_examples

    figures = Job(rule="figures", input={"mcqa": "m.csv", "rankings": "r.csv",
                                         "milestones": "ms.csv", "prompt_outcomes": "p.csv"},
                  output={"judge_flows": "j.png", "judge_flows_svg": "j.svg"},
                  params={"family": F})
    assert bind(write_figures, figures)["judge_flows_svg"] == "j.svg"
    fm = Job(rule="failure_mode_figures", input={"failure_modes": "f.csv"},
             output={"out": "f.png", "out_svg": "f.svg"}, params={"family": F})
    assert bind(write_failure_mode_figure, fm)["out_svg"] == "f.svg"
    ex = Job(rule="judge_examples", input={"judgments": ["j"], "candidates": ["c"], "sources": ["s"]},
             output={"out_csv": "e.csv", "out_md": "e.md"}, params={"example_keys": ["f/s/c02"]})
    assert bind(write_examples, ex)["example_keys"] == ["f/s/c02"]
    tables = Job(rule="tables",
                 input={"checkpoints": ["c"], "histories": ["h"], "mcqa": ["m"], "fits": ["f"]},
                 output={"out_compute": "c", "out_mcqa": "m", "out_ranking": "r", "out_summary": "s",
                         "out_prompt_outcomes": "p", "out_runs": "runs"},
                 params={"mcqa_keys": [], "pairs": {}, "history_keys": ["f/s"], "mcqa_alpha": 0.05,
                         "mcqa_n_boot": 0, "mcqa_seed": 0})
    assert bind(write_tables, tables)["out_runs"] == "runs"


def test_tables_to_figures_end_to_end(tmp_path):
    """write_tables writes prompt_outcomes, runs (and Table 2 in summary.md) from stage outputs;
    the figures stage draws from those CSVs."""
    from medadapt.tables import write_tables
    from test_tables import make_inputs

    inputs = make_inputs(tmp_path / "results")
    histories, keys = [], []
    for family, size, _ in inputs["pairs"]:
        path = tmp_path / "results" / "train" / family / size / "history.json"
        path.write_text(json.dumps({"tokens": 16_000_000, "flops": 1e17, "segments": [
            {"ckpt": "c01", "first_step": 0, "step": 10, "resumed_from_step": 0, "seconds": 3600,
             "world_size": 4, "accelerator": "NVIDIA H100 80GB HBM3"}]}))
        histories.append(str(path))
        keys.append(f"{family}/{size}")
    out = {n: str(tmp_path / "tables" / f"{n}.csv") for n in
           ("compute", "mcqa", "rankings", "judgments", "milestones", "tests", "prompts", "runs")}
    summary = tmp_path / "tables" / "summary.md"
    write_tables(inputs["checkpoints"], inputs["mcqa"], inputs["mcqa_keys"], inputs["fits"],
                 inputs["pairs"], out["compute"], out["mcqa"], out["rankings"], str(summary),
                 judgments=inputs["judgments"], judgment_keys=inputs["judgment_keys"],
                 out_judgments=out["judgments"], mcqa_items=inputs["mcqa_items"],
                 out_mcqa_tests=out["tests"], out_mcqa_milestones=out["milestones"],
                 out_prompt_outcomes=out["prompts"], histories=histories, history_keys=keys,
                 out_runs=out["runs"], mcqa_alpha=0.05, mcqa_n_boot=20, mcqa_seed=0)
    runs = pl.read_csv(out["runs"])
    assert runs.height == len(inputs["pairs"]) and set(runs["gpu_hours"]) == {4.0}
    text = summary.read_text()
    assert "## Training cost per run (Table 2)" in text and "NVIDIA H100 80GB HBM3" in text
    prompts = pl.read_csv(out["prompts"])
    assert set(prompts["outcome"].drop_nulls()) <= {"win", "tie", "loss"}
    figs = {k: tmp_path / "fig" / f"{k}.{ext}" for k in ("judge_flows", "trajectories_tokens")
            for ext in ("png",)}
    svgs = {f"{k}_svg": tmp_path / "fig" / f"{k}.svg" for k in figs}
    write_figures("qwen2.5", mcqa=out["mcqa"], rankings=out["rankings"], milestones=out["milestones"],
                  prompt_outcomes=out["prompts"], **figs, **svgs)
    assert all(p.stat().st_size > 10_000 for p in [*figs.values(), *svgs.values()])


def test_mcqa_figures_say_how_the_source_is_shown(mcqa):
    for fig in (plot_mcqa_raw_vs_merged(mcqa, F), plot_mcqa_tasks(mcqa, F)):
        assert "not to scale" in fig.legends[0].get_title().get_text()
        assert "log scale" in fig.axes[-1].get_xlabel()


def test_every_new_output_has_a_caption_that_renders():
    """One caption per report output (workflow/report/<name>.rst), rendered as the report does."""
    from pathlib import Path
    from types import SimpleNamespace

    jinja2 = pytest.importorskip("jinja2")
    from docutils.core import publish_parts

    from medadapt.figures import FIGURES

    report = Path(__file__).resolve().parents[1] / "workflow" / "report"
    captions = {"win_tie_loss_fig" if k == "win_tie_loss" else k for k in FIGURES}
    captions |= {"failure_modes_fig", "runs", "prompt_outcomes", "judge_examples"}
    smk = SimpleNamespace(wildcards=SimpleNamespace(family="fam"))
    for name in sorted(captions):
        text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
            (report / f"{name}.rst").read_text()).render(snakemake=smk)
        html = publish_parts(text, writer="html",
                             settings_overrides={"halt_level": 2, "report_level": 5})["body"]
        assert len(html) > 300, name
        if name in FIGURES or name.endswith("_fig"):
            assert "fam" in html, name  # the caption names the family it shows


def test_overlapping_bands_stay_translucent(mcqa):
    """Bands of several sizes over the same x range must not add up to an opaque block."""
    fig = plot_trajectories(mcqa, _ranking(), F)
    fills = [p for p in fig.axes[0].collections if isinstance(p, PolyCollection)]
    total = 1.0
    for p in fills:
        total *= 1 - p.get_alpha()
    assert 1 - total <= 0.35  # opacity where every size's band overlaps
