"""End to end: the demo workflow runs every stage for real and its outputs hold what they should.

Runs `snakemake --configfile config/demo.yaml` into a temporary results directory (minutes on 2 cores).
The demo runs on the demo world (resources/demo/world), whose facts are known, so besides shapes the
tests check DIRECTIONS: CPT teaches the sources the world's facts (MCQA), SLERP keeps part of it,
the stand-in judge prefers the adapted model, the next-larger source knows more than the smaller,
the judge's injected position bias shows in the verdicts and is cancelled by judging both orders,
and the corpus filter keeps the medical documents.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml

from workflow_dir import make_workdir, snakemake_command

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
SIZES = DEMO["families"]["tiny"]["adapt"]
CKPTS = [f"c{i:02d}" for i in range(1, DEMO["train"]["checkpoints"]["count"] + 1)]
[TASK] = DEMO["mcqa"]["tasks"]
WORLD = ROOT / "resources" / "demo" / "world"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def snakemake(results: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # A working directory of its own beside the results: its .snakemake/ never meets the checkout's.
    work = make_workdir(Path(results).parent / "work")
    cmd = snakemake_command(work, "--configfile", "config/demo.yaml", "--profile", "profiles/local",
                            "--config", f"results={results}", *args)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=2400)
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
                assert res["tasks"][TASK]["n"] >= 40


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
        assert items.height == res["tasks"][TASK]["n"]
        assert items["correct"].mean() == pytest.approx(res["tasks"][TASK]["acc"])
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


# --- directions: what the demo world's known facts let us expect ----------------------------------
# One item of the world's 72-item MCQA test is 0.014; tolerances are stated in items.
ITEM = 1 / 72


def acc(demo: Path, size: str, ckpt: str) -> float:
    return json.loads((demo / "mcqa" / "tiny" / size / f"{ckpt}.json").read_text())["tasks"][TASK]["acc"]


def test_cpt_teaches_the_world_facts(demo):
    """The sources know German but not the world's facts; CPT on the filtered corpus teaches them:
    the last raw checkpoint gains at least 0.20 over its source, and accuracy rises with tokens."""
    mcqa = pl.read_csv(demo / "tables" / "mcqa.csv").filter(
        (pl.col("task") == TASK) & (pl.col("variant") == "raw"))
    for size in SIZES:
        source = acc(demo, size, "base")
        # in the order of the training tokens the tables give each checkpoint
        by_tokens = mcqa.filter(pl.col("size") == size).sort("tokens")
        assert by_tokens["tokens"].n_unique() == len(CKPTS)
        raw = [acc(demo, size, ckpt) for ckpt in by_tokens["ckpt"]]
        assert raw == pytest.approx(by_tokens["acc"].to_list())
        assert raw[-1] >= source + 0.20, (size, source, raw)
        assert all(b >= a - 2 * ITEM for a, b in zip(raw, raw[1:])), (size, raw)  # rising (2 items slack)
        assert raw[-1] > raw[0] + 0.10, (size, raw)


def test_slerp_lands_between_source_and_raw(demo):
    """SLERP(raw-cNN, source) at t = 0.5 keeps part of what CPT taught: no merged checkpoint falls
    below both its source and its raw checkpoint, and the last one lies between them (within 3
    items each: interpolated weights are not an interpolated score), clearly above the source.
    An early merged checkpoint may beat its raw one (in the demo s c01: 0.40 against 0.31, a raw
    checkpoint taken near the peak learning rate, just after warmup), so only the last one is
    bounded above."""
    for size in SIZES:
        source = acc(demo, size, "base")
        for c in CKPTS:
            merged, raw = acc(demo, size, c), acc(demo, size, f"raw-{c}")
            assert merged >= min(source, raw) - 3 * ITEM, (size, c, source, merged, raw)
        last, last_raw = acc(demo, size, CKPTS[-1]), acc(demo, size, f"raw-{CKPTS[-1]}")
        assert source + 0.10 <= last <= last_raw + 3 * ITEM, (size, source, last, last_raw)


def test_mcqa_relative_gain_is_against_the_right_baseline(demo):
    """G_rel (paper eq. 1) = accuracy / the baseline's accuracy: the source's for g_rel_source,
    the next-larger source's for g_rel_next, recomputed here from the MCQA results."""
    mcqa = pl.read_csv(demo / "tables" / "mcqa.csv").filter(pl.col("task") == TASK)
    sizes = DEMO["families"]["tiny"]["models"]
    nxt = {s: list(sizes)[list(sizes).index(s) + 1] for s in SIZES}
    for row in mcqa.filter(pl.col("size").is_in(SIZES)).iter_rows(named=True):
        a = acc(demo, row["size"], row["ckpt"])
        assert row["acc"] == pytest.approx(a)
        assert row["g_rel_source"] == pytest.approx(a / acc(demo, row["size"], "base"))
        assert row["g_rel_next"] == pytest.approx(a / acc(demo, nxt[row["size"]], "base"))


def test_judge_prefers_the_adapted_model(demo):
    """The stand-in judge checks the world's facts: the last merged checkpoint beats its source
    (Davidson strength share ≥ 0.65, the bootstrap interval's lower bound above 0.5)."""
    for size in SIZES:
        fit = pl.read_csv(demo / "fit" / "tiny" / f"{size}_vs_source.csv")
        last = fit.filter(pl.col("ckpt") == CKPTS[-1]).row(0, named=True)
        assert last["status"] == "converged", last
        assert last["score"] >= 0.65 and last["score_lo"] > 0.5, (size, last)


