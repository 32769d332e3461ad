"""ZPD-v0: item difficulty in the zone of proximal development, with engagement and quitting."""

from envs.zpd.dynamics import ZPDDynamics
from envs.zpd.env import ZPDEnv, ZPDVectorEnv
from envs.zpd.profile import ZPDDistribution, ZPDProfile

__all__ = [
    "ZPDDistribution",
    "ZPDDynamics",
    "ZPDEnv",
    "ZPDProfile",
    "ZPDVectorEnv",
]
