"""Paired MCQA statistics on hand-made item tables: exact McNemar p-values checked against the
binomial sums written out here, Holm on a hand case, the tests and milestones of a hand-made run
(every p-value and adjustment worked out in the comments), and the paired item bootstrap of G_rel.
"""
from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from medadapt.significance import Paired, holm, mcnemar_exact, paired, ratio_interval
from medadapt.tables import (compute_table, items_index, load_items, mcqa_index, mcqa_table,
                             mcqa_tests_table, milestones_table, summary_markdown)
from medadapt.tables.items import read_items
from medadapt.tables.significance import g_rel_intervals


def exact_mcnemar_by_hand(b: int, c: int) -> float:
    """Two-sided exact McNemar: twice the smaller binomial tail of the b + c discordant items at 1/2."""
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


# --- McNemar and Holm ------------------------------------------------------------------------------

def test_paired_counts_the_2x2_table():
    a = [1, 1, 0, 0, 1, 0, 1]
    b = [1, 0, 1, 0, 1, 0, 0]
    t = paired(a, b)
    assert t == Paired(both=2, a_only=2, b_only=1, neither=2)
    assert (t.n, t.acc_a, t.acc_b) == (7, 4 / 7, 3 / 7)
    with pytest.raises(ValueError, match="same items"):
        paired([1, 0], [1])
    with pytest.raises(ValueError, match="no items"):
        paired([], [])


def test_mcnemar_all_agree_has_p_one():
    """The two models agree on every item (no discordant pair): nothing tells them apart."""
    same = [1, 0, 1, 1, 0, 0, 1, 0]
    t = paired(same, same)
    assert (t.a_only, t.b_only) == (0, 0)
    assert mcnemar_exact(t) == 1.0 == exact_mcnemar_by_hand(0, 0)


@pytest.mark.parametrize("a_only, b_only, by_hand", [
    (6, 0, 2 / 2 ** 6),            # one-sided: every discordant item favours the candidate
    (0, 6, 2 / 2 ** 6),            # ... or the baseline: same p (two-sided)
    (5, 0, 2 / 32),                # 0.0625: five one-sided pairs are not enough at 0.05
    (1, 9, 2 * (1 + 10) / 1024),   # 22/1024
    (3, 3, 1.0),                   # balanced: 2 * (1+6+15+20)/64 > 1 -> 1
    (10, 2, 2 * (1 + 12 + 66) / 4096),
])
def test_mcnemar_exact_matches_the_binomial_by_hand(a_only, b_only, by_hand):
    t = Paired(both=7, a_only=a_only, b_only=b_only, neither=4)  # concordant items do not matter
    assert mcnemar_exact(t) == pytest.approx(by_hand, rel=1e-12)
    assert exact_mcnemar_by_hand(a_only, b_only) == pytest.approx(by_hand, rel=1e-12)
    assert mcnemar_exact(Paired(0, a_only, b_only, 0)) == pytest.approx(by_hand, rel=1e-12)


def test_holm_on_a_hand_case():
    # sorted: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> raised to 0.09 (monotone); 0.20*1 = 0.20
    adjusted, reject = holm([0.01, 0.04, 0.03, 0.20], alpha=0.05)
    assert adjusted.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert reject.tolist() == [True, False, False, False]
    # all three survive: 0.01*3 = 0.03, 0.02*2 = 0.04, 0.03*1 = 0.03 -> 0.04
    adjusted, reject = holm([0.03, 0.01, 0.02], alpha=0.05)
    assert adjusted.tolist() == pytest.approx([0.04, 0.03, 0.04]) and reject.all()
    # a test that could not run (NaN) is no member of the family: m = 2
    adjusted, reject = holm([0.01, float("nan"), 0.04], alpha=0.05)
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert reject.tolist() == [True, False, True]
    # the adjustment never falls below the raw p-value and is capped at 1
    adjusted, _ = holm([0.5, 0.6], alpha=0.05)
    assert adjusted.tolist() == [1.0, 1.0]
    # an adjusted p exactly at alpha is rejected (adjusted p <= alpha, as statsmodels decides)
    assert holm([0.025, 0.5], alpha=0.05)[1].tolist() == [True, False]