def _tiers_known(size: str) -> set[int]:
    """The knowledge tiers a source read in pre-training (its pretrain/knowledge-K.jsonl files)."""
    files = DEMO["families"]["tiny"]["pretrain"]["sizes"][size]["files"]
    paths = [f if isinstance(f, str) else f["path"] for f in files]
    return {int(Path(p).stem.split("-")[1]) for p in paths if Path(p).stem.startswith("knowledge-")}


def _tier_prompts(tiers: set[int]) -> set[str]:
    """The world's instruction prompts about diseases of these knowledge tiers."""
    facts = json.loads((WORLD / "facts.json").read_text())
    tier = {d["id"]: d["tier"] for d in facts["diseases"]}
    return {p["id"] for p in facts["prompts"] if tier[p["disease"]] in tiers}


def test_the_next_larger_source_knows_more(demo):
    """The next-larger baseline is stronger than the source it is compared with: it has read one
    more tier of the world's facts in pre-training, so it answers more MCQA items about that tier
    (and more items overall), and on that tier's prompts the judge prefers its free answers.

    The judge's check is on the tier the known answer is about: over all prompts its source point
    mixes in the 36 prompts about diseases neither source read, where verdicts follow which wrong
    facts each states (a source that learnt a tier names its drugs elsewhere too) and went either
    way between runs (s vs m: 0.397 in one run, 0.535 in another on the same machine kind). On the
    new tier the smaller source won 6 and 3 of 19 and 22 decisive games (s vs m, m vs l) in the
    second run."""
    items = {r["id"]: r for r in map(json.loads, (WORLD / "mcqa" / "test.jsonl").open())}
    sizes = list(DEMO["families"]["tiny"]["models"])
    for size in SIZES:
        nxt = sizes[sizes.index(size) + 1]
        new_tiers = _tiers_known(nxt) - _tiers_known(size)
        assert new_tiers, (size, nxt)

        def tier_acc(model: str) -> float:
            df = pl.read_parquet(demo / "mcqa" / "tiny" / model / "base.items.parquet")
            hits = [ok for i, ok in zip(df["item_id"], df["correct"]) if items[i]["tier"] in new_tiers]
            return sum(hits) / len(hits)

        assert tier_acc(nxt) > tier_acc(size), (size, nxt, tier_acc(size), tier_acc(nxt))
        assert acc(demo, nxt, "base") > acc(demo, size, "base"), (size, nxt)
        games = pl.read_parquet(demo / "judge" / "tiny" / size / "base_vs_next.parquet").filter(
            pl.col("prompt_id").is_in(sorted(_tier_prompts(new_tiers))) & pl.col("outcome").is_in(["win", "loss"]))
        assert games.height >= 10, (size, nxt, games.height)  # decisive games on the tier's prompts
        smaller_wins = (games["outcome"] == "win").mean()
        assert smaller_wins < 0.5, (size, nxt, smaller_wins, games["outcome"].value_counts().rows())


def _one_order_share(games: pl.DataFrame, order: str) -> float:
    g = games.filter((pl.col("order") == order) & pl.col("outcome").is_in(["win", "loss"]))
    return (g["outcome"] == "win").mean()


def test_position_bias_is_visible_and_cancelled_by_both_orders(demo):
    """The judge's injected position bias (judge.serve.reference.position_bias) shows: the response
    shown first wins more verdicts than the one shown second, and the fit's order effect γ is
    above 1. Judging both orders cancels it: the candidate wins more often when shown first than
    when shown second, and the fitted score (with γ) lies between the two one-order shares."""
    bias = DEMO["judge"]["serve"]["reference"]["position_bias"]
    assert bias > 0
    games = pl.concat([pl.read_parquet(p) for p in sorted((demo / "judge").rglob("*_vs_*.parquet"))])
    first = (games["winner"] == "A").sum()
    second = (games["winner"] == "B").sum()
    assert first / (first + second) >= 0.55, (first, second)
    for size in SIZES:
        for baseline in ("source", "next"):
            fit = pl.read_csv(demo / "fit" / "tiny" / f"{size}_vs_{baseline}.csv").filter(pl.col("fitted"))
            assert (fit["gamma"] > 1.0).all(), (size, baseline, fit["gamma"].to_list())
    for size in SIZES:
        last = pl.read_parquet(demo / "judge" / "tiny" / size / f"{CKPTS[-1]}_vs_source.parquet")
        cand_first, cand_second = _one_order_share(last, "cand_first"), _one_order_share(last, "base_first")
        assert cand_first > cand_second, (size, cand_first, cand_second)
        score = pl.read_csv(demo / "fit" / "tiny" / f"{size}_vs_source.csv").filter(
            pl.col("ckpt") == CKPTS[-1])["score"][0]
        assert cand_second - 0.05 <= score <= cand_first + 0.05, (size, cand_second, score, cand_first)


def test_corpus_filter_keeps_the_medical_documents(demo):
    """The stand-in annotator's labels agree with the simulated human annotators (F1 0.87: its
    vocabulary rule misses some borderline medical documents, as the world intends), the classifier
    trained on them as well, and the filtered corpus is mostly the world's medical documents."""
    val = pl.read_csv(demo / "tables" / "corpus_validation.csv")
    # against the majority of the three simulated human annotators (the world's validation file)
    f1 = {r["system"]: r["f1"] for r in val.filter(pl.col("reference") == "majority").iter_rows(named=True)}
    assert f1["llm_annotator"] >= 0.85, val
    assert f1["classifier"] >= 0.85, val
    truth = {r["id"]: r["label"] for r in map(json.loads, (WORLD / "corpus" / "truth.jsonl").open())}
    kept = pl.read_parquet(demo / "corpus" / "finemed.parquet")["id"].to_list()
    medical = sum(truth[i] for i in kept)
    assert medical / len(kept) >= 0.95  # precision against the truth
    assert medical / sum(truth.values()) >= 0.8  # recall
