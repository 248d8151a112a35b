"""Davidson (1970) paired-comparison model with ties, fitted by maximum likelihood.

    P(i beats j) = π_i / D,   P(tie) = ν √(π_i π_j) / D,   D = π_i + π_j + ν √(π_i π_j)

Parameters are θ = log π (one player, `ref`, fixed at θ = 0, i.e. π_ref = 1, for identifiability)
and η = log ν, optimised with scipy's L-BFGS-B on the analytic gradient.

Degenerate data (a player that never loses, or no ties at all) have no finite maximum. A weak
prior keeps the fit finite: a Gaussian N(0, 1/prior_strength) on every free θ and on η, i.e. the
penalty prior_strength/2 · (Σθ² + η²), with prior_strength = 1e-6 by default (PRIOR_STRENGTH). Its
effect on non-degenerate fits is below 1e-6 in θ; prior_strength=0 is the plain maximum-likelihood
estimate.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

PRIOR_STRENGTH = 1e-6


@dataclasses.dataclass
class Counts:
    """Aggregated games: for each row, player i vs player j with wins/ties/losses from i's view."""
    i: np.ndarray
    j: np.ndarray
    wins: np.ndarray
    ties: np.ndarray
    losses: np.ndarray

    def __post_init__(self):
        self.i, self.j = (np.asarray(a, dtype=np.int64) for a in (self.i, self.j))
        self.wins, self.ties, self.losses = (np.asarray(a, dtype=float)
                                             for a in (self.wins, self.ties, self.losses))
        n = len(self.i)
        if any(len(a) != n for a in (self.j, self.wins, self.ties, self.losses)):
            raise ValueError("davidson: i, j, wins, ties, losses must have equal lengths")
        if np.any(self.i == self.j):
            raise ValueError("davidson: a game needs two different players (i == j found)")
        if np.any(self.i < 0) or np.any(self.j < 0):
            raise ValueError("davidson: player indices must be >= 0")
        if min(self.wins.min(initial=0), self.ties.min(initial=0), self.losses.min(initial=0)) < 0:
            raise ValueError("davidson: counts must be >= 0")

    @property
    def n_players(self) -> int:
        return int(max(self.i.max(initial=-1), self.j.max(initial=-1)) + 1)


