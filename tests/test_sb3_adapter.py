"""SB3VectorEnv against SB3's own DummyVecEnv, and SB3 PPO learning through it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import envs
from envs.sb3 import SB3VectorEnv
from envs.tutors import make_tutor

ENV_ID = "MetaTutor/SkillGraph-v0"


def test_matches_dummy_vec_env() -> None:
    n, kw = 3, {"horizon": 6}
    profs = envs.sample_profiles(ENV_ID, n, "test", 0)

    def maker(p: dict):
        def make():
            env = gym.make(ENV_ID, **kw)
            env.unwrapped.set_task(p)
            return env

        return make

    ours = SB3VectorEnv(ENV_ID, n, profiles=profs, **kw)
    ref = DummyVecEnv([maker(p) for p in profs])
    ours.seed(9)
    ref.seed(9)
    np.testing.assert_array_equal(ours.reset(), ref.reset())
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, ours.action_space.n, size=n)
        o1, r1, d1, i1 = ours.step(a)
        o2, r2, d2, i2 = ref.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_allclose(r1, r2)
        np.testing.assert_array_equal(d1, d2)
        for x, y in zip(i1, i2):
            if "terminal_observation" in y:
                np.testing.assert_array_equal(x["terminal_observation"], y["terminal_observation"])
                assert x["TimeLimit.truncated"] == y["TimeLimit.truncated"]
                assert x["posttest"] == y["posttest"]


def test_sb3_ppo_learns_through_the_adapter() -> None:
    kw = {"n_skills": 4, "n_content": 3, "horizon": 20}
    venv = SB3VectorEnv(ENV_ID, 32, **kw)
    venv.seed(0)
    model = PPO("MlpPolicy", venv, n_steps=40, batch_size=320, n_epochs=5, seed=0, device="cpu")
    model.learn(total_timesteps=40 * 32 * 15)

    test = SB3VectorEnv(ENV_ID, 500, profiles=envs.sample_profiles(ENV_ID, 500, "test", 1, **kw), **kw)

    def evaluate(act) -> float:
        test.seed(3)
        obs = test.reset()
        total = np.zeros(500)
        for _ in range(kw["horizon"]):
            obs, r, _, _ = test.step(act(obs))
            total += r
        return float(total.mean())

    trained = evaluate(lambda o: model.predict(o, deterministic=False)[0])
    rand = make_tutor("random", test.venv, seed=0)
    random = evaluate(rand.act)
    assert trained > random + 0.3, (trained, random)
