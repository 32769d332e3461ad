"""The native vector env against Gymnasium's own SyncVectorEnv and its documented semantics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from scipy import stats

import envs
from envs.rng import StudentStreams

ENV_ID = "MetaTutor/SkillGraph-v0"


def make_native(n: int, **kw: object) -> gym.vector.VectorEnv:
    return gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kw)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_native_equals_sync_vector_env(mode: AutoresetMode) -> None:
    """Gymnasium's SyncVectorEnv over single envs is the reference, autoreset included."""
    n, horizon = 3, 7
    profs = envs.sample_profiles(ENV_ID, n, "test", seed=0)
    native = make_native(n, horizon=horizon, autoreset_mode=mode)
    native.unwrapped.set_tasks(profs)

    def single(i: int):
        def make():
            env = gym.make(ENV_ID, horizon=horizon)
            env.unwrapped.set_task(profs[i])
            return env

        return make

    sync = gym.vector.SyncVectorEnv([single(i) for i in range(n)], autoreset_mode=mode)
    o1, _ = native.reset(seed=5)
    o2, _ = sync.reset(seed=5)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(1)
    for _ in range(3 * horizon + 2):
        a = rng.integers(0, native.single_action_space.n, size=n)
        r1 = native.step(a)
        r2 = sync.step(a)
        for x, y in zip(r1[:4], r2[:4]):
            np.testing.assert_array_equal(x, y)
        info1, info2 = r1[4], r2[4]
        if "posttest" in info2:
            np.testing.assert_array_equal(info1["_posttest"], info2["_posttest"])
            m = info2["_posttest"]
            np.testing.assert_array_equal(info1["posttest"][m], info2["posttest"][m])
        if mode is AutoresetMode.SAME_STEP and "final_obs" in info2:
            for i in np.flatnonzero(info2["_final_obs"]):
                np.testing.assert_array_equal(info1["final_obs"][i], info2["final_obs"][i])


def test_spaces_are_batched() -> None:
    venv = make_native(5)
    assert venv.observation_space.shape == (5, *venv.single_observation_space.shape)
    assert venv.action_space.shape == (5,)
    assert venv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)


def test_disabled_autoreset_demands_reset() -> None:
    venv = make_native(2, horizon=2, autoreset_mode="Disabled")
    venv.reset(seed=0)
    venv.step(np.zeros(2, dtype=np.int64))
    _, _, term, _, _ = venv.step(np.zeros(2, dtype=np.int64))
    assert term.all()
    with pytest.raises(RuntimeError, match="autoreset is disabled"):
        venv.step(np.zeros(2, dtype=np.int64))
    venv.reset()
    venv.step(np.zeros(2, dtype=np.int64))


def test_reset_seed_reproducible_and_list_seeds() -> None:
    venv = make_native(4)
    a, _ = venv.reset(seed=3)
    b, _ = venv.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    profs = envs.sample_profiles(ENV_ID, 4, "val", 0)
    x, _ = venv.reset(seed=[3, 4, 5, 6], options={"profiles": profs})
    y, _ = venv.reset(seed=3, options={"profiles": profs})
    np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="seed"):
        venv.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="4 profiles"):
        venv.unwrapped.set_tasks(profs[:2])


def test_tasks_persist_across_autoreset() -> None:
    venv = make_native(3, horizon=3)
    profs = envs.sample_profiles(ENV_ID, 3, "test", 0)
    venv.reset(seed=0, options={"profiles": profs})
    for _ in range(10):
        venv.step(np.zeros(3, dtype=np.int64))
    dyn = venv.unwrapped.dynamics
    assert [dyn.profile_of(i).to_dict() for i in range(3)] == profs


def test_student_streams_uniform_and_independent() -> None:
    s = StudentStreams(2000)
    s.seed(np.arange(2000), np.arange(2000))
    draws = []
    for _ in range(5):
        draws.append(s.uniform(7))
        s.advance()
    u = np.stack(draws)  # (5, 2000, 7)
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-4
    # no correlation between neighbouring students, steps or draw columns
    flat = u.reshape(5, 2000, 7)
    for a, b in ((flat[:, :-1], flat[:, 1:]), (flat[:-1], flat[1:]), (flat[..., :-1], flat[..., 1:])):
        r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert abs(r) < 5 / np.sqrt(a.size)
    # a student's numbers do not depend on who else is in the batch
    t = StudentStreams(1)
    t.seed(np.arange(1), np.array([17]))
    np.testing.assert_array_equal(t.uniform(7)[0], draws[0][17])
    # salts and episodes give fresh numbers
    assert not np.array_equal(s.uniform(7, salt=1), s.uniform(7))
    before = s.uniform(3).copy()
    s.new_episode(np.arange(2000))
    assert not np.array_equal(before, s.uniform(3))


def test_set_tasks_takes_effect_at_each_sub_envs_next_reset() -> None:
    """A sub-env keeps its student until its own episode ends (here: different lengths via horizon)."""
    venv = make_native(2, horizon=4)
    a = envs.sample_profiles(ENV_ID, 2, "test", 0)
    b = envs.sample_profiles(ENV_ID, 2, "test", 1)
    venv.reset(seed=0, options={"profiles": a})
    dyn = venv.unwrapped.dynamics
    venv.step(np.zeros(2, dtype=np.int64))
    venv.unwrapped.set_tasks(b)
    venv.step(np.zeros(2, dtype=np.int64))
    assert [dyn.profile_of(i).to_dict() for i in range(2)] == a  # mid-episode: unchanged
    for _ in range(3):  # the episodes end at step 4; the next step autoresets with the new tasks
        venv.step(np.zeros(2, dtype=np.int64))
    assert [dyn.profile_of(i).to_dict() for i in range(2)] == b


def test_set_population_changes_where_fresh_students_come_from() -> None:
    from envs.skill_graph import SkillGraphDistribution

    class OnlyOod(SkillGraphDistribution):
        def _sample_arrays(self, rng, n, split):
            return super()._sample_arrays(rng, n, "ood")

    venv = make_native(64)
    venv.unwrapped.set_population(OnlyOod())
    venv.reset(seed=0)
    forget = venv.unwrapped.dynamics.p["forget"]
    assert forget.min() >= 0.03  # the ood population's range; the default train range is [0, 0.03]
