"""A Davidson leaderboard of any number of models from a table of pairwise games.

The games table (CSV or parquet, by suffix) has one row per game: `model_a`, `model_b`, `winner`
(A = model_a won, B = model_b won, 0 = tie; empty = the judge gave no valid verdict) and optionally
`prompt_id`. Games without a valid verdict are left out of the fit and counted. Response A is the
one shown first, so with `order_effect` the fit also estimates the judge's position effect γ
(medadapt.davidson; it needs some pairs judged in both arrangements). One joint fit gives every
model a strength; the table reports, per model, its log-strength centred over models, its share
π/(π + π_reference) and its expected score (W + T/2)/n, each with a percentile bootstrap interval
over prompts (each prompt's games resampled together; over rows when there is no prompt_id), the
shared tie parameter ν and position effect γ, its games, wins, ties and losses, and whether its
strength has no finite estimate (`degenerate`: e.g. it never lost).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from medadapt.davidson import PRIOR_STRENGTH, fit_shares

GAME_COLUMNS = ("model_a", "model_b", "winner")
# winner -> outcome from model_a's view (the davidson module's 1 / 0.5 / 0)
WINNER = {"A": 1.0, "0": 0.5, "B": 0.0}
LEADERBOARD_COLUMNS = ["model", "strength", "share", "ci_low", "ci_high", "expected_score",
                       "expected_ci_low", "expected_ci_high", "nu", "gamma", "games", "wins", "ties",
                       "losses", "degenerate"]


@dataclasses.dataclass
class Games:
    """Games with a valid verdict, as player indices into `models`."""
    models: list[str]  # sorted by name; every model named in the table
    i: np.ndarray  # model_a (shown first)
    j: np.ndarray  # model_b
    outcome: np.ndarray  # 1 = model_a won, 0.5 = tie, 0 = model_b won
    groups: np.ndarray  # the resampling unit of each game: its prompt_id, else its row
    invalid: int  # games in the table without a valid verdict (left out)


def read_games(path: str | Path) -> Games:
    """Read a games table; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if path.suffix == ".csv":
            # All columns as text: a winner column of only 0s, or numeric prompt ids, stay strings.
            df = pl.read_csv(path, infer_schema=False)
        elif path.suffix == ".parquet":
            df = pl.read_parquet(path)
        else:
            raise ValueError(f"{path}: expected a .csv or .parquet file")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ValueError(f"{path}: cannot read the table ({exc})") from None
    missing = [c for c in GAME_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(GAME_COLUMNS)} "
                         "(and optionally prompt_id)")
    has_prompts = "prompt_id" in df.columns
    cols = [*GAME_COLUMNS, "prompt_id"] if has_prompts else list(GAME_COLUMNS)
    df = df.select(pl.col(c).cast(pl.String).str.strip_chars() for c in cols)
    df = df.with_columns(pl.col("winner").replace("", None))
    for col in ("model_a", "model_b", *(["prompt_id"] if has_prompts else [])):
        empty = df[col].is_null() | (df[col] == "")
        if empty.any():
            raise ValueError(f"{path}: column {col} is empty in {int(empty.sum())} row(s), "
                             f"first at row {int(empty.arg_max()) + 1}")
    bad = sorted(set(df["winner"].drop_nulls().unique()) - set(WINNER))
    if bad:
        raise ValueError(f"{path}: column winner must be A, B or 0 (or empty for no verdict); "
                         f"got {bad[:5]}")
    same = df.filter(pl.col("model_a") == pl.col("model_b"))
    if same.height:
        raise ValueError(f"{path}: a game needs two different models; "
                         f"{same['model_a'][0]!r} plays itself in {same.height} row(s)")
    models = sorted(set(df["model_a"]) | set(df["model_b"]))
    if len(models) < 2:
        raise ValueError(f"{path}: need games between at least two models, found {models}")
    index = {m: k for k, m in enumerate(models)}
    groups = df["prompt_id"] if has_prompts else pl.Series(np.arange(df.height).astype(str))
    valid = df["winner"].is_not_null()
    df, groups = df.filter(valid), groups.filter(valid)
    return Games(models=models,
                 i=np.array([index[m] for m in df["model_a"]], dtype=np.int64),
                 j=np.array([index[m] for m in df["model_b"]], dtype=np.int64),
                 outcome=np.array([WINNER[w] for w in df["winner"]], dtype=float),
                 groups=groups.to_numpy(), invalid=int((~valid).sum()))


