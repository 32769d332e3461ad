"""Maximum-likelihood fit of the SpacedRepetition-v0 memory model to review logs.

The recall probability of every logged review is computed by *replaying* the
student's log through the env's own memory model (``envs.spaced_repetition.memory_models``),
exactly as ``SpacedRepetitionDynamics._step`` does: the first presentation of an item
sets the strength ``S0`` (its answer carries no information: it is a forced failure in
the env, and a first exposure in a real log); every later one is answered correctly
with ``p = curve(decay · exp(ℓ_i) · Δt / S)`` and then updates ``S`` with the *observed*
outcome, the student's ``gain`` and ``fail_effect``. The log-likelihood is
``Σ y log p + (1 − y) log(1 − p)`` over reviews, so the fitted model is the simulator.

Two fits, both with ``scipy.optimize.minimize`` (L-BFGS-B, box bounds):

* :func:`fit_pooled`: one ``(decay, gain, fail_effect)`` for everybody, item
  difficulties 0 — the population centre;
* :func:`fit_students`: per student, ``log decay``, ``log gain``, ``log fail_effect``
  (and, with ``fit_items``, the item log-difficulties ``ℓ_i``) by MAP: Normal priors on
  the logs centred on the pooled fit with standard deviation ``prior_sd`` (shrinkage: a
  student with few reviews stays near the population), and ``ℓ_i ~ N(0, item_sd²)``. The
  item prior is what makes ``ℓ`` identifiable at all: ``decay`` and a common shift of
  every ``ℓ_i`` have the same effect, so the prior pins the items' mean at 0.

Gradients are forward differences. The objective is a sum over students, so one batched
replay of ``n × (D + 1)`` rows (each student with each coordinate nudged) gives every
student's partial derivatives at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from envs.calibration.logs import ResponseLog
from envs.spaced_repetition.memory_models import STATE_FIELDS, MemoryModel, make_model

_P_EPS = 1e-6
_H = 1e-6
#: box bounds of the log-parameters (inside the profile's ranges) and the item log-difficulties
LOG_BOUNDS = {"decay": (math.log(1e-2), math.log(100.0)), "gain": (math.log(1e-2), math.log(10.0))}
LOG_BOUNDS["fail_effect"] = LOG_BOUNDS["gain"]
ITEM_BOUND = 3.0


@dataclass(frozen=True)
class Reviews:
    """A review log as padded per-student matrices ``(n_students, T)``."""

    item: np.ndarray
    time: np.ndarray
    correct: np.ndarray
    valid: np.ndarray
    n_items: int
    #: optional ``(n_students, T)`` mask of the reviews whose outcome enters the likelihood
    #: (default: every review of a seen item); the others still update the memory state
    scored: np.ndarray | None = None

    @property
    def n_students(self) -> int:
        return self.item.shape[0]

    def take(self, rows: np.ndarray) -> Reviews:
        scored = None if self.scored is None else self.scored[rows]
        return Reviews(
            self.item[rows], self.time[rows], self.correct[rows], self.valid[rows], self.n_items, scored
        )


def reviews(log: ResponseLog, n_items: int | None = None, min_gap_days: float = 0.0) -> Reviews:
    """Pad a review log into per-student matrices.

    With ``min_gap_days > 0`` only reviews at least that long after the previous review of
    the same item enter the likelihood (``Reviews.scored``); all still update the memory.
    """
    counts = log.counts()
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(log.n_rows) - start[log.student]
    shape = (log.n_students, int(counts.max()))
    item = np.zeros(shape, dtype=np.int64)
    time = np.zeros(shape)
    correct = np.zeros(shape, dtype=bool)
    valid = np.zeros(shape, dtype=bool)
    item[log.student, pos] = log.unit
    time[log.student, pos] = log.time
    correct[log.student, pos] = log.correct.astype(bool)
    valid[log.student, pos] = True
    scored = None
    if min_gap_days > 0:
        key = log.student * max(len(log.names), 1) + log.unit
        order = np.argsort(key, kind="stable")  # rows are in time order within each student
        same = np.r_[False, key[order][1:] == key[order][:-1]]
        gap = np.r_[np.inf, np.diff(log.time[order])]
        ok = np.empty(log.n_rows, dtype=bool)
        ok[order] = same & (gap >= min_gap_days)
        scored = np.zeros(shape, dtype=bool)
        scored[log.student, pos] = ok
    return Reviews(item, time, correct, valid, n_items or len(log.names), scored)


def replay(
    model: MemoryModel,
    data: Reviews,
    decay: np.ndarray,
    gain: np.ndarray,
    fail_effect: np.ndarray,
    item_difficulty: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Recall probability of every review and whether it counts (a seen item, not padding).

    Parameters are per row of ``data`` (``item_difficulty`` shape ``(rows, n_items)``).
    """
    m, t_max = data.item.shape
    rows = np.arange(m)
    state = model.initial_state((m, data.n_items))
    first = model.learn((m,))
    seen = np.zeros((m, data.n_items), dtype=bool)
    last = np.zeros((m, data.n_items))
    speed = decay[:, None] * np.exp(item_difficulty)
    p_all = np.zeros((m, t_max))
    counts = np.zeros((m, t_max), dtype=bool)
    for t in range(t_max):
        a, v, now = data.item[:, t], data.valid[:, t], data.time[:, t]
        was_seen = seen[rows, a]
        real = now - last[rows, a]
        item_state = {f: s[rows, a] for f, s in state.items()}
        p = np.where(was_seen, model.recall(item_state["S"], real * speed[rows, a]), 0.0)
        new = model.review(item_state, p, data.correct[:, t], real, gain, fail_effect)
        for f in STATE_FIELDS:
            state[f][rows, a] = np.where(v, np.where(was_seen, new[f], first[f]), state[f][rows, a])
        seen[rows, a] |= v
        last[rows, a] = np.where(v, now, last[rows, a])
        p_all[:, t] = p
        counts[:, t] = v & was_seen
    if data.scored is not None:
        counts &= data.scored
    return p_all, counts