def aggregate(i: Sequence[int], j: Sequence[int], outcome: Sequence[float]) -> Counts:
    """Games (i, j, outcome: 1 = i wins, 0.5 = tie, 0 = j wins) -> counts per ordered pair."""
    i, j, y = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), np.asarray(outcome, float)
    if not (len(i) == len(j) == len(y)):
        raise ValueError("davidson: i, j and outcome must have equal lengths")
    bad = ~np.isin(y, (0.0, 0.5, 1.0))
    if bad.any():
        raise ValueError(f"davidson: outcome must be 1 (i wins), 0.5 (tie) or 0 (j wins); "
                         f"got {y[bad][:5].tolist()}")
    pairs, inverse = np.unique(np.stack([i, j], axis=1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    k = len(pairs)
    return Counts(pairs[:, 0], pairs[:, 1],
                  np.bincount(inverse, weights=(y == 1.0), minlength=k),
                  np.bincount(inverse, weights=(y == 0.5), minlength=k),
                  np.bincount(inverse, weights=(y == 0.0), minlength=k))


def as_counts(games: Any) -> Counts:
    """Accept Counts, a mapping with i/j/wins/ties/losses, or a tuple (i, j, outcome)."""
    if isinstance(games, Counts):
        return games
    if isinstance(games, Mapping):
        return Counts(*(games[k] for k in ("i", "j", "wins", "ties", "losses")))
    if isinstance(games, (tuple, list)) and len(games) == 3:
        return aggregate(*games)
    if isinstance(games, (tuple, list)) and len(games) == 5:
        return Counts(*games)
    raise TypeError("davidson: games must be Counts, {i, j, wins, ties, losses} or (i, j, outcome)")


@dataclasses.dataclass
class DavidsonFit:
    log_strengths: np.ndarray  # θ, θ[ref] = 0
    nu: float
    loglik: float  # log-likelihood at the optimum (without the prior's penalty)
    converged: bool
    n_iter: int
    message: str
    ref: int

    @property
    def strengths(self) -> np.ndarray:
        return np.exp(self.log_strengths)

    def probs(self, i: int, j: int) -> tuple[float, float, float]:
        """(P(i wins), P(tie), P(j wins)) for one game."""
        a, b = self.strengths[i], self.strengths[j]
        c = self.nu * np.sqrt(a * b)
        d = a + b + c
        return float(a / d), float(c / d), float(b / d)

    def score(self, i: int, j: int) -> float:
        """Strength share π_i / (π_i + π_j): 0.5 is parity."""
        return float(_share(self.log_strengths, j)[i])


def _terms(theta: np.ndarray, eta: float, c: Counts):
    si, sj = theta[c.i], theta[c.j]
    h = eta + 0.5 * (si + sj)
    log_d = np.logaddexp(np.logaddexp(si, sj), h)
    return si, sj, h, log_d


def loglik(theta: np.ndarray, eta: float, c: Counts) -> float:
    si, sj, h, log_d = _terms(theta, eta, c)
    n = c.wins + c.ties + c.losses
    return float(np.sum(c.wins * si + c.losses * sj + c.ties * h - n * log_d))


def _objective(x: np.ndarray, c: Counts, n_players: int, ref: int, prior_strength: float,
               scale: float):
    theta = np.insert(x[:-1], ref, 0.0)
    eta = x[-1]
    si, sj, h, log_d = _terms(theta, eta, c)
    n = c.wins + c.ties + c.losses
    ll = np.sum(c.wins * si + c.losses * sj + c.ties * h - n * log_d)
    pa, pb, pc = np.exp(si - log_d), np.exp(sj - log_d), np.exp(h - log_d)
    g_theta = (np.bincount(c.i, c.wins + c.ties / 2 - n * (pa + pc / 2), minlength=n_players)
               + np.bincount(c.j, c.losses + c.ties / 2 - n * (pb + pc / 2), minlength=n_players))
    g = np.append(np.delete(g_theta, ref), np.sum(c.ties - n * pc))
    value = -ll + 0.5 * prior_strength * float(x @ x)
    return value / scale, (-g + prior_strength * x) / scale


def fit_davidson(games: Any, n_players: int | None = None, ref: int = 0,
                 prior_strength: float = PRIOR_STRENGTH, x0: DavidsonFit | None = None) -> DavidsonFit:
    """Maximum-likelihood Davidson fit. Players are 0..n_players-1; θ[ref] = 0 (π_ref = 1).

    `games`: (i, j, outcome) arrays with outcome 1 = i wins, 0.5 = tie, 0 = j wins, or aggregated
    counts (Counts or a mapping i, j, wins, ties, losses). `prior_strength`: the precision of the
    Gaussian prior on θ and log ν (module docstring); 0 = plain maximum likelihood. `x0`: a previous
    fit to start from.
    """
    c = as_counts(games)
    n_players = max(n_players or 0, c.n_players)
    if n_players < 2:
        raise ValueError("davidson: need at least two players")
    if not 0 <= ref < n_players:
        raise ValueError(f"davidson: ref={ref} is not a player index (0..{n_players - 1})")
    if float(np.sum(c.wins + c.ties + c.losses)) == 0:
        raise ValueError("davidson: no games")
    if prior_strength < 0 or not np.isfinite(prior_strength):
        raise ValueError(f"davidson: prior strength must be a finite number >= 0, got {prior_strength}")
    if prior_strength == 0 and (np.sum(c.ties) == 0):
        raise ValueError("davidson: no ties, so ν has no finite maximum-likelihood estimate; "
                         "use a prior strength > 0")
    return _optimize(c, n_players, ref, prior_strength, x0)


def _optimize(c: Counts, n_players: int, ref: int, prior_strength: float,
              x0: DavidsonFit | None) -> DavidsonFit:
    """The fit itself, on checked input. Without a prior, data with no finite maximum (a resample
    without ties) end where the gradient vanishes numerically: at the boundary, e.g. ν ≈ 0."""
    # Imported here: scipy.optimize takes about a second to import, and the `medadapt` command line
    # reads this module's constants for every subcommand's --help.
    from scipy import optimize

    total = float(np.sum(c.wins + c.ties + c.losses))
    start = (np.append(np.delete(x0.log_strengths, ref), np.log(x0.nu)) if x0 is not None
             else np.zeros(n_players))
    res = optimize.minimize(_objective, start, args=(c, n_players, ref, prior_strength, total), jac=True,
                            method="L-BFGS-B",
                            options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-11})
    theta = np.insert(res.x[:-1], ref, 0.0)
    return DavidsonFit(log_strengths=theta, nu=float(np.exp(res.x[-1])),
                       loglik=loglik(theta, float(res.x[-1]), c),
                       converged=bool(res.success), n_iter=int(res.nit), message=str(res.message),
                       ref=ref)


@dataclasses.dataclass
class Bootstrap:
    log_strengths: np.ndarray  # (n_boot, n_players)
    nu: np.ndarray  # (n_boot,)

    def interval(self, values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of any per-replicate statistic (first axis = replicates)."""
        alpha = (1 - level) / 2
        return np.quantile(values, alpha, axis=0), np.quantile(values, 1 - alpha, axis=0)

    def scores(self, i: int, j: int) -> np.ndarray:
        """Player i's share against player j in every replicate."""
        return _share(self.log_strengths, j)[:, i]


def bootstrap(i: Sequence[int], j: Sequence[int], outcome: Sequence[float], groups: Sequence, *,
              n_boot: int, seed: int, n_players: int | None = None, ref: int = 0,
              prior_strength: float = PRIOR_STRENGTH, full_fit: DavidsonFit | None = None) -> Bootstrap:
    """Refit on `n_boot` resamples of whole groups (e.g. prompts: both orders of a prompt, and all
    its games against every player, stay together). Seeded; each refit starts at the full fit
    (`full_fit` when the caller has it, with the same players, ref and prior; else fitted here)."""
    i, j, y = np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(outcome, float)
    full = aggregate(i, j, y)
    n_players = max(n_players or 0, full.n_players)
    base_fit = full_fit if full_fit is not None else fit_davidson(full, n_players, ref, prior_strength)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    g = g.ravel()
    pairs, p = np.unique(np.stack([i, j], axis=1), axis=0, return_inverse=True)
    p = p.ravel()
    # per group and pair: wins, ties, losses; a resample is a weighted sum over groups
    table = np.zeros((g.max() + 1, len(pairs), 3))
    np.add.at(table, (g, p, np.where(y == 1.0, 0, np.where(y == 0.5, 1, 2))), 1.0)
    rng = np.random.default_rng(seed)
    n_groups = table.shape[0]
    thetas, nus = np.empty((n_boot, n_players)), np.empty(n_boot)
    for b in range(n_boot):
        weights = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        w = np.tensordot(weights, table, axes=1)
        # A resample may lack ties or losses that the full data had: with prior_strength 0 its
        # estimate is a boundary value, which the percentile interval takes as it is.
        fit = _optimize(Counts(pairs[:, 0], pairs[:, 1], w[:, 0], w[:, 1], w[:, 2]),
                        n_players, ref, prior_strength, x0=base_fit)
        thetas[b], nus[b] = fit.log_strengths, fit.nu
    return Bootstrap(thetas, nus)


def _share(log_strengths: np.ndarray, ref: int) -> np.ndarray:
    """π_k / (π_k + π_ref) for every player k (last axis), from log-strengths."""
    return 1.0 / (1.0 + np.exp(log_strengths[..., [ref]] - log_strengths))


@dataclasses.dataclass
class Shares:
    """Every player's strength share against one reference, with its percentile interval."""
    fit: DavidsonFit
    share: np.ndarray  # π_k / (π_k + π_ref); the reference's own is 0.5
    low: np.ndarray | None  # None without a bootstrap
    high: np.ndarray | None


def fit_shares(i: Sequence[int], j: Sequence[int], outcome: Sequence[float], groups: Sequence, *,
               ref: int, n_boot: int, seed: int, n_players: int | None = None,
               prior_strength: float = PRIOR_STRENGTH, level: float = 0.95) -> Shares:
    """One Davidson fit of all games, each player's share against `ref`, and (n_boot > 0) its
    percentile bootstrap interval over resampled groups (see `bootstrap`)."""
    fit = fit_davidson((i, j, outcome), n_players, ref, prior_strength)
    low = high = None
    if n_boot > 0:
        boot = bootstrap(i, j, outcome, groups, n_boot=n_boot, seed=seed,
                         n_players=len(fit.log_strengths), ref=ref, prior_strength=prior_strength,
                         full_fit=fit)
        low, high = boot.interval(_share(boot.log_strengths, ref), level)
    return Shares(fit, _share(fit.log_strengths, ref), low, high)
