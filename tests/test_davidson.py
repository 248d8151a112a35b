"""Davidson (1970) fit: closed forms and invariants, the order effect, degenerate data, recovery of
simulated strengths, the bootstrap."""
import numpy as np
import pytest

from medadapt.davidson import (Counts, Design, aggregate, bootstrap, expected_scores, fit_davidson,
                               fit_shares)


def games(w, t, l, i=0, j=1):
    """Game arrays for one pair: w wins, t ties, l losses from i's view."""
    n = w + t + l
    return [i] * n, [j] * n, [1.0] * w + [0.5] * t + [0.0] * l


def simulate(theta, nu, n_games, rng, gamma=None):
    """Random pairs; with `gamma`, also who is shown first (returned as a fourth array)."""
    n = len(theta)
    i = rng.integers(0, n, n_games)
    j = (i + rng.integers(1, n, n_games)) % n
    a, b = np.exp(theta[i]), np.exp(theta[j])
    first = rng.choice([1, -1], n_games)
    if gamma is not None:
        a, b = a * np.where(first == 1, gamma, 1.0), b * np.where(first == -1, gamma, 1.0)
    c = nu * np.sqrt(a * b)
    u = rng.random(n_games) * (a + b + c)
    y = np.where(u < a, 1.0, np.where(u < a + c, 0.5, 0.0))
    return (i, j, y) if gamma is None else (i, j, y, first)


def test_one_pair_closed_form():
    fit = fit_davidson(games(30, 10, 20), prior_strength=0)
    assert fit.status == "converged" and fit.message
    assert fit.log_strengths[0] - fit.log_strengths[1] == pytest.approx(np.log(30 / 20), abs=1e-12)
    assert fit.nu == pytest.approx(10 / np.sqrt(30 * 20), rel=1e-12)
    assert fit.score(0, 1) == pytest.approx(30 / 50, abs=1e-12)  # share = W / (W + L)
    assert fit.log_strengths[fit.ref] == 0.0 and fit.gamma == 1.0 and fit.prior_strength == 0
    # aggregated counts give the same fit as the game list
    agg = fit_davidson({"i": [0], "j": [1], "wins": [30], "ties": [10], "losses": [20]}, prior_strength=0)
    assert agg.log_strengths == pytest.approx(fit.log_strengths, abs=1e-12)
    assert agg.loglik == pytest.approx(fit.loglik, abs=1e-9)


def test_exact_fits_converge_without_false_alarms():
    """Many random two-player tables: every fit converges to the closed form (no warnings)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        w, t, l = rng.integers(1, 200, 3)
        fit = fit_davidson(games(w, t, l))
        assert fit.status == "converged", (w, t, l, fit.message)
        assert fit.score(0, 1) == pytest.approx(w / (w + l), abs=1e-10)
        assert fit.nu == pytest.approx(t / np.sqrt(w * l), rel=1e-9)


def test_the_prior_does_not_touch_data_with_a_finite_maximum():
    """The documented bound: a fit with a finite maximum is the plain maximum-likelihood estimate,
    whatever the prior strength (it is used only for degenerate data)."""
    rng = np.random.default_rng(8)
    data = simulate(np.array([0.0, 0.4, -0.3]), 0.1, 200, rng)
    plain = fit_davidson(data, prior_strength=0)
    for prior in (1e-6, 1e-2, 10.0):
        weak = fit_davidson(data, prior_strength=prior)
        assert weak.prior_strength == 0.0 and not weak.degenerate
        assert weak.log_strengths == pytest.approx(plain.log_strengths, abs=1e-12)
        assert weak.nu == pytest.approx(plain.nu, rel=1e-12)


def test_gradient_and_hessian_match_finite_differences():
    rng = np.random.default_rng(1)
    i, j, y, first = simulate(np.array([0.0, 0.5, -0.2]), 0.6, 300, rng, gamma=1.4)
    design = Design(aggregate(i, j, y, first), 3, 0, order_effect=True)
    x = np.array([0.3, -0.2, 0.1, 0.25])
    _, grad, hess = design.derivatives(x, design.table)
    eye, h = np.eye(len(x)), 1e-6
    num_grad = [(design.loglik(x + h * e) - design.loglik(x - h * e)) / (2 * h) for e in eye]
    num_hess = [(design.derivatives(x + h * e, design.table)[1]
                 - design.derivatives(x - h * e, design.table)[1]) / (2 * h) for e in eye]
    assert grad == pytest.approx(np.array(num_grad), rel=1e-6, abs=1e-6)
    assert hess == pytest.approx(np.array(num_hess), rel=1e-6, abs=1e-5)


def bradley_terry_mm(wins: np.ndarray, iters=20000) -> np.ndarray:
    """Hunter's (2004) MM algorithm for Bradley-Terry; wins[a, b] = times a beat b."""
    n = wins + wins.T
    pi = np.ones(len(wins))
    for _ in range(iters):
        pi = wins.sum(1) / (n / (pi[:, None] + pi[None, :])).sum(1)
        pi /= pi[0]
    return np.log(pi)


