"""Confidence intervals over students, from ``scipy.stats.bootstrap``.

Every interval in an evaluation report is a 95 % bootstrap interval of a mean over
held-out students (BCa, falling back to the percentile method where BCa is undefined,
e.g. when almost every value is the same). Differences between two methods are
*paired*: the bootstrap resamples students and keeps each student's two numbers together.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval."""

    mean: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high}

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def mean_ci(values: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Interval:
    """Bootstrap CI of the mean of ``values`` (one number per student; NaNs dropped)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    m = float(x.mean())
    if len(x) < 2 or np.ptp(x) == 0.0:
        return Interval(m, m, m)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa warns on near-degenerate data; we fall back below
        res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                              method="BCa", random_state=rng)  # fmt: skip
        lo, hi = res.confidence_interval
        if not (np.isfinite(lo) and np.isfinite(hi)):
            res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                  method="percentile", random_state=rng)  # fmt: skip
            lo, hi = res.confidence_interval
    return Interval(m, float(lo), float(hi))


def paired_difference_ci(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> Interval:
    """CI of ``mean(a - b)`` over students measured under both methods."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.shape} and {b.shape}")
    return mean_ci(a - b, confidence, n_resamples, seed)
