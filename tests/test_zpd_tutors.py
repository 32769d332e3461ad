"""Heuristic ZPD-v0 tutors: their rules, single/vector use, and that they beat random."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import envs
from envs.tutors import make_tutor, tutor_names

ENV_ID = "MetaTutor/ZPD-v0"
HEURISTICS = ("staircase", "staircase_lowest", "zpdes")


def profile(ability: float, k: int = 4) -> dict:
    """A student who never changes and never quits: answers depend only on the item."""
    return {
        "ability0": [ability] * k,
        "learn_rate": 0.0,
        "sweet_spot": 0.7,
        "zpd_width": 1.0,
        "frustration": 0.0,
        "boredom": 0.0,
        "recovery": 0.0,
        "engagement0": 1.0,
    }


def vector_env(n: int, profiles: list, **kwargs: object) -> gym.vector.VectorEnv:
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    venv.unwrapped.set_tasks(profiles)
    return venv


def first_episode(tutor_name: str, profiles: list, seed: int = 0) -> dict[str, np.ndarray]:
    """Return and metrics of each student's first episode under a tutor (vector env)."""
    n = len(profiles)
    venv = vector_env(n, profiles)
    tutor = make_tutor(tutor_name, venv, seed=seed)
    obs, _ = venv.reset(seed=seed)
    done = np.zeros(n, dtype=bool)
    out = {"return": np.zeros(n), "ability_gain": np.zeros(n), "quit": np.zeros(n)}
    while not done.all():
        obs, r, term, trunc, info = venv.step(tutor.act(obs))
        out["return"] += np.where(done, 0.0, r)
        ended = (term | trunc) & ~done
        for k in ("ability_gain", "quit"):
            out[k] = np.where(ended, info.get(k, 0.0), out[k])
        done |= ended
    return out


def test_family_tutors_are_registered() -> None:
    names = tutor_names(ENV_ID)
    assert set(HEURISTICS) <= set(names) and "random" in names


@pytest.mark.parametrize("name", HEURISTICS)
def test_heuristic_tutors_beat_random(name: str) -> None:
    profiles = envs.sample_profiles(ENV_ID, 300, split="test", seed=11)
    rand = first_episode("random", profiles)
    tut = first_episode(name, profiles)
    for key in ("return", "ability_gain"):
        t = stats.ttest_ind(tut[key], rand[key], equal_var=False, alternative="greater")
        assert t.pvalue < 1e-10, (key, tut[key].mean(), rand[key].mean())
    assert tut["return"].mean() > 2.0 * rand["return"].mean()
    # matched difficulty also keeps students practising
    assert tut["quit"].mean() < rand["quit"].mean()


def test_staircase_follows_its_rule() -> None:
    n = 64
    profiles = envs.sample_profiles(ENV_ID, n, split="train", seed=2)
    venv = vector_env(n, profiles)
    tutor = make_tutor("staircase", venv)
    obs, _ = venv.reset(seed=1)
    level = np.zeros((n, 4), dtype=int)  # expected next level per skill (starts at 0)
    alive = np.ones(n, dtype=bool)  # first episode only
    for t in range(50):
        a = tutor.act(obs)
        skill, lv = np.divmod(a, 5)
        assert np.all(skill[alive] == t % 4)  # round robin
        np.testing.assert_array_equal(lv[alive], level[alive, t % 4])
        obs, _, term, trunc, _ = venv.step(a)
        correct = obs[:, 0] > 0.5
        rows = np.flatnonzero(alive)
        level[rows, skill[rows]] = np.clip(lv[rows] + np.where(correct[rows], 1, -1), 0, 4)
        alive &= ~(term | trunc)
    assert (level > 1).any()  # the staircase did climb