def test_no_ties_reduces_to_bradley_terry():
    """Without ties ν → 0 (no finite maximum, reported), and the strengths are Bradley-Terry's."""
    wins = np.array([[0, 7, 3, 9], [4, 0, 6, 2], [5, 8, 0, 4], [2, 6, 5, 0]], float)
    i, j = np.nonzero(wins)
    fit = fit_davidson(Counts(i, j, wins[i, j], np.zeros(len(i)), np.zeros(len(i))))
    assert fit.converged and fit.nu < 1e-3
    assert fit.status == "degenerate" and fit.describe_runaway() == "ν → 0 (no ties)"
    assert not fit.runaway_strengths.any()
    assert fit.log_strengths == pytest.approx(bradley_terry_mm(wins), abs=1e-4)


def test_score_and_ties_match_expectations_at_optimum():
    rng = np.random.default_rng(3)
    i, j, y = simulate(np.array([0.0, 0.8, -0.5, 0.3]), 0.7, 3000, rng)
    fit = fit_davidson((i, j, y), prior_strength=0)
    n_players = 4
    observed = np.zeros(n_players)
    expected = np.zeros(n_players)
    exp_ties = 0.0
    for a, b, o in zip(i, j, y):
        pw, pt, pl = fit.probs(a, b)
        observed[a] += o
        observed[b] += 1 - o
        expected[a] += pw + pt / 2
        expected[b] += pl + pt / 2
        exp_ties += pt
    assert observed == pytest.approx(expected, abs=1e-3)
    assert exp_ties == pytest.approx(np.sum(y == 0.5), abs=1e-3)


def test_relabel_and_side_swap_invariance():
    rng = np.random.default_rng(5)
    i, j, y = simulate(np.array([0.0, 0.5, -0.7, 1.1, 0.2]), 0.5, 2000, rng)
    fit = fit_davidson((i, j, y), prior_strength=0)
    perm = rng.permutation(5)  # player p is called perm[p] now
    relabelled = fit_davidson((perm[i], perm[j], y), prior_strength=0, ref=perm[0])
    assert relabelled.log_strengths[perm] == pytest.approx(fit.log_strengths, abs=1e-5)
    assert relabelled.nu == pytest.approx(fit.nu, rel=1e-5)
    swapped = fit_davidson((j, i, 1 - y), prior_strength=0)
    assert swapped.log_strengths == pytest.approx(fit.log_strengths, abs=1e-5)
    assert swapped.loglik == pytest.approx(fit.loglik, abs=1e-6)
    # another reference only shifts all log-strengths
    other = fit_davidson((i, j, y), prior_strength=0, ref=3)
    assert other.log_strengths - other.log_strengths[0] == pytest.approx(fit.log_strengths, abs=1e-5)


def test_equal_strengths_tie_probability():
    fit = fit_davidson(games(25, 14, 25), prior_strength=0)
    assert fit.log_strengths[1] == pytest.approx(0.0, abs=1e-7)
    _, p_tie, _ = fit.probs(0, 1)
    assert p_tie == pytest.approx(fit.nu / (2 + fit.nu), rel=1e-9)
    assert p_tie == pytest.approx(14 / 64, abs=1e-6)  # and the MLE matches the observed tie rate
    assert fit.score(0, 1) == pytest.approx(0.5)


def test_recovers_simulated_parameters():
    theta = np.array([0.0, 1.0, -0.6, 0.4])
    i, j, y = simulate(theta, 0.8, 30000, np.random.default_rng(11))
    fit = fit_davidson((i, j, y))
    assert fit.log_strengths == pytest.approx(theta, abs=0.06)
    assert fit.nu == pytest.approx(0.8, abs=0.05)


