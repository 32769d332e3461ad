"""Multi-task sampler: episode boundaries against single-env replays, masks, seeds, per-task params."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pytest
import torch

from envs.core import StudentEnv, StudentVectorEnv
from envs.skill_graph import SkillGraphDynamics, SkillGraphEnv
from meta_rl.envspec import EnvSpec
from meta_rl.policy import PolicySpec, expand_params, init_params
from meta_rl.sampler import Sampler

KW = {"n_skills": 3, "n_content": 2, "horizon": 12, "prerequisites": "chain"}


class QuittingDynamics(SkillGraphDynamics):
    """SkillGraph students who leave as soon as every skill is mastered (early termination)."""

    def _step(self, actions):
        reward, terminated = super()._step(actions)
        return reward, terminated | self.mastered.all(axis=1)


class QuittingEnv(StudentEnv):
    dynamics_cls = QuittingDynamics


class QuittingVectorEnv(StudentVectorEnv):
    dynamics_cls = QuittingDynamics


class QuittingSpec(EnvSpec):
    """EnvSpec of the quitting variant (optionally with a shorter collection window)."""

    window: int | None = None

    @cached_property
    def probe(self):
        return QuittingDynamics(1, **self.env_kwargs)

    @property
    def horizon(self) -> int:
        return self.window or super().horizon

    def make_vector_env(self, num_envs: int):
        return QuittingVectorEnv(num_envs=num_envs, **self.env_kwargs)


def _policy(env: EnvSpec, seed: int = 0) -> tuple[PolicySpec, dict]:
    spec = PolicySpec(env.obs_dim, env.action_nvec, (16,))
    return spec, init_params(spec, torch.Generator().manual_seed(seed), out_gain=1.0)


def _replay(env_cls, profile, seed: int, actions: np.ndarray, steps: int, kw: dict = KW):
    """Run the recorded actions in a single env: the independent reference."""
    env = env_cls(**kw)
    obs, _ = env.reset(seed=seed, options={"profile": profile})
    out = {"obs": [obs], "rewards": [], "term": [], "trunc": [], "info": {}}
    for t in range(steps):
        obs, r, term, trunc, info = env.step(int(actions[t]))
        out["obs"].append(obs)
        out["rewards"].append(r)
        out["term"].append(term)
        out["trunc"].append(trunc)
        if term or trunc:
            out["info"] = info
            break
    return out


def test_episode_boundaries_and_variable_lengths_match_single_env_replays() -> None:
    env = QuittingSpec("MetaTutor/SkillGraph-v0", KW)
    spec, theta = _policy(env)
    profiles = env.distribution().sample(4, "train", seed=1)
    # fast learners, so that many students quit before the horizon
    profiles = [type(p)(**{**p.to_dict(), "learn": (0.9, 0.9, 0.9)}) for p in profiles]
    roll = Sampler(env, spec).collect(expand_params(theta, 4), profiles, episodes=5, seed=100)
    lengths = roll.lengths
    assert lengths.min() < KW["horizon"] and lengths.max() == KW["horizon"], lengths
    for i in range(4):
        for j in range(5):
            length = int(lengths[i, j])
            ref = _replay(
                QuittingEnv, profiles[i], 100 + i * 5 + j, roll.actions[i, j].numpy(), KW["horizon"]
            )
            assert len(ref["rewards"]) == length
            np.testing.assert_array_equal(roll.mask[i, j].numpy(), np.arange(KW["horizon"]) < length)
            np.testing.assert_allclose(roll.obs[i, j, : length + 1].numpy(), np.stack(ref["obs"]))
            np.testing.assert_allclose(roll.rewards[i, j, :length].numpy(), ref["rewards"])
            assert roll.rewards[i, j, length:].abs().sum() == 0
            np.testing.assert_array_equal(roll.terminated[i, j, :length].numpy(), ref["term"])
            assert not roll.terminated[i, j, length:].any() and not roll.truncated[i, j].any()
            for k, v in ref["info"].items():
                assert roll.metrics[k][i, j] == pytest.approx(v, nan_ok=True)
            assert roll.returns[i, j] == pytest.approx(sum(ref["rewards"]))


def test_collection_window_shorter_than_episodes_marks_truncation_with_final_obs() -> None:
    env = QuittingSpec("MetaTutor/SkillGraph-v0", {**KW, "horizon": 30})
    object.__setattr__(env, "window", 6)
    spec, theta = _policy(env)
    profiles = env.distribution().sample(2, "train", seed=2)
    roll = Sampler(env, spec).collect(theta, profiles, episodes=3, seed=7)
    ended = roll.terminated.any(-1).numpy()
    assert (roll.lengths[~ended] == 6).all()
    assert roll.truncated[..., 5].numpy()[~ended].all() and roll.truncated.sum() == (~ended).sum()
    # the final observation of a cut episode is the observation after its last step
    ref = _replay(SkillGraphEnv, profiles[0], 7, roll.actions[0, 0].numpy(), 6, env.env_kwargs)
    np.testing.assert_allclose(roll.obs[0, 0, 6].numpy(), ref["obs"][6])
    assert np.isnan(roll.metrics["posttest"][~ended]).all()


def test_same_seed_same_rollouts_and_other_seed_differs() -> None:
    env = EnvSpec("MetaTutor/SkillGraph-v0", KW)
    spec, theta = _policy(env)
    profiles = env.distribution().sample(3, "val", seed=0)
    sampler = Sampler(env, spec)
    a = sampler.collect(theta, profiles, 4, seed=5)
    b = sampler.collect(theta, profiles, 4, seed=5)
    c = sampler.collect(theta, profiles, 4, seed=6)
    for f in ("obs", "actions", "logp", "rewards", "mask"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert not torch.equal(a.actions, c.actions)


def test_each_task_is_driven_by_its_own_parameters() -> None:
    env = EnvSpec("MetaTutor/SkillGraph-v0", KW)
    spec, theta = _policy(env)
    params = {k: v.clone() for k, v in expand_params(theta, 3).items()}
    last = f"l{spec.n_layers - 1}"
    params[f"{last}.weight"].zero_()
    params[f"{last}.bias"].zero_()
    # task i strongly prefers skill i (first factor) and content 1 (second factor)
    for i in range(3):
        params[f"{last}.bias"][i, i] = 50.0
        params[f"{last}.bias"][i, 3 + 1] = 50.0
    roll = Sampler(env, spec).collect(params, env.distribution().sample(3, "train"), 2, seed=0)
    for i in range(3):
        valid = roll.actions[i][roll.mask[i]]
        assert torch.all(valid == i * 3 + 1)
        assert torch.all(roll.logp[i][roll.mask[i]] > -1e-6)


def test_privileged_observations_append_normalised_profile() -> None:
    env = EnvSpec("MetaTutor/SkillGraph-v0", KW, privileged=True)
    plain = EnvSpec("MetaTutor/SkillGraph-v0", KW)
    assert env.obs_dim == plain.obs_dim + 3 + 2 + 1 + 1 + 1 + 3
    spec, theta = _policy(env)
    profiles = env.distribution().sample(2, "train", seed=3)
    roll = Sampler(env, spec).collect(theta, profiles, 2, seed=1)
    extra = roll.obs[..., plain.obs_dim :]
    p = profiles[1]
    expected = np.concatenate(
        [p.learn, p.content_affinity, [p.slip / 0.5, p.guess / 0.5, p.forget], p.prior]
    ).astype(np.float32)
    np.testing.assert_allclose(extra[1, 0, 0].numpy(), expected, rtol=1e-6)
    assert torch.all(extra[1] == extra[1, 0, 0])  # constant over episodes and time
    assert extra.min() >= 0 and extra.max() <= 1


def test_sampler_rejects_mismatched_policy() -> None:
    env = EnvSpec("MetaTutor/SkillGraph-v0", KW)
    with pytest.raises(ValueError, match="observation features"):
        Sampler(env, PolicySpec(env.obs_dim + 1, env.action_nvec))


def test_nan_mean_ignores_nan_per_task_and_overall() -> None:
    import warnings

    from meta_rl.sampler import nan_mean, task_means

    x = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [4.0, 5.0, 6.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" warnings
        np.testing.assert_array_equal(task_means(x), [2.0, np.nan, 5.0])
        np.testing.assert_array_equal(nan_mean(x, axis=1), task_means(x))
        assert nan_mean(x) == float(np.nanmean(x))
        assert isinstance(nan_mean(x), float)
        assert np.isnan(nan_mean(np.full((2, 3), np.nan)))


def test_collection_seeds_are_spaced_by_one_stride() -> None:
    from meta_rl.adaptation import _seeds
    from meta_rl.sampler import SEED_STRIDE, spaced_seed

    assert spaced_seed(3) == 3 * SEED_STRIDE == 3 * 4096
    state = np.random.SeedSequence(7).generate_state(6, np.uint32).astype(np.int64)
    np.testing.assert_array_equal(_seeds(7, 2), state * 4096)
