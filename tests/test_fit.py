"""fit_comparison: judgment parquets -> one joint Davidson fit per comparison, CSV contract; the
source never plays itself (in the fit and in the workflow's DAG)."""
import re

import numpy as np
import polars as pl
import pytest

from medadapt.davidson import fit_davidson
from medadapt.fit import FIT_COLUMNS, fit_comparison
from medadapt.io import write_table
from workflow_dir import run_snakemake, temporary_workdir

# candidate's result -> the judge's winner (A = shown first)
WINNER = {"cand_first": {"win": "A", "tie": "0", "loss": "B"},
          "base_first": {"win": "B", "tie": "0", "loss": "A"}}


def write_judgments(path, outcomes, cand="f/s/c01", base="f/s/base"):
    """outcomes: one (cand_first, base_first) pair of results from the candidate's view per prompt;
    None = no valid verdict (winner null). The columns of the judge stage's parquet."""
    rows = []
    for k, pair in enumerate(outcomes):
        for order, o in zip(("cand_first", "base_first"), pair):
            a, b = (cand, base) if order == "cand_first" else (base, cand)
            rows.append({"prompt_id": f"p{k}", "order": order, "model_a": a, "model_b": b,
                         "winner": None if o is None else WINNER[order][o], "outcome": o,
                         "judge_model": "j", "prompt_tokens": 1, "completion_tokens": 1,
                         "cache_hit": False, "key": f"{k}{order}", "raw": "{}"})
    write_table(path, pl.DataFrame(rows, schema_overrides={"winner": pl.Utf8, "outcome": pl.Utf8}))
    return str(path)


def run(tmp_path, files, ckpts, n_boot=100, seed=0, name="fit.csv", order_effect=False,
        self_ckpt=None, baseline="next"):
    out = tmp_path / name
    info = fit_comparison(files, str(out), "qwen2.5", "0.5b", baseline, "qwen2.5/1.5b/base", ckpts,
                          n_boot=n_boot, seed=seed, order_effect=order_effect, self_ckpt=self_ckpt)
    return pl.read_csv(out), info


# 12 wins, 6 ties, 6 losses, the same in both orders (so no position effect in the data)
SYMMETRIC = ([("win", "win")] * 4 + [("win", "tie"), ("tie", "win")] * 2
             + [("tie", "loss"), ("loss", "tie")] + [("loss", "loss")] * 2)


@pytest.mark.parametrize("order_effect", [False, True])
def test_single_checkpoint_closed_form(tmp_path, order_effect):
    """Two players: share = W/(W+L), ν = T/√(W·L), expected score = (W + T/2)/n; with the order
    effect on data whose two orders mirror each other, γ = 1 and nothing else moves."""
    df, info = run(tmp_path, [write_judgments(tmp_path / "c01.parquet", SYMMETRIC)], ["c01"],
                   order_effect=order_effect)
    assert df.columns == FIT_COLUMNS
    row = df.row(0, named=True)
    assert (row["wins"], row["ties"], row["losses"]) == (12, 6, 6)
    assert (row["games"], row["valid"], row["invalid"], row["prompts"], row["prompts_dropped"]) == \
        (24, 24, 0, 12, 0)
    assert row["strength"] == pytest.approx(12 / 6, rel=1e-9)  # π_c/π_bl = W/L, baseline fixed at 1
    assert row["score"] == pytest.approx(12 / 18, rel=1e-9)
    assert row["nu"] == pytest.approx(6 / np.sqrt(72), rel=1e-9)
    assert row["expected_score"] == pytest.approx((12 + 3) / 24)
    assert row["score_lo"] < row["score"] < row["score_hi"]
    assert row["expected_score_lo"] < row["expected_score"] < row["expected_score_hi"]
    assert row["gamma"] == (pytest.approx(1.0, abs=1e-9) if order_effect else None)
    assert row["position_consistency"] == pytest.approx(6 / 12)  # 4 win/win + 2 loss/loss agree
    assert (row["family"], row["size"], row["baseline"], row["baseline_model"]) == \
        ("qwen2.5", "0.5b", "next", "qwen2.5/1.5b/base")
    assert row["fitted"] and not row["degenerate"] and row["status"] == "converged"
    assert info["status"] == "converged" and info["runaway"] == ""


