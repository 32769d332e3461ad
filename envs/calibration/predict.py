"""How well a population of profiles predicts held-out students' responses.

A population is read as a Bayesian mixture: a new student is one of its ``M`` profiles,
each equally likely a priori. Response ``r`` of a held-out student is predicted from
that student's earlier responses only:
``P(y_r = 1 | y_<r) = Σ_m w_m(r) · P_m(y_r = 1 | y_<r)`` with ``w_m(r) ∝ P_m(y_<r)``.
``P_m`` is the SkillGraph BKT forward filter of profile ``m`` (equations in
``envs.calibration.skill_graph``) or the SpacedRepetition memory-model replay. The same
code scores the calibrated population and the env's default one, so the comparison is
fair. Scores: log-loss (mean negative log-likelihood, natural log; lower is better) and
AUC (probability that a correct answer gets a higher prediction than a wrong one).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata

from envs.calibration import bkt, memory
from envs.calibration.skill_graph import bkt_from_profiles

_P_EPS = 1e-6


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 outcomes ``y`` under probabilities ``p``."""
    p = np.clip(np.asarray(p, dtype=np.float64), _P_EPS, 1.0 - _P_EPS)
    y = np.asarray(y, dtype=bool)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney statistic, ties count one half)."""
    y = np.asarray(y, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def mixture(p: np.ndarray, y: np.ndarray, student: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Mixture predictions ``(R,)`` from per-component predictions ``p`` ``(M, R)``.

    Rows are grouped by student and in time order; ``counted`` marks the rows whose
    outcome is evidence (others neither update the weights nor matter in the output).
    """
    pc = np.clip(p, _P_EPS, 1.0 - _P_EPS)
    lp = np.where(y.astype(bool), np.log(pc), np.log1p(-pc)) * counted
    before = np.cumsum(lp, axis=1) - lp
    first = np.searchsorted(student, student)  # index of each student's first row
    loglik = before - before[:, first]
    w = np.exp(loglik - logsumexp(loglik, axis=0, keepdims=True))
    return (w * p).sum(axis=0)


def kt_component_predictions(
    arrays: dict[str, np.ndarray],
    seqs: bkt.Sequences,
    between: np.ndarray,
    before: np.ndarray,
    n_rows: int,
) -> np.ndarray:
    """``(M, n_rows)``: the BKT prediction of every log row if the student had profile ``m``."""
    m_count = len(arrays["slip"])
    out = np.zeros((m_count, n_rows))
    for m in range(m_count):
        params = bkt_from_profiles(arrays, seqs, between, before, np.full(seqs.n_students, m))
        _, pred, _ = bkt.forward(seqs, params)
        out[m, seqs.row] = pred
    return out


def review_component_predictions(
    arrays: dict[str, np.ndarray], data: memory.Reviews, memory_model: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(M, n_students, T)`` recall predictions of every review under each profile, and the counted mask."""
    from envs.spaced_repetition.memory_models import make_model

    m_count, n = len(arrays["decay"]), data.n_students
    rep = data.take(np.tile(np.arange(n), m_count))
    which = np.repeat(np.arange(m_count), n)
    p, counted = memory.replay(
        make_model(memory_model),
        rep,
        arrays["decay"][which],
        arrays["gain"][which],
        arrays["fail_effect"][which],
        arrays["item_difficulty"][which],
    )
    return p.reshape(m_count, n, -1), counted[:n]


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"log_loss": log_loss(y, p), "auc": auc(y, p), "n_responses": len(y)}