def test_recovers_simulated_parameters_without_ties():
    theta = np.array([0.0, 1.0, -0.6, 0.4])
    i, j, y = simulate(theta, 0.0, 30000, np.random.default_rng(12))
    fit = fit_davidson((i, j, y))
    assert fit.log_strengths == pytest.approx(theta, abs=0.06) and fit.nu < 1e-3


def test_recovers_an_order_effect():
    """A judge that multiplies the first-shown strength by γ = 1.8: the fit recovers γ, ν and the
    strengths; without the order effect the position noise attenuates the strengths instead."""
    theta = np.array([0.0, 1.0, -0.6, 0.4])
    data = simulate(theta, 0.5, 40000, np.random.default_rng(13), gamma=1.8)
    fit = fit_davidson(data, order_effect=True)
    assert fit.status == "converged"
    assert fit.log_strengths == pytest.approx(theta, abs=0.06)
    assert fit.gamma == pytest.approx(1.8, rel=0.05) and fit.nu == pytest.approx(0.5, abs=0.04)
    # P(1 wins | 1 shown first) = γπ_1 / (γπ_1 + π_0 + ν√(γπ_1π_0)), π_0 = 1
    p_first, p_tie, p_second = fit.probs(1, 0, first=1)
    g_pi = fit.gamma * fit.strengths[1]
    assert p_first == pytest.approx(g_pi / (g_pi + 1 + fit.nu * np.sqrt(g_pi)), rel=1e-12)
    assert p_first + p_tie + p_second == pytest.approx(1.0)
    plain = fit_davidson(data[:3])
    assert np.all(np.abs(plain.log_strengths[1:]) < np.abs(fit.log_strengths[1:]))
    # two players, every game in one order: γ and the strengths cannot be told apart
    i, j, y = games(30, 10, 20)
    with pytest.raises(ValueError, match=r"do not determine γ apart from the strengths \(judge some "
                                         r"pairs in both orders\)"):
        fit_davidson((i, j, y, [1] * len(i)), order_effect=True)


@pytest.mark.parametrize("w,t,l,runaway", [
    (40, 0, 0, "1's strength grows without bound below 0's; ν → 0 (no ties)"),
    (0, 0, 40, "1's strength grows without bound above 0's; ν → 0 (no ties)"),
    (30, 6, 0, "1's strength grows without bound below 0's; ν → ∞ (only ties decide)"),
    (0, 12, 0, "ν → ∞ (only ties decide)"),
])
def test_degenerate_data_are_reported_and_stay_finite(w, t, l, runaway):
    fit = fit_davidson(games(w, t, l))
    assert fit.converged and fit.status == "degenerate" and fit.prior_strength == 1e-6
    assert fit.describe_runaway() == runaway
    assert np.all(np.isfinite(fit.log_strengths)) and np.isfinite(fit.nu)
    if l == 0 and w > 0:
        assert fit.score(0, 1) > 0.999
    if w == 0 and l > 0:
        assert fit.score(0, 1) < 0.001
    with pytest.raises(ValueError, match="no finite maximum-likelihood estimate"):
        fit_davidson(games(w, t, l), prior_strength=0)


def test_a_player_that_never_loses_but_ties_can_have_a_finite_estimate():
    """Player 2 never loses, but its ties against a ν that player 1's games pin down bound it."""
    i = [1] * 10 + [2] * 8
    y = [1.0] * 4 + [0.5] * 3 + [0.0] * 3 + [1.0] * 5 + [0.5] * 3
    fit = fit_davidson((i, [0] * 18, y), prior_strength=0)
    assert fit.status == "converged" and 0.5 < fit.score(2, 0) < 0.99


def test_expected_scores():
    c = aggregate([0, 0, 1, 2], [1, 2, 2, 0], [1.0, 0.5, 0.0, 0.5])
    # 0: win vs 1, tie vs 2, tie vs 2 (as j) -> 2/3; 1: loss, loss -> 0; 2: tie, win, tie -> 2/3
    assert expected_scores(c, 4)[:3] == pytest.approx([2 / 3, 0.0, 2 / 3])
    assert np.isnan(expected_scores(c, 4)[3])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="outcome must be 1"):
        fit_davidson(([0, 1], [1, 0], [1.0, 0.3]))
    with pytest.raises(ValueError, match="i == j"):
        fit_davidson(([0], [0], [1.0]))
    with pytest.raises(ValueError, match=r"no finite maximum-likelihood estimate \(ν → 0 \(no ties\)\)"):
        fit_davidson(games(3, 0, 2), prior_strength=0)
    with pytest.raises(ValueError, match="do not determine the strengths"):
        fit_davidson(([0, 2], [1, 3], [1.0, 0.5]))  # {0, 1} never met {2, 3}
    with pytest.raises(ValueError, match="prior strength must be a finite number >= 0"):
        fit_davidson(games(3, 1, 2), prior_strength=-1.0)
    with pytest.raises(ValueError, match="ref=5"):
        fit_davidson(games(3, 1, 2), ref=5)