def test_holm_gives_what_statsmodels_gives():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 18, 19):  # few calls: each runs statsmodels' gc.collect()
        for _ in range(3):
            p = rng.uniform(0, 0.2, m) ** rng.uniform(0.5, 3)
            p[rng.integers(0, m)] = p[0]  # ties
            want_reject, want, _, _ = multipletests(p, alpha=0.05, method="holm")
            got, reject = holm(p, 0.05)
            assert got == pytest.approx(want, rel=1e-12) and (reject == want_reject).all()


def test_ratio_interval_drops_undefined_replicates():
    lo, hi = ratio_interval(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 0.0, 1.0]), 0.5)
    assert (lo, hi) == (np.percentile([1, 2, 4], 25), np.percentile([1, 2, 4], 75))
    assert ratio_interval(np.ones(3), np.zeros(3)) == (None, None)


# --- a hand-made run --------------------------------------------------------------------------------
# Family f: size s is adapted (checkpoints c01..c03 at 1M, 4M, 16M tokens, merged and raw), size l
# is the next-larger model. Task t1 has 20 items, t2 10; each model is the set of items it gets right.
TOKENS = {"c01": 1_000_000, "c02": 4_000_000, "c03": 16_000_000}
N = {"t1": 20, "t2": 10}
S = {"t1": set(range(5)), "t2": {0, 1, 2}}                    # the source
RIGHT = {
    ("s", "base"): S,
    ("l", "base"): {"t1": set(range(15)), "t2": set(range(8))},
    # merged: c01 +2 items on t1, c02 +8, c03 +7
    ("s", "c01"): {"t1": S["t1"] | {5, 6}, "t2": S["t2"]},
    ("s", "c02"): {"t1": set(range(13)), "t2": S["t2"] | {3}},
    ("s", "c03"): {"t1": set(range(12)), "t2": set(range(7))},
    # raw: a gain at raw-c01 that is lost at raw-c02 (back to the source) and found again at raw-c03
    ("s", "raw-c01"): {"t1": set(range(13)), "t2": S["t2"]},
    ("s", "raw-c02"): S,
    ("s", "raw-c03"): {"t1": set(range(14)), "t2": S["t2"]},
}


def write_model(root: Path, family: str, size: str, ckpt: str, right: dict[str, set]) -> tuple[str, str]:
    """The mcqa stage's two files for a model that gets `right[task]` right: the JSON and the items."""
    rows = [{"task": t, "doc_id": i, "item_id": f"{t}-{i}", "doc_hash": f"h-{t}-{i}", "target": 0,
             "chosen": 0 if i in right[t] else 1, "correct": i in right[t], "loglik": [0.0, -1.0]}
            for t in sorted(N) for i in range(N[t])]
    base = root / "mcqa" / family / size / ckpt
    base.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_parquet(f"{base}.items.parquet")
    tasks = {t: {"acc": len(right[t]) / N[t], "acc_stderr": 0.1, "n": N[t]} for t in N}
    Path(f"{base}.json").write_text(json.dumps({"tasks": tasks}))
    return f"{base}.json", f"{base}.items.parquet"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    ckpts = root / "checkpoints.csv"
    pl.DataFrame({"family": "f", "size": "s", "ckpt": list(TOKENS), "step": [1, 4, 16],
                  "fraction": [1 / 16, 1 / 4, 1.0], "tokens": list(TOKENS.values()),
                  "flops": [6e8 * t for t in TOKENS.values()], "train_loss": [3.0, 2.0, 1.0]}
                 ).write_csv(ckpts)
    files = {key: write_model(root, "f", *key, right) for key, right in RIGHT.items()}
    keys = [f"f/{s}/{c}" for s, c in files]
    compute = compute_table([str(ckpts)])
    items = load_items(items_index([p for _, p in files.values()], keys))
    tests = mcqa_tests_table(items, [("f", "s", "l")], compute, alpha=0.05)
    return {"root": root, "checkpoints": str(ckpts), "keys": keys, "compute": compute,
            "jsons": [j for j, _ in files.values()], "items_paths": [p for _, p in files.values()],
            "items": items, "tests": tests, "milestones": milestones_table(tests, 0.05)}


def rows(tests, trajectory, baseline, task):
    part = tests.filter((pl.col("trajectory") == trajectory) & (pl.col("baseline") == baseline)
                        & (pl.col("task") == task))
    return {r["ckpt"]: r for r in part.iter_rows(named=True)}