def test_staircase_lowest_success_picks_the_weakest_skill() -> None:
    n = 32
    venv = vector_env(n, envs.sample_profiles(ENV_ID, n, split="train", seed=3))
    tutor = make_tutor("staircase_lowest", venv)
    obs, _ = venv.reset(seed=2)
    lay = venv.unwrapped.dynamics.layout
    for _ in range(30):
        a = tutor.act(obs)
        live = obs[:, -1] > 0
        rate = obs[live][:, lay["success_rate"]]
        chosen_rate = rate[np.arange(live.sum()), a[live] // 5]
        np.testing.assert_array_equal(chosen_rate, rate.min(axis=1))
        obs, *_ = venv.step(a)


def test_zpdes_zone_moves_up_for_strong_students_and_stays_low_for_weak_ones() -> None:
    n = 8
    venv = vector_env(n, [profile(6.0)] * (n // 2) + [profile(-6.0)] * (n // 2), horizon=200)
    tutor = make_tutor("zpdes", venv, seed=0)
    obs, _ = venv.reset(seed=0)
    levels = []
    for _ in range(200):
        a = tutor.act(obs)
        levels.append(a % 5)
        obs, *_ = venv.step(a)
    levels = np.array(levels)
    strong, weak = levels[:, : n // 2], levels[:, n // 2 :]
    # success at the top of the zone opens harder levels; the easiest close once mastered
    assert np.all(strong[-50:] >= 3) and (strong[-50:] == 4).mean() > 0.5
    # with no success the zone never opens beyond its first two levels
    assert np.all(weak <= 1)


def test_deterministic_tutor_same_on_single_and_vector_env() -> None:
    n = 3
    profiles = envs.sample_profiles(ENV_ID, n, split="ood", seed=5)
    venv = vector_env(n, profiles)
    vtutor = make_tutor("staircase_lowest", venv)
    vobs, _ = venv.reset(seed=40)
    singles = [gym.make(ENV_ID) for _ in range(n)]
    stutors = [make_tutor("staircase_lowest", e) for e in singles]
    sobs = []
    for i, env in enumerate(singles):
        env.unwrapped.set_task(profiles[i])
        sobs.append(env.reset(seed=40 + i)[0])
    live = np.ones(n, dtype=bool)
    while live.any():
        va = vtutor.act(vobs)
        vobs, vr, vterm, _, _ = venv.step(va)
        for i in np.flatnonzero(live):
            a = stutors[i].act(sobs[i])
            assert isinstance(a, int) and a == va[i]
            sobs[i], r, term, _, _ = singles[i].step(a)
            assert r == vr[i] and term == vterm[i]
            live[i] = not term


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("staircase", {"skill_order": "random"}, "skill_order"),
        ("staircase", {"start_level": 5}, "start_level"),
        ("staircase", {"up_after": 0}, "up_after"),
        ("zpdes", {"d": 0}, "d must"),
        ("zpdes", {"gamma": 1.5}, "gamma"),
        ("zpdes", {"floor": 0.0}, "floor"),
        ("zpdes", {"demote": -0.1}, "demote"),
    ],
)
def test_invalid_tutor_arguments(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_tutor(name, gym.make(ENV_ID), **kwargs)


def reference_zpdes_weight(outcomes: list[int], d: int = 3, beta: float = 0.5, w0: float = 0.5) -> float:
    """ZPDES arm weight after a sequence of answers, written from the documented rule."""
    w = w0
    for m in range(2, len(outcomes) + 1):
        last = outcomes[:m][-2 * d :]
        half = len(last) // 2
        newer, older = last[len(last) - half :], last[len(last) - 2 * half : len(last) - half]
        w = beta * w + (1 - beta) * (sum(newer) - sum(older)) / half
    return w


def test_zpdes_draws_arms_in_proportion_to_learning_progress() -> None:
    n, gamma, floor, beta = 40_000, 0.2, 0.05, 0.8
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", n_skills=2)
    tutor = make_tutor("zpdes", venv, seed=0, gamma=gamma, floor=floor, beta=beta)
    lay = venv.unwrapped.dynamics.layout
    # answers per arm (skill, level), chosen so that the zone stays levels {0, 1} of each skill
    answers = {(0, 0): [0, 0, 0, 1, 1, 0], (0, 1): [1, 0, 1], (1, 0): [1, 0, 0, 1, 1]}
    obs = np.zeros((n, venv.single_observation_space.shape[0]), dtype=np.float32)
    tutor.act(obs)  # t = 0: a new episode for every student
    t = 0
    for (skill, level), outs in answers.items():
        for ok in outs:
            t += 1
            obs[:] = 0.0
            obs[:, lay["last_skill"].start + skill] = 1.0
            obs[:, lay["last_level"]] = level / 4
            obs[:, lay["last_correct"]] = ok
            obs[:, lay["time"]] = t / 50
            actions = tutor.act(obs)
    weights = {
        arm: max(reference_zpdes_weight(outs, beta=beta), 0.0) + floor for arm, outs in answers.items()
    }
    weights[(1, 1)] = 0.5 + floor  # never tried: optimistic start
    total = sum(weights.values())
    arms = [(0, 0), (0, 1), (1, 0), (1, 1)]
    expected = np.array([(1 - gamma) * weights[a] / total + gamma / 4 for a in arms]) * n
    observed = np.array([np.sum(actions == s * 5 + lv) for s, lv in arms])
    assert observed.sum() == n  # nothing outside the zone
    assert stats.chisquare(observed, expected).pvalue > 1e-6, (observed, expected)
    # the four arms really have different chances (so a wrong weight would show)
    assert np.diff(np.sort(expected)).min() > 3 * np.sqrt(expected.max())  # > 3 standard deviations
