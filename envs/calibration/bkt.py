"""Bayesian Knowledge Tracing fitted by EM, vectorised in NumPy, with per-student shrinkage.

Model (Corbett & Anderson 1995, with forgetting): each (student, skill) sequence of
responses is a two-state hidden Markov chain, ``L_j = 1`` if the skill is known at
opportunity ``j``:

* ``P(L_1 = 1) = prior``;
* ``P(L_{j+1} = 1 | L_j = 0) = learn``, ``P(L_{j+1} = 0 | L_j = 1) = forget``;
* ``P(correct_j | L_j = 1) = 1 − slip``, ``P(correct_j | L_j = 0) = guess``.

Why our own EM and not a library: pyBKT 1.4.3 fails with NumPy 2 here, and hmmlearn
would add a dependency for a two-state chain; this one runs the forward-backward pass
over *all* sequences at once and lets the M-step tie parameters the way our profile needs.

The E-step (``envs.calibration.hmm``) is a parallel scan over time for long sequences
(one student with 10⁶ answers calibrates in minutes instead of hours) or the time loop
for many short ones, whichever is cheaper; both exact.

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
import sys
from dataclasses import dataclass

import numpy as np

from envs.calibration.hmm import (  # noqa: F401 - the E-step's names, re-exported
    BKTParams,
    Sequences,
    _expected_stats,
    _Stats,
    forward,
    sequences,
    use_scan,
)

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


def progress_bar(progress: bool, desc: str, total: int | None, unit: str):
    """A tqdm bar on stderr, shown only if ``progress`` and only once the work lasts 2 s."""
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, disable=not progress, delay=2.0, file=sys.stderr, leave=False
    )


def _em(
    seqs: Sequences,
    params: BKTParams,
    m_step,
    expand,
    max_iter: int,
    tol: float,
    method: str = "auto",
    bar=None,
):
    """Run EM until the log-likelihood gains less than ``tol`` per answer."""
    n_answers = max(len(seqs.y), 1)
    prev = -np.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        stats = _expected_stats(seqs, params, method)
        ll = float(stats.loglik.sum())
        values = m_step(stats)
        params = expand(values)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loglik_per_answer=f"{ll / n_answers:.5f}", refresh=False)
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
    seqs: Sequences,
    max_iter: int = 200,
    tol: float = 1e-7,
    prior_weight: float = 2.0,
    method: str = "auto",
    progress: bool = False,
) -> PooledFit:
    """Standard per-skill BKT over all students, best of several EM starts per skill.

    ``prior_weight`` pseudo-counts centred on ``START`` keep estimates off 0 and 1.
    ``method`` chooses the E-step (:func:`forward`); ``progress`` shows a bar of EM
    iterations on stderr.
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
    combos = list(itertools.product(*(STARTS[n] for n in PARAMS)))
    with progress_bar(progress, f"BKT population fit ({len(combos)} EM starts)", None, "EM step") as bar:
        for combo in combos:
            start = expand({n: np.full(k, v) for n, v in zip(PARAMS, combo)})
            values, _, it = _em(seqs, start, m_step, expand, max_iter, tol, method, bar)
            # the skills are independent chains: keep, per skill, the start with the best likelihood
            ll = np.bincount(seqs.skill, _expected_stats(seqs, expand(values), method).loglik, minlength=k)
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
    method: str = "auto",
    progress: bool = False,
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
    with progress_bar(progress, "BKT per-student fit", max_iter, "EM step") as bar:
        values, ll, it = _em(seqs, start, m_step, expand, max_iter, tol, method, bar)
    return StudentFit(
        prior=values["prior"].reshape(n, k),
        learn=values["learn"].reshape(n, k),
        forget=values["forget"],
        slip=values["slip"],
        guess=values["guess"],
        loglik=ll,
        n_iter=it,
    )