def default_reference(games: Games) -> str:
    """The model in the most games with a valid verdict (its share is the best determined); on a
    tie, the first by name."""
    played = Counter(np.concatenate([games.i, games.j]).tolist())
    return games.models[max(range(len(games.models)), key=lambda k: (played[k], -k))]


def _check_connected(games: Games) -> None:
    """Strengths are comparable only within a set of models linked by games with a verdict."""
    n = len(games.models)
    parent = list(range(n))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in zip(games.i.tolist(), games.j.tolist()):
        parent[root(a)] = root(b)
    parts: dict[int, list[str]] = {}
    for k, model in enumerate(games.models):
        parts.setdefault(root(k), []).append(model)
    if len(parts) > 1:
        shown = "; ".join(", ".join(p) for p in sorted(parts.values(), key=lambda p: (-len(p), p)))
        raise ValueError(f"the games (with a valid verdict) split the models into {len(parts)} groups "
                         f"that never met, so their strengths cannot be compared: {shown}")


def leaderboard(games: Games, *, reference: str | None, n_boot: int, seed: int, order_effect: bool,
                prior_strength: float = PRIOR_STRENGTH, level: float = 0.95) -> tuple[pl.DataFrame, dict]:
    """One row per model (LEADERBOARD_COLUMNS), strongest first, and facts about the fit.

    `reference`: the model every share is taken against (None: `default_reference`). `n_boot` = 0:
    no interval (null interval cells). `order_effect`: fit γ (A = shown first). `prior_strength`:
    used only for data without a finite maximum; 0 makes those an error.
    """
    if len(games.outcome) == 0:
        raise ValueError("no game has a valid verdict")
    if reference is None:
        reference = default_reference(games)
    elif reference not in games.models:
        raise ValueError(f"reference {reference!r} is not a model in the table; models: {games.models}")
    if n_boot < 0:
        raise ValueError(f"the number of bootstrap replicates must be >= 0, got {n_boot}")
    _check_connected(games)
    ref = games.models.index(reference)
    res = fit_shares(games.i, games.j, games.outcome, games.groups, ref=ref, n_boot=n_boot,
                     seed=seed, n_players=len(games.models), prior_strength=prior_strength,
                     level=level, first=np.ones(len(games.i), dtype=np.int64),
                     order_effect=order_effect)
    fit = res.fit
    theta = fit.log_strengths
    n = len(games.models)
    a_won, tie, b_won = (games.outcome == v for v in (1.0, 0.5, 0.0))
    wins = np.bincount(games.i[a_won], minlength=n) + np.bincount(games.j[b_won], minlength=n)
    losses = np.bincount(games.j[a_won], minlength=n) + np.bincount(games.i[b_won], minlength=n)
    ties = np.bincount(games.i[tie], minlength=n) + np.bincount(games.j[tie], minlength=n)
    none = [None] * n
    table = pl.DataFrame({
        "model": games.models, "strength": theta - theta.mean(), "share": res.share,
        "ci_low": res.low if res.low is not None else none,
        "ci_high": res.high if res.high is not None else none,
        "expected_score": res.expected,
        "expected_ci_low": res.expected_low if res.expected_low is not None else none,
        "expected_ci_high": res.expected_high if res.expected_high is not None else none,
        "nu": [fit.nu] * n, "gamma": [fit.gamma if order_effect else None] * n,
        "games": wins + ties + losses, "wins": wins, "ties": ties, "losses": losses,
        "degenerate": fit.runaway_strengths.astype(bool),
    }, schema_overrides={c: pl.Float64 for c in ("ci_low", "ci_high", "expected_ci_low",
                                                 "expected_ci_high", "gamma")})
    table = table.sort(["strength", "model"], descending=[True, False])
    info = {"reference": reference, "models": n, "games": int(len(games.outcome)),
            "invalid": games.invalid, "nu": fit.nu, "gamma": fit.gamma if order_effect else None,
            "status": fit.status, "runaway": fit.describe_runaway(games.models),
            "message": fit.message}
    return table.select(LEADERBOARD_COLUMNS), info
