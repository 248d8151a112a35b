"""Davidson (1970) paired-comparison model with ties, with an optional order effect, fitted by
maximum likelihood.

    P(i beats j) = π_i / D,   P(tie) = ν √(π_i π_j) / D,   D = π_i + π_j + ν √(π_i π_j)

One ν per fit: the model's single tie parameter. It does not make the tie rate constant: ties are
most likely between equal players (P(tie) = ν / (2 + ν)) and rarer the more their strengths differ.

Order effect (Davidson & Beaver 1977), for a judge that favours one position: the response shown
first plays with its strength multiplied by γ,

    P(i wins | i shown first) = γπ_i / D,  P(tie) = ν √(γπ_i π_j) / D,  P(j wins) = π_j / D,
    D = γπ_i + π_j + ν √(γπ_i π_j);

γ = 1 is no position effect, γ > 1 favours the first-shown response. With every prompt judged in
both orders, γ absorbs the position bias instead of the tie parameter.

Parameters: θ = log π (one player, `ref`, fixed at θ = 0, i.e. π_ref = 1), η = log ν and τ = log γ.
Every outcome's log-probability is a linear function of them minus a log-sum-exp (a multinomial
logit), so the log-likelihood is concave; it is maximised by Newton's method with the analytic
Hessian, to machine precision (convergence: a per-game gradient below GRADIENT_TOL).

A finite maximum exists unless some direction in parameter space raises every observed outcome
against its alternatives: a player that never loses (or never wins) in a way no other game
balances, no ties at all (ν → 0), only ties (ν → ∞), or a first-shown response that always wins
(γ → ∞). `runaway` finds such a direction exactly, with a linear program. Only such degenerate
data are fitted with the weak Gaussian prior N(0, 1/prior_strength) on every parameter (default
PRIOR_STRENGTH), which keeps the estimate finite; the fit then says which parameters ran away.
Data with a finite maximum are fitted by plain maximum likelihood, so the prior has no effect on
them at all.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

PRIOR_STRENGTH = 1e-6
# A fit has converged when the gradient of the log-likelihood per game is below this: Newton's
# method reaches ~1e-15 on well-posed data; 1e-8 leaves room for round-off in large fits.
GRADIENT_TOL = 1e-8
OUTCOMES = ("win", "tie", "loss")  # the columns of Counts.table, from player i's view


@dataclasses.dataclass
class Counts:
    """Aggregated games: for each row (a cell), player i vs player j with wins/ties/losses from i's
    view, and who was shown first: `first` = +1 (i), -1 (j) or 0 (unknown, no order effect)."""
    i: np.ndarray
    j: np.ndarray
    wins: np.ndarray
    ties: np.ndarray
    losses: np.ndarray
    first: np.ndarray | None = None

    def __post_init__(self):
        self.i, self.j = (np.asarray(a, dtype=np.int64) for a in (self.i, self.j))
        self.wins, self.ties, self.losses = (np.asarray(a, dtype=float)
                                             for a in (self.wins, self.ties, self.losses))
        n = len(self.i)
        self.first = (np.zeros(n, dtype=np.int64) if self.first is None
                      else np.asarray(self.first, dtype=np.int64))
        if any(len(a) != n for a in (self.j, self.wins, self.ties, self.losses, self.first)):
            raise ValueError("davidson: i, j, wins, ties, losses (and first) must have equal lengths")
        if np.any(self.i == self.j):
            raise ValueError("davidson: a game needs two different players (i == j found)")
        if np.any(self.i < 0) or np.any(self.j < 0):
            raise ValueError("davidson: player indices must be >= 0")
        if min(self.wins.min(initial=0), self.ties.min(initial=0), self.losses.min(initial=0)) < 0:
            raise ValueError("davidson: counts must be >= 0")
        if not np.all(np.isin(self.first, (-1, 0, 1))):
            raise ValueError("davidson: first must be +1 (i shown first), -1 (j first) or 0")

    @property
    def n_players(self) -> int:
        return int(max(self.i.max(initial=-1), self.j.max(initial=-1)) + 1)

    @property
    def table(self) -> np.ndarray:
        """(cells, 3): wins, ties, losses."""
        return np.stack([self.wins, self.ties, self.losses], axis=1)


def aggregate(i: Sequence[int], j: Sequence[int], outcome: Sequence[float],
              first: Sequence[int] | None = None) -> Counts:
    """Games (i, j, outcome: 1 = i wins, 0.5 = tie, 0 = j wins; `first`: +1 = i shown first, -1 = j
    shown first, 0 or None = unknown) -> counts per (i, j, first) cell."""
    i, j, y = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), np.asarray(outcome, float)
    f = np.zeros(len(i), dtype=np.int64) if first is None else np.asarray(first, dtype=np.int64)
    if not (len(i) == len(j) == len(y) == len(f)):
        raise ValueError("davidson: i, j, outcome (and first) must have equal lengths")
    bad = ~np.isin(y, (0.0, 0.5, 1.0))
    if bad.any():
        raise ValueError(f"davidson: outcome must be 1 (i wins), 0.5 (tie) or 0 (j wins); "
                         f"got {y[bad][:5].tolist()}")
    cells, inverse = np.unique(np.stack([i, j, f], axis=1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    k = len(cells)
    return Counts(cells[:, 0], cells[:, 1],
                  np.bincount(inverse, weights=(y == 1.0), minlength=k),
                  np.bincount(inverse, weights=(y == 0.5), minlength=k),
                  np.bincount(inverse, weights=(y == 0.0), minlength=k), cells[:, 2])


def as_counts(games: Any) -> Counts:
    """Accept Counts, a mapping with i/j/wins/ties/losses[/first], or a tuple (i, j, outcome[, first])."""
    if isinstance(games, Counts):
        return games
    if isinstance(games, Mapping):
        return Counts(*(games[k] for k in ("i", "j", "wins", "ties", "losses")), games.get("first"))
    if isinstance(games, (tuple, list)) and len(games) in (3, 4):
        return aggregate(*games)
    if isinstance(games, (tuple, list)) and len(games) == 5:
        return Counts(*games)
    raise TypeError("davidson: games must be Counts, {i, j, wins, ties, losses} or (i, j, outcome)")


class Design:
    """The linear utilities of the three outcomes of every cell: log P(outcome) = u − logsumexp(u),
    u = C[cell] @ x with x = (θ without θ_ref, η = log ν[, τ = log γ])."""

    def __init__(self, counts: Counts, n_players: int, ref: int, order_effect: bool):
        self.counts, self.n_players, self.ref, self.order_effect = counts, n_players, ref, order_effect
        c = counts
        n_theta = n_players - 1
        self.n_params = n_theta + 1 + int(order_effect)
        col = np.full(n_players, -1)
        col[np.arange(n_players) != ref] = np.arange(n_theta)
        design = np.zeros((len(c.i), 3, self.n_params + 1))  # one spare column for θ_ref, dropped
        rows = np.arange(len(c.i))
        ci, cj = (np.where(col[k] < 0, self.n_params, col[k]) for k in (c.i, c.j))
        design[rows, 0, ci] += 1.0                   # win:  θ_i (+ τ when i is shown first)
        design[rows, 1, ci] += 0.5                   # tie:  η + (θ_i + θ_j)/2 (+ τ/2)
        design[rows, 1, cj] += 0.5
        design[rows, 1, n_theta] += 1.0
        design[rows, 2, cj] += 1.0                   # loss: θ_j (+ τ when j is shown first)
        if order_effect:
            tau = n_theta + 1
            design[rows, 0, tau] += (c.first == 1)
            design[rows, 1, tau] += 0.5 * (c.first != 0)
            design[rows, 2, tau] += (c.first == -1)
        self.C = design[:, :, :self.n_params]
        self.table = c.table
        self.total = float(self.table.sum())

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, float, float]:
        """x -> (θ with θ_ref = 0, ν, γ)."""
        n_theta = self.n_players - 1
        theta = np.insert(x[:n_theta], self.ref, 0.0)
        gamma = float(np.exp(x[n_theta + 1])) if self.order_effect else 1.0
        return theta, float(np.exp(x[n_theta])), gamma

    def pack(self, fit: "DavidsonFit") -> np.ndarray:
        x = [np.delete(fit.log_strengths, self.ref), [np.log(fit.nu)]]
        if self.order_effect:
            x.append([np.log(fit.gamma)])
        return np.concatenate(x)

    def loglik(self, x: np.ndarray, table: np.ndarray | None = None) -> float:
        table = self.table if table is None else table
        u = self.C @ x
        logp = u - _logsumexp(u)
        return float(np.sum(table * logp))

    def derivatives(self, x: np.ndarray, table: np.ndarray):
        """Log-likelihood, its gradient and its Hessian (negative semi-definite) at x."""
        u = self.C @ x
        lse = _logsumexp(u)
        p = np.exp(u - lse)                                  # (cells, 3)
        n = table.sum(axis=1)                                # games per cell
        ll = float(np.sum(table * (u - lse)))
        grad = np.einsum("ck,ckp->p", table - n[:, None] * p, self.C)
        cp = np.einsum("ck,ckp->cp", p, self.C)              # E[C] per cell
        hess = -(np.einsum("c,ck,ckp,ckq->pq", n, p, self.C, self.C)
                 - np.einsum("c,cp,cq->pq", n, cp, cp))
        return ll, grad, hess

    def runaway(self, table: np.ndarray | None = None, sparse: bool = False) -> np.ndarray | None:
        """A direction d in parameter space along which the log-likelihood rises for ever (no
        observed outcome loses ground against an alternative, at least one gains), or None when
        the maximum is finite. A linear program: rows (u_o − u_o')·d ≥ s_r, s_r ∈ [0, 1], for every
        observed outcome o and alternative o'; maximise Σ s_r. `sparse`: then, among the
        directions that lift as many rows, the one of least L1 norm, so that it names only the
        parameters that must run away (signs of d: +1, −1, 0)."""
        from scipy.optimize import linprog

        table = self.table if table is None else table
        rows = [self.C[c, o] - self.C[c, other] for c, o in zip(*np.nonzero(table > 0))
                for other in range(3) if other != o]
        if not rows:
            return None
        a = np.array(rows)
        r, p = a.shape
        bound = 4.0 * r  # room for a sum of the directions that lift single rows
        lift = np.hstack([-a, np.eye(r)])  # −A d + s ≤ 0
        res = linprog(np.concatenate([np.zeros(p), -np.ones(r)]), A_ub=lift, b_ub=np.zeros(r),
                      bounds=[(-bound, bound)] * p + [(0.0, 1.0)] * r, method="highs")
        if res.status != 0 or -res.fun < 0.5:
            return None
        d = res.x[:p]
        if sparse:  # variables d+ (p), d− (p), s (r): minimise Σ(d+ + d−) keeping Σ s
            lifted = -res.fun - 1e-6
            res2 = linprog(np.concatenate([np.ones(2 * p), np.zeros(r)]),
                           A_ub=np.vstack([np.hstack([-a, a, np.eye(r)]),
                                           np.concatenate([np.zeros(2 * p), -np.ones(r)])[None]]),
                           b_ub=np.concatenate([np.zeros(r), [-lifted]]),
                           bounds=[(0.0, bound)] * (2 * p) + [(0.0, 1.0)] * r, method="highs")
            if res2.status == 0:
                d = res2.x[:p] - res2.x[p:2 * p]
        return np.where(np.abs(d) > 1e-7 * np.abs(d).max(), np.sign(d), 0.0)


def _logsumexp(u: np.ndarray) -> np.ndarray:
    m = u.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(u - m).sum(axis=-1, keepdims=True))


@dataclasses.dataclass
class DavidsonFit:
    log_strengths: np.ndarray  # θ, θ[ref] = 0
    nu: float
    gamma: float  # order effect; 1.0 when not fitted (order_effect False)
    loglik: float  # log-likelihood at the estimate (without the prior's penalty)
    converged: bool
    n_iter: int
    message: str
    ref: int
    order_effect: bool = False
    # Degenerate data (no finite maximum): what ran away, and the prior that kept it finite.
    runaway_strengths: np.ndarray | None = None  # per player: +1/−1 unbounded above/below vs ref, 0
    runaway_nu: int = 0  # +1: ν → ∞ (ties only), −1: ν → 0 (no ties)
    runaway_gamma: int = 0  # +1: the first-shown always does better, −1: the second
    prior_strength: float = 0.0  # the prior actually used (0: plain maximum likelihood)

    @property
    def strengths(self) -> np.ndarray:
        return np.exp(self.log_strengths)

    @property
    def degenerate(self) -> bool:
        """No finite maximum-likelihood estimate: the prior determined what ran away."""
        return bool(self.runaway_nu or self.runaway_gamma or
                    (self.runaway_strengths is not None and np.any(self.runaway_strengths)))

    @property
    def status(self) -> str:
        """'converged', 'degenerate' (no finite maximum; see `describe_runaway`) or 'not converged'."""
        if not self.converged:
            return "not converged"
        return "degenerate" if self.degenerate else "converged"

    def describe_runaway(self, names: Sequence[str] | None = None) -> str:
        """In words, which parameters have no finite estimate (empty when none)."""
        names = list(names) if names is not None else [str(k) for k in range(len(self.log_strengths))]
        parts = []
        if self.runaway_strengths is not None:
            ref = names[self.ref]
            for k, s in enumerate(self.runaway_strengths):
                if s:
                    parts.append(f"{names[k]}'s strength grows without bound "
                                 f"{'above' if s > 0 else 'below'} {ref}'s")
        if self.runaway_nu:
            parts.append("ν → ∞ (only ties decide)" if self.runaway_nu > 0 else "ν → 0 (no ties)")
        if self.runaway_gamma:
            parts.append("γ → " + ("∞ (the first-shown response always does better)"
                                   if self.runaway_gamma > 0 else "0 (the second-shown always does better)"))
        return "; ".join(parts)

    def probs(self, i: int, j: int, first: int = 0) -> tuple[float, float, float]:
        """(P(i wins), P(tie), P(j wins)) for one game; `first`: +1 i shown first, −1 j, 0 none."""
        a, b = self.strengths[i], self.strengths[j]
        if first == 1:
            a = a * self.gamma
        elif first == -1:
            b = b * self.gamma
        c = self.nu * np.sqrt(a * b)
        d = a + b + c
        return float(a / d), float(c / d), float(b / d)

    def score(self, i: int, j: int) -> float:
        """Strength share π_i / (π_i + π_j): 0.5 is parity."""
        return float(_share(self.log_strengths, j)[i])


def _newton(design: Design, table: np.ndarray, x0: np.ndarray, prior_strength: float,
            max_iter: int = 500) -> tuple[np.ndarray, bool, int, str]:
    """Maximise loglik − prior_strength/2·|x|² by Newton's method (the objective is concave;
    strictly so with a prior or identifiable data): backtracking while far from the maximum, full
    steps near it, where the objective's round-off would stall a line search but the gradient
    still shrinks quadratically; stops when it no longer shrinks."""
    total = max(float(table.sum()), 1.0)

    def objective(z):
        return (design.loglik(z, table) - 0.5 * prior_strength * float(z @ z)) / total

    def derivatives(z):
        _, g, h = design.derivatives(z, table)
        return (g - prior_strength * z) / total, (h - prior_strength * np.eye(len(z))) / total

    x = x0.copy()
    g, h = derivatives(x)
    message = f"stopped after {max_iter} iterations"
    it = 0
    for it in range(1, max_iter + 1):
        size = float(np.max(np.abs(g)))
        if size < 1e-15:
            message = "gradient vanished"
            break
        step = np.linalg.lstsq(-h, g, rcond=None)[0]
        slope = float(g @ step)
        if slope <= 0:  # not an ascent direction (round-off): fall back to the gradient
            step, slope = g, float(g @ g)
        if size < 1e-7:  # near the maximum: a full step, kept only if the gradient shrinks
            trial = x + step
            g_new, h_new = derivatives(trial)
            if not np.max(np.abs(g_new)) < size:
                message = "gradient at round-off level"
                break
            x, g, h = trial, g_new, h_new
            continue
        value, t = objective(x), 1.0
        while t > 1e-12:
            trial = x + t * step
            new = objective(trial)
            if np.isfinite(new) and new >= value + 1e-4 * t * slope:
                break
            t /= 2
        else:
            message = "no further ascent (round-off)"
            break
        x = trial
        g, h = derivatives(x)
    return x, bool(np.max(np.abs(g)) < GRADIENT_TOL), it, message


def _check(c: Counts, n_players: int | None, ref: int, prior_strength: float) -> int:
    n_players = max(n_players or 0, c.n_players)
    if n_players < 2:
        raise ValueError("davidson: need at least two players")
    if not 0 <= ref < n_players:
        raise ValueError(f"davidson: ref={ref} is not a player index (0..{n_players - 1})")
    if float(np.sum(c.table)) == 0:
        raise ValueError("davidson: no games")
    if prior_strength < 0 or not np.isfinite(prior_strength):
        raise ValueError(f"davidson: prior strength must be a finite number >= 0, got {prior_strength}")
    return n_players


def _identifiable(design: Design, table: np.ndarray) -> bool:
    """Whether the games pin down every parameter (the utility differences of the played cells
    have full column rank); e.g. γ needs games in both orders."""
    played = table.sum(axis=1) > 0
    diffs = np.concatenate([design.C[played, 0] - design.C[played, 2],
                            design.C[played, 1] - design.C[played, 2]])
    return np.linalg.matrix_rank(diffs) == design.n_params


def fit_davidson(games: Any, n_players: int | None = None, ref: int = 0,
                 prior_strength: float = PRIOR_STRENGTH, x0: DavidsonFit | None = None,
                 order_effect: bool = False) -> DavidsonFit:
    """Maximum-likelihood Davidson fit. Players are 0..n_players-1; θ[ref] = 0 (π_ref = 1).

    `games`: (i, j, outcome[, first]) arrays with outcome 1 = i wins, 0.5 = tie, 0 = j wins and
    first +1 = i shown first, −1 = j shown first; or aggregated counts (Counts or a mapping i, j,
    wins, ties, losses[, first]). `order_effect`: also fit γ (needs games in both orders).
    `prior_strength`: the precision of the Gaussian prior used only when the data have no finite
    maximum (module docstring); 0 = plain maximum likelihood, an error for such data. `x0`: a
    previous fit to start from.
    """
    c = as_counts(games)
    n_players = _check(c, n_players, ref, prior_strength)
    design = Design(c, n_players, ref, order_effect)
    if not _identifiable(design, design.table):
        what = ("γ apart from the strengths (judge some pairs in both orders)" if order_effect
                and _identifiable(Design(c, n_players, ref, False), design.table)
                else "the strengths: some players never met the others (directly or through others)")
        raise ValueError(f"davidson: the games do not determine {what}")
    direction = design.runaway(sparse=True)
    if direction is not None and prior_strength == 0:
        fit = _as_fit(design, np.zeros(design.n_params), False, 0, "", ref, direction, 0.0)
        raise ValueError("davidson: no finite maximum-likelihood estimate ("
                         f"{fit.describe_runaway()}); use a prior strength > 0")
    prior = prior_strength if direction is not None else 0.0
    start = design.pack(x0) if x0 is not None else np.zeros(design.n_params)
    x, converged, n_iter, message = _newton(design, design.table, start, prior)
    return _as_fit(design, x, converged, n_iter, message, ref, direction, prior)


def _as_fit(design: Design, x: np.ndarray, converged: bool, n_iter: int, message: str, ref: int,
            direction: np.ndarray | None, prior: float) -> DavidsonFit:
    theta, nu, gamma = design.unpack(x)
    runaway = np.zeros(design.n_players)
    run_nu = run_gamma = 0
    if direction is not None:
        runaway = np.insert(direction[:design.n_players - 1], ref, 0.0)
        run_nu = int(direction[design.n_players - 1])
        run_gamma = int(direction[design.n_players]) if design.order_effect else 0
    return DavidsonFit(log_strengths=theta, nu=nu, gamma=gamma, loglik=design.loglik(x),
                       converged=converged, n_iter=n_iter, message=message, ref=ref,
                       order_effect=design.order_effect, runaway_strengths=runaway.astype(int),
                       runaway_nu=run_nu, runaway_gamma=run_gamma, prior_strength=prior)


@dataclasses.dataclass
class Bootstrap:
    log_strengths: np.ndarray  # (n_boot, n_players)
    nu: np.ndarray  # (n_boot,)
    gamma: np.ndarray  # (n_boot,); 1 without an order effect
    expected: np.ndarray  # (n_boot, n_players): each player's (W + T/2)/n in the replicate
    degenerate: np.ndarray  # (n_boot,) bool: the replicate had no finite maximum (prior used)

    def interval(self, values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of any per-replicate statistic (first axis = replicates)."""
        alpha = (1 - level) / 2
        return np.nanquantile(values, alpha, axis=0), np.nanquantile(values, 1 - alpha, axis=0)

    def scores(self, i: int, j: int) -> np.ndarray:
        """Player i's share against player j in every replicate."""
        return _share(self.log_strengths, j)[:, i]


