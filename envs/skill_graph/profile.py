"""Profiles and population of the SkillGraph-v0 student model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.core import check_int
from envs.profiles import FieldSpec, ProfileDistribution, StudentProfile


@dataclasses.dataclass(frozen=True)
class SkillGraphProfile(StudentProfile):
    """One SkillGraph-v0 student (hidden from the tutor).

    Fields:
    - ``learn`` in [0, 1] per skill: chance that one teaching action with a fully
      liked content type makes an unmastered skill mastered.
    - ``content_affinity`` in [0, 1] per content type: multiplies ``learn``; the best
      content type differs between students and must be discovered from outcomes.
    - ``slip`` in [0, 0.5]: P(wrong answer | mastered).
    - ``guess`` in [0, 0.5]: P(right answer | not mastered).
    - ``forget`` in [0, 1]: per-step chance that a mastered skill not practised in that
      step is lost. The practised skill (taught or quizzed) is exempt, by design: practice
      refreshes it, as a presented card is refreshed in SpacedRepetition-v0. Hence with
      ``n_skills=1`` (that skill is practised every step) ``forget`` never applies and has no
      effect on the student.
    - ``prior`` in [0, 1] per skill: P(skill mastered at the start of an episode).
    """

    learn: tuple[float, ...]
    content_affinity: tuple[float, ...]
    slip: float
    guess: float
    forget: float
    prior: tuple[float, ...]

    FIELDS = (
        FieldSpec("learn", 0.0, 1.0, "P(learn) per teaching action at full affinity", "n_skills"),
        FieldSpec("content_affinity", 0.0, 1.0, "multiplier of learn per content type", "n_content"),
        FieldSpec("slip", 0.0, 0.5, "P(wrong | mastered)"),
        FieldSpec("guess", 0.0, 0.5, "P(right | not mastered)"),
        FieldSpec("forget", 0.0, 1.0, "P(lose a mastered, unpractised skill) per step"),
        FieldSpec("prior", 0.0, 1.0, "P(mastered at episode start)", "n_skills"),
    )


class SkillGraphDistribution(ProfileDistribution):
    """Population of SkillGraph-v0 students.

    ``train`` / ``val`` / ``test`` (one population, disjoint random streams):

    - speed ``s ~ N(0, 0.5²)`` per student; ``logit(learn_k) = logit(0.35) + s + 0.3 ε_k``;
    - one preferred content type, uniform over types, with affinity ``U(0.8, 1.0)``;
      every other type ``U(0.1, 0.4)`` (so picking the right content roughly triples
      the learning rate);
    - ``slip ~ U(0.05, 0.2)``, ``guess ~ U(0.1, 0.3)``, ``forget ~ U(0, 0.03)``,
      ``prior_k ~ U(0, 0.2)``.

    ``ood`` (shifted): much slower (``logit(learn_k) = logit(0.15) + s + 0.3 ε_k``) and
    more forgetful (``forget ~ U(0.03, 0.08)``) learners; the rest as above.
    """

    profile_cls = SkillGraphProfile

    @classmethod
    def learning_speed(cls, profile: Mapping[str, Any]) -> float:
        """``mean_k learn_k · max_c content_affinity_c``: the mean P(learn) of a teaching
        action with the student's preferred content."""
        return float(np.mean(profile["learn"]) * np.max(profile["content_affinity"]))

    def __init__(self, n_skills: int = 4, n_content: int = 3) -> None:
        self.n_skills = check_int("n_skills", n_skills, 1, 64)
        self.n_content = check_int("n_content", n_content, 1, 16)

    def _sample_arrays(self, rng: np.random.Generator, n: int, split: str) -> dict[str, np.ndarray]:
        k, c = self.n_skills, self.n_content
        ood = split == "ood"
        base = np.log(0.15 / 0.85) if ood else np.log(0.35 / 0.65)
        speed = rng.normal(0.0, 0.5, size=(n, 1))
        learn = 1.0 / (1.0 + np.exp(-(base + speed + 0.3 * rng.normal(size=(n, k)))))
        affinity = rng.uniform(0.1, 0.4, size=(n, c))
        preferred = rng.integers(0, c, size=n)
        affinity[np.arange(n), preferred] = rng.uniform(0.8, 1.0, size=n)
        forget = rng.uniform(0.03, 0.08, size=n) if ood else rng.uniform(0.0, 0.03, size=n)
        return {
            "learn": learn,
            "content_affinity": affinity,
            "slip": rng.uniform(0.05, 0.2, size=n),
            "guess": rng.uniform(0.1, 0.3, size=n),
            "forget": forget,
            "prior": rng.uniform(0.0, 0.2, size=(n, k)),
        }