def test_tests_against_the_source_by_hand(run):
    r = rows(run["tests"], "merged", "source", "t1")
    assert list(r) == ["c01", "c02", "c03"]                                  # token order
    assert [(r[c]["ckpt_only"], r[c]["baseline_only"]) for c in r] == [(2, 0), (8, 0), (7, 0)]
    assert [r[c]["p_value"] for c in r] == pytest.approx([0.5, 2 / 2 ** 8, 2 / 2 ** 7])
    # Holm over the three: 0.0078125*3 = 0.0234375, 0.015625*2 = 0.03125, 0.5*1 = 0.5
    assert [r[c]["p_holm"] for c in r] == pytest.approx([0.5, 0.0234375, 0.03125])
    assert [r[c]["significant"] for c in r] == [False, True, True]
    c02 = r["c02"]
    assert (c02["n"], c02["both_correct"], c02["both_wrong"]) == (20, 5, 7)
    assert (c02["acc"], c02["acc_baseline"], c02["acc_diff"]) == pytest.approx((0.65, 0.25, 0.40))
    assert (c02["tokens"], c02["flops"], c02["direction"], c02["baseline_model"]) == (
        4_000_000, 6e8 * 4_000_000, "better", "f/s/base")
    assert "base" not in r  # the source is not tested against itself


def test_tests_against_the_next_model_by_hand(run):
    r = rows(run["tests"], "merged", "next", "t1")
    assert list(r) == ["base", "c01", "c02", "c03"]                         # the source is the 0-token point
    assert [(r[c]["ckpt_only"], r[c]["baseline_only"]) for c in r] == [(0, 10), (0, 8), (0, 2), (0, 3)]
    assert [r[c]["p_value"] for c in r] == pytest.approx([2 / 1024, 2 / 256, 0.5, 0.25])
    # Holm over four: 0.00195*4 = 0.0078125, 0.0078125*3 = 0.0234375, 0.25*2 = 0.5, 0.5*1 = 0.5
    assert [r[c]["p_holm"] for c in r] == pytest.approx([0.0078125, 0.0234375, 0.5, 0.5])
    assert [r[c]["significant"] for c in r] == [True, True, False, False]
    assert {r[c]["direction"] for c in r} == {"worse"} and r["base"]["baseline_model"] == "f/l/base"
    assert r["base"]["variant"] == "base" and r["base"]["tokens"] == 0


def test_pooled_tests_use_every_item_of_every_task(run):
    r = rows(run["tests"], "merged", "source", "pooled")
    # c02: t1 8 + t2 1 items right only for the checkpoint, none the other way: p = 2/2^9
    assert (r["c02"]["n"], r["c02"]["ckpt_only"], r["c02"]["baseline_only"]) == (30, 9, 0)
    assert r["c02"]["p_value"] == pytest.approx(2 / 2 ** 9)
    # c03: 7 + 4 = 11 -> 2/2^11; c01: 2 + 0 -> 0.5
    assert [r[c]["p_value"] for c in ("c01", "c03")] == pytest.approx([0.5, 2 / 2 ** 11])


def test_milestones_by_hand(run):
    m = {(r["trajectory"], r["task"]): r for r in run["milestones"].iter_rows(named=True)}
    assert list(m) == [("merged", "t1"), ("merged", "t2"), ("merged", "pooled"),
                       ("raw", "t1"), ("raw", "t2"), ("raw", "pooled")]
    t1 = m[("merged", "t1")]
    assert (t1["first_gain_ckpt"], t1["first_gain_tokens"], t1["first_gain_flops"]) == (
        "c02", 4_000_000, 6e8 * 4_000_000)
    assert (t1["first_gain_sustained"], t1["gains"], t1["checkpoints"]) == (True, 2, 3)
    assert (t1["parity_ckpt"], t1["parity_tokens"], t1["parity_sustained"], t1["below_next"]) == (
        "c02", 4_000_000, True, 2)
    # t2: c01 agrees with the source on every item (p = 1), c02 one item (p = 1), c03 four (0.125):
    # no gain. Against l (8 of 10 right): base 5 worse (p = 0.0625), so the source is already at parity.
    t2 = m[("merged", "t2")]
    assert (t2["first_gain_ckpt"], t2["first_gain_tokens"], t2["first_gain_sustained"], t2["gains"]) == (
        None, None, None, 0)
    assert (t2["parity_ckpt"], t2["parity_tokens"], t2["parity_flops"]) == ("base", 0, 0.0)
    # raw, t1: p vs source = [raw-c01 2/2^8, raw-c02 1 (all agree), raw-c03 2/2^9]; Holm:
    # 0.0039*3 = 0.0117, 0.0078*2 = 0.0156, 1 -> gains at raw-c01 and raw-c03, lost in between.
    # vs l: [base 2/2^10, raw-c01 0.5 (2 worse), raw-c02 2/2^10, raw-c03 1 (1 worse)]; Holm:
    # 0.0078, 0.0078, 1, 1 -> parity at raw-c01, lost at raw-c02.
    raw = m[("raw", "t1")]
    assert (raw["first_gain_ckpt"], raw["first_gain_sustained"], raw["gains"]) == ("raw-c01", False, 2)
    assert (raw["parity_ckpt"], raw["parity_tokens"], raw["parity_sustained"], raw["below_next"]) == (
        "raw-c01", 1_000_000, False, 2)
    r = rows(run["tests"], "raw", "next", "t1")
    assert [r[c]["p_holm"] for c in ("base", "raw-c01", "raw-c02", "raw-c03")] == pytest.approx(
        [0.0078125, 1.0, 0.0078125, 1.0])
    assert m[("merged", "pooled")]["alpha"] == 0.05


