"""`medadapt davidson`: a judgments table -> one row per model. Known answers (the two-player closed
form), recovery of simulated strengths and of a position effect, degenerate data reported, the
bootstrap's resampling unit, and every bad input as a usage error (exit code 2)."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from medadapt.cli import UsageError
from medadapt.cli import davidson as davidson_cli
from medadapt.leaderboard import LEADERBOARD_COLUMNS, default_reference, read_games
from test_cli_flops import invoke, medadapt


def two_player_csv(path, w=30, t=10, l=20, invalid=3):
    """x vs y: w wins, t ties, l losses from x's view, x shown first in every other game, plus
    `invalid` games without a verdict; prompts of two games each."""
    rows = []
    for k, result in enumerate(["x"] * w + ["tie"] * t + ["y"] * l + [None] * invalid):
        a, b = ("x", "y") if k % 2 == 0 else ("y", "x")
        winner = None if result is None else "0" if result == "tie" else "A" if result == a else "B"
        rows.append({"prompt_id": f"p{k // 2}", "model_a": a, "model_b": b, "winner": winner})
    pl.DataFrame(rows).write_csv(path)
    return str(path)


def check_closed_form(table: pl.DataFrame, w=30, t=10, l=20):
    """share = W/(W+L), ν = T/√(W·L), expected score = (W + T/2)/n; x won as often shown first as
    second, so γ = 1."""
    x, y = (table.filter(pl.col("model") == m).row(0, named=True) for m in ("x", "y"))
    assert x["share"] == pytest.approx(w / (w + l), abs=1e-9)  # against the reference y
    assert y["share"] == 0.5
    assert x["nu"] == y["nu"] == pytest.approx(t / math.sqrt(w * l), abs=1e-9)
    assert x["gamma"] == y["gamma"] == pytest.approx(1.0, abs=1e-9)
    assert x["strength"] == pytest.approx(math.log(w / l) / 2, abs=1e-9) == -y["strength"]
    assert x["expected_score"] == pytest.approx((w + t / 2) / (w + t + l))
    assert y["expected_score"] == pytest.approx((l + t / 2) / (w + t + l))
    assert (x["games"], x["wins"], x["ties"], x["losses"]) == (w + t + l, w, t, l)
    assert (y["wins"], y["ties"], y["losses"]) == (l, t, w)
    assert not x["degenerate"] and not y["degenerate"]


def test_two_player_closed_form_through_the_command(tmp_path):
    """The acceptance check: the real command on a CSV, plain maximum likelihood."""
    out = tmp_path / "board.csv"
    run = medadapt("davidson", two_player_csv(tmp_path / "games.csv"), "--out", str(out),
                   "--reference", "y", "--prior-strength", "0", "--bootstrap", "0")
    assert run.returncode == 0, run.stderr
    assert "3 without a valid verdict" in run.stdout
    check_closed_form(pl.read_csv(out))
    bad = medadapt("davidson", str(tmp_path / "games.csv"), "--out", str(out), "--reference", "z")
    assert bad.returncode == 2 and "medadapt davidson: error: reference 'z'" in bad.stderr
    assert medadapt("davidson", "--help").returncode == 0


def test_two_player_closed_form(tmp_path, capsys):
    out = tmp_path / "board.csv"
    assert invoke(davidson_cli, ["davidson", two_player_csv(tmp_path / "games.csv"), "--out",
                                 str(out), "--reference", "y", "--prior-strength", "0",
                                 "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "2 models, 60 games with a verdict (3 without a valid verdict, left out); reference y" in printed
    table = pl.read_csv(out)
    assert table.columns == LEADERBOARD_COLUMNS and table["model"].to_list() == ["x", "y"]
    check_closed_form(table)
    x, y = table.rows(named=True)
    assert x["ci_low"] < x["share"] < x["ci_high"]
    assert x["expected_ci_low"] < x["expected_score"] < x["expected_ci_high"]
    assert y["ci_low"] == y["ci_high"] == 0.5


def test_the_default_prior_leaves_a_finite_fit_alone_and_no_bootstrap_leaves_cells_empty(tmp_path):
    out = tmp_path / "board.csv"
    invoke(davidson_cli, ["davidson", two_player_csv(tmp_path / "g.csv"), "--out", str(out),
                          "--reference", "y", "--bootstrap", "0"])
    check_closed_form(pl.read_csv(out))
    table = pl.read_csv(out)
    empty = ("ci_low", "ci_high", "expected_ci_low", "expected_ci_high")
    assert all(table[c].null_count() == table.height for c in empty)
    invoke(davidson_cli, ["davidson", str(tmp_path / "g.csv"), "--out", str(out), "--reference", "y",
                          "--bootstrap", "0", "--no-order-effect"])
    assert pl.read_csv(out)["gamma"].null_count() == 2


def test_a_model_that_never_loses_is_reported(tmp_path, capsys):
    rows = [{"prompt_id": f"p{k}", "model_a": a, "model_b": b, "winner": w}
            for k in range(6) for a, b, w in (("x", "y", "A"), ("y", "x", "B"))]
    rows += [{"prompt_id": "q", "model_a": "y", "model_b": "z", "winner": w} for w in "AB0"]
    rows += [{"prompt_id": "r", "model_a": "z", "model_b": "y", "winner": w} for w in "AB0"]
    pl.DataFrame(rows).write_csv(tmp_path / "g.csv")
    out = tmp_path / "board.csv"
    invoke(davidson_cli, ["davidson", str(tmp_path / "g.csv"), "--out", str(out), "--reference", "y",
                          "--bootstrap", "0"])
    printed = capsys.readouterr().out
    assert "warning: no finite maximum-likelihood estimate: x's strength grows without bound above y's" in printed
    table = pl.read_csv(out)
    assert table.filter(pl.col("degenerate"))["model"].to_list() == ["x"]
    assert table["share"][0] > 0.999


def simulate(theta, nu, n_prompts, rng, per_prompt=4, gamma=1.0):
    """Games between random pairs of models; each prompt holds `per_prompt` games; the model shown
    first (A) plays with its strength times `gamma`."""
    n = len(theta)
    k = n_prompts * per_prompt
    i = rng.integers(0, n, k)
    j = (i + rng.integers(1, n, k)) % n
    a, b = gamma * np.exp(theta[i]), np.exp(theta[j])
    u = rng.random(k) * (a + b + nu * np.sqrt(a * b))
    winner = np.where(u < a, "A", np.where(u < a + nu * np.sqrt(a * b), "0", "B"))
    names = np.array([f"m{x}" for x in range(n)])
    return pl.DataFrame({"prompt_id": np.arange(k) // per_prompt, "model_a": names[i],
                         "model_b": names[j], "winner": winner})


def test_recovers_simulated_strengths_from_parquet(tmp_path):
    theta = np.array([0.0, 1.0, -0.6, 0.4, -0.2])
    path = tmp_path / "games.parquet"
    simulate(theta, 0.8, 6000, np.random.default_rng(11)).write_parquet(path)
    out = tmp_path / "board.csv"
    invoke(davidson_cli, ["davidson", str(path), "--out", str(out), "--reference", "m0",
                          "--bootstrap", "0"])
    table = pl.read_csv(out).sort("model")
    assert table["strength"].to_numpy() == pytest.approx(theta - theta.mean(), abs=0.06)
    assert table["share"].to_numpy() == pytest.approx(1 / (1 + np.exp(-theta)), abs=0.015)
    assert table["nu"][0] == pytest.approx(0.8, abs=0.05)
    assert table["strength"].sum() == pytest.approx(0.0, abs=1e-9)
    assert table["games"].sum() == 2 * 24000
    assert table["gamma"][0] == pytest.approx(1.0, abs=0.05)


def test_recovers_a_position_effect(tmp_path):
    theta = np.array([0.0, 1.0, -0.6])
    path = tmp_path / "games.parquet"
    simulate(theta, 0.5, 6000, np.random.default_rng(5), gamma=2.0).write_parquet(path)
    out = tmp_path / "board.csv"
    invoke(davidson_cli, ["davidson", str(path), "--out", str(out), "--reference", "m0",
                          "--bootstrap", "0"])
    table = pl.read_csv(out).sort("model")
    assert table["gamma"][0] == pytest.approx(2.0, rel=0.06)
    assert table["strength"].to_numpy() == pytest.approx(theta - theta.mean(), abs=0.06)


def test_bootstrap_resamples_whole_prompts_and_is_seeded(tmp_path):
    """Every prompt is one win for each side: resampling prompts keeps W = L (share exactly 0.5);
    resampling rows (no prompt_id) does not. (The response shown first always wins, so γ would
    have no finite estimate: the order effect is off here.)"""
    rows = [{"prompt_id": f"p{k}", "model_a": a, "model_b": b, "winner": "A"}
            for k in range(40) for a, b in (("x", "y"), ("y", "x"))]
    rows += [{"prompt_id": "t", "model_a": "x", "model_b": "y", "winner": "0"}]
    grouped, flat = tmp_path / "grouped.csv", tmp_path / "flat.csv"
    pl.DataFrame(rows).write_csv(grouped)
    pl.DataFrame(rows).drop("prompt_id").write_csv(flat)
    boards = {}
    for name, src, seed in (("grouped", grouped, 1), ("flat", flat, 1), ("again", flat, 1),
                            ("other", flat, 2)):
        out = tmp_path / f"board-{name}.csv"
        invoke(davidson_cli, ["davidson", str(src), "--out", str(out), "--reference", "y",
                              "--bootstrap", "100", "--seed", str(seed), "--no-order-effect"])
        boards[name] = pl.read_csv(out)
    x = boards["grouped"].filter(pl.col("model") == "x").row(0, named=True)
    assert (x["ci_low"], x["share"], x["ci_high"]) == pytest.approx((0.5, 0.5, 0.5), abs=1e-6)
    x = boards["flat"].filter(pl.col("model") == "x").row(0, named=True)
    assert x["ci_low"] < 0.45 and x["ci_high"] > 0.55
    assert boards["flat"].equals(boards["again"]) and not boards["flat"].equals(boards["other"])


def test_default_reference_is_the_model_in_most_games(tmp_path):
    path = tmp_path / "g.csv"
    # valid games: b 3, c 2, a 1; a's three games without a verdict do not count
    pl.DataFrame({"model_a": ["b", "b", "c", "a", "a", "a"], "model_b": ["a", "c", "b", "c", "c", "c"],
                  "winner": ["A", "0", "B", None, "", None]}).write_csv(path)
    games = read_games(path)
    assert games.invalid == 3 and games.models == ["a", "b", "c"]
    assert default_reference(games) == "b"
    tied = tmp_path / "t.csv"
    pl.DataFrame({"model_a": ["y", "x"], "model_b": ["x", "y"], "winner": ["A", "0"]}).write_csv(tied)
    assert default_reference(read_games(tied)) == "x"  # equal games: the first by name


def test_bad_input_is_a_usage_error(tmp_path):
    good = pl.DataFrame({"model_a": ["x", "y"], "model_b": ["y", "x"], "winner": ["A", "0"]})
    files = {
        "missing.csv": None,
        "nocol.csv": good.drop("winner"),
        "odd.csv": good.with_columns(winner=pl.Series(["A", "C"])),
        "self.csv": good.with_columns(model_b=pl.Series(["x", "x"])),
        "noname.csv": good.with_columns(model_a=pl.Series(["x", None])),
        "apart.csv": pl.DataFrame({"model_a": ["x", "u"], "model_b": ["y", "v"], "winner": ["A", "0"]}),
        "noverdict.csv": good.with_columns(winner=pl.Series([None, None], dtype=pl.String)),
        "games.txt": good,
    }
    for name, df in files.items():
        if df is not None:
            df.write_csv(tmp_path / name)
    cases = [("missing.csv", [], r"missing\.csv: no such file"),
             ("nocol.csv", [], r"missing column\(s\) \['winner'\]"),
             ("odd.csv", [], r"winner must be A, B or 0.*\['C'\]"),
             ("self.csv", [], "'x' plays itself"),
             ("noname.csv", [], "column model_a is empty in 1 row"),
             ("apart.csv", [], "split the models into 2 groups that never met.*: u, v; x, y"),
             ("noverdict.csv", [], "no game has a valid verdict"),
             ("games.txt", [], "expected a .csv or .parquet file"),
             ("nocol.csv", ["--out", str(tmp_path / "b.txt")], "--out .*b.txt: expected a .csv"),
             ("odd.csv", ["--bootstrap", "-1"], "--bootstrap must be >= 0"),
             ("odd.csv", ["--prior-strength", "-1"], "--prior-strength must be a finite number >= 0")]
    (tmp_path / "ok.csv").write_text(good.write_csv())
    for name, extra, message in cases:
        argv = ["davidson", str(tmp_path / name), "--out", str(tmp_path / "b.csv"), *extra]
        with pytest.raises(UsageError, match=message):
            invoke(davidson_cli, argv)
    with pytest.raises(UsageError, match=r"reference 'z' is not a model in the table; models: \['x', 'y'\]"):
        invoke(davidson_cli, ["davidson", str(tmp_path / "ok.csv"), "--out", str(tmp_path / "b.csv"),
                              "--reference", "z"])
    assert not (tmp_path / "b.csv").exists()
