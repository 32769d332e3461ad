"""Bayesian Knowledge Tracing fitted by EM, vectorised in NumPy, with per-student shrinkage.

Model (Corbett & Anderson 1995, with forgetting): each (student, skill) sequence of
responses is a two-state hidden Markov chain, ``L_j = 1`` if the skill is known at
opportunity ``j``:

* ``P(L_1 = 1) = prior``;
* ``P(L_{j+1} = 1 | L_j = 0) = learn``, ``P(L_{j+1} = 0 | L_j = 1) = forget``;
* ``P(correct_j | L_j = 1) = 1 − slip``, ``P(correct_j | L_j = 0) = guess``.

Why our own EM and not a library: pyBKT 1.4.3 fails with NumPy 2 here, and hmmlearn
would add a dependency for a two-state chain whose E-step is thirty lines; this one
runs the forward-backward pass over *all* sequences at once (a loop over opportunities,
arrays over sequences) and lets the M-step tie parameters the way our profile needs.

Two fits:

* :func:`fit_pooled` — standard BKT, all five parameters per skill, pooled over students
  (the population fit);
* :func:`fit_students` — per student: ``prior`` and ``learn`` per skill, ``forget``,
  ``slip`` and ``guess`` shared across the student's skills (the shape of a SkillGraph
  profile). Each parameter is a MAP estimate under a Beta prior whose mode is the pooled
  estimate and whose weight is ``κ`` pseudo-responses, i.e. the M-step is
  ``θ = (expected count + κ·μ) / (expected total + κ)``. A student with few responses
  stays near the population; one with many is fitted by their own data.

Both fits also apply a tiny Beta prior (a couple of pseudo-counts) so that no estimate
sits exactly on 0 or 1, and clip ``slip`` and ``guess`` below 0.5 (the profile's range,
and the usual BKT constraint against the "knowing means failing" label swap).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from envs.calibration.logs import ResponseLog

PARAMS = ("prior", "learn", "forget", "slip", "guess")
#: starting values of EM, also the centre of the tiny regularising prior of the pooled fit
START = {"prior": 0.3, "learn": 0.15, "forget": 0.05, "slip": 0.1, "guess": 0.2}
#: pseudo-responses of the default shrinkage of per-student estimates to the pooled fit
DEFAULT_KAPPA = {
    "prior": 4.0,
    "learn": 10.0,
    "forget": 20.0,
    "slip": 20.0,
    "guess": 20.0,
}
_EPS = 1e-4
_MAX_SLIP_GUESS = 0.49


@dataclass(frozen=True)
class Sequences:
    """A log cut into (student, skill) sequences, padded to a matrix.

    ``y[s, j]`` is the ``j``-th answer of sequence ``s`` (−1 after its end); ``row[s, j]``
    the index of that answer in the log (−1 after the end).
    """

    y: np.ndarray
    row: np.ndarray
    student: np.ndarray
    skill: np.ndarray
    length: np.ndarray
    n_students: int
    n_skills: int

    @property
    def mask(self) -> np.ndarray:
        return self.y >= 0


def sequences(log: ResponseLog) -> Sequences:
    """Cut a knowledge-tracing log into padded (student, skill) sequences."""
    n_skills = len(log.names)
    key = log.student * n_skills + log.unit
    order = np.argsort(key, kind="stable")  # rows are in each student's order already
    keys, start, length = np.unique(key[order], return_index=True, return_counts=True)
    pos = np.arange(len(order)) - np.repeat(start, length)
    seq = np.repeat(np.arange(len(keys)), length)
    y = np.full((len(keys), int(length.max())), -1, dtype=np.int8)
    row = np.full(y.shape, -1, dtype=np.int64)
    y[seq, pos] = log.correct[order]
    row[seq, pos] = order
    return Sequences(y, row, keys // n_skills, keys % n_skills, length, log.n_students, n_skills)


@dataclass
class BKTParams:
    """One value of each parameter per sequence (arrays of shape ``(n_seq,)``)."""

    prior: np.ndarray
    learn: np.ndarray
    forget: np.ndarray
    slip: np.ndarray
    guess: np.ndarray


@dataclass
class _Stats:
    """Expected sufficient statistics of each sequence, from the forward-backward pass."""

    known_first: np.ndarray  # E[L_1]
    from0: np.ndarray  # E[# transitions out of state 0]
    learned: np.ndarray  # E[# 0 → 1]
    from1: np.ndarray  # E[# transitions out of state 1]
    forgot: np.ndarray  # E[# 1 → 0]
    in1: np.ndarray  # E[# answers in state 1]
    slips: np.ndarray  # E[# wrong answers in state 1]
    in0: np.ndarray  # E[# answers in state 0]
    guesses: np.ndarray  # E[# right answers in state 0]
    loglik: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _emissions(y: np.ndarray, p: BKTParams) -> tuple[np.ndarray, np.ndarray]:
    """``P(y | L = 0)`` and ``P(y | L = 1)``, shape ``(n_seq, T)``; 1 on padding."""
    right = y == 1
    wrong = y == 0
    e0 = np.where(right, p.guess[:, None], np.where(wrong, 1.0 - p.guess[:, None], 1.0))
    e1 = np.where(right, 1.0 - p.slip[:, None], np.where(wrong, p.slip[:, None], 1.0))
    return e0, e1


def forward(seqs: Sequences, p: BKTParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filtered ``P(L_j = 1 | y_1..j)``, predicted ``P(correct_j | y_<j)`` and scaling ``c_j``."""
    y = seqs.y
    n, t_max = y.shape
    e0, e1 = _emissions(y, p)
    post = np.empty((n, t_max))
    pred = np.empty((n, t_max))
    c = np.empty((n, t_max))
    known = p.prior.copy()  # P(L_j = 1 | y_<j)
    for j in range(t_max):
        pred[:, j] = known * (1.0 - p.slip) + (1.0 - known) * p.guess
        a1 = known * e1[:, j]
        a0 = (1.0 - known) * e0[:, j]
        c[:, j] = a0 + a1
        post[:, j] = a1 / c[:, j]
        known = post[:, j] * (1.0 - p.forget) + (1.0 - post[:, j]) * p.learn
    return post, pred, c


