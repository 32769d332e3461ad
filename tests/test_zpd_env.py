"""ZPD-v0 front ends: Gymnasium's checker, the native vector env and single/vector equality."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.zpd import ZPDEnv, ZPDVectorEnv

ENV_ID = "MetaTutor/ZPD-v0"


def profile(k: int = 4, **over: object) -> dict:
    base = {
        "ability0": [0.0] * k,
        "learn_rate": 0.2,
        "sweet_spot": 0.7,
        "zpd_width": 1.0,
        "frustration": 0.0,
        "boredom": 0.0,
        "recovery": 0.2,
        "engagement0": 1.0,
    }
    base.update(over)
    return base


#: fails the hardest item with probability 1 − 2e-4 and quits at once (E: 0.5 → 0.2 < 0.3)
QUITTER = profile(ability0=[-6.0] * 4, frustration=0.3, engagement0=0.5)
HARDEST = 4  # skill 0, level 4


@pytest.mark.parametrize("reward_mode", ["gain", "posttest", "correct"])
def test_check_env(reward_mode: str) -> None:
    env = gym.make(ENV_ID, reward_mode=reward_mode, quit_penalty=1.0)
    check_env(env.unwrapped, skip_render_check=True)


def test_gym_make_spaces_and_docstring_sections() -> None:
    env = gym.make(ENV_ID, n_skills=3, n_levels=6)
    assert isinstance(env.unwrapped, ZPDEnv)
    assert env.action_space == gym.spaces.Discrete(18)
    assert env.unwrapped.action_nvec == (3, 6)
    assert env.observation_space.shape == (4 * 3 + 5,) and env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 0.0  # the tutor interface relies on normalised time being last
    obs, *_ = env.step(0)
    assert obs[-1] == pytest.approx(1 / 50)
    for section in ("Description", "Action Space", "Observation Space", "Rewards",
                    "Starting State", "Episode End", "Arguments"):  # fmt: skip
        assert f"## {section}" in ZPDEnv.__doc__


def test_vector_env_batched_spaces() -> None:
    venv = gym.make_vec(ENV_ID, num_envs=5, vectorization_mode="vector_entry_point", n_skills=2)
    assert isinstance(venv, ZPDVectorEnv)
    single = venv.single_observation_space
    assert venv.observation_space == gym.vector.utils.batch_space(single, 5)
    assert venv.action_space == gym.spaces.MultiDiscrete([10] * 5)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (5, 13) and venv.observation_space.contains(obs)
    obs, r, term, trunc, _ = venv.step(venv.action_space.sample())
    assert venv.observation_space.contains(obs)
    assert r.shape == term.shape == trunc.shape == (5,)


def test_next_step_autoreset_after_early_quit() -> None:
    venv = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point")
    calm = profile(ability0=[3.0] * 4)
    first, _ = venv.reset(seed=3, options={"profiles": [calm, QUITTER, calm, calm]})
    obs, r, term, trunc, info = venv.step(np.full(4, HARDEST))
    assert term.tolist() == [False, True, False, False] and not trunc.any()
    assert info["_quit"].tolist() == [False, True, False, False] and info["quit"][1] == 1.0
    assert info["quit_step"][1] == 0.0 and info["final_engagement"][1] == pytest.approx(0.2)
    # next step: sub-env 1 starts again (its action is ignored), the others go on
    obs, r, term, trunc, info = venv.step(np.full(4, HARDEST))
    assert obs[:, -1].tolist() == pytest.approx([2 / 50, 0.0, 2 / 50, 2 / 50])
    assert r[1] == 0.0 and not term.any() and "quit" not in info
    np.testing.assert_array_equal(obs[1], first[1])  # a fresh episode: nothing attempted yet
    obs, r, term, trunc, info = venv.step(np.full(4, HARDEST))
    assert term.tolist() == [False, True, False, False]
    assert obs[:, -1].tolist() == pytest.approx([3 / 50, 1 / 50, 3 / 50, 3 / 50])


def test_same_step_autoreset_returns_final_obs() -> None:
    venv = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", autoreset_mode="SameStep"
    )
    venv.reset(seed=0, options={"profiles": [QUITTER, profile()]})
    obs, _, term, _, info = venv.step(np.full(2, HARDEST))
    assert term.tolist() == [True, False]
    assert info["_final_obs"].tolist() == [True, False]
    final = info["final_obs"][0]
    assert final[-1] == pytest.approx(1 / 50) and final[0] == 0.0  # the failed attempt
    assert obs[0, -1] == 0.0 and obs[1, -1] == pytest.approx(1 / 50)  # already reset


def test_disabled_autoreset_refuses_to_step_a_finished_env() -> None:
    venv = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", autoreset_mode="Disabled"
    )
    venv.reset(seed=0, options={"profiles": [QUITTER, profile()]})
    venv.step(np.full(2, HARDEST))
    with pytest.raises(RuntimeError, match="autoreset is disabled"):
        venv.step(np.full(2, HARDEST))


def rollout_vector(seed: int, n: int = 6, steps: int = 40) -> list[np.ndarray]:
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=seed)
    rng = np.random.default_rng(1)
    out = [obs]
    for _ in range(steps):
        obs, r, term, *_ = venv.step(rng.integers(0, 20, size=n))
        out += [obs, r, term]
    return out


def test_vector_reset_seed_reproducible() -> None:
    a, b, c = rollout_vector(7), rollout_vector(7), rollout_vector(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_single_and_vector_trajectories_identical_across_quits_and_autoresets() -> None:
    n, seed, steps = 6, 21, 80
    profs = [*envs.sample_profiles(ENV_ID, n - 1, split="ood", seed=4), QUITTER]
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", horizon=15)
    vobs, _ = venv.reset(seed=seed, options={"profiles": profs})
    singles = [gym.make(ENV_ID, horizon=15) for _ in range(n)]
    for i, env in enumerate(singles):
        env.unwrapped.set_task(profs[i])
        np.testing.assert_array_equal(env.reset(seed=seed + i)[0], vobs[i])
    rng = np.random.default_rng(0)
    pending = np.zeros(n, dtype=bool)
    n_ends = n_quits = 0
    for _ in range(steps):
        a = rng.integers(0, 20, size=n)
        vobs, vr, vterm, vtrunc, vinfo = venv.step(a)
        for i, env in enumerate(singles):
            if pending[i]:  # the vector env reset this sub-env; the single env resets too
                o, _ = env.reset()
                np.testing.assert_array_equal(vobs[i], o)
                assert vr[i] == 0.0 and not vterm[i]
                continue
            o, r, term, trunc, info = env.step(int(a[i]))
            np.testing.assert_array_equal(vobs[i], o)
            assert vr[i] == r and vterm[i] == term and vtrunc[i] == trunc
            if term:
                n_ends += 1
                n_quits += int(info["quit"])
                for k in ("ability_gain", "posttest", "quit", "quit_step", "final_engagement"):
                    np.testing.assert_equal(vinfo[k][i], info[k])  # NaN quit_step if no quit
                    assert vinfo["_" + k][i]
        pending = vterm | vtrunc
    assert n_ends >= 2 * n and 0 < n_quits < n_ends  # several episodes per sub-env, some quit


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_skills": 0}, "n_skills"),
        ({"n_skills": 2.5}, "n_skills"),
        ({"n_levels": 1}, "n_levels"),
        ({"horizon": 0}, "horizon"),
        ({"reward_mode": "fun"}, "reward_mode"),
        ({"quit_penalty": -1.0}, "quit_penalty"),
        ({"quit_penalty": float("nan")}, "quit_penalty"),
        ({"quit_threshold": 1.5}, "quit_threshold"),
        ({"easy_threshold": 0.2}, "easy_threshold"),
        ({"window": 0}, "window"),
        ({"difficulties": [0, 1, 2]}, "n_levels=5"),
        ({"difficulties": [0, 1, 1, 2, 3]}, "strictly increasing"),
        ({"difficulties": [0, 1, 2, 3, 99]}, "difficulties"),
        ({"difficulties": [0, 1, 2, 3, float("inf")]}, "difficulties"),
        ({"difficulties": "easy"}, "difficulties"),
        ({"difficulties": 3}, "difficulties"),
    ],
)
def test_invalid_kwargs(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)
    with pytest.raises(ValueError, match=match):
        gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)


def test_invalid_actions_and_profiles() -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not in"):
        env.step(20)
    with pytest.raises(ValueError, match=r"'ability0'.*n_skills=4"):
        env.reset(options={"profile": profile(k=3)})
    with pytest.raises(ValueError, match="sweet_spot"):
        env.reset(options={"profile": profile(sweet_spot=1.0)})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"student": 1})
    venv = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        venv.step(np.array([0, 1, 20]))


def test_render_ansi() -> None:
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(seed=0, options={"profile": QUITTER})
    assert "E=0.50" in env.render()
    env.step(HARDEST)
    assert "QUIT" in env.render()


def _observe_directly(d: object) -> np.ndarray:
    """ZPD-v0's observation evaluated from the state by its definition (observe() keeps the
    per-skill blocks up to date in place instead)."""
    from envs.zpd.dynamics import RT_MAX, STREAK_MAX

    lay, h, w, lv = d.layout, d.horizon, d.window, d.n_levels
    obs = np.empty((d.n, d.obs_dim), dtype=np.float32)
    obs[:, lay["last_correct"]] = d.last_correct
    obs[:, lay["response_time"]] = np.minimum(d.last_rt / RT_MAX, 1.0)
    obs[:, lay["last_level"]] = d.last_level / (lv - 1)
    obs[:, lay["streak"]] = np.clip((d.correct_run - d.fail_run) / STREAK_MAX, -1.0, 1.0)
    obs[:, lay["last_skill"]] = d.last_skill[:, None] == np.arange(d.n_skills)
    obs[:, lay["attempts"]] = np.minimum(d.attempts / h, 1.0)
    seen = np.minimum(d.attempts, w)
    window = d.history.sum(axis=2)  # the ring buffer holds the last min(attempts, w) outcomes
    obs[:, lay["success_rate"]] = np.where(seen > 0, window / np.maximum(seen, 1), 0.5)
    obs[:, lay["skill_level"]] = d.skill_level / (lv - 1)
    obs[:, lay["time"]] = np.minimum(d.t / h, 1.0)
    return obs


@pytest.mark.parametrize("n", [24, 80])  # per-skill blocks rewritten at each observation / kept in place
@pytest.mark.parametrize("kw", [{}, {"n_skills": 2, "n_levels": 3, "horizon": 9, "window": 2}])
def test_observation_kept_in_place_equals_its_definition(kw: dict, n: int) -> None:
    """Bit for bit, through quits, the horizon and autoresets (NEXT_STEP: frozen students are
    stepped once more), with every student's observation from its state."""
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kw)
    profiles = envs.sample_profiles(ENV_ID, n - 1, "ood", 2, **kw)
    k = kw.get("n_skills", 4)
    quitter = profile(k, ability0=[-6.0] * k, frustration=0.3, engagement0=0.5)
    venv.unwrapped.set_tasks([*profiles, quitter])
    obs, _ = venv.reset(seed=2)
    d = venv.unwrapped.dynamics
    assert d._incremental_obs == (n >= 64)
    rng = np.random.default_rng(2)
    for _ in range(60):
        np.testing.assert_array_equal(obs.view(np.uint32), _observe_directly(d).view(np.uint32))
        obs, *_ = venv.step(rng.integers(0, venv.single_action_space.n, size=n))
    assert d.quit.any()
