"""Behaviour every registered env shares (the generic front ends, exercised per family)."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.seeding import np_random

import envs


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_reset_without_profile_samples_train_students(env_id: str) -> None:
    """Fresh students are the train split's draws from the env's seeded generator."""
    env = gym.make(env_id)
    _, info1 = env.reset(seed=0)
    _, info2 = env.reset()
    rng, _ = np_random(0)
    dist = envs.distribution(env_id)
    expected = [p.to_dict() for p in dist.sample(1, "train", rng=rng) + dist.sample(1, "train", rng=rng)]
    assert [info1["profile"], info2["profile"]] == expected
    assert info1["profile"] != info2["profile"]


def test_every_family_is_registered() -> None:
    expected = {
        "MetaTutor/SkillGraph-v0",
        "MetaTutor/SpacedRepetition-v0",
        "MetaTutor/SpacedRepetitionGoals-v0",
        "MetaTutor/ZPD-v0",
    }
    assert set(envs.ENV_IDS) == expected
    for env_id in envs.ENV_IDS:
        assert gym.spec(env_id).vector_entry_point is not None
