"""ZPD-v0 from item responses: a Rasch fit of ability per (student, skill) and item difficulty.

ZPD-v0 answers with the Rasch model ``P(correct) = σ(θ_k − b_l)`` (``envs/zpd/dynamics.py``),
so a log of answers ``(student i, skill k, item j, correct y)`` is fitted with

    ``logit P(y_r = 1) = θ_{i k} − b_j``

by maximum a posteriori (L-BFGS-B, analytic gradient, vectorised over all answers):
``−Σ_r [y_r log p_r + (1 − y_r) log(1 − p_r)] + Σ_{ik} (θ_{ik} − μ_k)² / (2 s²) + Σ_j b_j² / (2 s_b²)``,
with gradient ``∂/∂θ_{ik} = −Σ_{r ∈ (i,k)} (y_r − p_r) + (θ_{ik} − μ_k)/s²`` and
``∂/∂b_j = Σ_{r ∈ j} (y_r − p_r) + b_j / s_b²``. Two stages (empirical Bayes): a first
fit with a weak prior (``μ_k = 0``, ``s = 3``) gives each skill's mean ability ``μ_k`` and
the spread ``s`` of abilities around it; the second fit uses them as the prior, so a
student with few answers on a skill is pulled to the skill's mean, not to 0. The
Rasch scale has one free shift (``θ + c, b + c``): we fix it the usual way, mean item
difficulty 0 (weighted by answers), which is also where the env's default difficulties
``linspace(−2.5, 2.5)`` are centred. 2PL discriminations are not fitted: the env has none.

To the env:

* ``ability0`` of a profile = the fitted ``θ_{i ·}`` (clipped to the profile's [−6, 6]); a
  skill the student never answered gets the skill's mean ``μ_k``.
* The env's ``difficulties`` (one per level, shared by all skills) = ``n_levels`` quantiles
  ``(l + ½) / n_levels`` of the fitted item difficulties, weighted by answers (unless
  ``--env-kwargs`` sets them): the env's levels span the log's items.
* **Not identifiable from answers alone, left at the population's values**: ``learn_rate``,
  ``sweet_spot``, ``zpd_width`` (learning), ``frustration``, ``boredom``, ``recovery``,
  ``engagement0`` (engagement). Every fitted student gets these from a draw of the env's
  default ``train`` population (seeded). The static Rasch fit also reads ability as
  constant over the log: learning during the log shows up as a higher average ability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from envs.calibration.logs import ResponseLog

ABILITY_BOUND = 6.0
#: profile fields a log of answers cannot tell; drawn from the env's default population
POPULATION_FIELDS = (
    "learn_rate",
    "sweet_spot",
    "zpd_width",
    "frustration",
    "boredom",
    "recovery",
    "engagement0",
)


@dataclass(frozen=True)
class RaschFit:
    """``theta`` ``(n_students, n_skills)`` (NaN where a student never answered a skill), item ``b``."""

    theta: np.ndarray
    b: np.ndarray
    skill_mean: np.ndarray
    ability_sd: float
    loglik: float
    converged: bool

    def ability(self) -> np.ndarray:
        """``θ`` with unanswered skills at the skill mean, clipped to the profile's range."""
        filled = np.where(np.isnan(self.theta), self.skill_mean[None, :], self.theta)
        return np.clip(filled, -ABILITY_BOUND, ABILITY_BOUND)


def rasch_objective(
    x: np.ndarray, log: ResponseLog, prior_mu: np.ndarray, sd: float, item_sd: float
) -> tuple[float, np.ndarray]:
    """Negative log-posterior and its gradient at ``x = (θ.ravel(), b)`` (module docstring).

    ``prior_mu`` is the prior mean of every ``θ_{ik}``, shape ``(n_students · n_skills,)``.
    """
    n, k, j = log.n_students, len(log.names), len(log.item_names)
    assert log.item is not None
    cell = log.student * k + log.unit
    y = log.correct.astype(np.float64)
    theta, b = x[: n * k], x[n * k :]
    z = theta[cell] - b[log.item]
    ll = float(np.sum(y * z - np.logaddexp(0.0, z)))  # y log p + (1 − y) log(1 − p), stably
    r = y - expit(z)
    g_theta = -np.bincount(cell, r, minlength=n * k) + (theta - prior_mu) / sd**2
    g_b = np.bincount(log.item, r, minlength=j) + b / item_sd**2
    f = -ll + 0.5 * np.sum((theta - prior_mu) ** 2) / sd**2 + 0.5 * np.sum(b**2) / item_sd**2
    return f, np.concatenate([g_theta, g_b])