def expected_scores(c: Counts, n_players: int, table: np.ndarray | None = None) -> np.ndarray:
    """Each player's expected score (W + T/2)/n over all its games (NaN for a player without
    games); `table` (…, cells, 3) replaces the counts, e.g. a stack of bootstrap replicates."""
    t = c.table if table is None else table
    w, ti, lo = t[..., 0], t[..., 1], t[..., 2]
    shape = t.shape[:-2] + (n_players,)
    points, games = np.zeros(shape), np.zeros(shape)
    for side, mine, theirs in ((c.i, w, lo), (c.j, lo, w)):
        onehot = np.zeros((len(side), n_players))
        onehot[np.arange(len(side)), side] = 1.0
        points += (mine + ti / 2) @ onehot
        games += (mine + ti + theirs) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(games > 0, points / np.where(games > 0, games, 1.0), np.nan)


def bootstrap(i: Sequence[int], j: Sequence[int], outcome: Sequence[float], groups: Sequence, *,
              n_boot: int, seed: int, n_players: int | None = None, ref: int = 0,
              prior_strength: float = PRIOR_STRENGTH, full_fit: DavidsonFit | None = None,
              first: Sequence[int] | None = None, order_effect: bool = False) -> Bootstrap:
    """Refit on `n_boot` resamples of whole groups (e.g. prompts: both orders of a prompt, and all
    its games against every player, stay together). Seeded; each refit starts at the full fit
    (`full_fit` when the caller has it, with the same players, ref, order effect and prior; else
    fitted here). A replicate without a finite maximum is fitted with the prior (with
    prior_strength 0 it ends at the boundary, which the percentile interval takes as it is)."""
    i, j, y = np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(outcome, float)
    f = np.zeros(len(i), np.int64) if first is None else np.asarray(first, np.int64)
    full = aggregate(i, j, y, f)
    n_players = max(n_players or 0, full.n_players)
    base_fit = full_fit if full_fit is not None else fit_davidson(
        full, n_players, ref, prior_strength, order_effect=order_effect)
    design = Design(full, n_players, ref, order_effect)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    g = g.ravel()
    cells = {tuple(cell): k for k, cell in enumerate(zip(full.i, full.j, full.first))}
    cell = np.array([cells[(a, b, c)] for a, b, c in zip(i, j, f)], dtype=np.int64)
    # per group and cell: wins, ties, losses; a resample is a weighted sum over groups
    per_group = np.zeros((g.max() + 1, len(full.i), 3))
    np.add.at(per_group, (g, cell, np.where(y == 1.0, 0, np.where(y == 0.5, 1, 2))), 1.0)
    rng = np.random.default_rng(seed)
    n_groups = per_group.shape[0]
    start = design.pack(base_fit)
    thetas, nus, gammas = np.empty((n_boot, n_players)), np.empty(n_boot), np.ones(n_boot)
    tables, degenerate = np.empty((n_boot, len(full.i), 3)), np.zeros(n_boot, bool)
    for b in range(n_boot):
        weights = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        table = np.tensordot(weights, per_group, axes=1)
        tables[b] = table
        degenerate[b] = design.runaway(table) is not None
        x, _, _, _ = _newton(design, table, start, prior_strength if degenerate[b] else 0.0)
        thetas[b], nus[b], gammas[b] = design.unpack(x)
    return Bootstrap(thetas, nus, gammas, expected_scores(full, n_players, tables), degenerate)


