"""SpacedRepetition-v0's published presets (Reddy, Levine & Dragan 2017) against their closed forms.

The references below are transcriptions of deeptutor's ``EFCEnv`` / ``HLREnv`` step
(github.com/rddy/deeptutor, ``spaced-repetition.ipynb``) in the paper's own time unit (one
step = 5 units; we take a unit to be an hour), run on the same item parameters, start times,
actions and answers as the env.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.spaced_repetition import SpacedRepetitionDynamics, SpacedRepetitionVectorEnv
from envs.spaced_repetition.settings import PRESETS, REDDY2017_HLR_COEFFICIENTS

ID = "MetaTutor/SpacedRepetition-v0"
PRESET_NAMES = ("reddy2017-efc", "reddy2017-hlr")


def _rollout(preset: str, reward_mode: str, seed: int, steps: int = 200):
    """Random actions on one env; returns the env, start elapsed hours, actions, answers, rewards."""
    env = gym.make(ID, preset=preset, reward_mode=reward_mode)
    env.reset(seed=seed)
    d = env.unwrapped.dynamics
    k = d.n_items
    start_hours = -d.last_time[0].copy() * 24.0
    rng = np.random.default_rng(seed)
    actions, answers, rewards = [], [], []
    for _ in range(steps):
        a = int(rng.integers(k))
        obs, r, term, _, _ = env.step(a)
        actions.append(a)
        answers.append(bool(obs[2 * k + a] > 0.5))
        rewards.append(r)
        if term:
            break
    return env, start_hours, actions, answers, np.asarray(rewards)


def _deeptutor_rewards(preset: str, reward_mode: str, ell: np.ndarray, start_hours, actions, answers):
    """deeptutor's ``StudentEnv._step`` + ``EFCEnv`` / ``HLREnv`` (without its random reset step)."""
    k = len(ell)
    now, delay = 0.0, 5.0
    tlasts = -np.asarray(start_hours, dtype=np.float64)
    strengths = np.ones(k)  # EFCEnv
    feats = np.zeros((k, 3))  # HLREnv: attempts, correct, incorrect
    theta = 0.077 * np.exp(ell)  # EFC decay rate per hour
    beta = -ell  # HLR item coefficient
    out = []
    for a, c in zip(actions, answers):
        now += delay
        if preset == "reddy2017-efc":
            strengths[a] += 1
        else:
            feats[a, 0] += 1
            feats[a, 1 if c else 2] += 1
        tlasts[a] = now
        if preset == "reddy2017-efc":
            p = np.exp(-theta * (now - tlasts) / strengths)
        else:
            p = np.exp(-(now - tlasts) / np.exp(feats @ np.array([1.0, 1.0, 0.0]) + beta))
        out.append(p.mean() if reward_mode == "likelihood" else np.log(1e-9 + p).mean())
    return np.asarray(out)


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("reward_mode", ["likelihood", "log_likelihood"])
def test_rewards_equal_deeptutor(preset: str, reward_mode: str) -> None:
    env, start, actions, answers, rewards = _rollout(preset, reward_mode, seed=3)
    ell = env.unwrapped.dynamics.p["item_difficulty"][0]
    ref = _deeptutor_rewards(preset, reward_mode, ell, start, actions, answers)
    assert len(rewards) == 200
    np.testing.assert_allclose(rewards, ref, rtol=1e-9, atol=1e-12)
    assert np.isfinite(rewards).all()


@pytest.mark.parametrize("n_reviews", [0, 1, 4])
@pytest.mark.parametrize("gap_steps", [1, 7])
def test_efc_recall_after_reviews_and_gap(n_reviews: int, gap_steps: int) -> None:
    """p = exp(−θ·Δ/s), s = 1 + reviews, θ = 0.077·e^ℓ per hour, Δ = 5 h × steps since the last review."""
    d = SpacedRepetitionDynamics(1, preset="reddy2017-efc")
    ell = np.linspace(-1.0, 1.0, d.n_items)
    prof = {"decay": 24 * 0.077, "gain": 1, "fail_effect": 1, "item_difficulty": ell}
    d.set_profiles(np.array([0]), [prof])
    d.reset(np.array([0]))
    for _ in range(n_reviews):
        d.step(np.array([0]))
    for _ in range(gap_steps):
        d.step(np.array([1]))
    p = d.recall_matrix(d.times[d.t])[0, 0]
    if n_reviews:
        want = math.exp(-0.077 * math.exp(ell[0]) * 5.0 * gap_steps / (1 + n_reviews))
    else:  # never reviewed: the pre-course presentation, Δ_0 before the start
        hours = -d.last_time[0, 0] * 24.0 + 5.0 * gap_steps
        want = math.exp(-0.077 * math.exp(ell[0]) * hours)
    assert p == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("correct_wrong", [(0, 0), (2, 0), (1, 2), (3, 1)])