def test_joint_fit_shares_nu_and_orders_checkpoints(tmp_path):
    weak = [("loss", "loss")] * 6 + [("tie", "loss")] * 4 + [("win", "tie")] * 2
    strong = [("win", "win")] * 6 + [("win", "tie")] * 4 + [("loss", "tie")] * 2
    files = [write_judgments(tmp_path / "a.parquet", weak), write_judgments(tmp_path / "b.parquet", strong)]
    df, _ = run(tmp_path, files, ["c01", "c02"], n_boot=50)
    assert df["ckpt"].to_list() == ["c01", "c02"]
    assert df["nu"].n_unique() == 1
    s1, s2 = df["score"].to_list()
    assert s1 < 0.5 < s2
    # it is the joint fit, not two separate ones: compare with a direct three-player fit
    i = np.repeat([1, 2], 24)
    y = np.array([{"win": 1.0, "tie": 0.5, "loss": 0.0}[o] for pairs in (weak, strong)
                  for pair in pairs for o in pair])
    joint = fit_davidson((i, np.zeros(48, int), y), prior_strength=0)
    assert df["strength"].to_list() == pytest.approx(joint.strengths[1:].tolist(), rel=1e-9)
    assert df["nu"][0] == pytest.approx(joint.nu, rel=1e-9)
    assert (df["score_lo"] <= df["score"]).all() and (df["score"] <= df["score_hi"]).all()


def test_the_source_is_not_a_player_but_the_curve_starts_at_half(tmp_path):
    f = write_judgments(tmp_path / "c01.parquet", SYMMETRIC, base="qwen2.5/0.5b/base")
    df, _ = run(tmp_path, [f], ["c01"], self_ckpt="base", baseline="source")
    base, c01 = df.row(0, named=True), df.row(1, named=True)
    assert base["ckpt"] == "base" and not base["fitted"] and base["status"].startswith("not fitted")
    assert base["score"] == 0.5 and base["expected_score"] == 0.5
    assert base["score_lo"] is None and base["score_hi"] is None and base["nu"] is None
    assert (base["games"], base["wins"], base["ties"], base["losses"]) == (0, 0, 0, 0)
    # the checkpoint's fit is exactly the fit without a base player at all
    solo, _ = run(tmp_path, [f], ["c01"], name="solo.csv")
    assert c01["score"] == solo["score"][0] and c01["nu"] == solo["nu"][0]
    with pytest.raises(ValueError, match="'base' is the baseline qwen2.5/1.5b/base itself and never plays it"):
        run(tmp_path, [f, f], ["base", "c01"], self_ckpt="base")
    selfgame = write_judgments(tmp_path / "self.parquet", SYMMETRIC, cand="f/s/base", base="f/s/base")
    with pytest.raises(ValueError, match=r"self\.parquet: 'f/s/base' is judged against itself"):
        run(tmp_path, [selfgame], ["base"])


def simulate_comparison(rng, shares, nu, gamma, n_prompts=217):
    """Every checkpoint against the baseline (π = 1), each prompt in both orders, from the
    Davidson model with order effect: per checkpoint, (cand_first, base_first) result pairs."""
    out = []
    for s in shares:
        pi = s / (1 - s)
        pairs = []
        for _ in range(n_prompts):
            pair = []
            for cand_first in (True, False):
                a, b = (gamma * pi, 1.0) if cand_first else (pi, gamma)  # (candidate, baseline)
                c = nu * np.sqrt(a * b)
                u = rng.random() * (a + b + c)
                pair.append("win" if u < a else "tie" if u < a + c else "loss")
            pairs.append(tuple(pair))
        out.append(pairs)
    return out


