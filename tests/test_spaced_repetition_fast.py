"""SpacedRepetition-v0's per-step computation (buffers, look-up tables, in-place recall) against
the direct formulas of its module docstring, bit for bit.

The reference below is the step and observation as written before they were optimised (one
NumPy expression per formula, no state kept between steps beyond the model's). Rollouts of
both, with the same seeds, profiles and actions, must agree exactly — the committed
evaluation results depend on the trajectories, so "close" is not enough.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import envs
from envs.spaced_repetition import SpacedRepetitionDynamics, SpacedRepetitionVectorEnv
from envs.spaced_repetition.dynamics import encode_elapsed
from envs.spaced_repetition.goals import SpacedRepetitionGoalsDynamics, SpacedRepetitionGoalsVectorEnv
from envs.spaced_repetition.memory_models import MEMORY_MODELS, S_MAX, S_MIN, STATE_FIELDS, make_model
from envs.spaced_repetition.settings import LOG_EPS


class _Direct:
    """Mixin: ``_step`` and ``observe`` evaluated straight from the formulas."""

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, a = self._rows, actions
        t = np.minimum(self.t, self.horizon - 1)
        u = self.streams.uniform(1 + self.n_items)
        now = self.times[t]
        was_seen = self.seen[rows, a]
        real_elapsed = now - self.last_time[rows, a]
        item_state = {f: v[rows, a] for f, v in self.state.items()}
        p = np.where(was_seen, self.model.recall(item_state["S"], real_elapsed * self._speed[rows, a]), 0.0)
        correct = u[:, 0] < p
        reviewed = self.model.review(
            item_state, p, correct, real_elapsed, self.p["gain"], self.p["fail_effect"]
        )
        for f in STATE_FIELDS:
            self.state[f][rows, a] = np.where(was_seen, reviewed[f], self._first[f])
        self.seen[rows, a] = True
        self.last_time[rows, a] = self.times[t + 1] if self.reward_timing == "just_reviewed" else now
        self.n_reviews[rows, a] += 1
        self.last_correct[rows, a] = correct
        self.n_correct += correct
        p_next = self.recall_matrix(self.times[t + 1])
        m_next = self._exam_mean(p_next)
        terminated = t + 1 >= self.horizon
        reward = {
            "recall": lambda: m_next - self.mean_p,
            "likelihood": lambda: m_next.copy(),
            "log_likelihood": lambda: self._exam_mean(np.log(LOG_EPS + p_next)),
            "exam": lambda: np.zeros(self.n),
            "correct": lambda: correct.astype(np.float64),
        }[self.reward_mode]()
        self.mean_p = m_next
        self.sum_mean_p += m_next
        if terminated.any():
            exam = self._exam_mean((u[:, 1:] < p_next).astype(np.float64))
            self.exam = np.where(terminated, exam, self.exam)
            if self.reward_mode == "exam":
                reward = np.where(terminated, exam, 0.0)
        return reward, terminated

    def observe(self) -> np.ndarray:
        k = self.n_items
        obs = np.empty((self.n, self.obs_dim), dtype=np.float32)
        now = self.times[np.minimum(self.t, self.horizon)]
        obs[:, 0:k] = np.where(self.seen, encode_elapsed(now[:, None] - self.last_time), 1.0)
        obs[:, k : 2 * k] = self._review_feature[np.minimum(self.n_reviews, self.horizon)]
        obs[:, 2 * k : 3 * k] = self.seen & self.last_correct
        obs[:, 3 * k : 4 * k] = self.seen & ~self.last_correct
        obs[:, -1] = np.minimum(self.t / self.horizon, 1.0)
        if hasattr(self, "n_topics"):
            obs[:, 4 * k : (4 + self.n_topics) * k] = self._topic_obs
        return obs


class _DirectDynamics(_Direct, SpacedRepetitionDynamics):
    pass


class _DirectGoalsDynamics(_Direct, SpacedRepetitionGoalsDynamics):
    pass


class _DirectVectorEnv(SpacedRepetitionVectorEnv):
    dynamics_cls = _DirectDynamics


class _DirectGoalsVectorEnv(SpacedRepetitionGoalsVectorEnv):
    dynamics_cls = _DirectGoalsDynamics


def _bits(x: np.ndarray) -> np.ndarray:
    """The array's bytes as unsigned integers: equality then also compares signs of zeros."""
    x = np.ascontiguousarray(x)
    return x.view(f"u{x.dtype.itemsize}") if x.dtype.kind == "f" else x


def _rollout(cls: type, env_id: str, kw: dict, seed: int, mode: str, steps: int) -> list[np.ndarray]:
    n = 12
    venv = cls(num_envs=n, autoreset_mode=mode, **kw)
    venv.set_tasks(envs.sample_profiles(env_id, n, "train", seed, **kw))
    obs, _ = venv.reset(seed=seed)
    out = [obs]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs, r, term, trunc, info = venv.step(rng.integers(0, venv.single_action_space.n, size=n))
        out += [obs, r, term, trunc]
        out += [np.asarray(info[key]) for key in sorted(info) if key not in ("final_obs", "_final_obs")]
        if "final_obs" in info:
            out += [x for x in info["final_obs"] if x is not None]
    d = venv.dynamics
    out += [d.state[f] for f in STATE_FIELDS] + [
        d.last_time,
        d.recall_matrix(d.times[np.minimum(d.t, d.horizon)]),
    ]
    return out


