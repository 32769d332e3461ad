"""From BKT parameters of a log to SkillGraph-v0 profiles, and back.

A log has no teaching actions: BKT's ``learn`` is the chance that a skill becomes known
*between two practice opportunities*. We read every logged response as one SkillGraph
practice opportunity of ``steps_per_response`` env steps (default 2: a quiz of the skill,
whose answer is the logged response, then one teaching action on it, the tutoring a
student gets after answering). Between two opportunities of skill ``k`` the student spends
``s`` steps on other skills (``s = steps_per_response ×`` the number of responses to other
skills in between, averaged per student), during which SkillGraph forgets a known ``k``
with probability ``forget`` per step. So for a student with profile
``(learn, content_affinity, slip, guess, forget, prior)``:

* ``F = 1 − (1 − forget)^s`` (BKT forgetting between opportunities);
* ``T = learn_k · ā · (1 − F)`` (BKT learning: the teaching step succeeds, then the
  skill survives the ``s`` steps), with ``ā`` the mean content affinity — the log's
  tutoring is taken to use content types at random, which gives learning ``learn_k · ā``
  on average (and a prerequisite gate of 1, i.e. the prerequisites of the env are not in
  the log; a fitted ``learn`` includes whatever the log's own course structure did);
* ``L_1 = prior_k · (1 − forget)^{s₀}`` with ``s₀`` the steps spent before the student's
  first response to ``k`` (a skill known at the start may be forgotten before it is
  practised);
* slip and guess are the same numbers.

:func:`profiles_from_fit` inverts these equations (clipping into the profile's ranges);
:func:`bkt_from_profiles` applies them, so any population of profiles predicts a log's
responses (used to compare populations on held-out students). When a student practises
one skill at a time (``s = 0``) a log says nothing about per-step forgetting; ``s`` is then
taken as 1.

Content affinity is not identifiable from a plain log. ``affinity="neutral"`` (default)
sets every type to 1, so all content types teach at the fitted rate; ``"default"`` draws
each student's affinities from the env's default population (seeded) and divides
``learn`` by their mean, so the *average* teaching action still matches the log while the
tutor keeps the task of discovering the student's best content type.
"""

from __future__ import annotations

import numpy as np

from envs.calibration.bkt import BKTParams, Sequences, StudentFit
from envs.calibration.logs import ResponseLog

AFFINITY_MODES = ("neutral", "default")


def response_positions(log: ResponseLog) -> np.ndarray:
    """Index of each row within its student's responses (0 for the first)."""
    start = np.searchsorted(log.student, np.arange(log.n_students))
    return np.arange(log.n_rows) - start[log.student]


def schedule(
    log: ResponseLog, seqs: Sequences, steps_per_response: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Steps between opportunities per student ``(n_students,)`` and before the first one ``(n, n_skills)``.

    A student with a single response per skill gets the average over the other students.
    """
    if not steps_per_response > 0:
        raise ValueError(f"steps_per_response must be positive, got {steps_per_response!r}")
    pos = response_positions(log)[seqs.row]  # each answer's index among its student's answers
    nxt = np.flatnonzero(seqs.pos > 0)
    gaps = (pos[nxt] - pos[nxt - 1] - 1).astype(np.float64)  # other answers in between
    owner = seqs.student[seqs.seq[nxt]]
    tot = np.bincount(owner, gaps, minlength=seqs.n_students)
    cnt = np.bincount(owner, minlength=seqs.n_students).astype(np.float64)
    overall = tot.sum() / cnt.sum() if cnt.sum() > 0 else 0.0
    mean_gap = np.where(cnt > 0, tot / np.maximum(cnt, 1), overall)
    between = np.maximum(steps_per_response * mean_gap, 1.0)
    before = np.zeros((seqs.n_students, seqs.n_skills))
    before[seqs.student, seqs.skill] = steps_per_response * pos[seqs.start]
    return between, before


def profiles_from_fit(
    fit: StudentFit,
    between: np.ndarray,
    before: np.ndarray,
    affinity: np.ndarray,
) -> dict[str, np.ndarray]:
    """SkillGraph profile arrays (one row per student) from per-student BKT estimates."""
    f_step = 1.0 - (1.0 - fit.forget) ** (1.0 / between)
    teach = np.clip(fit.learn / (1.0 - fit.forget)[:, None], 0.0, 1.0)
    mean_aff = affinity.mean(axis=1, keepdims=True)
    return {
        "learn": np.clip(teach / np.maximum(mean_aff, 1e-12), 0.0, 1.0),
        "content_affinity": affinity,
        "slip": np.clip(fit.slip, 0.0, 0.5),
        "guess": np.clip(fit.guess, 0.0, 0.5),
        "forget": np.clip(f_step, 0.0, 1.0),
        "prior": np.clip(fit.prior / (1.0 - f_step[:, None]) ** before, 0.0, 1.0),
    }


def bkt_from_profiles(
    arrays: dict[str, np.ndarray],
    seqs: Sequences,
    between: np.ndarray,
    before: np.ndarray,
    which: np.ndarray | None = None,
) -> BKTParams:
    """BKT parameters of every sequence of ``seqs`` if its student had profile ``which[student]``.

    ``arrays`` are stacked profile arrays; ``which`` maps each student of ``seqs`` to a
    row of ``arrays`` (default: row ``i`` for student ``i``).
    """
    i, k = seqs.student, seqs.skill
    r = i if which is None else np.asarray(which)[i]
    f = arrays["forget"][r]
    big_f = 1.0 - (1.0 - f) ** between[i]
    mean_aff = arrays["content_affinity"][r].mean(axis=1)
    return BKTParams(
        prior=arrays["prior"][r, k] * (1.0 - f) ** before[i, k],
        learn=arrays["learn"][r, k] * mean_aff * (1.0 - big_f),
        forget=big_f,
        slip=arrays["slip"][r],
        guess=arrays["guess"][r],
    )


def affinities(mode: str, n: int, n_skills: int, n_content: int, seed: int) -> np.ndarray:
    """Content affinities of ``n`` calibrated students (see the module docstring)."""
    if mode not in AFFINITY_MODES:
        raise ValueError(f"content affinity must be one of {list(AFFINITY_MODES)}, got {mode!r}")
    if mode == "neutral":
        return np.ones((n, n_content))
    from envs.skill_graph.profile import SkillGraphDistribution

    dist = SkillGraphDistribution(n_skills, n_content)
    return dist.sample_arrays(n, "train", dist.split_rng(seed, "train"))["content_affinity"]
