"""End to end: the demo workflow runs every stage for real and its outputs hold what they should.

Runs `snakemake --configfile config/demo.yaml` into a temporary results directory (minutes on 2 cores).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMK = [sys.executable, "-m", "snakemake"]
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
SIZES = DEMO["families"]["tiny"]["adapt"]
CKPTS = [f"c{i:02d}" for i in range(1, DEMO["train"]["checkpoints"]["count"] + 1)]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def snakemake(results: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SMK, "--configfile", "config/demo.yaml", "--profile", "profiles/local",
           "--config", f"results={results}", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=2400)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("demo") / "results"
    snakemake(results)
    return results


def test_every_checkpoint_is_trained_merged_and_evaluated(demo):
    for size in SIZES:
        log = pl.read_csv(demo / "train" / "tiny" / size / "checkpoints.csv")
        assert log["ckpt"].to_list() == CKPTS
        assert log["step"].is_sorted() and log["step"].n_unique() == len(CKPTS)
        assert (log["tokens"] > 0).all() and (log["flops"] > 0).all()
        for c in CKPTS:
            for variant in (c, f"raw-{c}"):
                assert (demo / "models" / "tiny" / size / variant / "config.json").exists()
                res = json.loads((demo / "mcqa" / "tiny" / size / f"{variant}.json").read_text())
                assert 0.0 <= res["mean_acc"] <= 1.0
                assert res["tasks"]["medadapt_demo_mcqa_de"]["n"] >= 40


def test_mcqa_table_has_relative_gain_against_both_baselines(demo):
    mcqa = pl.read_csv(demo / "tables" / "mcqa.csv")
    mean = mcqa.filter(pl.col("task") == "mean")
    # 3 bases + 2 sizes x (3 merged + 3 raw)
    assert mean.height == 3 + len(SIZES) * 2 * len(CKPTS)
    merged = mean.filter(pl.col("variant") == "merged")
    assert merged["g_rel_source"].is_between(0.0, 10.0).all()
    assert merged["g_rel_next"].drop_nulls().len() == merged.height


def test_mcqa_items_give_paired_tests_and_milestones(demo):
    for size in SIZES:
        items = pl.read_parquet(demo / "mcqa" / "tiny" / size / "c01.items.parquet")
        res = json.loads((demo / "mcqa" / "tiny" / size / "c01.json").read_text())
        assert items.height == res["tasks"]["medadapt_demo_mcqa_de"]["n"]
        assert items["correct"].mean() == pytest.approx(res["tasks"]["medadapt_demo_mcqa_de"]["acc"])
    tests = pl.read_csv(demo / "tables" / "mcqa_tests.csv")
    # 2 sizes x 2 trajectories x (3 checkpoints vs source + 4 points vs next) x (1 task + pooled)
    assert tests.height == len(SIZES) * 2 * (len(CKPTS) + len(CKPTS) + 1) * 2
    assert tests["p_value"].is_between(0.0, 1.0).all() and (tests["p_holm"] >= tests["p_value"]).all()
    milestones = pl.read_csv(demo / "tables" / "mcqa_milestones.csv")
    assert milestones.height == len(SIZES) * 2 * 2
    summary = (demo / "tables" / "summary.md").read_text()
    assert "MCQA parity with next" in summary and "## MCQA significance" in summary
    mcqa = pl.read_csv(demo / "tables" / "mcqa.csv")
    merged = mcqa.filter((pl.col("variant") == "merged") & (pl.col("task") == "mean"))
    assert merged["g_rel_source_lo"].drop_nulls().len() > 0
    assert (merged["g_rel_source_lo"] <= merged["g_rel_source_hi"]).all()


def test_judgments_cover_every_prompt_in_both_orders(demo):
    n_prompts = sum(1 for line in (ROOT / DEMO["generate"]["prompts"]).read_text().splitlines() if line.strip())
    for size in SIZES:
        # the source never plays itself; against the next larger model it does
        assert not (demo / "judge" / "tiny" / size / "base_vs_source.parquet").exists()
        for ckpt, baseline in [("base", "next")] + [(c, b) for c in CKPTS for b in ("source", "next")]:
            df = pl.read_parquet(demo / "judge" / "tiny" / size / f"{ckpt}_vs_{baseline}.parquet")
            assert df.height == 2 * n_prompts
            assert set(df["order"].unique()) == {"cand_first", "base_first"}
            assert set(df["outcome"].drop_nulls().unique()) <= {"win", "tie", "loss"}
            assert df["outcome"].drop_nulls().len() >= n_prompts  # most verdicts parse


def test_davidson_scores_and_win_tie_loss(demo):
    for size in SIZES:
        for baseline in ("source", "next"):
            fit = pl.read_csv(demo / "fit" / "tiny" / f"{size}_vs_{baseline}.csv")
            assert fit["ckpt"].to_list() == ["base", *CKPTS]
            assert fit["fitted"].to_list() == [baseline == "next"] + [True] * len(CKPTS)
            assert fit["score"].is_between(0.0, 1.0).all()
            fitted = fit.filter(pl.col("fitted"))
            assert (fitted["score_lo"] <= fitted["score"] + 1e-9).all()
            assert (fitted["score"] <= fitted["score_hi"] + 1e-9).all()
            assert ((fitted["wins"] + fitted["ties"] + fitted["losses"]) > 0).all()
            assert (fitted["valid"] + fitted["invalid"] == fitted["games"]).all()
            if baseline == "source":
                assert fit.row(0, named=True)["score"] == 0.5
    usage = pl.read_csv(demo / "tables" / "llm_usage.csv")
    total = usage.filter(pl.col("stage") == "all").row(0, named=True)
    assert total["answers"] > 0 and total["requests"] >= total["answers"]


def test_corpus_stages_produce_consistent_tables(demo):
    stats = pl.read_csv(demo / "tables" / "corpus_stats.csv")
    assert 0 < stats["docs_kept"][0] <= stats["docs_total"][0]
    val = pl.read_csv(demo / "tables" / "corpus_validation.csv")
    assert set(val["system"]) == {"llm_annotator", "classifier"}
    assert val["n"].min() >= 30


def test_figures_and_rerun_has_nothing_to_do(demo):
    for kind in ("trajectories_tokens", "trajectories_flops", "mcqa_raw_vs_merged", "mcqa_tasks",
                 "win_tie_loss", "judge_flows", "failure_modes"):
        png = demo / "figures" / "tiny" / f"{kind}.png"
        assert png.stat().st_size > 10_000
        assert b"<svg" in (demo / "figures" / "tiny" / f"{kind}.svg").read_bytes()[:2000]
    # Table 2 from the run histories: the demo trains on the CPU
    runs = pl.read_csv(demo / "tables" / "runs.csv")
    assert runs["size"].to_list() == SIZES and set(runs["accelerator"]) == {"cpu"}
    assert (runs["checkpoints"] == len(CKPTS)).all() and (runs["gpu_hours"] > 0).all()
    outcomes = pl.read_csv(demo / "tables" / "prompt_outcomes.csv")
    assert set(outcomes["outcome"].drop_nulls()) <= {"win", "tie", "loss"}
    examples = pl.read_csv(demo / "tables" / "judge_examples.csv")
    assert set(examples["size"].cast(pl.String)) == set(SIZES)
    assert (examples["ckpt"] == CKPTS[-1]).all()
    again = snakemake(demo, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_report(demo):
    """The report opens in headless Chromium (tests/browser.py) without a script or console error;
    every embedded figure and table decodes in the browser, and every figure opens from the menu."""
    from browser import check_report

    report = demo / "report.html"
    snakemake(demo, "--report", str(report))
    seen = check_report(report, demo / "report-screenshots")
    assert seen["errors"] == []
    bad = [r for r in seen["results"] if not r["ok"]]
    assert not bad, bad
    kinds = {r["mime"] for r in seen["results"]}
    assert {"image/png", "text/csv"} <= kinds
    names = {r["name"] for r in seen["results"]}
    assert {"mcqa.csv", "rankings.csv", "corpus_validation.csv", "pr_curve.png"} <= names
    figures = [r for r in seen["results"] if r["mime"] == "image/png" and "/figures/tiny/" in r["path"]]
    assert figures and len(seen["opened"]) == len(figures)
    assert all(o["shown"] for o in seen["opened"]), seen["opened"]


def test_failure_modes_per_checkpoint(demo):
    """Every generating model (each adapted size's source and merged checkpoints, the largest
    size's source) has a row over all prompts, and the trajectories are drawn."""
    table = pl.read_csv(demo / "tables" / "failure_modes.csv")
    n_prompts = DEMO["generate"]["expected_count"]
    assert table.height == len(SIZES) * (1 + len(CKPTS)) + 1
    assert (table["responses"] == n_prompts).all()
    assert table.filter(pl.col("ckpt") == "base")["tokens_vs_source"].to_list() == [1.0] * 3
    assert pl.read_parquet(demo / "tables" / "failure_modes_responses.parquet").height == \
        table.height * n_prompts
    assert (demo / "figures" / "tiny" / "failure_modes.png").stat().st_size > 10_000
