"""Assertions shared by the statistical tests."""

from __future__ import annotations

from scipy import stats


def assert_binomial(successes: int, trials: int, p: float, alpha: float = 1e-6) -> None:
    """Two-sided exact binomial test; alpha tiny so a correct model essentially never fails."""
    pval = stats.binomtest(int(successes), int(trials), p).pvalue
    rate = successes / trials
    assert pval > alpha, f"{successes}/{trials} = {rate:.4f} vs p = {p:.4f} (p-value {pval:.2g})"
