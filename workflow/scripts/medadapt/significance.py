"""Paired statistics of two models answering the same multiple-choice items.

Two models scored on the same items are paired: each item is right for both, for one only, or for
neither. Whether one model is more accurate depends only on the discordant items (right for exactly
one of the two), which is McNemar's test; with few discordant items its exact form (a binomial
test of the discordant split against 1/2) is the one that holds its level. Several checkpoints of a
run tested against one baseline are a family of tests: Holm's step-down correction keeps the chance
of any false "significant" in the family at alpha, with more power than Bonferroni.

The exact McNemar test comes from statsmodels (`mcnemar(exact=True)`); Holm's adjustment is
written out here (see `holm`); this module also pairs the items, counts the table and runs the
bootstrap of accuracy ratios.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Paired:
    """The 2x2 table of two models on the same n items (a = candidate, b = baseline)."""
    both: int       # right for both
    a_only: int     # right for the candidate only
    b_only: int     # right for the baseline only
    neither: int    # wrong for both

    @property
    def n(self) -> int:
        return self.both + self.a_only + self.b_only + self.neither

    @property
    def acc_a(self) -> float:
        return (self.both + self.a_only) / self.n

    @property
    def acc_b(self) -> float:
        return (self.both + self.b_only) / self.n


def paired(a: Sequence[bool], b: Sequence[bool]) -> Paired:
    """The 2x2 table of correctness vectors over the same items, in the same order."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired: expected two vectors over the same items, got shapes "
                         f"{a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("paired: no items")
    return Paired(int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b)), int(np.sum(~a & ~b)))


def mcnemar_exact(table: Paired) -> float:
    """Two-sided exact McNemar p-value: min(1, 2 · P(X <= min(a_only, b_only))), X ~ Bin(a_only +
    b_only, 1/2). No discordant items (the models agree on every item) gives 1."""
    from statsmodels.stats.contingency_tables import mcnemar

    res = mcnemar([[table.both, table.a_only], [table.b_only, table.neither]], exact=True)
    return float(res.pvalue)


def holm(pvalues: Sequence[float], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted p-values and rejections (adjusted p <= alpha) of one family of tests: the k-th
    smallest of m p-values times (m - k + 1), made non-decreasing in that order, capped at 1.
    NaN p-values (tests that could not be run) stay NaN, are never rejected and do not count
    towards the family's size.

    Written out rather than taken from statsmodels' multipletests(method="holm"), which gives the
    same numbers (a test checks it) but runs a full gc.collect() on every call: a third of a second
    per family in a process holding the tables, and a study has hundreds of families.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted, reject = np.full(p.shape, np.nan), np.zeros(p.shape, dtype=bool)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        steps = p[order] * np.arange(ok.size, 0, -1)
        adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
        reject[ok] = adjusted[ok] <= alpha
    return adjusted, reject


def stable_seed(seed: int, *parts: str) -> np.random.Generator:
    """A generator seeded by `seed` and a name (e.g. family/size/task), the same in every process
    (Python's hash() of a string is salted per process; crc32 is not)."""
    return np.random.default_rng([int(seed), zlib.crc32("/".join(parts).encode())])


def resample_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) item indices drawn with replacement: one bootstrap sample of the items per row."""
    return rng.integers(0, n, size=(n_boot, n))


def ratio_interval(num: np.ndarray, den: np.ndarray,
                   level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of num/den over bootstrap replicates. Replicates whose denominator is 0
    (a baseline that got no resampled item right) have no ratio and are left out; none left: None."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    ok = den > 0
    if not ok.any():
        return None, None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(num[ok] / den[ok], [tail, 100 - tail])
    return float(lo), float(hi)
