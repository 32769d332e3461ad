"""SpacedRepetitionGoals-v0: SpacedRepetition-v0 where each student needs only some cards.

Why this variant exists: in SpacedRepetition-v0 every card counts on the exam, and the
measurements in ``docs/spaced_repetition.md`` show that one rule ("review the card most at
risk") is near-optimal for every student there — the answers reveal each card's memory
within the episode, so there is little for a tutor to learn *about the student* across
episodes. Here students also differ in *which* cards deserve the scarce reviews: the deck
is divided into ``n_topics`` topics (chapters; which card belongs to which is known to the
tutor and shown in the observation), and each student needs only some topics (the
chapters of their own exam), which the tutor is not told. The answers do not reveal the
goal; only the outcome does (the reward), so a tutor can learn it from a few episodes with
the student — the situation meta-learning is meant for.

Model: exactly SpacedRepetition-v0's memory (``envs.spaced_repetition.dynamics``) with one
more profile field ``goal`` (weight ``w_j ∈ [0, 1]`` per card, ``Σ_j w_j > 0``). Every
average over cards that defines the exam — the recall reward's ``m(τ)``, the sampled exam
score — becomes the goal-weighted average ``m_w(τ) = Σ_j w_j p_j(τ) / Σ_j w_j``. Card ``j``
belongs to topic ``⌊j · n_topics / n_items⌋`` (contiguous chapters, sizes differing by at
most one). The population draws goals topic by topic; a profile may weigh cards freely.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import StudentEnv, StudentVectorEnv, check_int
from envs.profiles import FieldSpec, StudentProfile
from envs.spaced_repetition.dynamics import SpacedRepetitionDynamics
from envs.spaced_repetition.profile import SpacedRepetitionDistribution, SpacedRepetitionProfile


def card_topics(n_items: int, n_topics: int) -> np.ndarray:
    """Topic of every card: ``⌊j · n_topics / n_items⌋`` (contiguous, near-equal chapters)."""
    return np.arange(n_items) * n_topics // n_items


def _check_topics(n_topics: int | None, n_items: int) -> int:
    """``n_topics`` validated (1 … ``n_items``); ``None``: four, or one per card on smaller decks."""
    return min(4, n_items) if n_topics is None else check_int("n_topics", n_topics, 1, n_items)


def goal_topics(n_topics: int, split: str) -> int:
    """Topics in a sampled student's goal: a quarter of them (half on ``ood``), rounded half to
    even, at least one."""
    return max(1, round(n_topics * (0.5 if split == "ood" else 0.25)))


@dataclasses.dataclass(frozen=True)
class SpacedRepetitionGoalsProfile(StudentProfile):
    """One SpacedRepetitionGoals-v0 student (hidden from the tutor).

    The fields of :class:`envs.spaced_repetition.profile.SpacedRepetitionProfile` (same
    meaning and ranges), plus:

    - ``goal`` in [0, 1] per item: the card's weight in this student's exam (1: on the
      exam, 0: not needed). At least one weight must be positive.
    """

    decay: float
    gain: float
    fail_effect: float
    item_difficulty: tuple[float, ...]
    goal: tuple[float, ...]

    FIELDS = (
        *SpacedRepetitionProfile.FIELDS,
        FieldSpec("goal", 0.0, 1.0, "weight of the card in this student's exam (0: not needed)", "n_items"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if sum(self.goal) <= 0.0:
            raise ValueError(f"profile field 'goal' needs at least one positive weight, got {self.goal!r}")

    @classmethod
    def check_batch(cls, arrays: Mapping[str, np.ndarray]) -> None:
        if (np.asarray(arrays["goal"]).sum(axis=1) <= 0.0).any():
            raise ValueError("profile field 'goal' needs at least one positive weight in every profile")


class SpacedRepetitionGoalsDistribution(SpacedRepetitionDistribution):
    """Population of SpacedRepetitionGoals-v0 students.

    Memory parameters exactly as SpacedRepetition-v0's population (same splits and draws,
    see :class:`~envs.spaced_repetition.profile.SpacedRepetitionDistribution`). Goal: a
    uniformly random set of :func:`goal_topics` topics (about a quarter of them, at least one:
    one of the default four, on ``train`` / ``val`` / ``test``; about half, two of four, on
    ``ood``, whose students also forget much faster); their cards have weight 1, the others 0.
    """

    profile_cls = SpacedRepetitionGoalsProfile

    def __init__(self, n_items: int = 20, n_topics: int | None = None) -> None:
        super().__init__(n_items)
        self.n_topics = _check_topics(n_topics, self.n_items)

    def _sample_arrays(self, rng: np.random.Generator, n: int, split: str) -> dict[str, np.ndarray]:
        arrays = super()._sample_arrays(rng, n, split)
        order = rng.random((n, self.n_topics)).argsort(axis=1)
        chosen = np.zeros((n, self.n_topics), dtype=bool)
        np.put_along_axis(chosen, order[:, : goal_topics(self.n_topics, split)], True, axis=1)
        arrays["goal"] = chosen[:, card_topics(self.n_items, self.n_topics)].astype(np.float64)
        return arrays


class SpacedRepetitionGoalsDynamics(SpacedRepetitionDynamics):
    """SpacedRepetition-v0's students with a goal-weighted exam (module docstring)."""

    profile_cls = SpacedRepetitionGoalsProfile
    distribution_cls = SpacedRepetitionGoalsDistribution
    metric_names = (*SpacedRepetitionDynamics.metric_names, "goal_review_share")

    def __init__(self, num_students: int, *, n_topics: int | None = None, **kwargs: Any) -> None:
        # the goal population is drawn by SpacedRepetitionGoalsDistribution alone
        if kwargs.get("preset") is not None or kwargs.get("population", "default") != "default":
            raise ValueError(
                "SpacedRepetitionGoals-v0 has no presets or populations other than 'default'; "
                "use MetaTutor/SpacedRepetition-v0"
            )
        super().__init__(num_students, **kwargs)
        k = self.n_items
        self.n_topics = _check_topics(n_topics, k)
        self.topics = card_topics(k, self.n_topics)
        # SpacedRepetition-v0's 4 blocks per card, then one topic-membership block per topic
        self.item_obs_blocks = 4 + self.n_topics
        self.obs_dim = self.item_obs_blocks * k + 1
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (self.obs_dim,), np.float32)
        self._topic_obs = (self.topics[None, :] == np.arange(self.n_topics)[:, None]).reshape(-1)
        self._weight = np.full((self.n, k), 1.0 / k)
        self._weight_kn = self._weight.T.copy()  # item-major copy for the per-step sums
        # the observation buffer again, at this obs_dim, with the constant topic blocks in place
        self._obs = self._new_obs_buffer()
        self._obs[:, 4 * k : (4 + self.n_topics) * k] = self._topic_obs

    def distribution(self) -> SpacedRepetitionGoalsDistribution:
        return SpacedRepetitionGoalsDistribution(self.n_items, self.n_topics)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_topics": self.n_topics, "topics": self.topics.copy()}

    def set_profile_arrays(self, idx: np.ndarray, arrays: Mapping[str, np.ndarray]) -> None:
        # checked before anything is assigned, so a refused batch leaves every student as it was
        goal = np.asarray(arrays["goal"], dtype=np.float64) if "goal" in arrays else None
        if goal is not None and goal.ndim == 2:
            spec = next(s for s in self.profile_cls.FIELDS if s.name == "goal")
            if np.isnan(goal).any() or not spec.contains(goal).all():
                raise ValueError(f"profile field 'goal' must lie in {spec.range_text()}")
            if (goal.sum(axis=1) <= 0.0).any():
                raise ValueError("profile field 'goal' needs at least one positive weight per student")
        super().set_profile_arrays(idx, arrays)

    def _profiles_changed(self, idx: np.ndarray) -> None:
        super()._profiles_changed(idx)
        goal = self.p["goal"][idx]
        self._weight[idx] = goal / goal.sum(axis=1, keepdims=True)
        self._weight_kn[:, idx] = self._weight[idx].T

    def exam_weights(self) -> np.ndarray:
        return self._weight.copy()

    def _exam_mean(self, per_item: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return (per_item * (self._weight if rows is None else self._weight[rows])).sum(axis=1)

    def _exam_mean_kn(self, per_item_kn: np.ndarray) -> np.ndarray:
        return self._row_sum(per_item_kn * self._weight_kn)

    def episode_metrics(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        out = super().episode_metrics(idx)
        shown = self.n_reviews[idx]
        on_goal = (shown * (self._weight[idx] > 0.0)).sum(axis=1)
        out["goal_review_share"] = on_goal / np.maximum(shown.sum(axis=1), 1)
        return out


class SpacedRepetitionGoalsEnv(StudentEnv):
    """
    ## Description

    :class:`envs.spaced_repetition.SpacedRepetitionEnv` (same cards, memory models, clock
    and actions) for students who each need only some of the cards. The deck is divided
    into ``n_topics`` chapters (card ``j`` in topic ``⌊j · n_topics / n_items⌋``, shown in
    the observation); the student's *goal* — the chapters of their own exam — is hidden in
    the profile (:class:`SpacedRepetitionGoalsProfile`, field ``goal``: a weight
    ``w_j ∈ [0, 1]`` per card). Reviews are scarce (``horizon`` presentations for
    ``n_items`` cards), so a tutor that knows the goal spends them on the needed cards. The
    answers do not reveal the goal; the reward does, so a tutor can learn it from a few
    episodes with the student.

    Memory, per card ``j`` (unchanged, see SpacedRepetition-v0): ``p_j = curve(decay ·
    exp(ℓ_j) · (τ − L_j) / S_j)``; the goal enters only the exam:
    ``m_w(τ) = Σ_j w_j p_j(τ) / Σ_j w_j``.

    ## Action Space

    ``Discrete(n_items)``: the card to present next.

    ## Observation Space

    ``Box(0, 1, ((4 + n_topics) · n_items + 1,), float32)``: SpacedRepetition-v0's four
    blocks of ``K = n_items`` columns (time since each card was last shown, times shown,
    last answer correct, last answer wrong), then ``n_topics`` blocks ``[(4 + c)K,
    (5 + c)K)`` with 1 for the cards of topic ``c`` (constant: the deck's structure), then
    elapsed steps / horizon. Never the goal, the recall probabilities or the profile.

    ## Rewards

    ``reward_mode="recall"`` (default): ``m_w(τ_{t+1}) − m_w(τ_t)``, so the undiscounted
    return is ``m_w(τ_T)``, the expected goal-weighted exam score. ``"exam"``: 0 until the
    last step, then the goal-weighted fraction of cards recalled at the exam (sampled).
    ``"correct"``: 1 if the presented card was answered correctly (ignores the goal).

    ## Starting State

    No card has been shown. Without a fixed task, each reset draws a new student from the
    ``train`` split (one random topic of the default four as the goal).

    ## Episode End

    Terminates after ``horizon`` steps. ``info`` at the end carries SpacedRepetition-v0's
    metrics — ``exam_recall`` and ``final_mean_recall_prob`` and ``mean_recall`` goal-weighted,
    ``items_never_reviewed`` and ``accuracy`` over every card — plus ``goal_review_share``,
    the fraction of presentations spent on goal cards (weight > 0).

    ## Arguments

    ```python
    gym.make("MetaTutor/SpacedRepetitionGoals-v0", n_items=20, n_topics=None, horizon=100,
             memory_model="exponential", step_gap=1 / 1440, session_length=10,
             session_gap=1.0, exam_delay=1.0, reward_mode="recall", render_mode=None)
    ```

    ``n_topics`` (1 … ``n_items``; default 4, or ``n_items`` if smaller) chapters; the rest
    as SpacedRepetition-v0. The student is set with ``reset(options={"profile": {...}})``
    or ``env.unwrapped.set_task(profile)``; the profile then needs a ``goal`` list.
    """

    dynamics_cls = SpacedRepetitionGoalsDynamics


class SpacedRepetitionGoalsVectorEnv(StudentVectorEnv):
    """Native vector version of :class:`SpacedRepetitionGoalsEnv` (same arguments plus ``num_envs``)."""

    dynamics_cls = SpacedRepetitionGoalsDynamics
