"""Heuristic tutors: the interface on single and vector envs, and that each beats random."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import envs
from envs.tutors import make_tutor, tutor_names

SKILL_GRAPH = "MetaTutor/SkillGraph-v0"


def run_tutor(env_id: str, name: str, n: int = 1000, seed: int = 0, **kw: object) -> np.ndarray:
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    tutor = make_tutor(name, venv, seed=seed, **kw)
    obs, _ = venv.reset(seed=seed, options={"profiles": envs.sample_profiles(env_id, n, "test", seed)})
    tutor.reset()
    total = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    while not done.all():
        obs, r, term, trunc, _ = venv.step(tutor.act(obs))
        total += np.where(done, 0.0, r)
        done |= term | trunc
    return total


@pytest.mark.parametrize("name", ["mastery_threshold", "mastery_threshold_rr"])
def test_skill_graph_tutors_beat_random(name: str) -> None:
    tutor = run_tutor(SKILL_GRAPH, name)
    random = run_tutor(SKILL_GRAPH, "random")
    res = stats.ttest_ind(tutor, random, equal_var=False, alternative="greater")
    assert tutor.mean() > random.mean() + 0.3 and res.pvalue < 1e-5, (tutor.mean(), random.mean())


def test_content_by_success_beats_round_robin() -> None:
    """Learning which content works for the student pays off (paired on the same students)."""
    success = run_tutor(SKILL_GRAPH, "mastery_threshold", n=1000)
    rr = run_tutor(SKILL_GRAPH, "mastery_threshold_rr", n=1000)
    assert stats.ttest_rel(success, rr, alternative="greater").pvalue < 1e-3


def test_tutors_work_on_single_env_and_follow_the_curriculum() -> None:
    env = gym.make(SKILL_GRAPH)
    for name in tutor_names(SKILL_GRAPH):
        tutor = make_tutor(name, env, seed=1)
        obs, _ = env.reset(seed=0)
        tutor.reset()
        actions = []
        for _ in range(env.unwrapped.dynamics.horizon):  # one whole episode
            a = tutor.act(obs)
            assert isinstance(a, int) and env.action_space.contains(a)
            actions.append(a)
            obs, *_ = env.step(a)
        if name.startswith("mastery"):
            assert actions[0] // 4 == 0  # starts with the root of the prerequisite graph
            assert actions[0] % 4 < 3 and actions[1] % 4 == 3  # teach, then quiz


def test_round_robin_cycles_and_unknown_tutor() -> None:
    env = gym.make(SKILL_GRAPH)
    tutor = make_tutor("round_robin", env)
    obs, _ = env.reset(seed=0)
    got = []
    for _ in range(5):
        a = tutor.act(obs)
        got.append(a)
        obs, *_ = env.step(a)
    assert got == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown tutor"):
        make_tutor("oracle", env)
    with pytest.raises(ValueError, match="content"):
        make_tutor("mastery_threshold", env, content="best")
    with pytest.raises(ValueError, match="shape"):
        make_tutor("random", env).act(np.zeros((2, 3, 4)))
