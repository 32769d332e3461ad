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


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_registered_defaults_are_what_the_shipped_config_trains_on(env_id: str) -> None:
    """One source of truth: ``gym.make(env_id)`` and ``sample_profiles(env_id, n)`` build the
    env the shipped config trains (and so ``meta-tutor demo`` / ``train``) on."""
    from meta_rl.config import default_config_path, load_config

    cfg = load_config(default_config_path(env_id))
    defaults = envs.default_env_kwargs(env_id)
    for key, value in cfg.env_kwargs.items():
        assert key in defaults and defaults[key] == value, (key, value, defaults.get(key))
    made = gym.make(env_id).unwrapped.dynamics
    trained = envs.family(env_id).load("dynamics")(1, **cfg.env_kwargs)
    assert made.dims() == trained.dims() and made.horizon == trained.horizon
    assert made.single_observation_space == trained.single_observation_space
    assert made.single_action_space == trained.single_action_space
    for p in envs.sample_profiles(env_id, 3):
        trained.coerce_profile(p)  # default profiles fit the trained env


def test_default_env_kwargs_include_forwarded_parent_arguments() -> None:
    goals = envs.default_env_kwargs("MetaTutor/SpacedRepetitionGoals-v0")
    assert goals == {"n_topics": None, **envs.default_env_kwargs("MetaTutor/SpacedRepetition-v0")}
    assert envs.default_env_kwargs("MetaTutor/SkillGraph-v0")["n_skills"] == 4
