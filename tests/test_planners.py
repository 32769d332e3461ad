"""Privileged planners (one per family): marked privileged, and better than every heuristic of
their env on the setting the evaluation uses (``meta_rl/configs/<family>.yaml``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import envs
from envs.tutors import make_tutor, omniscient_tutor_names, privileged_tutor_names, tutor_names
from meta_rl.evaluation.heuristics import evaluate_tutor

#: env id -> env_kwargs of the evaluation configs
SETTINGS = {
    "MetaTutor/ZPD-v0": {},
    "MetaTutor/SkillGraph-v0": {"n_skills": 4, "n_content": 3, "horizon": 30, "prerequisites": "chain"},
    "MetaTutor/SpacedRepetition-v0": {},
    "MetaTutor/SpacedRepetitionGoals-v0": {},
}


#: env id -> its privileged tutors; SkillGraph's planner reads the sampled mastery (omniscient)
PRIVILEGED = {
    "MetaTutor/ZPD-v0": ["planner"],
    "MetaTutor/SkillGraph-v0": ["planner", "belief_planner"],
    "MetaTutor/SpacedRepetition-v0": ["planner"],
    "MetaTutor/SpacedRepetitionGoals-v0": ["planner"],
}


@pytest.mark.parametrize("env_id", SETTINGS)
def test_planner_is_registered_and_privileged(env_id: str) -> None:
    assert "planner" in tutor_names(env_id)
    assert privileged_tutor_names(env_id) == PRIVILEGED[env_id]  # no heuristic reads the profile
    omniscient = ["planner"] if env_id == "MetaTutor/SkillGraph-v0" else []
    assert omniscient_tutor_names(env_id) == omniscient
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **SETTINGS[env_id])
    tutor = make_tutor("planner", venv)
    assert tutor.privileged and not make_tutor("random", venv).privileged
    obs, _ = venv.reset(seed=0)
    assert tutor.act(obs).shape == (3,)
    with pytest.raises(ValueError, match="all 3 students"):
        tutor.act(obs[:2])  # it reads students by position: a subset would be misread


@pytest.mark.parametrize("split", ["test", "ood"])
@pytest.mark.parametrize("env_id", SETTINGS)
def test_planner_beats_the_best_heuristic(env_id: str, split: str) -> None:
    """Paired over 60 students (4 episodes each): the planner's mean return is above every
    heuristic's, and above the best one by a one-sided paired t-test at p < 1e-4."""
    kw = SETTINGS[env_id]
    profs = envs.sample_profiles(env_id, 60, split=split, seed=7, **kw)
    ret = {name: evaluate_tutor(name, env_id, kw, profs, 4, seed=3)[0] for name in tutor_names(env_id)}
    planner = ret.pop("planner")
    for name in privileged_tutor_names(env_id):
        ret.pop(name, None)  # the other privileged tutors are not heuristics
    best = max(ret, key=lambda name: ret[name].mean())
    assert all(planner.mean() > r.mean() for r in ret.values()), {k: v.mean() for k, v in ret.items()}
    res = stats.ttest_rel(planner, ret[best], alternative="greater")
    assert res.pvalue < 1e-4, (best, planner.mean(), ret[best].mean(), res.pvalue)


@pytest.mark.parametrize("env_id", SETTINGS)
def test_planner_on_a_single_env(env_id: str) -> None:
    env = gym.make(env_id, **SETTINGS[env_id])
    tutor = make_tutor("planner", env)
    obs, _ = env.reset(seed=0, options={"profile": envs.sample_profiles(env_id, 1, **SETTINGS[env_id])[0]})
    for _ in range(env.unwrapped.dynamics.horizon):
        a = tutor.act(obs)
        assert isinstance(a, int) and env.action_space.contains(a)
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            break


def test_zpd_planner_keeps_students_engaged() -> None:
    """The rule of docs/zpd.md (skills in turn at the student's sweet spot) lets 18 % of test
    students quit; the planner's engagement guard keeps almost all of them."""
    env_id = "MetaTutor/ZPD-v0"
    profs = envs.sample_profiles(env_id, 100, split="test", seed=7)
    _, metrics = evaluate_tutor("planner", env_id, {}, profs, 4, seed=3)
    assert np.mean(metrics["quit"]) < 0.1


def test_skill_graph_planner_teaches_the_ready_skill_with_the_best_content() -> None:
    env_id = "MetaTutor/SkillGraph-v0"
    kw = SETTINGS[env_id]
    prof = envs.sample_profiles(env_id, 1, seed=2, **kw)[0]
    prof.update(prior=[1.0, 0.0, 0.0, 0.0], forget=0.0, content_affinity=[0.2, 0.9, 0.3])
    env = gym.make(env_id, **kw)
    env.reset(seed=0, options={"profile": prof})
    tutor = make_tutor("planner", env)
    # skill 0 is mastered: teach skill 1 (its prerequisite is mastered) with content 1
    assert tutor.act(env.unwrapped.dynamics.observe()[0]) == 1 * 4 + 1


def test_spaced_repetition_planner_introduces_then_uses_the_exam_in_the_last_sessions() -> None:
    env_id = "MetaTutor/SpacedRepetition-v0"
    env = gym.make(env_id)
    tutor = make_tutor("planner", env)
    obs, _ = env.reset(seed=0, options={"profile": envs.sample_profiles(env_id, 1, seed=1)[0]})
    first = []
    for t in range(env.unwrapped.dynamics.horizon):
        a = tutor.act(obs)
        if t < 3:
            first.append(a)
        if t == 80:  # first step of the last two sessions: the largest expected exam gain
            gain, _ = tutor.exam_gain(env.unwrapped.dynamics.times[[t]])
            assert a == int(gain[0].argmax()) and gain[0].max() > 0
        obs, *_ = env.step(a)
    assert first == [0, 1, 2]  # nothing is below the threshold yet: new cards in order
