"""SpacedRepetition-v0 front ends: Gymnasium's checker, vector semantics, rewards, validation."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs
from envs.spaced_repetition import SpacedRepetitionDynamics, SpacedRepetitionEnv, SpacedRepetitionVectorEnv
from envs.spaced_repetition.dynamics import decode_elapsed, encode_elapsed, step_times

ENV_ID = "MetaTutor/SpacedRepetition-v0"
MODELS = ("exponential", "hlr", "power", "fsrs")
REWARDS = ("recall", "exam", "correct")


def make_vec(n: int, **kw: object) -> gym.vector.VectorEnv:
    return gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kw)


@pytest.mark.parametrize("reward_mode", REWARDS)
@pytest.mark.parametrize("memory_model", MODELS)
def test_check_env(memory_model: str, reward_mode: str) -> None:
    env = gym.make(ENV_ID, memory_model=memory_model, reward_mode=reward_mode, horizon=30)
    check_env(env.unwrapped, skip_render_check=True)


def test_gym_make_docstring_and_render() -> None:
    env = gym.make(ENV_ID, render_mode="ansi")
    assert isinstance(env.unwrapped, SpacedRepetitionEnv)
    for section in ("Description", "Action Space", "Observation Space", "Rewards",
                    "Starting State", "Episode End", "Arguments"):  # fmt: skip
        assert f"## {section}" in SpacedRepetitionEnv.__doc__
    env.reset(seed=0)
    env.step(3)
    text = env.render()
    assert text.startswith("t=1/100") and "reviews=1" in text
    venv = make_vec(3, render_mode="ansi")
    assert isinstance(venv.unwrapped, SpacedRepetitionVectorEnv)
    venv.reset(seed=0)
    assert len(venv.render()) == 3


def test_vector_spaces_are_batched() -> None:
    venv = make_vec(6, n_items=7)
    assert venv.single_observation_space.shape == (29,)
    assert venv.observation_space.shape == (6, 29)
    assert venv.action_space == gym.spaces.MultiDiscrete([7] * 6)
    assert venv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    assert venv.unwrapped.action_nvec == (7,)


def test_next_step_autoreset_follows_gymnasium() -> None:
    """Gymnasium 1.x NEXT_STEP: the step after termination resets, ignores the action, reward 0."""
    h = 4
    venv = make_vec(3, horizon=h, n_items=3)
    obs, _ = venv.reset(seed=0)
    a = np.array([0, 1, 2])
    for _ in range(h):
        obs, r, term, trunc, info = venv.step(a)
    assert term.all() and not trunc.any()
    assert info["_exam_recall"].all() and "final_mean_recall_prob" in info
    np.testing.assert_allclose(obs[:, -1], 1.0)
    obs, r, term, trunc, info = venv.step(np.array([2, 2, 2]))
    np.testing.assert_array_equal(r, 0.0)
    assert not term.any() and not trunc.any() and "exam_recall" not in info
    fresh = SpacedRepetitionDynamics(1, n_items=3, horizon=h)
    fresh.set_profiles(np.arange(1), [envs.sample_profiles(ENV_ID, 1, n_items=3)[0]])
    fresh.reset(np.arange(1))
    np.testing.assert_array_equal(obs, np.repeat(fresh.observe(), 3, axis=0))  # a fresh start
    obs, *_ = venv.step(np.array([2, 2, 2]))
    assert np.all(obs[:, 2 * 3 + 2] + obs[:, 3 * 3 + 2] == 1.0)  # card 2 shown once, answer recorded


def test_reset_seed_reproducible() -> None:
    profs = envs.sample_profiles(ENV_ID, 4, "test", seed=2)

    def run(seed: int) -> np.ndarray:
        venv = make_vec(4)
        obs, _ = venv.reset(seed=seed, options={"profiles": profs})
        out = [obs]
        for t in range(60):
            obs, r, *_ = venv.step(np.full(4, t % 5))
            out += [obs, r[:, None]]
        return np.concatenate(out, axis=1)

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


@pytest.mark.parametrize("memory_model", MODELS)
def test_single_and_vector_trajectories_identical(memory_model: str) -> None:
    n, h = 4, 25
    kw = {"memory_model": memory_model, "horizon": h, "n_items": 6, "session_length": 5}
    profs = envs.sample_profiles(ENV_ID, n, split="ood", seed=3, n_items=6)
    venv = make_vec(n, **kw)
    vobs, _ = venv.reset(seed=11, options={"profiles": profs})
    singles = [gym.make(ENV_ID, **kw) for _ in range(n)]
    sobs = [e.reset(seed=11 + i, options={"profile": profs[i]})[0] for i, e in enumerate(singles)]
    np.testing.assert_array_equal(vobs, np.stack(sobs))
    rng = np.random.default_rng(0)
    for _ in range(h):
        a = rng.integers(0, 6, size=n)
        vobs, vr, vterm, vtrunc, vinfo = venv.step(a)
        for i, e in enumerate(singles):
            o, r, term, trunc, info = e.step(int(a[i]))
            np.testing.assert_array_equal(vobs[i], o)
            assert vr[i] == r and vterm[i] == term and vtrunc[i] == trunc
            if term:
                for k in SpacedRepetitionDynamics.metric_names:
                    assert vinfo[k][i] == info[k]
    assert vterm.all()


def test_observation_layout() -> None:
    k, h = 3, 6
    env = SpacedRepetitionEnv(n_items=k, horizon=h, session_length=2, step_gap=0.01, session_gap=2.0)
    prof = {"decay": 1.0, "gain": 1.0, "fail_effect": 1.0, "item_difficulty": [0.0] * k}
    obs, _ = env.reset(seed=0, options={"profile": prof})
    np.testing.assert_array_equal(obs, np.r_[np.ones(k), np.zeros(3 * k), 0.0].astype(np.float32))
    obs, r, *_ = env.step(1)  # first exposure: always wrong (recall 0 for a new card)
    times = step_times(h, 0.01, 2, 2.0, 1.0)
    assert obs[1] == pytest.approx(encode_elapsed(np.array(times[1] - times[0])), rel=1e-6)
    assert r == pytest.approx(math.exp(-0.01 / 0.8) / k)  # mean recall rose from 0 (exponential, S0 = 0.8)
    assert obs[[0, 2]].tolist() == [1.0, 1.0]
    assert obs[k + 1] == pytest.approx(math.log(2) / math.log(1 + h))
    assert obs[2 * k + 1] == 0.0 and obs[3 * k + 1] == 1.0
    assert obs[-1] == pytest.approx(1 / h)
    obs, *_ = env.step(0)  # end of session 1: two days pass
    assert decode_elapsed(obs[1]) == pytest.approx(2.01, rel=1e-5)
    assert env.observation_space.contains(obs)


def test_elapsed_encoding_is_monotone_and_invertible() -> None:
    days = np.array([0.0, 1 / 1440, 0.5, 1.0, 7.0, 99.0])
    f = encode_elapsed(days)
    assert f[0] == 0.0 and np.all(np.diff(f) > 0) and f[-1] < 1.0
    np.testing.assert_allclose(decode_elapsed(f), days, rtol=1e-9, atol=1e-12)
    assert encode_elapsed(np.array([1e4])) == 1.0


def test_step_times_follow_sessions() -> None:
    t = step_times(5, 0.1, 2, 3.0, 7.0)
    np.testing.assert_allclose(t, [0.0, 0.1, 3.1, 3.2, 6.2, 13.2])


@pytest.mark.parametrize("memory_model", MODELS)
def test_recall_reward_telescopes_to_the_expected_exam_score(memory_model: str) -> None:
    n = 64
    venv = make_vec(n, memory_model=memory_model, horizon=40, session_length=8)
    venv.reset(seed=1)
    rng = np.random.default_rng(1)
    total = np.zeros(n)
    for _ in range(40):
        _, r, term, _, info = venv.step(rng.integers(0, 20, size=n))
        total += r
    assert term.all()
    np.testing.assert_allclose(total, info["final_mean_recall_prob"], atol=1e-12)
    dyn = venv.unwrapped.dynamics
    np.testing.assert_allclose(
        info["final_mean_recall_prob"], dyn.recall_matrix(dyn.times[dyn.t]).mean(axis=1)
    )
    assert (info["exam_recall"] * 20 == np.rint(info["exam_recall"] * 20)).all()


def test_exam_and_correct_rewards_match_metrics() -> None:
    n, h = 32, 30
    venv = make_vec(n, reward_mode="exam", horizon=h, n_items=5)
    venv.reset(seed=3)
    for t in range(h):
        _, r, term, _, info = venv.step(np.full(n, t % 5))
        assert term.all() == (t == h - 1)
        if t < h - 1:
            assert (r == 0).all()
    np.testing.assert_array_equal(r, info["exam_recall"])
    assert info["items_never_reviewed"].tolist() == [0.0] * n

    venv = make_vec(n, reward_mode="correct", horizon=h, n_items=5)
    venv.reset(seed=3)
    total = np.zeros(n)
    for t in range(h):
        a = np.full(n, t % 5)
        obs, r, _, _, info = venv.step(a)
        np.testing.assert_array_equal(r, obs[:, 10 + a[0]])  # the card's last-correct flag
        total += r
    np.testing.assert_allclose(info["accuracy"], total / h)


def test_items_never_reviewed_and_mean_recall() -> None:
    env = SpacedRepetitionEnv(n_items=4, horizon=3)
    env.reset(seed=0)
    rewards = []
    for a in (0, 0, 1):
        _, r, term, _, info = env.step(a)
        rewards.append(r)
    assert term and info["items_never_reviewed"] == 2.0
    levels = np.cumsum(rewards)  # m(τ_1), m(τ_2), m(τ_3)
    assert info["mean_recall"] == pytest.approx(levels.mean())


@pytest.mark.parametrize("memory_model", MODELS)
def test_probabilities_valid_at_zero_elapsed_and_for_new_items(memory_model: str) -> None:
    """A published simulator returns p > 1 or NaN at t = 0; ours must give valid probabilities."""
    n = 200
    dyn = SpacedRepetitionDynamics(
        n, memory_model=memory_model, step_gap=0.0, session_gap=0.0, exam_delay=0.0
    )
    profs = envs.sample_profiles(ENV_ID, n, "ood", seed=0)
    profs[0] = {"decay": 100.0, "gain": 10.0, "fail_effect": 10.0, "item_difficulty": [3.0] * 20}
    profs[1] = {"decay": 0.0, "gain": 0.0, "fail_effect": 0.0, "item_difficulty": [-3.0] * 20}
    dyn.set_profiles(np.arange(n), profs)
    dyn.streams.seed(np.arange(n), np.arange(n))
    dyn.reset(np.arange(n))
    p0 = dyn.recall_matrix(dyn.times[dyn.t])
    assert (p0 == 0.0).all()  # nothing seen yet
    rng = np.random.default_rng(0)
    for _ in range(100):
        dyn.step(rng.integers(0, 3, size=n))  # no time ever passes
        p = dyn.recall_matrix(dyn.times[dyn.t])
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
        np.testing.assert_array_equal(p[:, :3], np.where(dyn.seen[:, :3], 1.0, 0.0))
        assert (p[:, 3:] == 0).all()
        assert np.isfinite(dyn.state["S"]).all() and np.isfinite(dyn.observe()).all()


@pytest.mark.parametrize("memory_model", MODELS)
def test_observations_stay_in_space_for_extreme_profiles(memory_model: str) -> None:
    n = 8
    venv = make_vec(n, memory_model=memory_model, horizon=50, session_gap=3000.0, exam_delay=3000.0)
    extremes = [
        {"decay": d, "gain": g, "fail_effect": f, "item_difficulty": [s] * 20}
        for d, g, f, s in [(100, 10, 10, 3), (0, 0, 0, -3), (100, 0, 0, 3), (0, 10, 10, -3)] * 2
    ]
    obs, _ = venv.reset(seed=0, options={"profiles": extremes})
    rng = np.random.default_rng(0)
    for _ in range(50):
        obs, r, *_ = venv.step(rng.integers(0, 20, size=n))
        assert venv.observation_space.contains(obs) and np.isfinite(r).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_items": 0}, "n_items"),
        ({"n_items": 2.5}, "n_items"),
        ({"horizon": 0}, "horizon"),
        ({"memory_model": "ebbinghaus"}, "memory_model"),
        ({"reward_mode": "gain"}, "reward_mode"),
        ({"step_gap": -1.0}, "step_gap"),
        ({"step_gap": float("nan")}, "step_gap"),
        ({"session_gap": "1 day"}, "session_gap"),
        ({"session_length": 0}, "session_length"),
        ({"exam_delay": 1e9}, "exam_delay"),
    ],
)
def test_invalid_env_kwargs_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)
    with pytest.raises(ValueError, match=match):
        make_vec(2, **kwargs)


def test_invalid_render_mode() -> None:
    with pytest.raises(ValueError, match="render_mode"):
        SpacedRepetitionEnv(render_mode="human")
    with pytest.raises(ValueError, match="render_mode"):
        SpacedRepetitionVectorEnv(2, render_mode="human")


def test_wrong_profile_dimension_and_bad_actions() -> None:
    env = gym.make(ENV_ID, n_items=5)
    with pytest.raises(ValueError, match="item_difficulty"):
        env.reset(options={"profile": envs.sample_profiles(ENV_ID, 1, n_items=6)[0]})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(5)
    venv = make_vec(2, n_items=5)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        venv.step(np.array([0, 7]))
