"""SpacedRepetition-v0 student model: flash-card reviews with forgetting, vectorised.

Notation for student ``i`` and item ``j`` (profile fields in ``envs.spaced_repetition.profile``):
``τ_t`` the clock time (days) of step ``t``; ``L_j`` the time of the last presentation of
``j``; ``d_j = exp(item_difficulty_j)``; ``S_j`` the memory strength of the chosen model
(``envs.spaced_repetition.memory_models``).

* Clock: ``τ_0 = 0`` and ``τ_{t+1} = τ_t + gap_t`` with ``gap_t = exam_delay`` after the
  last step, ``session_gap`` after every ``session_length``-th step and ``step_gap``
  otherwise. ``τ_T`` (``T = horizon``) is the time of the final exam.
* Recall: ``p_j(τ) = 0`` if ``j`` was never presented, else
  ``p_j(τ) = curve(decay · d_j · (τ − L_j) / S_j)`` (``p = 1`` at zero elapsed time).
* Step ``t`` presents item ``a``: the student answers correctly with probability
  ``p_a(τ_t)``; then the answer is shown. A first presentation sets ``S_a = S0``; a later
  one updates ``S_a`` by the model's review rule with the outcome. ``L_a = τ_t``.
* Reward (``"recall"``): ``m(τ_{t+1}) − m(τ_t)`` with ``m`` the mean of ``p_j`` over items,
  so the return is ``m(τ_T)``, the expected exam score. ``"likelihood"`` (Reddy et al.'s L):
  ``m(τ_{t+1})``; ``"log_likelihood"`` (LL): the mean of ``log(1e-9 + p_j(τ_{t+1}))``.
* ``reward_timing="just_reviewed"`` (deeptutor): the presentation of step ``t`` is
  time-stamped ``L_a = τ_{t+1}`` (the end of the step's gap) instead of ``τ_t``; the answer
  is still drawn with ``p_a(τ_t)``.
* ``start_state="seen"`` (deeptutor): at reset every item has been presented once,
  ``Δ_j`` days before ``τ_0`` with ``log Δ_j ~ N(μ, σ²)`` (``start_elapsed_log_mean``,
  ``start_elapsed_log_sd``): ``S_j = S0``, ``L_j = −Δ_j``, counted as one presentation
  answered wrongly (the first exposure is always a failed test, see ``memory_models``).
* Exam: at ``τ_T`` each item is recalled independently with probability ``p_j(τ_T)``.

All draws of a step come from the student's own counter-based stream (``envs.rng``):
column 0 decides the answer, columns ``1 … n_items`` the exam (used on the last step); the
draws of a reset (``Δ_j``) use the reset salt.

Every keyword argument is a field of ``settings.SpacedRepetitionSettings``; ``preset`` names a
published setting (``settings.PRESETS``) whose values the other keyword arguments override.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.special import ndtri

from envs.core import RESET_SALT, StudentDynamics, check_choice, check_float, check_int, frac_table
from envs.spaced_repetition.memory_models import MEMORY_MODELS, STATE_FIELDS, MemoryModel, make_model
from envs.spaced_repetition.profile import SpacedRepetitionDistribution, SpacedRepetitionProfile
from envs.spaced_repetition.settings import (
    LOG_EPS,
    MINUTE,
    POPULATIONS,
    REWARD_MODES,
    REWARD_TIMINGS,
    START_STATES,
    STRENGTH_RULES,
    SpacedRepetitionSettings,
    resolve_settings,
)

#: elapsed-time observation: log scale from one minute to 100 days (then clipped at 1)
ELAPSED_UNIT = MINUTE
ELAPSED_MAX = 100.0
_ELAPSED_NORM = math.log1p(ELAPSED_MAX / ELAPSED_UNIT)


def step_times(
    horizon: int, step_gap: float, session_length: int, session_gap: float, exam_delay: float
) -> np.ndarray:
    """Clock times ``τ_0 … τ_T`` (days) of the steps; ``τ_T`` is the exam."""
    t = np.arange(horizon)
    gaps = np.where((t + 1) % session_length == 0, session_gap, step_gap)
    gaps[-1] = exam_delay
    return np.concatenate([[0.0], np.cumsum(gaps)])


def encode_elapsed(days: np.ndarray) -> np.ndarray:
    """Observation feature of an elapsed time: ``log(1 + Δ/1 min) / log(1 + 100 d/1 min)``, clipped."""
    x = np.log1p(np.maximum(days, 0.0) * (1.0 / ELAPSED_UNIT))
    return np.minimum(x * (1.0 / _ELAPSED_NORM), 1.0)


def decode_elapsed(feature: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_elapsed` (exact below 100 days)."""
    return np.expm1(np.asarray(feature, dtype=np.float64) * _ELAPSED_NORM) * ELAPSED_UNIT