def test_hlr_recall_after_reviews_and_gap(correct_wrong: tuple[int, int]) -> None:
    """p = exp(−Δ/h), h = exp(n + n⁺ + β) (deeptutor's [1, 1, 0]), β = −ℓ; Δ in hours."""
    n_plus, n_minus = correct_wrong
    model = SpacedRepetitionDynamics(1, preset="reddy2017-hlr").model
    state = model.learn((1,))
    for c in [True] * n_plus + [False] * n_minus:
        state = model.review(state, np.array([0.5]), np.array([c]), np.array([0.2]), np.ones(1), np.ones(1))
    ell, hours = 0.7, 13.0
    p = model.recall(state["S"], np.array([hours / 24.0 * 24.0 * math.exp(ell)]))[0]
    want = math.exp(-hours / math.exp(n_plus + n_minus + n_plus - ell))
    assert p == pytest.approx(want, rel=1e-12)
    assert REDDY2017_HLR_COEFFICIENTS[1] == pytest.approx(2 / math.log(2))


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_start_state_is_seen_with_finite_recall(preset: str) -> None:
    venv = SpacedRepetitionVectorEnv(num_envs=200, preset=preset, reward_mode="log_likelihood")
    obs, _ = venv.reset(seed=0)
    d = venv.dynamics
    p = d.recall_matrix(d.times[d.t])
    assert d.seen.all() and not np.isnan(p).any()
    assert (p > 0).all() and (p <= 1).all()
    # elapsed since the pre-course presentation: log-normal around one hour (median), sd 1
    log_hours = np.log(-d.last_time * 24.0)
    assert abs(np.median(log_hours)) < 0.05 and abs(log_hours.std() - 1.0) < 0.05
    # a tutor sees every card as shown once, last answer wrong
    k = d.n_items
    assert (obs[:, 3 * k : 4 * k] == 1).all() and (obs[:, 2 * k : 3 * k] == 0).all()
    total = np.zeros(200)
    for _ in range(d.horizon):
        _, r, _, _, _ = venv.step(np.zeros(200, dtype=np.int64))  # the worst tutor: one card only
        total += r
    assert np.isfinite(total).all() and (total < 0).all()


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_check_env_on_presets(preset: str) -> None:
    check_env(gym.make(ID, preset=preset).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_vector_env_equals_single_env(preset: str) -> None:
    venv = SpacedRepetitionVectorEnv(num_envs=3, preset=preset)
    profiles = envs.sample_profiles(ID, 3, "test", seed=2, preset=preset)
    venv.reset(seed=10, options={"profiles": profiles})
    singles = [gym.make(ID, preset=preset) for _ in range(3)]
    for i, e in enumerate(singles):
        e.reset(seed=10 + i, options={"profile": profiles[i]})
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = rng.integers(30, size=3)
        vobs, vr, *_ = venv.step(a)
        for i, e in enumerate(singles):
            obs, r, *_ = e.step(int(a[i]))
            np.testing.assert_array_equal(obs, vobs[i])
            assert r == vr[i]


def test_preset_values_and_overrides() -> None:
    d = SpacedRepetitionDynamics(1, preset="reddy2017-efc", horizon=50)
    assert (d.n_items, d.horizon, d.strength_rule, d.reward_mode) == (30, 50, "count", "likelihood")
    assert d.step_gap == pytest.approx(5 / 24) and d.settings.population == "reddy2017-efc"
    pop = d.distribution().sample(500, "test", seed=0)
    ell = np.array([p.item_difficulty for p in pop])
    assert np.allclose([p.decay for p in pop], 24 * 0.077, rtol=1e-15)
    assert abs(ell.mean()) < 0.02 and abs(ell.std() - 1.0) < 0.02
    assert set(PRESETS) == set(PRESET_NAMES)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preset": "reddy2016"}, "preset must be one of"),
        ({"n_itms": 3}, "unknown SpacedRepetition argument"),
        ({"strength_rule": "sum"}, "strength_rule must be one of"),
        ({"memory_model": "fsrs", "strength_rule": "count"}, "not defined for memory_model='fsrs'"),
        ({"hlr_coefficients": (1.0, 2.0, 3.0)}, "apply to memory_model='hlr' only"),
        ({"memory_model": "hlr", "hlr_coefficients": (1.0, 2.0)}, "3 numbers"),
        ({"start_state": "half"}, "start_state must be one of"),
        ({"reward_timing": "later"}, "reward_timing must be one of"),
        ({"reward_mode": "L"}, "reward_mode must be one of"),
        ({"population": "reddy"}, "population must be one of"),
        ({"start_elapsed_log_sd": -1.0}, "start_elapsed_log_sd must lie in"),
    ],
)
def test_invalid_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make(ID, **kwargs)


def test_goals_variant_rejects_presets() -> None:
    with pytest.raises(ValueError, match="no presets"):
        gym.make("MetaTutor/SpacedRepetitionGoals-v0", preset="reddy2017-efc")
