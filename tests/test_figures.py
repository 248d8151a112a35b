"""The paper's figures from synthetic tables (2 families x 2 sizes x 3 checkpoints, plus 4 x 18),
and the Snakemake report captions (rendered with Jinja + docutils as `snakemake --report` does)."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from matplotlib.image import imread

from medadapt.figures import (SOURCE_FACTOR, plot_mcqa_raw_vs_merged, plot_mcqa_tasks,
                              plot_trajectories, plot_win_tie_loss, write_figures)
from medadapt.tables import (compute_table, mcqa_index, mcqa_table, ranking_table, read_table,
                             write_tables)
from test_tables import TOKENS, make_inputs

REPORT = Path(__file__).resolve().parents[1] / "workflow" / "report"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, pl.DataFrame]:
    inputs = make_inputs(tmp_path_factory.mktemp("results"))
    compute = compute_table(inputs["checkpoints"])
    return {"mcqa": mcqa_table(mcqa_index(inputs["mcqa"], inputs["mcqa_keys"]), inputs["pairs"], compute),
            "ranking": ranking_table(inputs["fits"], compute)}


def _png_ok(path: Path, min_bytes: int = 20_000) -> tuple[int, int]:
    assert path.exists() and path.stat().st_size > min_bytes
    height, width = imread(path).shape[:2]
    return width, height


def _tick_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


@pytest.mark.parametrize("x", ["tokens", "flops"])
def test_trajectories_grid(tables, tmp_path, x):
    out = tmp_path / f"traj_{x}.png"
    fig = plot_trajectories(tables["mcqa"], tables["ranking"], "qwen2.5", x, out)
    width, height = _png_ok(out)
    assert len(fig.axes) == 4 and width > 1000 and height > 800
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("(a) MCQA") and titles[3].startswith("(d) Generative")
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        assert len(ax.get_legend().get_texts()) == 2 + 1              # one line per size, parity
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["0.5b vs 1.5b", "1.5b vs 3b",
                                                                           "parity"]
    labels = _tick_labels(fig.axes[2])
    assert labels[0] == "source" and len(labels) >= 2
    # the source point sits at SOURCE_FACTOR x the first checkpoint, parity lines at 1.0 and 0.5
    first_x = TOKENS[0] if x == "tokens" else min(tables["ranking"].filter(pl.col("tokens") > 0)["flops"])
    src_marker = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "None"][0]
    assert src_marker.get_xdata()[0] == pytest.approx(first_x * SOURCE_FACTOR)
    assert 1.0 in [ln.get_ydata()[0] for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    assert 0.5 in [ln.get_ydata()[0] for ln in fig.axes[2].lines if ln.get_linestyle() == "--"]
    assert len(fig.axes[2].collections) == 2                           # one CI band per size


def test_g_rel_plotted_values(tables):
    fig = plot_trajectories(tables["mcqa"], tables["ranking"], "qwen3")
    line = next(ln for ln in fig.axes[0].lines if ln.get_label() == "0.6b")
    assert list(line.get_xdata()) == list(TOKENS)
    assert list(line.get_ydata()) == pytest.approx([1.05, 1.10, 1.15])


def test_trajectories_missing_comparison_is_an_empty_panel(tables):
    ranking = tables["ranking"].filter(pl.col("baseline") == "source")
    fig = plot_trajectories(tables["mcqa"], ranking, "qwen2.5")
    assert len(fig.axes) == 4
    assert any("no comparison" in t.get_text() for t in fig.axes[3].texts)


def test_mcqa_raw_vs_merged(tables, tmp_path):
    out = tmp_path / "raw.png"
    fig = plot_mcqa_raw_vs_merged(tables["mcqa"], "qwen3", out)
    _png_ok(out)
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["0.6b (next larger: 1.7b)",
                                                                         "1.7b (next larger: 4b)"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["CPT + SLERP (merged)", "raw CPT", "source model (0 tokens)", "next larger model"]
    merged = next(ln for ln in fig.axes[0].lines if ln.get_label() == "CPT + SLERP (merged)")
    raw = next(ln for ln in fig.axes[0].lines if ln.get_label() == "raw CPT")
    assert merged.get_ydata()[-1] > raw.get_ydata()[-1]                # synthetic: +15 % vs +9 %


def test_mcqa_tasks_facets(tables, tmp_path):
    out = tmp_path / "tasks.png"
    fig = plot_mcqa_tasks(tables["mcqa"], "qwen2.5", out)
    _png_ok(out)
    assert len(fig.axes) == 3 * 2                                      # (2 tasks + mean) x 2 sizes
    assert fig.axes[4].get_ylabel().startswith("mean")


def test_win_tie_loss(tables, tmp_path):
    out = tmp_path / "wtl.png"
    fig = plot_win_tie_loss(tables["ranking"], "qwen2.5", out)
    _png_ok(out)
    assert len(fig.axes) == (1 + 2) * 2                                # pooled + 2 sizes, 2 baselines
    assert fig.axes[0].get_title().startswith("against source model")
    # against the source: 3 outcomes x 3 checkpoints (the source never plays itself); against the
    # next larger model the source is judged too: 4 bars; each bar stacks to 100 %
    assert _tick_labels(fig.axes[2])[0] != "source" and _tick_labels(fig.axes[3])[0] == "source"
    for ax, n_bars in ((fig.axes[2], 3), (fig.axes[3], 4)):
        bars = ax.patches
        assert len(bars) == 3 * n_bars
        tops = {}
        for b in bars:
            tops[round(b.get_x(), 3)] = max(tops.get(round(b.get_x(), 3), 0), b.get_y() + b.get_height())
        assert all(v == pytest.approx(100) for v in tops.values())


def test_paper_scale_4_sizes_18_checkpoints(tmp_path):
    """4 sizes x 18 log-spaced checkpoints up to 9.5B tokens render without crowding errors."""
    sizes, m, r = ["0.5b", "1.5b", "3b", "7b"], [], []
    fractions = [0.0] + [10 ** (-3 + 3 * i / 17) for i in range(18)]
    for k, size in enumerate(sizes):
        for i, f in enumerate(fractions):
            ckpt, t = ("base" if i == 0 else f"c{i:02d}"), int(9.5e9 * f)
            m.append({"family": "q", "size": size, "next_size": "14b", "ckpt": ckpt,
                      "variant": "base" if i == 0 else "merged", "task": "mean", "acc": 0.4 + f / 10,
                      "acc_stderr": 0.01, "tokens": t, "flops": 6e9 * (k + 1) * t,
                      "g_rel_source": 1 + f / 10, "g_rel_next": 0.9 + f / 10})
            for bl in ("source", "next"):
                r.append({"family": "q", "size": size, "baseline": bl, "ckpt": ckpt, "tokens": t,
                          "flops": 6e9 * (k + 1) * t, "score": 0.5 + f / 5, "score_lo": 0.45 + f / 5,
                          "score_hi": 0.55 + f / 5, "wins": 200, "ties": 100, "losses": 134})
    m, r = pl.DataFrame(m), pl.DataFrame(r)
    fig = plot_trajectories(m, r, "q", "tokens", tmp_path / "t.png")
    assert _tick_labels(fig.axes[2]) == ["source", "10M", "100M", "1B", "10B"]
    assert len(fig.axes[0].get_legend().get_texts()) == 4 + 1      # sizes, parity
    fig = plot_win_tie_loss(r, "q", tmp_path / "w.png")
    assert len(fig.axes) == 5 * 2 and len(fig.axes[2].patches) == 3 * 19
    _png_ok(tmp_path / "w.png")


def test_errors_on_empty_or_unknown(tables):
    empty = tables["mcqa"].clear()
    with pytest.raises(ValueError, match="MCQA table is empty"):
        plot_trajectories(empty, tables["ranking"], "qwen2.5")
    with pytest.raises(ValueError, match="ranking table is empty"):
        plot_win_tie_loss(tables["ranking"].clear(), "qwen2.5")
    with pytest.raises(ValueError, match=r"no rows for family 'llama'.*qwen2\.5"):
        plot_mcqa_raw_vs_merged(tables["mcqa"], "llama")
    with pytest.raises(ValueError, match="missing column"):
        plot_mcqa_tasks(tables["mcqa"].drop("acc"), "qwen2.5")
    with pytest.raises(ValueError, match="x must be 'tokens' or 'flops'"):
        plot_trajectories(tables["mcqa"], tables["ranking"], "qwen2.5", x="steps")
    only_base = tables["mcqa"].filter(pl.col("variant") == "base")
    with pytest.raises(ValueError, match="no checkpoints"):
        plot_mcqa_raw_vs_merged(only_base, "qwen2.5")


def test_write_figures_from_csv(tables, tmp_path):
    paths = {}
    for name in ("mcqa", "ranking"):
        paths[name] = tmp_path / f"{name}.csv"
        tables[name].write_csv(paths[name])
    outputs = {name: tmp_path / "figures" / f"{name}.png" for name in
               ("trajectories_tokens", "trajectories_flops", "mcqa_raw_vs_merged", "mcqa_tasks",
                "win_tie_loss")}
    written = write_figures("qwen3", mcqa=str(paths["mcqa"]), rankings=str(paths["ranking"]), **outputs)
    assert set(written) == set(outputs)
    for path in outputs.values():
        _png_ok(path)
    with pytest.raises(ValueError, match="unknown output name"):
        write_figures("qwen3", mcqa=str(paths["mcqa"]), fig1=tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"need the \['ranking'\] table"):
        write_figures("qwen3", mcqa=str(paths["mcqa"]), win_tie_loss=tmp_path / "x.png")


def test_report_captions_render(tmp_path):
    """Each caption renders through Jinja (with a snakemake object) and docutils without warnings."""
    jinja2 = pytest.importorskip("jinja2")
    from docutils.core import publish_parts

    inputs = make_inputs(tmp_path / "results")
    summary = tmp_path / "summary.md"
    write_tables(inputs["checkpoints"], inputs["mcqa"], inputs["mcqa_keys"], inputs["fits"], inputs["pairs"],
                 str(tmp_path / "c.csv"), str(tmp_path / "m.csv"), str(tmp_path / "r.csv"), str(summary),
                 mcqa_alpha=0.05, mcqa_n_boot=0, mcqa_seed=0)
    smk = SimpleNamespace(wildcards=SimpleNamespace(family="qwen2.5"),
                          output=SimpleNamespace(out_summary=str(summary)))
    captions = sorted(REPORT.glob("*.rst"))
    assert {p.stem for p in captions} >= {"trajectories_tokens", "trajectories_flops",
                                          "mcqa_raw_vs_merged", "mcqa_tasks", "win_tie_loss_fig",
                                          "compute", "mcqa", "rankings", "win_tie_loss", "summary",
                                          "workflow"}
    for path in captions:
        text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
            path.read_text()).render(snakemake=smk)
        html = publish_parts(text, writer="html",
                             settings_overrides={"halt_level": 2, "report_level": 5})["body"]
        assert len(html) > 200, path.name
        if path.stem.startswith(("trajectories", "mcqa_", "win_tie_loss_fig")):
            assert "qwen2.5" in html, path.name
        if path.stem == "summary":
            assert "Results summary" in html and "G_rel vs source" in html
    assert math.isclose(SOURCE_FACTOR, 1 / 3)  # the captions describe the source at x/3
    assert "one third" in (REPORT / "trajectories_tokens.rst").read_text()


def test_read_table_keeps_numeric_looking_sizes_as_strings(tmp_path):
    path = tmp_path / "t.csv"
    pl.DataFrame({"family": ["f"], "size": ["14"], "tokens": [1], "flops": [4e20]}).write_csv(path)
    back = read_table(path)
    assert back["size"].to_list() == ["14"] and back["flops"][0] == pytest.approx(4e20)