def pairwise_row_sum(x: np.ndarray) -> np.ndarray:
    """``Σ_j x[j]`` over the rows of ``x`` (shape ``(m, n)``), added in the order of NumPy's
    pairwise summation, so that it equals ``np.ascontiguousarray(x.T).sum(axis=1)`` bit for bit
    (:func:`row_sum_is_numpys` checks it): fewer than 8 terms one by one; up to 128 in 8
    interleaved partial sums ``r_i = x_i + x_{i+8} + …``, combined as ``((r0 + r1) + (r2 + r3)) +
    ((r4 + r5) + (r6 + r7))``, then the remaining ``m mod 8`` one by one; more: both halves
    (split at a multiple of 8), each summed so, then added. Each step adds whole rows, so an
    item-major ``(K, n)`` array sums over items in a few vector operations, where a reduction over
    the short last axis of ``(n, K)`` pays a call per student."""
    m = x.shape[0]
    if m > 128:
        half = m // 2
        half -= half % 8
        return pairwise_row_sum(x[:half]) + pairwise_row_sum(x[half:])
    if m < 8:
        res = np.zeros(x.shape[1:])
        for row in x:
            res += row
        return res
    r = x[:8].copy()
    stop = m - m % 8
    for i in range(8, stop, 8):
        r += x[i : i + 8]
    r4 = r[0::2] + r[1::2]  # r0 + r1, r2 + r3, r4 + r5, r6 + r7
    res = (r4[0] + r4[1]) + (r4[2] + r4[3])
    for i in range(stop, m):
        res += x[i]
    return res


@functools.cache
def row_sum_is_numpys(m: int) -> bool:
    """Whether :func:`pairwise_row_sum` of ``m`` rows adds exactly as this NumPy's ``sum`` over a
    contiguous last axis (checked on random numbers, on which another order of the additions
    would round differently somewhere): the order is NumPy's implementation detail, so the
    simulator relies on it only where this holds, and otherwise takes NumPy's own sum."""
    x = np.random.default_rng(m).standard_normal((m, 64)) * np.exp(np.arange(64) % 7)
    return bool(np.array_equal(pairwise_row_sum(x), np.ascontiguousarray(x.T).sum(axis=1)))


