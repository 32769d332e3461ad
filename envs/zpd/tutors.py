"""Tutors of ZPD-v0: a difficulty staircase, ZPDES (Clement et al. 2015) and a privileged planner.

The staircase and ZPDES see only observations (plus the course layout from
``dynamics.config()``) and work on single and vector envs through
:class:`envs.tutors.Tutor`. They read the item just attempted from the observation
(one-hot skill, level) rather than remembering their own action, so they stay right when
a vector env ignores the action of a finished sub-env. The planner reads the hidden state
(see :class:`PlannerTutor`): an upper bound for evaluation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy.special import expit, logit

from envs.core import check_float, check_int
from envs.tutors import Tutor, register_tutor

ENV_ID = "MetaTutor/ZPD-v0"
SKILL_ORDERS = ("round_robin", "lowest_success")


class _ZPDTutor(Tutor):
    """Decodes the ZPD-v0 observation: which item was attempted and whether it was right."""

    def __init__(self, env: Any, seed: int | None = 0) -> None:
        super().__init__(env, seed=seed)
        cfg = self.dynamics.config()
        self.n_skills = int(cfg["n_skills"])
        self.n_levels = int(cfg["n_levels"])
        self.lay = cfg["observation_layout"]

    def _last_item(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, skill, level, correct)`` of the students that have answered an item."""
        onehot = obs[:, self.lay["last_skill"]]
        rows = np.flatnonzero(onehot.max(axis=1) > 0.5)
        skill = onehot[rows].argmax(axis=1)
        level = np.rint(obs[rows, self.lay["last_level"]] * (self.n_levels - 1)).astype(np.int64)
        correct = obs[rows, self.lay["last_correct"]] > 0.5
        return rows, skill, level, correct


class StaircaseTutor(_ZPDTutor):
    """Adaptive staircase: per skill, one level up after ``up_after`` successes in a row on
    that skill, one level down after a failure (``up_after=1`` tracks P(correct) ≈ ½,
    ``up_after=2`` ≈ 0.71, Levitt 1971). Skills are taken in turn (``"round_robin"``) or
    the one with the lowest observed recent success rate first (``"lowest_success"``,
    ties to the least practised).
    """

    name = "staircase"

    def __init__(
        self,
        env: Any,
        seed: int | None = 0,
        skill_order: str = "round_robin",
        start_level: int = 0,
        up_after: int = 1,
    ) -> None:
        super().__init__(env, seed=seed)
        if skill_order not in SKILL_ORDERS:
            raise ValueError(f"skill_order must be one of {list(SKILL_ORDERS)}, got {skill_order!r}")
        self.skill_order = skill_order
        self.start_level = check_int("start_level", start_level, 0, self.n_levels - 1)
        self.up_after = check_int("up_after", up_after, 1)

    def _init_memory(self, n: int) -> None:
        self.level = np.full((n, self.n_skills), self.start_level, dtype=np.int64)
        self.wins = np.zeros((n, self.n_skills), dtype=np.int64)
        self.next_skill = np.zeros(n, dtype=np.int64)

    def _start_episode(self, idx: np.ndarray) -> None:
        self.level[idx] = self.start_level
        self.wins[idx] = 0
        self.next_skill[idx] = 0

    def _act(self, obs: np.ndarray) -> np.ndarray:
        rows, skill, level, correct = self._last_item(obs)
        wins = np.where(correct, self.wins[rows, skill] + 1, 0)
        up = wins >= self.up_after
        step = np.where(up, 1, np.where(correct, 0, -1))
        self.level[rows, skill] = np.clip(level + step, 0, self.n_levels - 1)
        self.wins[rows, skill] = np.where(up, 0, wins)

        if self.skill_order == "round_robin":
            chosen = self.next_skill.copy()
            self.next_skill = (self.next_skill + 1) % self.n_skills
        else:
            # attempts (≤ 1) scaled far below the smallest gap between two success rates
            score = obs[:, self.lay["success_rate"]] + 1e-6 * obs[:, self.lay["attempts"]]
            chosen = score.argmin(axis=1)
        return chosen * self.n_levels + self.level[np.arange(len(obs)), chosen]


