"""Profiles and population of the ZPD-v0 student model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.core import check_int
from envs.profiles import FieldSpec, ProfileDistribution, StudentProfile


@dataclasses.dataclass(frozen=True)
class ZPDProfile(StudentProfile):
    """One ZPD-v0 student (hidden from the tutor).

    Fields:
    - ``ability0`` in [-6, 6] per skill: ability θ at the start of an episode (logits).
    - ``learn_rate`` in [0, 1]: largest ability gain of one attempt (logits), reached when
      the item's success probability equals ``sweet_spot``.
    - ``sweet_spot`` in (0, 1): the success probability at which this student learns most
      (the centre of their zone of proximal development).
    - ``zpd_width`` in (0, 5]: width of the zone, in logits of the success probability.
    - ``frustration`` in [0, 1]: engagement lost per failure, times the length of the
      current run of failures.
    - ``boredom`` in [0, 1]: engagement lost per trivially easy item, times the length of
      the current run of such items.
    - ``recovery`` in [0, 1]: fraction of the missing engagement regained by a success on
      an item that is not trivially easy.
    - ``engagement0`` in [0, 1]: engagement at the start of an episode.
    """

    ability0: tuple[float, ...]
    learn_rate: float
    sweet_spot: float
    zpd_width: float
    frustration: float
    boredom: float
    recovery: float
    engagement0: float

    FIELDS = (
        FieldSpec("ability0", -6.0, 6.0, "starting ability θ (logits)", "n_skills"),
        FieldSpec("learn_rate", 0.0, 1.0, "largest ability gain per attempt (logits)"),
        FieldSpec("sweet_spot", 0.0, 1.0, "P(correct) of maximal learning", low_open=True, high_open=True),
        FieldSpec("zpd_width", 0.0, 5.0, "width of the learning zone (logits)", low_open=True),
        FieldSpec("frustration", 0.0, 1.0, "engagement lost per failure × failure-run length"),
        FieldSpec("boredom", 0.0, 1.0, "engagement lost per trivial item × trivial-run length"),
        FieldSpec("recovery", 0.0, 1.0, "share of missing engagement regained by a real success"),
        FieldSpec("engagement0", 0.0, 1.0, "engagement at episode start"),
    )


class ZPDDistribution(ProfileDistribution):
    """Population of ZPD-v0 students.

    ``train`` / ``val`` / ``test`` (one population, disjoint random streams):

    - general level ``μ ~ N(−1, 0.7²)`` per student, ``ability0_k = μ + 0.5 ε_k``
      (clipped to [−6, 6]): the right starting difficulty differs between students;
    - ``learn_rate ~ U(0.1, 0.3)``, ``zpd_width ~ U(0.7, 1.3)``;
    - ``sweet_spot ~ U(0.5, 0.85)``: with the default difficulties the best level for
      the same ability differs by about one and a half levels across students;
    - ``frustration ~ U(0.02, 0.06)``, ``boredom ~ U(0.005, 0.02)``,
      ``recovery ~ U(0.15, 0.3)``, ``engagement0 ~ U(0.7, 1.0)``.

    ``ood`` (shifted): every student is, with probability ½ each, either

    - *fragile*: easily frustrated, ``frustration ~ U(0.12, 0.25)`` (several times the
      training range), everything else as in training; or
    - *challenge-seeking*: learns best from hard items, ``sweet_spot ~ U(0.2, 0.4)``
      (below the training range), everything else as in training.
    """

    profile_cls = ZPDProfile

    @classmethod
    def learning_speed(cls, profile: Mapping[str, Any]) -> float:
        """``learn_rate``: the largest ability gain of one attempt (logits)."""
        return float(profile["learn_rate"])

    def __init__(self, n_skills: int = 4) -> None:
        self.n_skills = check_int("n_skills", n_skills, 1, 64)

    def _sample_arrays(self, rng: np.random.Generator, n: int, split: str) -> dict[str, np.ndarray]:
        k = self.n_skills
        level = rng.normal(-1.0, 0.7, size=(n, 1))
        ability0 = np.clip(level + 0.5 * rng.normal(size=(n, k)), -6.0, 6.0)
        sweet = rng.uniform(0.5, 0.85, size=n)
        frustration = rng.uniform(0.02, 0.06, size=n)
        if split == "ood":
            fragile = rng.random(n) < 0.5
            frustration = np.where(fragile, rng.uniform(0.12, 0.25, size=n), frustration)
            sweet = np.where(fragile, sweet, rng.uniform(0.2, 0.4, size=n))
        return {
            "ability0": ability0,
            "learn_rate": rng.uniform(0.1, 0.3, size=n),
            "sweet_spot": sweet,
            "zpd_width": rng.uniform(0.7, 1.3, size=n),
            "frustration": frustration,
            "boredom": rng.uniform(0.005, 0.02, size=n),
            "recovery": rng.uniform(0.15, 0.3, size=n),
            "engagement0": rng.uniform(0.7, 1.0, size=n),
        }
