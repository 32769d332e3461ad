"""SpacedRepetition-v0: flash-card review scheduling with forgetting."""

from envs.spaced_repetition.dynamics import SpacedRepetitionDynamics
from envs.spaced_repetition.env import SpacedRepetitionEnv, SpacedRepetitionVectorEnv
from envs.spaced_repetition.profile import SpacedRepetitionDistribution, SpacedRepetitionProfile

__all__ = [
    "SpacedRepetitionDistribution",
    "SpacedRepetitionDynamics",
    "SpacedRepetitionEnv",
    "SpacedRepetitionProfile",
    "SpacedRepetitionVectorEnv",
]