def test_summary_shows_the_milestones(run):
    mcqa = mcqa_table(mcqa_index(run["jsons"], run["keys"]), [("f", "s", "l")], run["compute"],
                      items=run["items"], n_boot=200, seed=3)
    text = summary_markdown(run["compute"], mcqa, mcqa_milestones=run["milestones"])
    line = next(x for x in text.splitlines() if x.startswith("| s |"))
    # pooled, merged: vs source c01 p 0.5, c02 2/2^9, c03 2/2^11 -> Holm 0.5, 0.0078, 0.0029: the
    # first gain is c02; parity with l is c02 too (test_parity_pooled_by_hand)
    assert line.count("c02 (4M tokens, 2.40e15 FLOPs)") == 2
    header = next(x for x in text.splitlines() if x.startswith("| size |"))
    assert "first significant MCQA gain vs source" in header and "MCQA parity with next" in header
    assert "## MCQA significance" in text
    assert "Holm-corrected over the points of the trajectory, alpha 0.05" in text
    assert "| f | s | l | raw | t1 | raw-c01 (1M tokens, 6.00e14 FLOPs, then lost) | 2/3 |" in text
    assert "| f | s | l | merged | t2 | none | 0/3 | source (0 tokens) | 0/4 |" in text


def test_parity_pooled_by_hand(run):
    m = run["milestones"].filter((pl.col("trajectory") == "merged") & (pl.col("task") == "pooled")
                                 ).row(0, named=True)
    r = rows(run["tests"], "merged", "next", "pooled")
    # base: 0 vs 10+5 = 15 -> 2/2^15; c01: 8+5 = 13 -> 2/2^13; c02: 2+4 = 6 -> 2/64;
    # c03: 3+1 = 4 -> 2/16. Holm: 2/2^15*4, 2/2^13*3, (2/64)*2 = 0.0625, 0.125 -> parity at c02.
    assert [r[c]["baseline_only"] for c in ("base", "c01", "c02", "c03")] == [15, 13, 6, 4]
    assert r["c02"]["p_holm"] == pytest.approx(0.0625)
    assert (m["parity_ckpt"], m["parity_sustained"], m["below_next"]) == ("c02", True, 2)


# --- G_rel intervals --------------------------------------------------------------------------------

