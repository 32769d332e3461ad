"""GAE and baselines against independent references (SB3's buffer, NumPy least squares)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.buffers import RolloutBuffer

from meta_rl.gae import (
    compute_advantages,
    discounted_returns,
    fit_linear_baseline,
    gae,
    normalize_per_task,
    time_mean_baseline,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.9, 1.0), (1.0, 0.0)])
def test_gae_equals_sb3_rollout_buffer(seed: int, gamma: float, lam: float) -> None:
    rng = np.random.default_rng(seed)
    n_steps, n_envs = 40, 4
    rewards = rng.normal(size=(n_steps, n_envs)).astype(np.float32)
    values = rng.normal(size=(n_steps, n_envs)).astype(np.float32)
    done = rng.random((n_steps, n_envs)) < 0.2
    truncated = done & (rng.random((n_steps, n_envs)) < 0.5)
    terminated = done & ~truncated
    final_values = rng.normal(size=(n_steps, n_envs)).astype(np.float32)  # V(final obs)
    last_values = rng.normal(size=n_envs).astype(np.float32)

    # SB3: truncation is handled at collection time by adding γ·V(final obs) to the reward
    buf = RolloutBuffer(
        n_steps, gym.spaces.Box(-1, 1, (1,)), gym.spaces.Discrete(2), "cpu", lam, gamma, n_envs
    )
    buf.rewards[:] = rewards + np.where(truncated, gamma * final_values, 0.0)
    buf.values[:] = values
    buf.episode_starts[1:] = done[:-1]
    buf.compute_returns_and_advantage(torch.as_tensor(last_values), done[-1])

    # ours: (env, time) layout; next value = V(s_{t+1}) inside an episode, V(final) at its end
    next_values = np.concatenate([values[1:], last_values[None]], axis=0)
    next_values = np.where(done, final_values, next_values)
    # at a termination the next value is never used; garbage there must not matter
    next_values = np.where(terminated, 1e6, next_values)
    ours = gae(
        torch.as_tensor(rewards.T, dtype=torch.float64),
        torch.as_tensor(values.T, dtype=torch.float64),
        torch.as_tensor(next_values.T, dtype=torch.float64),
        torch.as_tensor(terminated.T),
        torch.as_tensor(truncated.T),
        gamma,
        lam,
    )
    np.testing.assert_allclose(ours.numpy().T, buf.advantages, rtol=1e-5, atol=1e-5)


def test_discounted_returns_match_python_loop() -> None:
    rng = np.random.default_rng(3)
    r = rng.normal(size=(3, 25))
    done = rng.random((3, 25)) < 0.15
    ref = np.zeros_like(r)
    for i in range(3):
        g = 0.0
        for t in reversed(range(25)):
            g = r[i, t] + 0.9 * (0.0 if done[i, t] else g)
            ref[i, t] = g
    out = discounted_returns(torch.as_tensor(r), torch.as_tensor(done), 0.9)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)


def _rllab_features(obs: np.ndarray) -> np.ndarray:
    """Features of one path as written in rllab's LinearFeatureBaseline."""
    o = np.clip(obs, -10, 10)
    al = np.arange(len(obs)).reshape(-1, 1) / 100.0
    return np.concatenate([o, o**2, al, al**2, al**3, np.ones((len(obs), 1))], axis=1)


def test_linear_baseline_equals_ridge_least_squares_per_task() -> None:
    rng = np.random.default_rng(4)
    n_t, n_e, h, d = 3, 5, 12, 4
    obs = rng.normal(size=(n_t, n_e, h + 1, d)) * 3
    returns = rng.normal(size=(n_t, n_e, h))
    lengths = rng.integers(4, h + 1, size=(n_t, n_e))
    mask = np.arange(h)[None, None] < lengths[..., None]
    pred = fit_linear_baseline(torch.as_tensor(obs), torch.as_tensor(returns), torch.as_tensor(mask)).numpy()
    for i in range(n_t):
        x = np.concatenate([_rllab_features(obs[i, j, : lengths[i, j]]) for j in range(n_e)])
        y = np.concatenate([returns[i, j, : lengths[i, j]] for j in range(n_e)])
        w = np.linalg.lstsq(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y, rcond=None)[0]
        for j in range(n_e):
            np.testing.assert_allclose(pred[i, j], _rllab_features(obs[i, j]) @ w, rtol=1e-6, atol=1e-8)


def test_time_mean_baseline_is_mean_over_valid_episodes() -> None:
    rng = np.random.default_rng(5)
    returns = rng.normal(size=(2, 6, 8))
    mask = rng.random((2, 6, 8)) < 0.7
    out = time_mean_baseline(torch.as_tensor(returns), torch.as_tensor(mask)).numpy()
    assert out.shape == (2, 6, 9)
    for i in range(2):
        for t in range(8):
            valid = returns[i, mask[i, :, t], t]
            expected = valid.mean() if len(valid) else 0.0
            np.testing.assert_allclose(out[i, :, t], expected, rtol=1e-12)


def test_normalize_per_task_standardises_valid_steps_only() -> None:
    rng = np.random.default_rng(6)
    adv = torch.as_tensor(rng.normal(3.0, 5.0, size=(3, 4, 10)))
    mask = torch.as_tensor(rng.random((3, 4, 10)) < 0.6)
    out = normalize_per_task(adv, mask)
    for i in range(3):
        v = out[i][mask[i]]
        assert abs(float(v.mean())) < 1e-9
        assert abs(float(v.std(unbiased=False)) - 1.0) < 1e-6
    assert torch.all(out[~mask] == 0)


def test_compute_advantages_bootstraps_truncated_but_not_terminated_episodes() -> None:
    # two episodes of one task: the first terminates at t=2, the second is truncated at t=3
    h = 4
    rewards = torch.tensor([[[1.0, 2.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    mask = torch.tensor([[[True, True, True, False], [True, True, True, True]]])
    terminated = torch.tensor([[[False, False, True, False], [False] * 4]])
    truncated = torch.tensor([[[False] * 4, [False, False, False, True]]])
    values = torch.arange(2 * (h + 1), dtype=torch.float64).reshape(1, 2, h + 1) / 10
    gamma, lam = 0.9, 0.8
    adv, _ = compute_advantages(
        torch.zeros(1, 2, h + 1, 1),
        rewards,
        mask,
        terminated,
        truncated,
        gamma,
        lam,
        "value_net",
        values,
        False,
    )
    # hand-computed reference for each episode
    for e, last in ((0, 2), (1, 3)):
        v = values[0, e].numpy()
        r = rewards[0, e].numpy()
        a, ref = 0.0, np.zeros(h)
        for t in range(last, -1, -1):
            bootstrap = 0.0 if (e == 0 and t == last) else gamma * v[t + 1]
            delta = r[t] + bootstrap - v[t]
            a = delta + (0.0 if t == last else gamma * lam * a)
            ref[t] = a
        np.testing.assert_allclose(adv[0, e].numpy(), ref, rtol=1e-6, atol=1e-6)