def _expected_stats(seqs: Sequences, p: BKTParams) -> _Stats:
    y, mask = seqs.y, seqs.mask
    n, t_max = y.shape
    e0, e1 = _emissions(y, p)
    post, _, c = forward(seqs, p)
    # scaled backward pass: b_j(s) = P(y_{j+1..} | L_j = s) / (c_{j+1} … c_T)
    b0 = np.ones((n, t_max))
    b1 = np.ones((n, t_max))
    for j in range(t_max - 2, -1, -1):
        n0 = e0[:, j + 1] * b0[:, j + 1] / c[:, j + 1]
        n1 = e1[:, j + 1] * b1[:, j + 1] / c[:, j + 1]
        b0[:, j] = (1.0 - p.learn) * n0 + p.learn * n1
        b1[:, j] = p.forget * n0 + (1.0 - p.forget) * n1
    g1 = post * b1
    g0 = (1.0 - post) * b0
    has_next = mask[:, 1:]
    nxt0 = e0[:, 1:] * b0[:, 1:] / c[:, 1:]
    nxt1 = e1[:, 1:] * b1[:, 1:] / c[:, 1:]
    xi01 = (1.0 - post[:, :-1]) * p.learn[:, None] * nxt1 * has_next
    xi10 = post[:, :-1] * p.forget[:, None] * nxt0 * has_next
    g0m, g1m = g0 * mask, g1 * mask
    return _Stats(
        known_first=g1[:, 0],
        from0=(g0[:, :-1] * has_next).sum(axis=1),
        learned=xi01.sum(axis=1),
        from1=(g1[:, :-1] * has_next).sum(axis=1),
        forgot=xi10.sum(axis=1),
        in1=g1m.sum(axis=1),
        slips=(g1m * (y == 0)).sum(axis=1),
        in0=g0m.sum(axis=1),
        guesses=(g0m * (y == 1)).sum(axis=1),
        loglik=(np.log(c) * mask).sum(axis=1),
    )


