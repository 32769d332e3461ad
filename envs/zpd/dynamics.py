"""ZPD-v0 student model: item-response practice in a zone of proximal development, vectorised.

Notation for student ``i`` (profile fields in ``envs.zpd.profile``): ``θ_k`` ability on
skill ``k`` (logits), ``E ∈ [0, 1]`` engagement, ``b_l`` difficulty of level ``l``,
``σ(x) = 1 / (1 + e^{−x})``. Action ``a`` decodes to skill ``k = a // L`` and level
``l = a % L`` (``L = n_levels``). One step is one attempt at an item of skill ``k`` and
level ``l``:

* Answer:   ``p = σ(θ_k − b_l)`` (Rasch model); correct iff ``u₀ < p``.
* Learning: ``θ_k += learn_rate · exp(−(θ_k − b_l − logit(sweet_spot))² / (2 zpd_width²))``,
  i.e. the gain is largest when ``p = sweet_spot`` and small for far too easy or far too
  hard items. It uses ``θ_k`` before the step and does not depend on the outcome.
* Runs:     ``F`` (failures in a row, this one included; 0 after a success) and ``B``
  (items in a row with ``p ≥ easy_threshold``, this one included; 0 otherwise).
* Engagement, with ``easy = p ≥ easy_threshold``::

      E ← clip(E − frustration · F − boredom · B · easy
                 + recovery · (1 − E) · [correct ∧ ¬easy], 0, 1)

* Quitting: after the update, the student quits if ``E < quit_threshold``.
* Response time (seconds), from the engagement *during* the attempt::

      RT = RT_BASE · exp(RT_DIFFICULTY · (1 − p) − RT_DISENGAGED · (1 − E) + RT_NOISE · z)

  with ``z = Φ⁻¹(u₁)`` standard normal: harder items take longer, disengaged students
  rush (rapid guessing).
* Post-test: ``mean_{k, l} σ(θ_k − b_l)`` – the expected score on a fixed test of one
  item per skill and level (no sampling noise).

All draws for a step come from the student's own counter-based stream (``envs.rng``):
column 0 decides the answer, column 1 the response-time noise. The start of an
episode is deterministic given the profile (``θ = ability0``, ``E = engagement0``).
A student whose episode has ended (quit or horizon) is frozen: further steps change
nothing and give reward 0, so a vector env may step it once before its autoreset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.special import expit, logit, ndtri

from envs.core import StudentDynamics, check_choice, check_float, check_int, frac_table
from envs.zpd.profile import ZPDDistribution, ZPDProfile

REWARD_MODES = ("gain", "posttest", "correct")
#: response-time model (seconds); see the module docstring
RT_BASE = 10.0
RT_DIFFICULTY = 1.0
RT_DISENGAGED = 1.5
RT_NOISE = 0.3
#: response times are observed as ``min(RT / RT_MAX, 1)``
RT_MAX = 60.0
#: streak lengths are observed as ``clip(streak / STREAK_MAX, −1, 1)``
STREAK_MAX = 10


def observation_layout(n_skills: int) -> dict[str, int | slice]:
    """Index (or slice) of every observation feature for ``n_skills`` skills."""
    k = n_skills
    return {
        "last_correct": 0,
        "response_time": 1,
        "last_level": 2,
        "streak": 3,
        "last_skill": slice(4, 4 + k),
        "attempts": slice(4 + k, 4 + 2 * k),
        "success_rate": slice(4 + 2 * k, 4 + 3 * k),
        "skill_level": slice(4 + 3 * k, 4 + 4 * k),
        "time": 4 + 4 * k,
    }


def check_difficulties(difficulties: Sequence[float] | None, n_levels: int) -> np.ndarray:
    """The item difficulties ``b_l``: ``None`` means ``linspace(−2.5, 2.5, n_levels)``."""
    if difficulties is None:
        return np.linspace(-2.5, 2.5, n_levels)
    if isinstance(difficulties, (str, bytes)):
        raise ValueError(f"difficulties must be a sequence of {n_levels} numbers, got {difficulties!r}")
    try:
        vals = [check_float("difficulties", v, -10.0, 10.0) for v in difficulties]
    except TypeError as e:
        raise ValueError(f"difficulties must be a sequence of {n_levels} numbers") from e
    b = np.asarray(vals, dtype=np.float64)
    if b.shape != (n_levels,):
        raise ValueError(f"difficulties must have n_levels={n_levels} entries, got {len(b)}")
    if np.any(np.diff(b) <= 0):
        raise ValueError(f"difficulties must be strictly increasing, got {vals}")
    return b


class ZPDDynamics(StudentDynamics):
    """Vectorised ZPD-v0 students; see the module docstring for the equations."""

    profile_cls = ZPDProfile
    distribution_cls = ZPDDistribution
    metric_names = ("ability_gain", "posttest", "quit", "quit_step", "final_engagement", "success_rate")

    def __init__(
        self,
        num_students: int,
        n_skills: int = 4,
        n_levels: int = 5,
        horizon: int = 50,
        difficulties: Sequence[float] | None = None,
        reward_mode: str = "gain",
        quit_penalty: float = 0.0,
        quit_threshold: float = 0.3,
        easy_threshold: float = 0.9,
        window: int = 5,
    ) -> None:
        super().__init__(num_students)
        self.n_skills = k = check_int("n_skills", n_skills, 1, 64)
        self.n_levels = lv = check_int("n_levels", n_levels, 2, 32)
        self.horizon = check_int("horizon", horizon, 1, 100_000)
        self.difficulties = check_difficulties(difficulties, lv)
        self.reward_mode = check_choice("reward_mode", reward_mode, REWARD_MODES)
        self.quit_penalty = check_float("quit_penalty", quit_penalty, 0.0, 1e6)
        self.quit_threshold = check_float("quit_threshold", quit_threshold, 0.0, 1.0)
        self.easy_threshold = check_float("easy_threshold", easy_threshold, 0.5, 1.0)
        self.window = check_int("window", window, 1, 100)
        self.action_nvec = (k, lv)
        self.single_action_space = gym.spaces.Discrete(k * lv)
        self.layout = observation_layout(k)
        self.obs_dim = 4 * k + 5
        low = np.zeros(self.obs_dim, dtype=np.float32)
        low[self.layout["streak"]] = -1.0
        self.single_observation_space = gym.spaces.Box(low, np.ones_like(low), dtype=np.float32)

        n = self.n
        self.theta = np.zeros((n, k))
        self.engagement = np.zeros(n)
        self.fail_run = np.zeros(n, dtype=np.int64)
        self.easy_run = np.zeros(n, dtype=np.int64)
        self.correct_run = np.zeros(n, dtype=np.int64)
        self.attempts = np.zeros((n, k), dtype=np.int64)
        self.history = np.zeros((n, k, self.window), dtype=bool)  # ring buffer of outcomes
        self.last_correct = np.zeros(n, dtype=bool)
        self.last_rt = np.zeros(n)
        self.last_skill = np.full(n, -1, dtype=np.int64)
        self.last_level = np.zeros(n, dtype=np.int64)
        self.skill_level = np.zeros((n, k), dtype=np.int64)
        self.n_correct = np.zeros(n, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)
        self.quit = np.zeros(n, dtype=bool)
        self.quit_step = np.full(n, -1, dtype=np.int64)
        self._rows = np.arange(n)
        self._rows_k = self._rows * k  # row offsets of flat (n, K) arrays
        # successes in each ring buffer, kept up to date as outcomes enter and leave it
        self.history_sum = np.zeros((n, k), dtype=np.int64)
        # per-profile constant logit(sweet_spot), set in _profiles_changed
        self._centre = np.zeros(n)
        # action -> (skill, level) by look-up instead of a divmod per step
        self._skill_of, self._level_of = np.divmod(np.arange(k * lv), lv)
        # Observation features that are ratios of small integers, as float32 look-up tables
        # computed with the very formulas of observe() (float64, then rounded to float32), so
        # observing is bit-identical to evaluating them: min(a / horizon, 1) for a = 0 … horizon,
        # level / (L − 1), and the window's success rate for (successes, outcomes in window).
        self._frac_table = frac_table(self.horizon)
        self._level_table = (np.arange(lv) / (lv - 1)).astype(np.float32)
        w = self.window
        succ, seen = np.meshgrid(np.arange(w + 1), np.arange(w + 1), indexing="ij")
        rate = np.where(seen > 0, succ / np.maximum(seen, 1), 0.5)
        self._rate_table = rate.astype(np.float32).reshape(-1)  # index successes · (w + 1) + seen
        self._skill_ids = np.arange(k)
        # The observation lives in a persistent buffer (observe() returns a copy). Its per-skill
        # blocks (last skill one-hot, attempts, success rate, level) change only at the skill
        # practised by each live student and at resets, so a step of a large batch updates
        # those cells alone; a small batch (a single env) rewrites the blocks at each
        # observation, which takes fewer NumPy calls there.
        self._obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        self._incremental_obs = n >= 64

    def dims(self) -> dict[str, int]:
        return {"n_skills": self.n_skills}

    def distribution(self) -> ZPDDistribution:
        return ZPDDistribution(self.n_skills)

    def config(self) -> dict[str, Any]:
        """What a heuristic tutor may know about the course (not about the student)."""
        return {
            "n_skills": self.n_skills,
            "n_levels": self.n_levels,
            "horizon": self.horizon,
            "difficulties": self.difficulties.copy(),
            "window": self.window,
            "observation_layout": dict(self.layout),
        }

    # ------------------------------------------------------------------ model
    def success_probability(self, theta: np.ndarray, level: np.ndarray) -> np.ndarray:
        """``σ(θ − b_level)`` element-wise."""
        return expit(theta - self.difficulties[level])

    def expected_gain(
        self, theta: np.ndarray, level: np.ndarray, idx: np.ndarray | None = None
    ) -> np.ndarray:
        """Ability gain of an attempt at ``level`` for students ``idx`` with ability ``theta``."""
        sel = self._rows if idx is None else idx
        centre = self._centre if idx is None else self._centre[idx]  # logit(sweet_spot)
        d = theta - self.difficulties[level] - centre
        return self.p["learn_rate"][sel] * np.exp(-0.5 * (d / self.p["zpd_width"][sel]) ** 2)

    def posttest(self, idx: np.ndarray) -> np.ndarray:
        """Expected post-test score ``mean_{k,l} σ(θ_k − b_l)`` of students ``idx``."""
        return expit(self.theta[idx][:, :, None] - self.difficulties[None, None, :]).mean(axis=(1, 2))

    def _profiles_changed(self, idx: np.ndarray) -> None:
        self._centre[idx] = logit(self.p["sweet_spot"][idx])

    def _reset_students(self, idx: np.ndarray) -> None:
        self.theta[idx] = self.p["ability0"][idx]
        self.engagement[idx] = self.p["engagement0"][idx]
        for arr in (self.fail_run, self.easy_run, self.correct_run, self.attempts, self.n_correct):
            arr[idx] = 0
        self.history[idx] = False
        self.history_sum[idx] = 0
        self.last_correct[idx] = False
        self.last_rt[idx] = 0.0
        self.last_skill[idx] = -1
        self.last_level[idx] = 0
        self.skill_level[idx] = 0
        self.done[idx] = False
        self.quit[idx] = False
        self.quit_step[idx] = -1
        if self._incremental_obs:
            self._write_skill_blocks(idx)

    def _write_skill_blocks(self, idx: np.ndarray | slice, obs: np.ndarray | None = None) -> None:
        """The per-skill observation blocks of students ``idx``, from their definition: the last
        skill one-hot (0 if none yet), min(attempts / h, 1), the success rate of the last
        min(attempts, window) outcomes (0.5 before any), skill_level / (L − 1); into ``obs``
        (rows ``idx``) or the persistent buffer."""
        lay, w = self.layout, self.window
        obs = self._obs if obs is None else obs
        obs[idx, lay["last_skill"]] = self.last_skill[idx, None] == self._skill_ids
        obs[idx, lay["attempts"]] = self._frac_table[np.minimum(self.attempts[idx], self.horizon)]
        seen = np.minimum(self.attempts[idx], w)
        obs[idx, lay["success_rate"]] = self._rate_table[self.history_sum[idx] * (w + 1) + seen]
        obs[idx, lay["skill_level"]] = self._level_table[self.skill_level[idx]]

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        skill, level = self._skill_of[actions], self._level_of[actions]
        live = ~self.done
        all_live = bool(live.all())  # the usual case: no masking needed below
        u = self.streams.uniform_t(2)
        cell = self._rows_k + skill  # flat index of (student, skill) in (n, K) arrays
        theta = self.theta.reshape(-1)[cell]
        p = self.success_probability(theta, level)
        correct = u[0] < p
        gain = self.expected_gain(theta, level)
        if not all_live:
            gain = np.where(live, gain, 0.0)

        # engagement: frustration grows with the failure run, boredom with the easy run
        e_old = self.engagement
        easy = p >= self.easy_threshold
        fail_run = np.where(correct, 0, self.fail_run + 1)
        easy_run = np.where(easy, self.easy_run + 1, 0)
        delta = (
            -self.p["frustration"] * fail_run
            - self.p["boredom"] * easy_run * easy
            + self.p["recovery"] * (1.0 - e_old) * (correct & ~easy)
        )
        e_new = np.clip(e_old + delta, 0.0, 1.0)
        z = ndtri(np.clip(u[1], 2.0**-53, 1.0 - 2.0**-53))  # clip: u = 0 would give z = −∞
        rt = RT_BASE * np.exp(RT_DIFFICULTY * (1.0 - p) - RT_DISENGAGED * (1.0 - e_old) + RT_NOISE * z)

        # frozen students (episode over) keep their state; only live ones are updated
        self.theta.reshape(-1)[cell] = theta + gain
        correct_run = np.where(correct, self.correct_run + 1, 0)
        if all_live:
            self.engagement, self.fail_run, self.easy_run, self.correct_run = (
                e_new,
                fail_run,
                easy_run,
                correct_run,
            )
            lcell, ll, lc = cell, level, correct
        else:
            self.engagement = np.where(live, e_new, e_old)
            self.fail_run = np.where(live, fail_run, self.fail_run)
            self.easy_run = np.where(live, easy_run, self.easy_run)
            self.correct_run = np.where(live, correct_run, self.correct_run)
            lcell, ll, lc = cell[live], level[live], correct[live]
        # the outcome enters the skill's ring buffer, replacing the oldest one (one cell per student)
        attempts = self.attempts.reshape(-1)
        n_att = attempts[lcell]
        slot = lcell * self.window + n_att % self.window
        history = self.history.reshape(-1)
        n_succ = self.history_sum.reshape(-1)[lcell] + (lc.astype(np.int64) - history[slot])
        self.history_sum.reshape(-1)[lcell] = n_succ
        history[slot] = lc
        attempts[lcell] = n_att + 1
        self.skill_level.reshape(-1)[lcell] = ll
        if self._incremental_obs:
            # the observation's per-skill cells that changed: the one-hot of the last skill (the
            # previous one cleared; a student with none yet clears column 0 of an all-zero block)
            lrow = self._rows if all_live else self._rows[live]
            ls = skill if all_live else skill[live]
            lay, w, o = self.layout, self.window, self._obs.reshape(-1)
            o_row = lrow * self.obs_dim
            o[o_row + (lay["last_skill"].start + np.maximum(self.last_skill[lrow], 0))] = 0.0
            o_ls = o_row + ls  # + a block's first column: the practised skill's cell in that block
            o[o_ls + lay["last_skill"].start] = 1.0
            o[o_ls + lay["attempts"].start] = self._frac_table[np.minimum(n_att + 1, self.horizon)]
            o[o_ls + lay["success_rate"].start] = self._rate_table[
                n_succ * (w + 1) + np.minimum(n_att + 1, w)
            ]
            o[o_ls + lay["skill_level"].start] = self._level_table[ll]
        if all_live:
            self.last_skill, self.last_level, self.last_correct = skill, level, correct
            self.last_rt = rt
            self.n_correct += correct
        else:
            self.last_skill[live] = skill[live]
            self.last_level[live] = ll
            self.last_correct[live] = lc
            self.last_rt[live] = rt[live]
            self.n_correct[live] += lc

        quits = live & (e_new < self.quit_threshold)
        terminated = live & (quits | (self.t + 1 >= self.horizon))
        self.quit |= quits
        np.copyto(self.quit_step, self.t, where=quits)
        self.done |= terminated

        if self.reward_mode == "gain":
            reward = gain
        elif self.reward_mode == "posttest":
            reward = np.zeros(self.n)
            ended = np.flatnonzero(terminated)
            reward[ended] = self.posttest(ended)
        else:
            reward = (correct & live).astype(np.float64)
        reward = reward - self.quit_penalty * quits
        return reward, terminated

    def observe(self) -> np.ndarray:
        lay = self.layout
        # a large batch: the per-skill blocks are kept up to date in the persistent buffer
        # (_step, _reset_students); a small one writes them here, into a fresh array
        obs = self._obs if self._incremental_obs else np.empty((self.n, self.obs_dim), dtype=np.float32)
        obs[:, lay["last_correct"]] = self.last_correct
        obs[:, lay["response_time"]] = np.minimum(self.last_rt / RT_MAX, 1.0)
        obs[:, lay["last_level"]] = self._level_table[self.last_level]  # last_level / (L − 1)
        streak = self.correct_run - self.fail_run
        obs[:, lay["streak"]] = np.clip(streak / STREAK_MAX, -1.0, 1.0)
        if not self._incremental_obs:
            self._write_skill_blocks(slice(None), obs)
        obs[:, lay["time"]] = self._frac_table[np.minimum(self.t, self.horizon)]  # min(t / h, 1)
        return obs.copy() if self._incremental_obs else obs

    def episode_metrics(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        n_att = self.attempts[idx].sum(axis=1)
        return {
            "ability_gain": (self.theta[idx] - self.p["ability0"][idx]).mean(axis=1),
            "posttest": self.posttest(idx),
            "quit": self.quit[idx].astype(np.float64),
            # NaN if the student never quit, like steps_to_mastery in SkillGraph-v0: averages
            # over students (nanmean) then give the mean quit step among those who quit
            "quit_step": np.where(self.quit[idx], self.quit_step[idx], np.nan),
            "final_engagement": self.engagement[idx].copy(),
            "success_rate": self.n_correct[idx] / np.maximum(n_att, 1),
        }

    def describe(self, i: int) -> str:
        theta = " ".join(f"{x:+.2f}" for x in self.theta[i])
        state = " QUIT" if self.quit[i] else ""
        return f"t={int(self.t[i])}/{self.horizon} E={self.engagement[i]:.2f} θ=[{theta}]{state}"