def nll(p: np.ndarray, counts: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Negative log-likelihood per row (natural log) of the counted reviews."""
    p = np.clip(p, _P_EPS, 1.0 - _P_EPS)
    ll = np.where(correct, np.log(p), np.log1p(-p))
    return -(ll * counts).sum(axis=1)


def _unpack(x: np.ndarray, n_items: int, fit_items: bool):
    decay, gain, fail = np.exp(x[:, 0]), np.exp(x[:, 1]), np.exp(x[:, 2])
    ell = x[:, 3:] if fit_items else np.zeros((len(x), n_items))
    return decay, gain, fail, ell


def _batched_nll(model: MemoryModel, data: Reviews, x: np.ndarray, fit_items: bool) -> np.ndarray:
    """NLL of each row of ``x`` ``(n_students, k, D)``: student ``i`` with parameter vector ``x[i, j]``."""
    n, k, d = x.shape
    rep = data.take(np.repeat(np.arange(n), k))
    p, counts = replay(model, rep, *_unpack(x.reshape(n * k, d), data.n_items, fit_items))
    return nll(p, counts, rep.correct).reshape(n, k)


def _value_and_grad(model: MemoryModel, data: Reviews, x: np.ndarray, fit_items: bool):
    """Per-student NLL ``(n,)`` and its gradient ``(n, D)`` by forward differences."""
    d = x.shape[1]
    probes = np.repeat(x[:, None, :], d + 1, axis=1)
    probes[:, 1:, :] += _H * np.eye(d)[None]
    f = _batched_nll(model, data, probes, fit_items)
    return f[:, 0], (f[:, 1:] - f[:, :1]) / _H


@dataclass(frozen=True)
class MemoryFit:
    """Fitted ``decay``, ``gain``, ``fail_effect`` ``(n,)`` and ``item_difficulty`` ``(n, n_items)``."""

    decay: np.ndarray
    gain: np.ndarray
    fail_effect: np.ndarray
    item_difficulty: np.ndarray
    nll: float
    converged: bool

    def arrays(self) -> dict[str, np.ndarray]:
        # exp(log 10) can round to 10.000000000000002: clip into the profile's ranges
        return {
            "decay": np.clip(self.decay, 0.0, 100.0),
            "gain": np.clip(self.gain, 0.0, 10.0),
            "fail_effect": np.clip(self.fail_effect, 0.0, 10.0),
            "item_difficulty": np.clip(self.item_difficulty, -ITEM_BOUND, ITEM_BOUND),
        }


def _bounds(n: int, n_items: int, fit_items: bool) -> list[tuple[float, float]]:
    one = [LOG_BOUNDS["decay"], LOG_BOUNDS["gain"], LOG_BOUNDS["fail_effect"]]
    if fit_items:
        one += [(-ITEM_BOUND, ITEM_BOUND)] * n_items
    return one * n


def _minimize(objective, x0, bounds, max_iter: int, progress: bool, desc: str):
    """L-BFGS-B with a progress bar of its iterations (stderr, after 2 s, if ``progress``)."""
    from envs.calibration.bkt import progress_bar

    with progress_bar(progress, desc, max_iter, "iter") as bar:
        return minimize(
            objective,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iter},
            callback=lambda *_: bar.update(1),
        )


def fit_pooled(
    data: Reviews, memory_model: str = "exponential", max_iter: int = 200, progress: bool = False
) -> MemoryFit:
    """One ``(decay, gain, fail_effect)`` maximising the likelihood of every student's reviews."""
    model = make_model(memory_model)
    n = data.n_students

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = _value_and_grad(model, data, np.tile(z, (n, 1)), False)
        return float(f.sum()), g.sum(axis=0)

    res = _minimize(
        objective, np.zeros(3), _bounds(1, 0, False), max_iter, progress, "memory model, pooled fit"
    )
    d, g, fe = np.exp(res.x)
    return MemoryFit(
        np.full(n, d),
        np.full(n, g),
        np.full(n, fe),
        np.zeros((n, data.n_items)),
        float(res.fun),
        bool(res.success),
    )


def fit_students(
    data: Reviews,
    pooled: MemoryFit,
    memory_model: str = "exponential",
    fit_items: bool = True,
    prior_sd: float = 1.0,
    item_sd: float = 0.5,
    max_iter: int = 300,
    progress: bool = False,
) -> MemoryFit:
    """Per-student MAP fit (see the module docstring); ``pooled`` gives the prior's centre."""
    if not (prior_sd > 0 and item_sd > 0):
        raise ValueError(f"prior_sd and item_sd must be positive, got {prior_sd!r}, {item_sd!r}")
    model = make_model(memory_model)
    n, j = data.n_students, data.n_items
    d = 3 + (j if fit_items else 0)
    centre = np.zeros(d)
    centre[:3] = np.log([pooled.decay[0], pooled.gain[0], pooled.fail_effect[0]])
    inv_var = np.full(d, 1.0 / prior_sd**2)
    inv_var[3:] = 1.0 / item_sd**2

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        x = z.reshape(n, d)
        f, g = _value_and_grad(model, data, x, fit_items)
        dev = x - centre
        f = f + 0.5 * (dev**2 * inv_var).sum(axis=1)
        g = g + dev * inv_var
        return float(f.sum()), g.reshape(-1)

    res = _minimize(
        objective,
        np.tile(centre, n),
        _bounds(n, j, fit_items),
        max_iter,
        progress,
        "memory model, per student",
    )
    x = res.x.reshape(n, d)
    decay, gain, fail, ell = _unpack(x, j, fit_items)
    p, counts = replay(model, data, decay, gain, fail, ell)
    return MemoryFit(decay, gain, fail, ell, float(nll(p, counts, data.correct).sum()), bool(res.success))