class SpacedRepetitionDynamics(StudentDynamics):
    """Vectorised SpacedRepetition-v0 students; see the module docstring for the equations."""

    fixed_length = True  # episodes end at the horizon, never earlier

    profile_cls = SpacedRepetitionProfile
    distribution_cls = SpacedRepetitionDistribution
    metric_names = (
        "exam_recall",
        "final_mean_recall_prob",
        "mean_recall",
        "items_never_reviewed",
        "accuracy",
    )
    # elapsed, times shown, last correct, last wrong per card (see observe()), then time
    item_obs_blocks = 4
    item_dim = "n_items"

    def __init__(self, num_students: int, *, preset: str | None = None, **kwargs: Any) -> None:
        super().__init__(num_students)
        #: the resolved settings (defaults ← preset ← keyword arguments)
        cfg = resolve_settings(preset, kwargs)
        self.settings: SpacedRepetitionSettings = cfg
        self.preset = preset
        self.n_items = k = check_int("n_items", cfg.n_items, 1, 1000)
        self.horizon = check_int("horizon", cfg.horizon, 1, 100_000)
        self.memory_model = check_choice("memory_model", cfg.memory_model, MEMORY_MODELS)
        self.strength_rule = check_choice("strength_rule", cfg.strength_rule, STRENGTH_RULES)
        self.hlr_coefficients = cfg.hlr_coefficients
        self.model: MemoryModel = make_model(self.memory_model, self.strength_rule, self.hlr_coefficients)
        self.step_gap = check_float("step_gap", cfg.step_gap, 0.0, 365.0)
        self.session_length = check_int("session_length", cfg.session_length, 1, 100_000)
        self.session_gap = check_float("session_gap", cfg.session_gap, 0.0, 3650.0)
        self.exam_delay = check_float("exam_delay", cfg.exam_delay, 0.0, 3650.0)
        self.reward_mode = check_choice("reward_mode", cfg.reward_mode, REWARD_MODES)
        self.reward_timing = check_choice("reward_timing", cfg.reward_timing, REWARD_TIMINGS)
        self.start_state = check_choice("start_state", cfg.start_state, START_STATES)
        self.start_elapsed_log_mean = check_float(
            "start_elapsed_log_mean", cfg.start_elapsed_log_mean, -20.0, 10.0
        )
        self.start_elapsed_log_sd = check_float("start_elapsed_log_sd", cfg.start_elapsed_log_sd, 0.0, 5.0)
        self.population = check_choice("population", cfg.population, POPULATIONS)
        self.times = step_times(
            self.horizon, self.step_gap, self.session_length, self.session_gap, self.exam_delay
        )
        self.action_nvec = (k,)
        self.single_action_space = gym.spaces.Discrete(k)
        self.obs_dim = 4 * k + 1
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (self.obs_dim,), np.float32)
        n = self.n
        self.state = self.model.initial_state((n, k))
        self.seen = np.zeros((n, k), dtype=bool)
        self.last_time = np.zeros((n, k))
        self.n_reviews = np.zeros((n, k), dtype=np.int64)
        self.last_correct = np.zeros((n, k), dtype=bool)
        self.mean_p = np.zeros(n)  # m(τ_t): mean recall now (cached from the previous step)
        self.sum_mean_p = np.zeros(n)
        self.n_correct = np.zeros(n, dtype=np.int64)
        self.exam = np.zeros(n)
        self._speed = np.ones((n, k))  # decay × exp(ℓ_j), set with the profiles
        self._first = self.model.learn((n,))
        self._rows = np.arange(n)
        self._rows_k = self._rows * k  # row offsets of the flat (n, K) arrays
        # log(1 + reviews) / log(1 + horizon) as a lookup table (a count never exceeds the horizon)
        self._review_feature = np.log1p(np.arange(self.horizon + 1)) / math.log1p(self.horizon)
        self._init_fast_path()

    def _init_fast_path(self) -> None:
        """Buffers and tables of the per-step computation. Each is an exact rewrite of the
        formula it replaces (same float operations on the same values), so trajectories are
        bit-identical to evaluating the formulas directly (tests/test_spaced_repetition_fast.py).

        The recall of every card, at every step, is computed in **item-major** ``(K, n)``
        arrays (private copies, kept up to date at the presented cards; the public ``(n, K)``
        arrays stay as they are): sums over the cards then add whole rows (:func:`pairwise_row_sum`).

        * ``_p_kn``: the recall matrix, computed in place (``MemoryModel.recall_into``) from
        * ``_last_time_kn``, ``_speed_kn``: ``last_time`` and ``decay · exp(ℓ_j)``;
        * ``_s_clip_kn``: the strengths clipped as ``recall`` clips them;
        * ``_seen_kn``: ``seen`` as 0.0 / 1.0, so ``where(seen, p, 0)`` is ``min(p, seen)``
          (``p`` is finite and ≥ 0 for every card, seen or not);
        * ``_obs``: the observation, kept up to date in place: the per-card blocks (times shown,
          last answer correct / wrong) change only at the presented card and at resets; the
          elapsed-time block is recomputed at each observation, by table look-up when every
          presentation time is a step time ``τ_j`` (``start_state="unseen"``): the feature of
          ``τ_i − τ_j`` for every pair, and 1 for a card never shown;
        * ``_last_idx``: the index ``j`` of ``L = τ_j`` (``T + 1``: never shown) for that look-up,
          student-major like the observation (a look-up written across it would be slower).
        """
        n, k, h = self.n, self.n_items, self.horizon
        self._fields = self.model.fields
        self._p_kn = np.empty((k, n))
        self._last_time_kn = np.zeros((k, n))
        self._speed_kn = np.ones((k, n))
        self._s_clip_kn = self.model.clip_strength(self.state["S"].T.copy())
        self._seen_kn = np.zeros((k, n))
        self._pairwise = row_sum_is_numpys(k)
        self._review_feature32 = self._review_feature.astype(np.float32)
        self._frac_table = frac_table(h)
        self._obs = self._new_obs_buffer()
        # the look-up needs every L to be a step time; a table of (T + 1)(T + 2) float32 is
        # kept small (T ≤ 1447: 8 MB at most), longer courses compute the feature directly
        self._elapsed_table: np.ndarray | None = None
        if self.start_state == "unseen" and (h + 1) * (h + 2) <= 1 << 21:
            table = np.ones((h + 1, h + 2), dtype=np.float32)
            # the same formula on τ_i − τ_j as observe() on now − L, rounded to float32 alike
            table[:, : h + 1] = encode_elapsed(self.times[:, None] - self.times[None, :])
            self._elapsed_table = table
        self._last_idx = np.full((n, k), h + 1, dtype=np.intp)

    def _new_obs_buffer(self) -> np.ndarray:
        """The persistent observation buffer (zeros; variants fill their constant blocks)."""
        return np.zeros((self.n, self.obs_dim), dtype=np.float32)

    def dims(self) -> dict[str, int]:
        return {"n_items": self.n_items}

    def distribution(self) -> SpacedRepetitionDistribution:
        return SpacedRepetitionDistribution(self.n_items, self.population)

    def config(self) -> dict[str, Any]:
        """What a heuristic tutor may know about the course (not about the student)."""
        return {
            "n_items": self.n_items,
            "horizon": self.horizon,
            "memory_model": self.memory_model,
            "strength_rule": self.strength_rule,
            "hlr_coefficients": self.hlr_coefficients,
            "reward_timing": self.reward_timing,
            # the population's median forgetting speed (a tutor may know the population, not the student)
            "typical_decay": SpacedRepetitionDistribution(self.n_items, self.population).median_decay,
            "step_gap": self.step_gap,
            "session_length": self.session_length,
            "session_gap": self.session_gap,
            "exam_delay": self.exam_delay,
            "times": self.times.copy(),
        }

    # ------------------------------------------------------------------ model
    def recall_matrix(self, now: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``p_j(now)`` of every item of students ``rows`` (all by default), shape ``(len, n_items)``."""
        sl = slice(None) if rows is None else rows
        elapsed = (now[:, None] - self.last_time[sl]) * self._speed[sl]
        p = self.model.recall(self.state["S"][sl], elapsed)
        return np.where(self.seen[sl], p, 0.0)

    def _profiles_changed(self, idx: np.ndarray) -> None:
        # effective forgetting speed of each item: decay × exp(ℓ_j)
        self._speed[idx] = self.p["decay"][idx, None] * np.exp(self.p["item_difficulty"][idx])
        self._speed_kn[:, idx] = self._speed[idx].T

    def exam_weights(self) -> np.ndarray:
        """``(n, n_items)`` weight of each card in each student's exam, rows summing to 1:
        every card alike here (the goal-weighted variant reads them from the profile)."""
        return np.full((self.n, self.n_items), 1.0 / self.n_items)

    def _exam_mean(self, per_item: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The exam's average of a per-item quantity ``(len(rows), n_items)`` of students ``rows``
        (all by default; see :meth:`exam_weights`)."""
        return per_item.mean(axis=1)

    def _row_sum(self, per_item_kn: np.ndarray) -> np.ndarray:
        """Sum over the cards of an item-major ``(K, n)`` array, bit-identical to ``.sum(axis=1)``
        of its ``(n, K)`` transpose (:func:`pairwise_row_sum`, or that very sum where this
        NumPy adds in another order)."""
        if self._pairwise:
            return pairwise_row_sum(per_item_kn)
        return np.ascontiguousarray(per_item_kn.T).sum(axis=1)

    def _exam_mean_kn(self, per_item_kn: np.ndarray) -> np.ndarray:
        """:meth:`_exam_mean` of every student from an item-major ``(K, n)`` array, bit for bit
        (``mean`` is the sum divided by the count)."""
        return self._row_sum(per_item_kn) / self.n_items

    def _reset_students(self, idx: np.ndarray) -> None:
        n, k = len(idx), self.n_items
        self.last_correct[idx] = False
        self.sum_mean_p[idx] = 0.0
        self.n_correct[idx] = 0
        self.exam[idx] = 0.0
        if self.start_state == "unseen":
            fresh = self.model.initial_state((n, k))
            for f in STATE_FIELDS:
                self.state[f][idx] = fresh[f]
            self.seen[idx] = False
            self.last_time[idx] = 0.0
            self._last_idx[idx] = self.horizon + 1
            self.n_reviews[idx] = 0
            self.mean_p[idx] = 0.0
        else:
            # every card presented once before the course, log(days since) ~ N(μ, σ²)
            learned = self.model.learn((n, k))
            for f in STATE_FIELDS:
                self.state[f][idx] = learned[f]
            z = ndtri(self.streams.uniform(k, idx, salt=RESET_SALT))
            self.last_time[idx] = -np.exp(self.start_elapsed_log_mean + self.start_elapsed_log_sd * z)
            self.seen[idx] = True
            self.n_reviews[idx] = 1
            self.mean_p[idx] = self._exam_mean(self.recall_matrix(np.zeros(n), idx), idx)
        self._seen_kn[:, idx] = self.seen[idx].T
        self._last_time_kn[:, idx] = self.last_time[idx].T
        self._s_clip_kn[:, idx] = self.model.clip_strength(self.state["S"][idx]).T
        # the per-card observation blocks of these students, from their definition
        seen, right = self.seen[idx], self.last_correct[idx]
        self._obs[idx, k : 2 * k] = self._review_feature[np.minimum(self.n_reviews[idx], self.horizon)]
        self._obs[idx, 2 * k : 3 * k] = seen & right
        self._obs[idx, 3 * k : 4 * k] = seen & ~right

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, k, h = self.n, self.n_items, self.horizon
        # a NEXT_STEP vector env also steps finished students (t = horizon) before resetting them
        t = np.minimum(self.t, h - 1)
        terminated = t + 1 >= h
        ending = bool(terminated.any())
        # column 0 decides the answer; columns 1 … K (the exam) are drawn only on a step where
        # some episode ends (counter-based draws: column 0 is the same either way)
        u = self.streams.uniform_t(1 + k if ending else 1)
        # one clock for all students (the usual case): scalar times instead of per-student ones
        if t[0] == t[-1] and (t == t[0]).all():
            t = t[0]
        stamp = t + 1 if self.reward_timing == "just_reviewed" else t
        now, now_next, l_new = self.times[t], self.times[t + 1], self.times[stamp]
        # the presented card of each student as a flat index into the (n, K) and (K, n) arrays
        cell, cell_kn = self._rows_k + actions, actions * n + self._rows
        was_seen = self.seen.reshape(-1)[cell]
        real_elapsed = now - self.last_time.reshape(-1)[cell]
        item_state = {f: self.state[f].reshape(-1)[cell] for f in self._fields}
        speed = self._speed.reshape(-1)[cell]
        p = np.where(was_seen, self.model.recall(item_state["S"], real_elapsed * speed), 0.0)
        correct = u[0] < p

        reviewed = self.model.review(
            item_state, p, correct, real_elapsed, self.p["gain"], self.p["fail_effect"]
        )
        for f in self._fields:
            new = np.where(was_seen, reviewed[f], self._first[f])
            self.state[f].reshape(-1)[cell] = new
            if f == "S":
                self._s_clip_kn.reshape(-1)[cell_kn] = self.model.clip_strength(new)
        self.seen.reshape(-1)[cell] = True
        self._seen_kn.reshape(-1)[cell_kn] = 1.0
        # deeptutor stamps the review at the end of the step's gap (``_update_model(item, ., now)``
        # after ``now += delay``): the step's reward then counts the presented card at recall 1
        self.last_time.reshape(-1)[cell] = l_new
        self._last_time_kn.reshape(-1)[cell_kn] = l_new
        self._last_idx.reshape(-1)[cell] = stamp
        shown = self.n_reviews.reshape(-1)[cell] + 1
        self.n_reviews.reshape(-1)[cell] = shown
        self.last_correct.reshape(-1)[cell] = correct
        self.n_correct += correct
        # the observation's blocks of the presented card (the card is now seen)
        o = self._obs.reshape(-1)
        o_cell = self._rows * self.obs_dim + actions
        right = correct.astype(np.float32)
        o[o_cell + k] = self._review_feature32[np.minimum(shown, h)]
        o[o_cell + 2 * k] = right
        o[o_cell + 3 * k] = 1.0 - right

        p_next = self._recall_all(now_next)
        m_next = self._exam_mean_kn(p_next)
        if self.reward_mode == "recall":
            reward = m_next - self.mean_p
        elif self.reward_mode == "likelihood":
            reward = m_next.copy()
        elif self.reward_mode == "log_likelihood":
            reward = self._exam_mean_kn(np.log(LOG_EPS + p_next))
        elif self.reward_mode == "exam":
            reward = np.zeros(self.n)
        else:
            reward = correct.astype(np.float64)
        self.mean_p = m_next
        self.sum_mean_p += m_next
        if ending:
            exam = self._exam_mean_kn((u[1:] < p_next).astype(np.float64))
            self.exam = np.where(terminated, exam, self.exam)
            if self.reward_mode == "exam":
                reward = np.where(terminated, exam, 0.0)
        return reward, terminated

    def _recall_all(self, now: float | np.ndarray) -> np.ndarray:
        """:meth:`recall_matrix` of every student at ``now`` (one time for all, or one per
        student, never before a presentation), bit for bit, item-major ``(K, n)``, computed in
        place in the ``_p_kn`` buffer (valid until the next call)."""
        # −e = (L − now)·speed, exactly −((now − L)·speed); e ≥ 0 as now ≥ L (the clock never runs
        # back and a presentation is time-stamped τ_t or τ_{t+1}, at most the τ_{t+1} asked here)
        e = np.subtract(self._last_time_kn, now, out=self._p_kn)
        np.multiply(e, self._speed_kn, out=e)
        return self.model.recall_into(e, self._s_clip_kn, self._seen_kn)

    def observe(self) -> np.ndarray:
        k, h, obs = self.n_items, self.horizon, self._obs
        i = np.minimum(self.t, h)
        if self._elapsed_table is None:
            now = self.times[i]
            obs[:, 0:k] = np.where(self.seen, encode_elapsed(now[:, None] - self.last_time), 1.0)
        elif i[0] == i[-1] and (i == i[0]).all():
            np.take(self._elapsed_table[i[0]], self._last_idx, out=obs[:, 0:k], mode="clip")
        else:
            flat = self._elapsed_table.reshape(-1)
            np.take(flat, i[:, None] * (h + 2) + self._last_idx, out=obs[:, 0:k], mode="clip")
        obs[:, -1] = self._frac_table[i]  # last column (variants add item blocks)
        return obs.copy()

    def episode_metrics(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        steps = np.maximum(self.t[idx], 1)
        return {
            "exam_recall": self.exam[idx].copy(),
            "final_mean_recall_prob": self.mean_p[idx].copy(),
            "mean_recall": self.sum_mean_p[idx] / steps,
            "items_never_reviewed": (~self.seen[idx]).sum(axis=1).astype(np.float64),
            "accuracy": self.n_correct[idx] / steps,
        }

    def describe(self, i: int) -> str:
        p = self.recall_matrix(self.times[[min(int(self.t[i]), self.horizon)]], np.asarray([i]))[0]
        bars = "".join(" .:-=+*#%@"[min(int(x * 10), 9)] if s else "_" for x, s in zip(p, self.seen[i]))
        now = self.times[min(int(self.t[i]), self.horizon)]
        return (
            f"t={int(self.t[i])}/{self.horizon} day {now:.2f} recall [{bars}] "
            f"mean={float((p * self.exam_weights()[i]).sum()):.2f} reviews={int(self.n_reviews[i].sum())}"
        )