def test_aggregate_counts():
    c = aggregate([0, 0, 1, 0], [1, 1, 0, 2], [1.0, 0.5, 0.0, 0.0])
    rows = {(a, b): (w, t, l) for a, b, w, t, l in zip(c.i, c.j, c.wins, c.ties, c.losses)}
    assert rows == {(0, 1): (1, 1, 0), (1, 0): (0, 0, 1), (0, 2): (0, 0, 1)}
    ordered = aggregate([0, 0, 0], [1, 1, 1], [1.0, 1.0, 0.0], first=[1, -1, 1])
    cells = {(a, b, f): (w, t, l) for a, b, f, w, t, l in
             zip(ordered.i, ordered.j, ordered.first, ordered.wins, ordered.ties, ordered.losses)}
    assert cells == {(0, 1, 1): (1, 0, 1), (0, 1, -1): (1, 0, 0)}


def test_bootstrap_is_seeded_and_resamples_whole_groups():
    rng = np.random.default_rng(2)
    i, j, y = simulate(np.array([0.0, 0.5]), 0.6, 400, rng)
    groups = np.arange(400) // 2
    a = bootstrap(i, j, y, groups, n_boot=50, seed=7)
    b = bootstrap(i, j, y, groups, n_boot=50, seed=7)
    c = bootstrap(i, j, y, groups, n_boot=50, seed=8)
    assert a.log_strengths.shape == (50, 2) and np.array_equal(a.log_strengths, b.log_strengths)
    assert not np.array_equal(a.log_strengths, c.log_strengths)
    lo, hi = a.interval(a.scores(1, 0))
    point = fit_davidson((i, j, y)).score(1, 0)
    assert lo < point < hi
    # every group is one win and one loss (both orders of a prompt): any resample of whole groups
    # has W = L exactly, so the interval collapses to parity; a game-level resample would not
    n = 100
    ii, jj = np.zeros(2 * n, int), np.ones(2 * n, int)
    yy = np.tile([1.0, 0.0], n)
    boot = bootstrap(ii, jj, yy, np.repeat(np.arange(n), 2), n_boot=30, seed=0)
    assert boot.interval(boot.scores(0, 1)) == pytest.approx((0.5, 0.5), abs=1e-6)


def test_fit_shares_against_a_reference():
    rng = np.random.default_rng(4)
    i, j, y = simulate(np.array([0.0, 0.5, -0.4]), 0.6, 600, rng)
    groups = np.arange(600) // 3
    res = fit_shares(i, j, y, groups, ref=2, n_boot=40, seed=5, prior_strength=0)
    theta = res.fit.log_strengths
    assert res.share == pytest.approx(1 / (1 + np.exp(theta[2] - theta)), abs=1e-12)
    assert res.share[2] == 0.5 and res.share.tolist() == [res.fit.score(k, 2) for k in range(3)]
    # the same replicates as the bootstrap on its own
    boot = bootstrap(i, j, y, groups, n_boot=40, seed=5, ref=2, prior_strength=0)
    lo, hi = boot.interval(np.stack([boot.scores(k, 2) for k in range(3)], axis=1))
    assert res.low == pytest.approx(lo, abs=1e-9) and res.high == pytest.approx(hi, abs=1e-9)
    assert np.all(res.low <= res.share) and np.all(res.share <= res.high)
    none = fit_shares(i, j, y, groups, ref=2, n_boot=0, seed=5)
    assert none.low is None and none.high is None


def test_plain_ml_bootstrap_survives_resamples_without_ties():
    """Two tied games among 40: many resamples have no tie, where ν has no finite maximum; the
    replicate takes its boundary value (ν ≈ 0) instead of failing."""
    i, j, y = games(20, 2, 18)
    boot = bootstrap(i, j, y, np.arange(40), n_boot=60, seed=0, prior_strength=0)
    assert np.all(np.isfinite(boot.log_strengths)) and boot.nu.min() < 1e-3