def _map_fit(log: ResponseLog, mu: np.ndarray, sd: float, item_sd: float, max_iter: int):
    n, k, j = log.n_students, len(log.names), len(log.item_names)
    prior_mu = np.tile(mu, n)
    res = minimize(
        rasch_objective,
        np.concatenate([prior_mu, np.zeros(j)]),
        args=(log, prior_mu, sd, item_sd),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-3 * ABILITY_BOUND, 3 * ABILITY_BOUND)] * (n * k + j),
        options={"maxiter": max_iter},
    )
    theta, b = res.x[: n * k].reshape(n, k), res.x[n * k :]
    return theta, b, -float(res.fun), bool(res.success)


def fit_rasch(log: ResponseLog, item_sd: float = 3.0, max_iter: int = 1000) -> RaschFit:
    """Two-stage MAP Rasch fit of a log with items (see the module docstring)."""
    if log.item is None:
        raise ValueError(f"{log.source}: ZPD-v0 calibration needs an item_id column (the question answered)")
    k = len(log.names)
    answered = np.zeros((log.n_students, k), dtype=bool)
    answered[log.student, log.unit] = True
    theta, b, _, _ = _map_fit(log, np.zeros(k), 3.0, item_sd, max_iter)
    # fix the scale's shift: mean item difficulty 0, weighted by answers
    shift = np.average(b, weights=np.bincount(log.item, minlength=len(b)) + 1e-12)
    theta, b = theta - shift, b - shift
    mu = np.array([theta[answered[:, s], s].mean() if answered[:, s].any() else 0.0 for s in range(k)])
    resid = (theta - mu[None, :])[answered]
    sd = float(max(np.std(resid), 0.3)) if resid.size > 1 else 1.0
    # second stage around the fitted means, then the same centring
    theta, b, ll, ok = _map_fit(log, mu + shift, sd, item_sd, max_iter)
    theta, b = theta - shift, b - shift
    shift2 = np.average(b, weights=np.bincount(log.item, minlength=len(b)) + 1e-12)
    theta, b = theta - shift2, b - shift2
    theta = np.where(answered, theta, np.nan)
    return RaschFit(theta, b, mu - shift2, sd, ll, ok)


def level_difficulties(fit: RaschFit, log: ResponseLog, n_levels: int) -> list[float]:
    """``n_levels`` answer-weighted quantiles of the item difficulties, strictly increasing."""
    w = np.bincount(log.item, minlength=len(fit.b)).astype(np.float64)
    order = np.argsort(fit.b)
    cum = (np.cumsum(w[order]) - 0.5 * w[order]) / w.sum()
    q = (np.arange(n_levels) + 0.5) / n_levels
    levels = np.interp(q, cum, fit.b[order])
    for i in range(1, n_levels):  # equal quantiles (few distinct items): keep them increasing
        levels[i] = max(levels[i], levels[i - 1] + 1e-3)
    return [round(float(v), 6) for v in np.clip(levels, -10.0, 10.0)]


def profiles(fit: RaschFit, n_skills: int, rows: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Profile arrays of the students ``rows``: fitted ability, the rest from the default population."""
    from envs.zpd.profile import ZPDDistribution

    dist = ZPDDistribution(n_skills)
    drawn = dist.sample_arrays(len(rows), "train", dist.split_rng(seed, "train"))
    out = {name: drawn[name] for name in POPULATION_FIELDS}
    out["ability0"] = fit.ability()[rows]
    return out


def predictions(ability: np.ndarray, b: np.ndarray, log: ResponseLog) -> np.ndarray:
    """``(M, n_rows)``: ``σ(ability_m[k_r] − b_{j_r})`` of every answer under each of ``M`` abilities."""
    return expit(ability[:, log.unit] - b[None, log.item])