def test_recovers_shares_and_the_order_effect(tmp_path):
    """217 prompts × 2 orders per checkpoint, a judge that favours the first-shown response
    (γ = 1.8): the fit recovers γ, ν and every share; position consistency is below 1."""
    rng = np.random.default_rng(7)
    shares = [0.35, 0.5, 0.65, 0.8]
    files = [write_judgments(tmp_path / f"c{k}.parquet", pairs)
             for k, pairs in enumerate(simulate_comparison(rng, shares, nu=0.9, gamma=1.8))]
    df, info = run(tmp_path, files, ["c01", "c02", "c03", "c04"], n_boot=200, order_effect=True)
    assert df["score"].to_list() == pytest.approx(shares, abs=0.04)
    assert (df["score_lo"] < pl.Series(shares)).all() and (pl.Series(shares) < df["score_hi"]).all()
    assert df["gamma"][0] == pytest.approx(1.8, rel=0.12)
    assert df["nu"][0] == pytest.approx(0.9, rel=0.12)
    assert (df["position_consistency"] < 0.8).all()
    assert info["status"] == "converged"


def test_a_self_game_would_inflate_the_scores(tmp_path):
    """The issue's simulation: with the source's ties against itself as an extra player, the shared
    ν is inflated and the late checkpoints' shares rise; without it they are recovered."""
    rng = np.random.default_rng(3)
    shares = [0.6, 0.75, 0.863]
    sims = simulate_comparison(rng, shares, nu=0.3, gamma=1.0)
    files = [write_judgments(tmp_path / f"c{k}.parquet", p) for k, p in enumerate(sims)]
    clean, _ = run(tmp_path, files, ["c01", "c02", "c03"], n_boot=0)
    assert clean["score"].to_list() == pytest.approx(shares, abs=0.04)
    selfgame = write_judgments(tmp_path / "base.parquet", [("tie", "tie")] * 217)  # identical responses
    polluted, _ = run(tmp_path, [selfgame, *files], ["base", "c01", "c02", "c03"], n_boot=0,
                      name="polluted.csv")
    assert polluted["nu"][0] > 2 * clean["nu"][0]
    assert polluted["score"][-1] > clean["score"][-1] + 0.03


def test_invalid_games_and_dropped_prompts_are_counted(tmp_path):
    outcomes = [("win", "win")] * 3 + [("loss", None)] + [("tie", "loss")] * 3
    df, info = run(tmp_path, [write_judgments(tmp_path / "c.parquet", outcomes)], ["c01"], n_boot=0)
    row = df.row(0, named=True)
    assert (row["wins"], row["ties"], row["losses"]) == (6, 3, 3)  # p3's loss went with its null
    assert (row["games"], row["valid"], row["invalid"], row["prompts"], row["prompts_dropped"]) == \
        (14, 13, 1, 7, 1)
    assert info["dropped_prompts"] == {"c01": 1} and info["invalid"] == {"c01": 1}
    assert row["score_lo"] is None and row["score_hi"] is None  # n_boot = 0: no interval
    # a prompt judged in one order only is dropped too
    path = tmp_path / "one.parquet"
    write_judgments(path, outcomes[:3] + [("win", "loss")])
    write_table(path, pl.read_parquet(path).head(7))  # p3 base_first missing
    df, _ = run(tmp_path, [str(path)], ["c01"], n_boot=0, name="one.csv")
    assert (df["games"][0], df["prompts"][0], df["prompts_dropped"][0]) == (7, 4, 1)


def test_a_checkpoint_that_never_loses_is_reported_degenerate(tmp_path):
    ok = [("win", "loss"), ("tie", "win"), ("loss", "tie"), ("tie", "tie")] * 3
    never_loses = [("win", "win")] * 12
    files = [write_judgments(tmp_path / "a.parquet", ok), write_judgments(tmp_path / "b.parquet", never_loses)]
    df, info = run(tmp_path, files, ["c01", "c02"], n_boot=20)
    assert df["degenerate"].to_list() == [False, True]
    assert df["status"].to_list() == ["degenerate"] * 2
    assert "c02's strength grows without bound above qwen2.5/1.5b/base's" in info["runaway"]
    assert df["score"][1] > 0.999 and df["nu"][0] < 10  # ν stays finite: c01's games pin it


def test_seeded_bootstrap_is_reproducible(tmp_path):
    outcomes = [("win", "tie"), ("loss", "loss"), ("win", "win"), ("tie", "tie"), ("win", "loss")] * 3
    f = write_judgments(tmp_path / "c.parquet", outcomes)
    a, _ = run(tmp_path, [f], ["c01"], seed=1, name="a.csv", order_effect=True)
    b, _ = run(tmp_path, [f], ["c01"], seed=1, name="b.csv", order_effect=True)
    c, _ = run(tmp_path, [f], ["c01"], seed=2, name="c.csv", order_effect=True)
    assert a.equals(b) and not a.equals(c)


