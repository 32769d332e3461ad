"""SpacedRepetition-v0: flash-card review scheduling with forgetting; SpacedRepetitionGoals-v0:
the same students, each needing only some of the cards."""

from envs.spaced_repetition.dynamics import SpacedRepetitionDynamics
from envs.spaced_repetition.env import SpacedRepetitionEnv, SpacedRepetitionVectorEnv
from envs.spaced_repetition.goals import (
    SpacedRepetitionGoalsDistribution,
    SpacedRepetitionGoalsDynamics,
    SpacedRepetitionGoalsEnv,
    SpacedRepetitionGoalsProfile,
    SpacedRepetitionGoalsVectorEnv,
)
from envs.spaced_repetition.profile import SpacedRepetitionDistribution, SpacedRepetitionProfile

__all__ = [
    "SpacedRepetitionDistribution",
    "SpacedRepetitionDynamics",
    "SpacedRepetitionEnv",
    "SpacedRepetitionGoalsDistribution",
    "SpacedRepetitionGoalsDynamics",
    "SpacedRepetitionGoalsEnv",
    "SpacedRepetitionGoalsProfile",
    "SpacedRepetitionGoalsVectorEnv",
    "SpacedRepetitionProfile",
    "SpacedRepetitionVectorEnv",
]
