"""Profiles and population of the SpacedRepetition-v0 student model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from envs.core import check_int
from envs.profiles import FieldSpec, ProfileDistribution, StudentProfile

#: item log-difficulties are clipped to ±this (a factor e^3 ≈ 20 on the forgetting speed)
MAX_LOG_DIFFICULTY = 3.0


@dataclasses.dataclass(frozen=True)
class SpacedRepetitionProfile(StudentProfile):
    """One SpacedRepetition-v0 student (hidden from the tutor).

    Fields (all multipliers have population median 1, the memory model's default):
    - ``decay`` in [0, 100]: forgetting speed; the elapsed time of every item is
      multiplied by it (4 = forgets four times faster than the typical student).
    - ``gain`` in [0, 10]: multiplier of the strength gained from a successful review.
    - ``fail_effect`` in [0, 10]: multiplier of the effect of a failed review (whose
      answer is then shown): in the exponential, power and HLR models a failed review
      strengthens memory by ``fail_effect`` × the model's default failure gain; in FSRS it
      scales the post-lapse stability (``w11``).
    - ``item_difficulty`` in [−3, 3] per item: log-difficulty ``ℓ_i``; item ``i`` is
      forgotten ``exp(ℓ_i)`` times faster. Their spread is the student's item-difficulty
      spread; being part of the profile, the items of a task are fixed.
    """

    decay: float
    gain: float
    fail_effect: float
    item_difficulty: tuple[float, ...]

    FIELDS = (
        FieldSpec("decay", 0.0, 100.0, "forgetting speed (multiplies elapsed time)"),
        FieldSpec("gain", 0.0, 10.0, "multiplier of the strength gain of a successful review"),
        FieldSpec("fail_effect", 0.0, 10.0, "multiplier of the effect of a failed review"),
        FieldSpec(
            "item_difficulty",
            -MAX_LOG_DIFFICULTY,
            MAX_LOG_DIFFICULTY,
            "log-difficulty: the item is forgotten exp(value) times faster",
            "n_items",
        ),
    )


class SpacedRepetitionDistribution(ProfileDistribution):
    """Population of SpacedRepetition-v0 students.

    ``train`` / ``val`` / ``test`` (one population, disjoint random streams):

    - ``log decay ~ N(0, 0.5²)`` (the middle 95 % forget between 0.38× and 2.7× as fast
      as the median student);
    - ``log gain ~ N(0, 0.35²)``, ``log fail_effect ~ N(0, 0.5²)``;
    - item difficulties: a spread ``s ~ U(0.2, 0.8)`` per student and
      ``ℓ_i = clip(s · ε_i, −3, 3)``, ``ε_i ~ N(0, 1)`` independently per item, so which
      items are hard differs between students.

    Each of these changes the best schedule: fast forgetters need short intervals and
    fewer items in play, strong gainers can be spaced out sooner, a student whose failed
    reviews are nearly useless should be reviewed before recall drops low, and hard items
    need more reviews. All are identifiable from answers vs. elapsed time.

    ``ood`` (shifted): much faster forgetters, ``log decay ~ N(log 4, 0.5²)`` (median 4×),
    with a wider item-difficulty spread ``s ~ U(0.8, 1.2)``; gains as above.

    ``population="reddy2017-efc"`` / ``"reddy2017-hlr"`` (Reddy, Levine & Dragan 2017, the
    ``deeptutor`` code, with its time unit taken as one hour): students differ only in their
    items, as there. ``decay = 24·0.077`` per day (EFC: ``θ_j = 0.077·exp(ℓ_j)`` per hour) or
    ``24`` (HLR: ``ℓ_j = −β_j``), ``gain = fail_effect = 1``, ``ℓ_j ~ N(0, 1)`` clipped to ±3
    (deeptutor: ``log θ_j ~ N(log 0.077, 1)``, resp. ``β_j ~ N(0, 1)``). ``ood``: decay 4× as
    fast (our addition, like the default population's).
    """

    profile_cls = SpacedRepetitionProfile
    #: population → median forgetting speed per day (what a population-level tutor may assume)
    MEDIAN_DECAY: ClassVar[dict[str, float]] = {
        "default": 1.0,
        "reddy2017-efc": 24.0 * 0.077,
        "reddy2017-hlr": 24.0,
    }

    @classmethod
    def learning_speed(cls, profile: Mapping[str, Any]) -> float:
        """``−decay``: the slower the student forgets, the faster they build up recall."""
        return -float(profile["decay"])

    def __init__(self, n_items: int = 20, population: str = "default") -> None:
        self.n_items = check_int("n_items", n_items, 1, 1000)
        if population not in self.MEDIAN_DECAY:
            raise ValueError(f"population must be one of {list(self.MEDIAN_DECAY)}, got {population!r}")
        self.population = population
        self.median_decay = self.MEDIAN_DECAY[population]

    def _sample_arrays(self, rng: np.random.Generator, n: int, split: str) -> dict[str, np.ndarray]:
        ood = split == "ood"
        if self.population != "default":
            decay = self.median_decay * (4.0 if ood else 1.0)
            ell = rng.normal(size=(n, self.n_items))
            return {
                "decay": np.full(n, decay),
                "gain": np.ones(n),
                "fail_effect": np.ones(n),
                "item_difficulty": np.clip(ell, -MAX_LOG_DIFFICULTY, MAX_LOG_DIFFICULTY),
            }
        log_decay = rng.normal(np.log(4.0) if ood else 0.0, 0.5, size=n)
        log_gain = rng.normal(0.0, 0.35, size=n)
        log_fail = rng.normal(0.0, 0.5, size=n)
        spread = rng.uniform(0.8, 1.2, size=(n, 1)) if ood else rng.uniform(0.2, 0.8, size=(n, 1))
        eps = rng.normal(size=(n, self.n_items))
        return {
            "decay": np.clip(np.exp(log_decay), 0.0, 100.0),
            "gain": np.clip(np.exp(log_gain), 0.0, 10.0),
            "fail_effect": np.clip(np.exp(log_fail), 0.0, 10.0),
            "item_difficulty": np.clip(spread * eps, -MAX_LOG_DIFFICULTY, MAX_LOG_DIFFICULTY),
        }