def test_bad_inputs_are_named(tmp_path):
    f = write_judgments(tmp_path / "c.parquet", [("win", "loss")])
    with pytest.raises(ValueError, match="2 judgment files for 1 checkpoints"):
        run(tmp_path, [f, f], ["c01"])
    write_table(tmp_path / "bad.parquet", pl.DataFrame({"prompt_id": ["p"], "order": ["cand_first"]}))
    with pytest.raises(ValueError, match=r"bad\.parquet: missing column\(s\) \['winner'\]"):
        run(tmp_path, [str(tmp_path / "bad.parquet")], ["c01"])
    base = {"prompt_id": ["p", "p"], "order": ["cand_first", "base_first"]}
    write_table(tmp_path / "odd.parquet", pl.DataFrame({**base, "winner": ["A", "tie"]}))
    with pytest.raises(ValueError, match=r"odd\.parquet: winner must be A, B, 0 or null.*'tie'"):
        run(tmp_path, [str(tmp_path / "odd.parquet")], ["c01"])
    write_table(tmp_path / "mismatch.parquet", pl.DataFrame({**base, "winner": ["A", "A"],
                                                              "outcome": ["win", "win"]}))
    with pytest.raises(ValueError, match="row 2: outcome 'win' does not match winner 'A' in order 'base_first'"):
        run(tmp_path, [str(tmp_path / "mismatch.parquet")], ["c01"])
    write_table(tmp_path / "nulls.parquet", pl.DataFrame({**base, "winner": [None, "A"]},
                                                         schema_overrides={"winner": pl.Utf8}))
    with pytest.raises(ValueError, match=r"nulls\.parquet: no prompt of checkpoint c01 has a valid verdict"):
        run(tmp_path, [str(tmp_path / "nulls.parquet")], ["c01"])


def dry_run(configfile: str) -> str:
    """A dry run in a working directory of its own (tests/workflow_dir.py): never the checkout's
    results/ or .snakemake/, which a `make demo` may have filled."""
    with temporary_workdir() as work:
        proc = run_snakemake(work, "-n", "--configfile", configfile, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr  # the job listing is logged to stderr


def jobs(text: str, rule: str) -> list[dict[str, list[str]]]:
    """The input/output file lists of every job of `rule` in a dry run's job listing."""
    out, current = [], None
    for line in text.splitlines():
        head = re.match(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):$", line)  # group jobs are indented
        if head:
            current = {} if head.group(1) == rule else None
            if current is not None:
                out.append(current)
            continue
        field = re.match(r"^\s+(input|output): (.*)$", line)
        if field and current is not None:
            current[field.group(1)] = field.group(2).split(", ")
    return out


def test_the_source_never_plays_itself_in_the_workflow():
    """The demo's DAG: no judge job of the source against itself, and no fit of the source
    comparison reads one; against the next larger model the source is judged (its 0-token point)."""
    text = dry_run("config/demo.yaml")
    judged = [o for job in jobs(text, "judge") for o in job["output"]]
    assert judged and not [p for p in judged if p.endswith("/base_vs_source.parquet")]
    assert {p for p in judged if p.endswith("/base_vs_next.parquet")} == \
        {"results/judge/tiny/s/base_vs_next.parquet", "results/judge/tiny/m/base_vs_next.parquet"}
    fits = {job["output"][0]: job["input"] for job in jobs(text, "fit")}
    assert fits["results/fit/tiny/s_vs_source.csv"] == [
        f"results/judge/tiny/s/c0{k}_vs_source.parquet" for k in (1, 2, 3)]
    assert fits["results/fit/tiny/s_vs_next.csv"][0] == "results/judge/tiny/s/base_vs_next.parquet"
    # the paper grid: 8 adapted sizes x (18 checkpoints x 2 baselines + the source against the next)
    paper = [o for job in jobs(dry_run("config/config.yaml"), "judge") for o in job["output"]]
    assert len(paper) == 8 * (18 * 2 + 1) and not [p for p in paper if "base_vs_source" in p]
