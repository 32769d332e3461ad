"""Test-time adaptation: determinism, the one-student API, and personalisation on known students."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.skill_graph import SkillGraphEnv, SkillGraphProfile
from meta_rl.adaptation import adapt, adaptation_curve
from meta_rl.envspec import EnvSpec
from meta_rl.maml import InnerUpdate
from meta_rl.policy import PolicySpec, init_params
from meta_rl.tutor import AdvantageSettings, TutorPolicy

KW = {"n_skills": 1, "n_content": 3, "horizon": 6, "prerequisites": "none"}


def _policy(lr: float = 2.0, kw: dict = KW) -> TutorPolicy:
    env = EnvSpec("MetaTutor/SkillGraph-v0", kw)
    spec = PolicySpec(env.obs_dim, env.action_nvec, (16,))
    params = init_params(spec, torch.Generator().manual_seed(0))
    return TutorPolicy(
        spec, env, params, InnerUpdate(lr, "lvc"), AdvantageSettings(0.99, 0.95, "time_mean"), 16
    )


def _student(content: int) -> SkillGraphProfile:
    """Learns (with probability 1/2 per lesson) only with content ``content``; no forgetting."""
    aff = [0.0, 0.0, 0.0]
    aff[content] = 1.0
    return SkillGraphProfile(
        learn=(0.5,), content_affinity=tuple(aff), slip=0.1, guess=0.2, forget=0.0, prior=(0.0,)
    )


def test_adaptation_curve_is_deterministic_and_shaped() -> None:
    pol = _policy()
    profiles = pol.env.distribution().sample(5, "val", seed=0)
    a = adaptation_curve(pol, profiles, steps=2, rollouts_per_step=3, eval_episodes=4, seed=11)
    b = adaptation_curve(
        pol, [p.to_dict() for p in profiles], steps=2, rollouts_per_step=3, eval_episodes=4, seed=11
    )
    c = adaptation_curve(pol, profiles, steps=2, rollouts_per_step=3, eval_episodes=4, seed=12)
    assert a.returns.shape == (5, 3) and a.adapt_returns.shape == (5, 2)
    assert set(a.metrics) == set(pol.env.metric_names)
    assert all(v.shape == (5, 3) for v in a.metrics.values())
    np.testing.assert_array_equal(a.returns, b.returns)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])
    assert not np.array_equal(a.returns, c.returns)
    assert a.env_steps == 5 * 3 * 6 * 2


def test_adaptation_personalises_each_student_towards_their_content() -> None:
    # three students who learn only with content 0, 1 and 2 respectively: the inner
    # update must move each one's policy towards *their* content (batched, one call)
    pol = _policy(lr=3.0)
    students = [_student(c) for c in range(3)]
    res = adaptation_curve(pol, students, steps=3, rollouts_per_step=16, eval_episodes=30, seed=0)
    start_obs = np.zeros((1, pol.env.obs_dim), dtype=np.float32)
    for i in range(3):
        adapted = pol.with_params({k: v[i] for k, v in res.params.items()})
        before = pol.action_probs(start_obs)[0].reshape(1, 4)[0, :3]
        after = adapted.action_probs(start_obs)[0].reshape(1, 4)[0, :3]
        assert after[i] > before[i] + 0.1, (i, before, after)
        assert np.argmax(after) == i
    # and it pays off: each student masters the skill more often after adaptation
    assert np.all(res.returns[:, -1] > res.returns[:, 0] + 0.1), res.returns


def test_adapt_one_student_is_the_batched_machinery() -> None:
    pol = _policy()
    student = _student(2)
    one = adapt(pol, student, steps=2, rollouts=4, seed=3)
    ref = adaptation_curve(pol, [student], steps=2, rollouts_per_step=4, eval_episodes=0, seed=3)
    for k in one.params:
        assert torch.equal(one.params[k], ref.params[k][0])
    assert one.profile == student
    assert all(torch.equal(pol.params[k], _policy().params[k]) for k in pol.params)  # input unchanged
    # an env whose current student is that profile gives the same personalised tutor
    env = SkillGraphEnv(**KW)
    env.unwrapped.set_task(student)
    from_env = adapt(pol, env, steps=2, rollouts=4, seed=3)
    for k in one.params:
        assert torch.equal(one.params[k], from_env.params[k])
    # the personalised tutor acts on that env
    obs, _ = env.reset(seed=0)
    for _ in range(KW["horizon"]):
        obs, _, term, trunc, _ = env.step(from_env.act(obs))
        if term or trunc:
            break
    assert term


def test_adapt_rejects_an_env_of_another_family_or_without_student() -> None:
    pol = _policy()
    with pytest.raises(ValueError, match="no student yet"):
        adapt(pol, SkillGraphEnv(**KW), steps=1, rollouts=2)
    with pytest.raises(ValueError):
        adapt(pol, {"learn": [0.5]}, steps=1, rollouts=2)


def test_zero_steps_only_evaluates_and_lr_override_is_used() -> None:
    pol = _policy()
    students = [_student(0), _student(1)]
    res = adaptation_curve(pol, students, steps=0, eval_episodes=3, seed=0)
    assert res.returns.shape == (2, 1) and res.env_steps == 0
    same = adaptation_curve(pol, students, steps=1, rollouts_per_step=2, eval_episodes=0, seed=0, lr=0.0)
    for k in pol.params:
        torch.testing.assert_close(same.params[k][0], pol.params[k])


def test_copies_have_their_own_action_generator() -> None:
    obs = np.zeros((64, _policy().env.obs_dim), dtype=np.float32)
    ref = _policy()
    ref.seed(5)
    expected = [ref.act(obs) for _ in range(3)]

    pol = _policy()
    pol.seed(5)
    copy = pol.with_params(pol.params)
    np.testing.assert_array_equal(copy.act(obs), expected[0])  # starts from the original's state
    copy.seed(123)  # reseeding the copy does not reseed the original ...
    np.testing.assert_array_equal(pol.act(obs), expected[0])
    copy.act(obs)  # ... and acting with it does not advance the original's generator
    np.testing.assert_array_equal(pol.act(obs), expected[1])
    # the same for a personalised tutor returned by adapt()
    mine = adapt(pol, _student(0), steps=1, rollouts=2, seed=0)
    mine.seed(7)
    mine.act(obs)
    np.testing.assert_array_equal(pol.act(obs), expected[2])
