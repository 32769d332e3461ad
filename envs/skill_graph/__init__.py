"""SkillGraph-v0: knowledge tracing with prerequisites."""

from envs.skill_graph.dynamics import SkillGraphDynamics
from envs.skill_graph.env import SkillGraphEnv, SkillGraphVectorEnv
from envs.skill_graph.profile import SkillGraphDistribution, SkillGraphProfile

__all__ = [
    "SkillGraphDistribution",
    "SkillGraphDynamics",
    "SkillGraphEnv",
    "SkillGraphProfile",
    "SkillGraphVectorEnv",
]
