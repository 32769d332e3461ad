"""SkillGraph-v0 against its closed-form equations, Gymnasium's checker and SB3."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from helpers import assert_binomial
from scipy import stats

import envs
from envs.skill_graph import SkillGraphDynamics, SkillGraphEnv
from envs.skill_graph.dynamics import build_prerequisites, topological_order

ENV_ID = "MetaTutor/SkillGraph-v0"


def profile(k: int = 8, c: int = 3, **over: object) -> dict:
    base = {
        "learn": [0.5] * k,
        "content_affinity": [1.0] + [0.3] * (c - 1),
        "slip": 0.1,
        "guess": 0.2,
        "forget": 0.0,
        "prior": [0.0] * k,
    }
    base.update(over)
    return base


#: the equation tests use an 8-skill course with the level graph 0 -> {1, 2} -> 3 -> {4, 5} -> 6 -> 7
#: (width-2 levels exercise the prerequisite gate with two prerequisites), not the registered
#: default of 4 skills in a chain
COURSE8 = {"n_skills": 8, "horizon": 50, "prerequisites": "default"}


def batch(n: int, prof: dict, seed: int = 0, **kwargs: object) -> SkillGraphDynamics:
    dyn = SkillGraphDynamics(n, **{**COURSE8, **kwargs})
    dyn.set_profiles(np.arange(n), [prof] * n)
    dyn.streams.seed(np.arange(n), seed * 100_000 + np.arange(n))
    dyn.reset(np.arange(n))
    return dyn


@pytest.mark.parametrize("reward_mode", ["gain", "posttest", "quiz"])
def test_check_env(reward_mode: str) -> None:
    env = gym.make(ENV_ID, reward_mode=reward_mode, time_cost=0.01)
    check_env(env.unwrapped, skip_render_check=True)


def test_gym_make_and_docstring_sections() -> None:
    env = gym.make(ENV_ID)
    assert isinstance(env.unwrapped, SkillGraphEnv)
    for section in ("Description", "Action Space", "Observation Space", "Rewards",
                    "Starting State", "Episode End", "Arguments"):  # fmt: skip
        assert f"## {section}" in SkillGraphEnv.__doc__


def test_learning_probability_matches_equation() -> None:
    n = 40_000
    dyn = batch(n, profile(), prerequisites="none")
    c1 = dyn.n_content + 1
    # teach skill 2 with content 1 (affinity 0.3): P = learn * affinity = 0.15
    dyn.step(np.full(n, 2 * c1 + 1))
    assert_binomial(dyn.mastered[:, 2].sum(), n, 0.5 * 0.3)
    # nothing else changed
    assert dyn.mastered[:, [0, 1, 3, 4, 5, 6, 7]].sum() == 0


def test_prerequisite_blocking() -> None:
    n = 40_000
    dyn = batch(n, profile(), prerequisites="default", prereq_penalty=0.2)
    c1 = dyn.n_content + 1
    # skill 3 needs skills 1 and 2 (default graph): gate = 0.2
    dyn.step(np.full(n, 3 * c1 + 0))
    assert_binomial(dyn.mastered[:, 3].sum(), n, 0.5 * 1.0 * 0.2)
    # with its prerequisites mastered the gate is 1
    dyn2 = batch(n, profile(prior=[1, 1, 1, 0, 0, 0, 0, 0]), prerequisites="default", prereq_penalty=0.2)
    dyn2.step(np.full(n, 3 * c1 + 0))
    assert_binomial(dyn2.mastered[:, 3].sum(), n, 0.5)


@pytest.mark.parametrize("prior,expected", [(1.0, 1 - 0.1), (0.0, 0.2)])
def test_slip_and_guess(prior: float, expected: float) -> None:
    n = 40_000
    dyn = batch(n, profile(prior=[prior] * 8), reward_mode="quiz")
    c1 = dyn.n_content + 1
    reward, _, _ = dyn.step(np.full(n, 4 * c1 + dyn.n_content))  # quiz skill 4
    assert_binomial(reward.sum(), n, expected)
    obs = dyn.observe()
    k = dyn.n_skills
    np.testing.assert_array_equal(obs[:, 3 * k + 4], reward)  # last-correct feature shows the answer
    assert np.all(obs[:, 2 * k + 4] == 1.0)


def test_forgetting_probability_and_practised_skill_protected() -> None:
    n = 20_000
    dyn = batch(n, profile(prior=[1.0] * 8, forget=0.07))
    c1 = dyn.n_content + 1
    dyn.step(np.full(n, 0 * c1 + dyn.n_content))  # quiz skill 0: practised, never forgotten
    m = dyn.mastered
    assert m[:, 0].all()
    assert_binomial((~m[:, 1:]).sum(), n * 7, 0.07)
    # independence across skills: the number lost per student is Binomial(7, 0.07)
    lost = (~m[:, 1:]).sum(axis=1)
    observed = np.bincount(lost, minlength=8)
    expected = stats.binom.pmf(np.arange(8), 7, 0.07) * n
    keep = expected > 5
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-6


def test_single_skill_is_never_forgotten() -> None:
    """Documented (profile docstring): with one skill it is practised every step, so ``forget``
    never applies; the trajectories with forget = 0 and forget = 1 are identical."""
    n, steps = 500, 30
    runs = []
    for forget in (0.0, 1.0):
        prof = profile(k=1, learn=[0.3], prior=[0.5], forget=forget)
        dyn = batch(n, prof, seed=4, n_skills=1)
        rng = np.random.default_rng(0)
        masteries = []
        for _ in range(steps):
            dyn.step(rng.integers(dyn.single_action_space.n, size=n))
            masteries.append(dyn.mastered[:, 0].copy())
        runs.append(np.array(masteries))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert 0 < runs[1][-1].mean() < 1 and runs[1][-1].any()


def test_prior_mastery_at_reset() -> None:
    n = 20_000
    dyn = batch(n, profile(prior=[0.3] * 8))
    assert_binomial(dyn.mastered.sum(), n * 8, 0.3)


def test_reward_modes_and_metrics() -> None:
    env = SkillGraphEnv(n_skills=2, n_content=1, horizon=6, prerequisites="none", reward_mode="posttest")
    prof = profile(k=2, c=1, learn=[1.0, 1.0], content_affinity=[1.0])
    env.reset(seed=0, options={"profile": prof})
    rewards = []
    for a in [0, 2, 1, 1, 3, 1]:  # teach 0, teach 1, quiz 0 x2, quiz 1, quiz 0
        _, r, term, trunc, info = env.step(a)
        rewards.append(r)
    assert rewards == [0.0] * 5 + [1.0]
    assert term and not trunc
    assert info["posttest"] == 1.0 and info["learning_gain"] == 1.0
    assert info["steps_to_mastery"] == 2.0 and info["all_mastered"] == 1.0
    assert info["n_quizzes"] == 4.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_gain_reward_counts_mastery_changes() -> None:
    n = 2_000
    dyn = batch(n, profile(prior=[1.0] * 8, forget=0.5, learn=[1.0] * 8), prerequisites="none")
    before = dyn.mastered.sum(axis=1)
    r, _, _ = dyn.step(np.zeros(n, dtype=np.int64))
    np.testing.assert_array_equal(r, dyn.mastered.sum(axis=1) - before)
    assert (r < 0).any()


def test_observations_stay_in_space_for_extreme_profiles() -> None:
    rng = np.random.default_rng(1)
    for prof in (profile(learn=[1.0] * 8, forget=1.0, prior=[1.0] * 8), profile(learn=[0.0] * 8)):
        dyn = batch(64, prof, horizon=30)
        space = dyn.single_observation_space
        for _ in range(30):
            dyn.step(rng.integers(0, dyn.single_action_space.n, size=64))
            obs = dyn.observe()
            assert np.isfinite(obs).all()
            assert all(space.contains(o) for o in obs)


def test_single_and_vector_trajectories_identical() -> None:
    profs = envs.sample_profiles(ENV_ID, 4, split="test", seed=3)
    venv = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", horizon=20)
    vobs, _ = venv.reset(seed=11, options={"profiles": profs})
    singles = [gym.make(ENV_ID, horizon=20) for _ in range(4)]
    sobs = [e.reset(seed=11 + i, options={"profile": profs[i]})[0] for i, e in enumerate(singles)]
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(vobs, np.stack(sobs))
    for _ in range(20):
        a = rng.integers(0, venv.single_action_space.n, size=4)
        vobs, vr, vterm, vtrunc, vinfo = venv.step(a)
        for i, e in enumerate(singles):
            o, r, term, trunc, info = e.step(int(a[i]))
            np.testing.assert_array_equal(vobs[i], o)
            assert vr[i] == r and vterm[i] == term and vtrunc[i] == trunc
            if term:
                assert vinfo["posttest"][i] == info["posttest"]


def test_same_seed_same_episode_and_new_seed_differs() -> None:
    env = gym.make(ENV_ID)
    prof = envs.sample_profiles(ENV_ID, 1, seed=5)[0]

    def run(seed: int) -> list[float]:
        obs, _ = env.reset(seed=seed, options={"profile": prof})
        out = [obs.sum()]
        for t in range(env.unwrapped.dynamics.horizon):  # one whole episode
            obs, r, *_ = env.step(t % env.action_space.n)
            out += [obs.sum(), r]
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_skills": 0}, "n_skills"),
        ({"n_content": 0}, "n_content"),
        ({"horizon": 0}, "horizon"),
        ({"reward_mode": "fun"}, "reward_mode"),
        ({"prereq_penalty": 1.5}, "prereq_penalty"),
        ({"time_cost": float("nan")}, "time_cost"),
        ({"prerequisites": [(0, 1), (1, 0)]}, "cycle"),
        ({"prerequisites": [(0, 9)]}, "outside"),
        ({"prerequisites": [(2, 2)]}, "self-loop"),
        ({"prerequisites": "random"}, "graph_seed"),
        ({"prerequisites": "tree"}, "prerequisites"),
    ],
)
def test_invalid_kwargs(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)


def test_invalid_actions_and_profiles() -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not in"):
        env.step(999)
    with pytest.raises(ValueError, match="n_skills=4"):  # the registered default
        env.reset(options={"profile": profile(k=5)})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"student": 1})
    venv = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        venv.step(np.array([0, 1, 999]))


def test_random_graph_is_acyclic_and_seeded() -> None:
    p1 = build_prerequisites(12, "random", graph_seed=4)
    p2 = build_prerequisites(12, "random", graph_seed=4)
    np.testing.assert_array_equal(p1, p2)
    order = topological_order(p1)
    pos = {k: i for i, k in enumerate(order)}
    for skill, pre in zip(*np.nonzero(p1)):
        assert pos[pre] < pos[skill]


def test_default_graph_is_documented_one() -> None:
    p = build_prerequisites(8, "default", None)
    edges = {(int(pre), int(skill)) for skill, pre in zip(*np.nonzero(p))}
    assert edges == {(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (3, 5), (4, 6), (5, 6), (6, 7)}


def test_render_ansi() -> None:
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(seed=0)
    assert "mastery" in env.render()


def test_sb3_ppo_trains_and_beats_random() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    kwargs = {"n_skills": 3, "n_content": 2, "horizon": 15, "prerequisites": "chain"}
    env = gym.make(ENV_ID, **kwargs)
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, seed=0, verbose=0, device="cpu")
    model.learn(total_timesteps=8_192)
    eval_env = Monitor(gym.make(ENV_ID, **kwargs))  # evaluate_policy reads its episode stats
    eval_env.reset(seed=123)
    trained, _ = evaluate_policy(model, eval_env, n_eval_episodes=200, deterministic=False)

    rng = np.random.default_rng(0)
    returns = []
    eval_env.reset(seed=456)
    for _ in range(200):
        eval_env.reset()
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = eval_env.step(int(rng.integers(eval_env.action_space.n)))
            total += r
            done = term or trunc
        returns.append(total)
    assert trained > np.mean(returns) + 0.2, (trained, np.mean(returns))