def _map(group: np.ndarray, n_groups: int, num: np.ndarray, den: np.ndarray, mu, kappa: float):
    """``(Σ num + κ μ) / (Σ den + κ)`` per group: the mode of a Beta(κμ + 1, κ(1 − μ) + 1) posterior."""
    s_num = np.bincount(group, num, minlength=n_groups)
    s_den = np.bincount(group, den, minlength=n_groups)
    return (s_num + kappa * mu) / (s_den + kappa)


def _pairs(stats: _Stats) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(expected events, expected chances) of each parameter, per sequence."""
    return {
        "prior": (stats.known_first, np.ones_like(stats.known_first)),
        "learn": (stats.learned, stats.from0),
        "forget": (stats.forgot, stats.from1),
        "slip": (stats.slips, stats.in1),
        "guess": (stats.guesses, stats.in0),
    }


def _clip(name: str, v: np.ndarray) -> np.ndarray:
    return np.clip(v, _EPS, _MAX_SLIP_GUESS if name in ("slip", "guess") else 1.0 - _EPS)


@dataclass(frozen=True)
class PooledFit:
    """Per-skill BKT parameters (arrays of shape ``(n_skills,)``) and the fit's log-likelihood."""

    prior: np.ndarray
    learn: np.ndarray
    forget: np.ndarray
    slip: np.ndarray
    guess: np.ndarray
    loglik: float
    n_iter: int

    def per_sequence(self, seqs: Sequences) -> BKTParams:
        return BKTParams(*(getattr(self, n)[seqs.skill] for n in PARAMS))

    def to_dict(self, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
        return {s: {n: float(getattr(self, n)[k]) for n in PARAMS} for k, s in enumerate(names)}


def _em(seqs: Sequences, params: BKTParams, m_step, expand, max_iter: int, tol: float):
    """Run EM until the log-likelihood gains less than ``tol`` per answer."""
    n_answers = max(int(seqs.mask.sum()), 1)
    prev = -np.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        stats = _expected_stats(seqs, params)
        ll = float(stats.loglik.sum())
        values = m_step(stats)
        params = expand(values)
        if ll - prev < tol * n_answers:
            break
        prev = ll
    return values, ll, it


#: EM starting points of the pooled fit (BKT's likelihood has several local maxima; the
#: best start is kept per skill): every combination of these values
STARTS = {
    "prior": (0.1, 0.5),
    "learn": (0.05, 0.3),
    "forget": (0.01, 0.2),
    "slip": (0.1,),
    "guess": (0.2,),
}


def fit_pooled(
    seqs: Sequences, max_iter: int = 200, tol: float = 1e-7, prior_weight: float = 2.0
) -> PooledFit:
    """Standard per-skill BKT over all students, best of several EM starts per skill.

    ``prior_weight`` pseudo-counts centred on ``START`` keep estimates off 0 and 1.
    """
    k = seqs.n_skills

    def m_step(stats: _Stats) -> dict:
        return {
            n: _clip(n, _map(seqs.skill, k, num, den, START[n], prior_weight))
            for n, (num, den) in _pairs(stats).items()
        }

    def expand(v: dict) -> BKTParams:
        return BKTParams(*(v[n][seqs.skill] for n in PARAMS))

    best: dict[str, np.ndarray] | None = None
    best_ll = np.full(k, -np.inf)
    iters = 0
    for combo in itertools.product(*(STARTS[n] for n in PARAMS)):
        start = expand({n: np.full(k, v) for n, v in zip(PARAMS, combo)})
        values, _, it = _em(seqs, start, m_step, expand, max_iter, tol)
        # the skills are independent chains: keep, per skill, the start with the best likelihood
        ll = np.bincount(seqs.skill, _expected_stats(seqs, expand(values)).loglik, minlength=k)
        better = ll > best_ll
        best = values if best is None else {n: np.where(better, values[n], best[n]) for n in PARAMS}
        best_ll = np.maximum(ll, best_ll)
        iters += it
    assert best is not None
    return PooledFit(**best, loglik=float(best_ll.sum()), n_iter=iters)


@dataclass(frozen=True)
class StudentFit:
    """Per-student BKT parameters in the SkillGraph profile's shape.

    ``prior`` and ``learn`` have shape ``(n_students, n_skills)`` (skills a student never
    practised keep the pooled value); ``forget``, ``slip``, ``guess`` shape ``(n_students,)``.
    """

    prior: np.ndarray
    learn: np.ndarray
    forget: np.ndarray
    slip: np.ndarray
    guess: np.ndarray
    loglik: float
    n_iter: int

    def per_sequence(self, seqs: Sequences) -> BKTParams:
        i, k = seqs.student, seqs.skill
        return BKTParams(self.prior[i, k], self.learn[i, k], self.forget[i], self.slip[i], self.guess[i])


def shared_centre(pooled: PooledFit, seqs: Sequences, name: str) -> float:
    """A per-skill pooled parameter averaged over skills, weighted by their number of answers."""
    w = np.bincount(seqs.skill, seqs.length, minlength=seqs.n_skills)
    return float(np.average(getattr(pooled, name), weights=w + 1e-12))


def fit_students(
    seqs: Sequences,
    pooled: PooledFit,
    kappa: dict[str, float] | None = None,
    max_iter: int = 200,
    tol: float = 1e-7,
) -> StudentFit:
    """Per-student MAP-EM, shrunk to ``pooled`` with ``kappa`` pseudo-responses per parameter.

    ``prior`` and ``learn`` (per student and skill) are shrunk to the skill's pooled value;
    ``forget``, ``slip`` and ``guess`` (one per student) to the pooled value averaged over
    skills (weighted by answers).
    """
    kappa = {**DEFAULT_KAPPA, **(kappa or {})}
    for name, v in kappa.items():
        if name not in DEFAULT_KAPPA or not v >= 0:
            raise ValueError(f"shrinkage {name!r}={v!r}: names are {list(DEFAULT_KAPPA)}, values >= 0")
    # a zero weight with no data would divide 0 by 0: keep a vanishing prior instead
    kappa = {name: max(v, 1e-9) for name, v in kappa.items()}
    n, k = seqs.n_students, seqs.n_skills
    student = seqs.student
    cell = student * k + seqs.skill
    centre = {name: shared_centre(pooled, seqs, name) for name in PARAMS}
    centre["prior"] = np.tile(pooled.prior, n)
    centre["learn"] = np.tile(pooled.learn, n)
    groups = {"prior": (cell, n * k), "learn": (cell, n * k)}

    def m_step(stats: _Stats) -> dict:
        return {
            name: _clip(name, _map(*groups.get(name, (student, n)), num, den, centre[name], kappa[name]))
            for name, (num, den) in _pairs(stats).items()
        }

    def expand(v: dict) -> BKTParams:
        return BKTParams(
            v["prior"][cell], v["learn"][cell], v["forget"][student], v["slip"][student], v["guess"][student]
        )

    start = pooled.per_sequence(seqs)
    for name in ("forget", "slip", "guess"):
        setattr(start, name, np.full(len(cell), centre[name]))
    values, ll, it = _em(seqs, start, m_step, expand, max_iter, tol)
    return StudentFit(
        prior=values["prior"].reshape(n, k),
        learn=values["learn"].reshape(n, k),
        forget=values["forget"],
        slip=values["slip"],
        guess=values["guess"],
        loglik=ll,
        n_iter=it,
    )
