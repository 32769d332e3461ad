"""stable-baselines3 PPO on SpacedRepetition-v0: it runs on the default env and learns on a small one."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import envs  # noqa: F401 - registers the env ids

ENV_ID = "MetaTutor/SpacedRepetition-v0"


def episode_returns(env_kwargs: dict, policy, n: int = 200) -> np.ndarray:
    env = gym.make(ENV_ID, **env_kwargs)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        obs, _ = env.reset(seed=10_000 + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs, rng))
            total += r
            done = term or trunc
        out.append(total)
    return np.array(out)


def test_ppo_runs_on_the_default_env() -> None:
    env = gym.make(ENV_ID)
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=256, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=1024)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))
    assert len(model.ep_info_buffer) == 1024 // 100  # whole 100-step episodes were collected
    returns = [ep["r"] for ep in model.ep_info_buffer]
    assert all(-1.0 <= r <= 1.0 for r in returns)  # the return is the expected exam score


@pytest.mark.slow
def test_ppo_beats_random_on_a_small_course() -> None:
    """20k steps (≈ 30 s on 2 busy cores): 5 cards, 4 sessions of 5 steps."""
    torch.set_num_threads(1)
    kw = {"n_items": 5, "horizon": 20, "session_length": 5}
    venv = DummyVecEnv([lambda: gym.make(ENV_ID, **kw) for _ in range(8)])
    venv.seed(0)
    model = PPO(
        "MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=5, learning_rate=1e-3, seed=0, device="cpu"
    )
    model.learn(total_timesteps=20_000)
    ppo = episode_returns(kw, lambda o, rng: int(model.predict(o, deterministic=True)[0]))
    rand = episode_returns(kw, lambda o, rng: int(rng.integers(5)))
    se = math.sqrt(ppo.var() / len(ppo) + rand.var() / len(rand))
    assert ppo.mean() - rand.mean() > 4 * se, (ppo.mean(), rand.mean(), se)