def test_g_rel_intervals_are_paired_and_seeded(run):
    ci = g_rel_intervals(run["items"], [("f", "s", "l")], n_boot=500, seed=7)
    get = {(r["ckpt"], r["task"]): r for r in ci.iter_rows(named=True)}
    # the source against itself: every replicate is exactly 1
    assert (get[("base", "t1")]["g_rel_source_lo"], get[("base", "t1")]["g_rel_source_hi"]) == (1.0, 1.0)
    # c02 is right on every item the source is right on (a superset): with the same items resampled
    # for both, no replicate can fall below 1; resampled independently, some would
    assert get[("c02", "t1")]["g_rel_source_lo"] >= 1.0
    assert get[("c02", "t1")]["g_rel_source_hi"] > 2.0          # the point estimate is 13/5 = 2.6
    # raw-c02 gets exactly the source's items right: [1, 1] on every task and the mean
    assert {(get[("raw-c02", t)]["g_rel_source_lo"], get[("raw-c02", t)]["g_rel_source_hi"])
            for t in ("t1", "t2", "mean")} == {(1.0, 1.0)}
    # vs the next model (a superset of c02 on t1): never above 1
    assert get[("c02", "t1")]["g_rel_next_hi"] <= 1.0
    # every interval holds its point estimate (here: the ratio of the item counts)
    for (ckpt, task), r in get.items():
        if task != "mean":
            point = len(RIGHT[("s", ckpt)][task]) / len(S[task])
            assert r["g_rel_source_lo"] <= point <= r["g_rel_source_hi"]
    assert ci.equals(g_rel_intervals(run["items"], [("f", "s", "l")], n_boot=500, seed=7))
    assert not ci.equals(g_rel_intervals(run["items"], [("f", "s", "l")], n_boot=500, seed=8))
    assert g_rel_intervals(run["items"], [("f", "s", "l")], n_boot=0, seed=7).is_empty()


def test_mcqa_table_carries_the_intervals(run):
    m = mcqa_table(mcqa_index(run["jsons"], run["keys"]), [("f", "s", "l")], run["compute"],
                   items=run["items"], n_boot=300, seed=1)
    row = m.filter((pl.col("ckpt") == "c03") & (pl.col("task") == "mean")).row(0, named=True)
    # mean acc c03 = (12/20 + 7/10)/2 = 0.65, source (0.25 + 0.3)/2 = 0.275
    assert row["g_rel_source"] == pytest.approx(0.65 / 0.275)
    assert row["g_rel_source_lo"] < row["g_rel_source"] < row["g_rel_source_hi"]
    assert row["g_rel_next_lo"] < row["g_rel_next"] <= row["g_rel_next_hi"]
    l_rows = m.filter(pl.col("size") == "l")
    assert l_rows["g_rel_source_lo"].is_null().all()  # a baseline-only model: no gains, no intervals
    plain = mcqa_table(mcqa_index(run["jsons"], run["keys"]), [("f", "s", "l")], run["compute"])
    assert plain["g_rel_next_hi"].is_null().all()
    assert plain.drop("g_rel_source_lo", "g_rel_source_hi", "g_rel_next_lo", "g_rel_next_hi").equals(
        m.drop("g_rel_source_lo", "g_rel_source_hi", "g_rel_next_lo", "g_rel_next_hi"))


def test_items_must_pair_and_match_their_json(run, tmp_path):
    items = dict(run["items"])
    # another item at the same position (doc_hash differs)
    df = pl.read_parquet(run["items_paths"][2]).with_columns(
        doc_hash=pl.when(pl.col("doc_id") == 3).then(pl.lit("other")).otherwise("doc_hash"))
    df.write_parquet(tmp_path / "x.parquet")
    items[("f", "s", "c01")] = read_items(tmp_path / "x.parquet", "f/s/c01")
    with pytest.raises(ValueError, match=r"task t1: doc_id 3 is another item for f/s/c01 than for f/s/base"):
        mcqa_tests_table(items, [("f", "s", "l")], run["compute"])
    # fewer items (another mcqa.limit)
    df.filter(pl.col("doc_id") < 15).write_parquet(tmp_path / "y.parquet")
    items[("f", "s", "c01")] = read_items(tmp_path / "y.parquet", "f/s/c01")
    with pytest.raises(ValueError, match="f/s/c01 has 15 items, f/s/base 20"):
        mcqa_tests_table(items, [("f", "s", "l")], run["compute"])
    # items that do not give the JSON's accuracy
    wrong = dict(run["items"])
    wrong[("f", "s", "c01")] = run["items"][("f", "s", "c02")]
    with pytest.raises(ValueError, match=r"MCQA items of f/s/c01, task t1: 20 items, accuracy 0\.65; "
                                         r"its MCQA JSON says n=20, acc=0\.35"):
        mcqa_table(mcqa_index(run["jsons"], run["keys"]), [("f", "s", "l")], run["compute"], items=wrong)
    pl.DataFrame({"task": ["t1"]}).write_parquet(tmp_path / "z.parquet")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['doc_id', 'doc_hash', 'correct'\]"):
        read_items(tmp_path / "z.parquet", "z")