class ZPDESTutor(_ZPDTutor):
    """ZPDES (Clement, Roy, Oudeyer & Lopes 2015): a bandit over (skill, level) arms that
    prefers the arm with the highest recent *learning progress* inside a zone of
    proximal development that moves up as the student succeeds.

    * Learning progress of an arm, after each of its answers: the success rate of the
      newer half of its last ``2d`` answers minus that of the older half (of its last
      ``2·⌊m/2⌋`` answers while it has only ``m < 2d``; none before the second answer).
    * Arm weight: ``w ← beta · w + (1 − beta) · progress`` at each such update, starting
      from the optimistic ``w0`` so that every arm in the zone gets tried.
    * Choice: with probability ``gamma`` a uniformly random active arm, otherwise an
      active arm drawn with probability ∝ ``max(w, 0) + floor``.
    * Zone, per skill a range of active levels ``[lo, hi]`` starting at ``[0, 1]``: when
      the last ``d`` answers at level ``hi`` reach a success rate of ``promote``, level
      ``hi + 1`` opens; when those at ``lo`` reach ``master``, level ``lo`` closes
      (mastered). Optionally (``demote``, off by default; not in ZPDES) level ``hi > lo``
      closes again when its last ``d`` answers fall to a success rate of ``demote``.
    """

    name = "zpdes"

    def __init__(
        self,
        env: Any,
        seed: int | None = 0,
        d: int = 3,
        gamma: float = 0.2,
        beta: float = 0.5,
        w0: float = 0.5,
        floor: float = 0.05,
        promote: float = 0.7,
        master: float = 0.9,
        demote: float | None = None,
    ) -> None:
        super().__init__(env, seed=seed)
        self.d = check_int("d", d, 1, 1000)
        self.gamma = check_float("gamma", gamma, 0.0, 1.0)
        self.beta = check_float("beta", beta, 0.0, 1.0)
        self.w0 = check_float("w0", w0, 0.0, 1.0)
        self.floor = check_float("floor", floor, 1e-9, 1.0)  # > 0: every active arm stays possible
        self.promote = check_float("promote", promote, 0.0, 1.0)
        self.master = check_float("master", master, 0.0, 1.0)
        # -1: no success rate is ever that low, so demotion is off
        self.demote = -1.0 if demote is None else check_float("demote", demote, 0.0, 1.0)

    def _init_memory(self, n: int) -> None:
        k, lv = self.n_skills, self.n_levels
        self.hist = np.zeros((n, k, lv, 2 * self.d), dtype=np.float64)  # newest last
        self.count = np.zeros((n, k, lv), dtype=np.int64)
        self.w = np.full((n, k, lv), self.w0)
        self.lo = np.zeros((n, k), dtype=np.int64)
        self.hi = np.full((n, k), min(1, lv - 1), dtype=np.int64)

    def _start_episode(self, idx: np.ndarray) -> None:
        self.hist[idx] = 0.0
        self.count[idx] = 0
        self.w[idx] = self.w0
        self.lo[idx] = 0
        self.hi[idx] = min(1, self.n_levels - 1)

    def _recent_rate(self, rows: np.ndarray, skill: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Success rate of the last ``d`` answers of arm (skill, level) (0 if none)."""
        n = np.minimum(self.count[rows, skill, level], self.d)
        return self.hist[rows, skill, level, -self.d :].sum(axis=-1) / np.maximum(n, 1)

    def _progress(self, rows: np.ndarray, skill: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Newer-half minus older-half success rate of the arm's last answers (0 if < 2)."""
        two_d = 2 * self.d
        half = np.minimum(self.count[rows, skill, level], two_d) // 2
        cs = np.zeros((len(rows), two_d + 1))
        cs[:, 1:] = np.cumsum(self.hist[rows, skill, level], axis=1)
        r = np.arange(len(rows))
        newer = cs[:, two_d] - cs[r, two_d - half]
        older = cs[r, two_d - half] - cs[r, two_d - 2 * half]
        return (newer - older) / np.maximum(half, 1)

    def _update_zone(self, rows: np.ndarray, skill: np.ndarray, level: np.ndarray) -> None:
        enough = self.count[rows, skill, level] >= self.d
        rate = self._recent_rate(rows, skill, level)
        lo, hi = self.lo[rows, skill], self.hi[rows, skill]
        at_hi, at_lo = enough & (level == hi), enough & (level == lo)
        open_next = at_hi & (rate >= self.promote) & (hi < self.n_levels - 1)
        close_hi = at_hi & (rate <= self.demote) & (hi > lo)
        close_lo = at_lo & (rate >= self.master) & (lo < hi)
        self.hi[rows, skill] = hi + open_next - close_hi
        self.lo[rows, skill] = lo + close_lo

    def _act(self, obs: np.ndarray) -> np.ndarray:
        rows, skill, level, correct = self._last_item(obs)
        if len(rows):
            h = self.hist[rows, skill, level]
            self.hist[rows, skill, level] = np.concatenate([h[:, 1:], correct[:, None]], axis=1)
            self.count[rows, skill, level] += 1
            w = self.w[rows, skill, level]
            updated = self.beta * w + (1.0 - self.beta) * self._progress(rows, skill, level)
            self.w[rows, skill, level] = np.where(self.count[rows, skill, level] >= 2, updated, w)
            self._update_zone(rows, skill, level)

        n, k, lv = len(obs), self.n_skills, self.n_levels
        levels = np.arange(lv)
        active = (levels >= self.lo[..., None]) & (levels <= self.hi[..., None])
        weight = np.where(active, np.maximum(self.w, 0.0) + self.floor, 0.0).reshape(n, k * lv)
        explore = self.rng.random(n) < self.gamma
        weight = np.where(explore[:, None], active.reshape(n, k * lv).astype(np.float64), weight)
        cum = np.cumsum(weight, axis=1)
        u = self.rng.random(n) * cum[:, -1]
        return (cum <= u[:, None]).sum(axis=1)


class PlannerTutor(_ZPDTutor):
    """Privileged planner (an upper bound, not a deployable tutor): reads the true ability
    ``θ``, engagement, failure run and profile from the env's dynamics.

    Rule, per student and step:

    * the item (skill, level) of largest expected ability gain, ``argmax learn_rate ·
      exp(−(θ_k − b_l − logit(sweet_spot))² / (2 zpd_width²))`` – the level closest to the
      student's own sweet spot, on the skill where that level fits best;
    * unless one more failure would bring the engagement within ``margin`` of the quit
      threshold (``E − frustration · (F + 1) < quit_threshold + margin``): then the item
      most likely answered correctly that is not trivially easy (``p < easy_threshold``,
      so a success restores engagement instead of boring), or the least easy item if
      every item is trivially easy.

    It looks one step ahead only, so it is not the optimal policy. ``margin=0.2`` was
    chosen on 2000 ``val`` students (0.0 … 0.3 all within 0.08 of each other); the
    measured returns are in ``docs/zpd.md``.
    """

    name = "planner"
    privileged = True

    def __init__(self, env: Any, seed: int | None = 0, margin: float = 0.2) -> None:
        super().__init__(env, seed=seed)
        self.margin = check_float("margin", margin, 0.0, 1.0)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        d = self.dynamics
        n = len(obs)
        x = d.theta[:, :, None] - d.difficulties[None, None, :]  # (n, K, L): θ_k − b_l
        centre = logit(d.p["sweet_spot"])[:, None, None]
        width = d.p["zpd_width"][:, None, None]
        gain = np.exp(-0.5 * ((x - centre) / width) ** 2).reshape(n, -1)  # × learn_rate: same argmax
        p = expit(x).reshape(n, -1)
        best = gain.argmax(axis=1)
        safest = np.where(p < d.easy_threshold, p, -1.0 - p).argmax(axis=1)
        risky = d.engagement - d.p["frustration"] * (d.fail_run + 1) < d.quit_threshold + self.margin
        return np.where(risky, safest, best)


register_tutor(ENV_ID, "staircase", StaircaseTutor)
register_tutor(ENV_ID, "staircase_lowest", functools.partial(StaircaseTutor, skill_order="lowest_success"))
register_tutor(ENV_ID, "zpdes", ZPDESTutor)
register_tutor(ENV_ID, "planner", PlannerTutor)