def _share(log_strengths: np.ndarray, ref: int) -> np.ndarray:
    """π_k / (π_k + π_ref) for every player k (last axis), from log-strengths."""
    return 1.0 / (1.0 + np.exp(log_strengths[..., [ref]] - log_strengths))


@dataclasses.dataclass
class Shares:
    """Every player's strength share against one reference and its expected score, each with its
    percentile interval (None without a bootstrap)."""
    fit: DavidsonFit
    share: np.ndarray  # π_k / (π_k + π_ref); the reference's own is 0.5
    low: np.ndarray | None
    high: np.ndarray | None
    expected: np.ndarray  # (W + T/2)/n over each player's games
    expected_low: np.ndarray | None
    expected_high: np.ndarray | None
    boot: Bootstrap | None = None


def fit_shares(i: Sequence[int], j: Sequence[int], outcome: Sequence[float], groups: Sequence, *,
               ref: int, n_boot: int, seed: int, n_players: int | None = None,
               prior_strength: float = PRIOR_STRENGTH, level: float = 0.95,
               first: Sequence[int] | None = None, order_effect: bool = False) -> Shares:
    """One Davidson fit of all games; each player's share against `ref` and its expected score;
    (n_boot > 0) their percentile bootstrap intervals over resampled groups (see `bootstrap`)."""
    games = aggregate(i, j, outcome, first)
    fit = fit_davidson(games, n_players, ref, prior_strength, order_effect=order_effect)
    n = len(fit.log_strengths)
    expected = expected_scores(games, n)
    low = high = e_low = e_high = boot = None
    if n_boot > 0:
        boot = bootstrap(i, j, outcome, groups, n_boot=n_boot, seed=seed, n_players=n, ref=ref,
                         prior_strength=prior_strength, full_fit=fit, first=first,
                         order_effect=order_effect)
        low, high = boot.interval(_share(boot.log_strengths, ref), level)
        e_low, e_high = boot.interval(boot.expected, level)
    return Shares(fit, _share(fit.log_strengths, ref), low, high, expected, e_low, e_high, boot)