SR, GOALS = "MetaTutor/SpacedRepetition-v0", "MetaTutor/SpacedRepetitionGoals-v0"
SMALL = {"n_items": 6, "horizon": 9, "session_length": 4}
CASES = [
    *[(SR, {**SMALL, "memory_model": m}) for m in MEMORY_MODELS],
    (SR, {**SMALL, "strength_rule": "count"}),
    (SR, {**SMALL, "memory_model": "hlr", "strength_rule": "count"}),
    *[(SR, {**SMALL, "reward_mode": r}) for r in ("exam", "correct", "likelihood", "log_likelihood")],
    (SR, {**SMALL, "reward_timing": "just_reviewed", "step_gap": 0.0}),
    (SR, {**SMALL, "start_state": "seen", "memory_model": "fsrs"}),
    (SR, {"preset": "reddy2017-hlr", "n_items": 9, "horizon": 12}),
    (SR, {"n_items": 3, "horizon": 2000}),  # too long a course for the elapsed-time table
    (GOALS, {**SMALL, "n_topics": 3}),
    (GOALS, {**SMALL, "reward_mode": "exam", "memory_model": "power"}),
]


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize(("env_id", "kw"), CASES)
def test_step_and_observe_equal_the_direct_formulas_bit_for_bit(env_id: str, kw: dict, mode: str) -> None:
    fast_cls, direct_cls = (
        (SpacedRepetitionVectorEnv, _DirectVectorEnv)
        if env_id == SR
        else (SpacedRepetitionGoalsVectorEnv, _DirectGoalsVectorEnv)
    )
    steps = min(25, 2 * kw.get("horizon", 100) + 3)
    for seed in (0, 1):
        fast = _rollout(fast_cls, env_id, kw, seed, mode, steps)
        direct = _rollout(direct_cls, env_id, kw, seed, mode, steps)
        assert len(fast) == len(direct)
        for i, (x, y) in enumerate(zip(fast, direct)):
            assert x.dtype == y.dtype and x.shape == y.shape, i
            np.testing.assert_array_equal(_bits(x), _bits(y), err_msg=f"array {i}")


def test_students_on_different_clocks() -> None:
    """Students reset at different steps (one clock per student, not one for all) still match."""
    kw = {"n_items": 5, "horizon": 7}
    fast, direct = SpacedRepetitionVectorEnv(num_envs=6, **kw), _DirectVectorEnv(num_envs=6, **kw)
    profiles = envs.sample_profiles(SR, 6, "train", 3, **kw)
    rng = np.random.default_rng(3)
    for venv in (fast, direct):
        venv.set_tasks(profiles)
        venv.reset(seed=3)
    for step in range(20):
        a = rng.integers(0, 5, size=6)
        outs = [venv.step(a)[:2] for venv in (fast, direct)]
        if step in (2, 9):  # restart some students mid-course
            for venv in (fast, direct):
                venv.dynamics.streams.new_episode(np.array([1, 4]))
                venv.dynamics.reset(np.array([1, 4]))
        for x, y in zip(*outs):
            np.testing.assert_array_equal(_bits(x), _bits(y))
        np.testing.assert_array_equal(_bits(fast.dynamics.observe()), _bits(direct.dynamics.observe()))


@pytest.mark.parametrize("rule", ["spacing", "count"])
@pytest.mark.parametrize("name", MEMORY_MODELS)
def test_recall_into_equals_recall(name: str, rule: str) -> None:
    if name == "fsrs" and rule == "count":
        pytest.skip("the count rule is not defined for fsrs")
    model = make_model(name, rule)
    rng = np.random.default_rng(0)
    shape = (257, 9)
    # elapsed days from 0 (exactly) to far beyond any strength; strengths beyond both bounds
    elapsed = np.where(rng.random(shape) < 0.1, 0.0, np.exp(rng.uniform(-12, 12, shape)))
    strength = np.exp(rng.uniform(math.log(S_MIN) - 1, math.log(S_MAX) + 1, shape))
    seen = (rng.random(shape) < 0.7).astype(np.float64)
    want = np.where(seen > 0, model.recall(strength, elapsed), 0.0)
    got = model.recall_into(-elapsed, model.clip_strength(strength), seen)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    plain = model.recall_into(-elapsed, model.clip_strength(strength), np.ones(shape))
    np.testing.assert_array_equal(_bits(plain), _bits(model.recall(strength, elapsed)))


@pytest.mark.parametrize("k", [1, 3, 7, 8, 9, 16, 20, 31, 128, 129, 200, 1000])
def test_item_major_sums_equal_numpys_sum(k: int) -> None:
    """The per-step sums over cards (item-major rows) equal NumPy's ``sum(axis=1)`` of the
    student-major array bit for bit, by the replicated pairwise order or by the fallback."""
    d = SpacedRepetitionDynamics(40, n_items=k)
    rng = np.random.default_rng(k)
    for x in (rng.random((40, k)), rng.standard_normal((40, k)) * np.exp(rng.uniform(-30, 30, (40, k)))):
        want = x.sum(axis=1)
        for pairwise in (True, False):
            d._pairwise = pairwise
            np.testing.assert_array_equal(_bits(d._row_sum(np.ascontiguousarray(x.T))), _bits(want))
        np.testing.assert_array_equal(
            _bits(d._exam_mean_kn(np.ascontiguousarray(x.T))), _bits(x.mean(axis=1))
        )
