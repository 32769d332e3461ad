"""ZPD-v0 with stable-baselines3: SB3's checker passes and PPO learns to beat random."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import envs

ENV_ID = "MetaTutor/ZPD-v0"


def first_episode_returns(
    policy: Callable[[np.ndarray], np.ndarray], n: int = 400, seed: int = 7
) -> np.ndarray:
    """Return of each of ``n`` held-out test students' first episode (native vector env)."""
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=seed, options={"profiles": envs.sample_profiles(ENV_ID, n, "test", seed)})
    done, ret = np.zeros(n, dtype=bool), np.zeros(n)
    while not done.all():
        obs, r, term, trunc, _ = venv.step(policy(obs))
        ret += np.where(done, 0.0, r)
        done |= term | trunc
    return ret


def test_sb3_env_checker() -> None:
    from stable_baselines3.common.env_checker import check_env

    check_env(gym.make(ENV_ID).unwrapped, warn=False)


@pytest.fixture
def one_torch_thread() -> object:
    """Small MLPs on 2 busy cores: a second torch thread only adds contention (5–10× slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_torch_thread")
def test_sb3_ppo_trains_and_beats_random() -> None:
    from stable_baselines3 import PPO

    env = gym.make(ENV_ID)
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, seed=0, verbose=0, device="cpu")
    model.learn(total_timesteps=4_096)
    trained = first_episode_returns(lambda obs: model.predict(obs, deterministic=False)[0])
    rng = np.random.default_rng(0)
    random = first_episode_returns(lambda obs: rng.integers(0, 20, size=len(obs)))
    test = stats.ttest_ind(trained, random, equal_var=False, alternative="greater")
    assert test.pvalue < 1e-6 and trained.mean() > random.mean() + 0.5, (trained.mean(), random.mean())
