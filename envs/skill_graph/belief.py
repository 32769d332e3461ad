"""Exact Bayesian filter over a SkillGraph-v0 student's hidden mastery, given the profile.

A tutor who knew the student's profile (``learn``, ``content_affinity``, ``slip``,
``guess``, ``forget``, ``prior``) but, like every real tutor, not the mastery itself,
would track the posterior over the joint mastery state ``M ∈ {0, 1}^K`` from its own
actions and the quiz answers. Skills interact through the prerequisite gate, so the
posterior does not factorise over skills; with ``K ≤ MAX_SKILLS`` the ``2^K`` joint
states are enumerated and the filter is exact. One step, for the action (skill ``k``,
mode ``m``), follows the model in :mod:`envs.skill_graph.dynamics` in its order:

1. quiz evidence (mastery before the step's changes):
   ``b(s) ∝ b(s) · P(answer | s)``, with ``P(correct | s) = 1 − slip`` if ``s_k = 1``
   else ``guess``;
2. learning (teach only): from every state with ``s_k = 0`` the mass
   ``b(s) · learn_k · content_affinity_m · g_k(s)`` moves to ``s + e_k``, where
   ``g_k(s) = 1`` if every prerequisite of ``k`` is mastered in ``s``, else
   ``prereq_penalty``;
3. forgetting: for every skill ``l ≠ k`` independently, the mass of each state with
   ``s_l = 1`` moves to ``s − e_l`` with probability ``forget``.

Learning only changes bit ``k`` and forgetting only the other bits, each drawn given the
pre-step state, so applying 2 then 3 to the joint distribution is exact.
"""

from __future__ import annotations

import numpy as np

#: joint states are enumerated: 2^12 = 4096 per student is the most we allow
MAX_SKILLS = 12


class MasteryFilter:
    """Posterior over the joint mastery of a batch of students with known profiles.

    Beliefs are arrays ``(n, 2^K)``: ``belief[i, s]`` is the probability that student
    ``i``'s mastery is the bit pattern ``s`` (bit ``k`` = skill ``k``).
    """

    def __init__(self, prerequisites: np.ndarray, prereq_penalty: float, n_content: int) -> None:
        prereq = np.asarray(prerequisites, dtype=bool)
        k = len(prereq)
        if prereq.shape != (k, k):
            raise ValueError(f"prerequisites must be a square matrix, got shape {prereq.shape}")
        if not 1 <= k <= MAX_SKILLS:
            raise ValueError(
                f"the exact mastery filter enumerates 2^n_skills states: n_skills must be in "
                f"1..{MAX_SKILLS}, got {k}"
            )
        self.n_skills, self.n_content = k, int(n_content)
        self.n_states = 1 << k
        states = np.arange(self.n_states)
        #: bits[s, k]: skill k is mastered in state s
        self.bits = ((states[:, None] >> np.arange(k)) & 1).astype(bool)
        #: ready[s, k]: every prerequisite of k is mastered in state s
        self.ready = ~(prereq[None, :, :] & ~self.bits[:, None, :]).any(axis=2)
        self.gate = np.where(self.ready, 1.0, float(prereq_penalty))
        self._states = states

    def initial(self, prior: np.ndarray) -> np.ndarray:
        """Belief at the start of an episode: skills mastered independently with ``prior``."""
        prior = np.asarray(prior, dtype=np.float64)
        per_skill = np.where(self.bits[None], prior[:, None, :], 1.0 - prior[:, None, :])
        return per_skill.prod(axis=2)

    def update(
        self,
        belief: np.ndarray,
        skill: np.ndarray,
        mode: np.ndarray,
        correct: np.ndarray,
        profile: dict[str, np.ndarray],
    ) -> np.ndarray:
        """Belief after one step with action ``(skill, mode)`` per student.

        ``correct`` is the quiz answer (ignored for teaching actions); ``profile`` holds
        the arrays ``learn (n, K)``, ``content_affinity (n, C)``, ``slip``, ``guess``,
        ``forget`` ``(n,)``. Raises ``ValueError`` if an answer has probability 0 under
        the belief (the profile cannot be the student's).
        """
        n, c = len(belief), self.n_content
        rows = np.arange(n)
        skill = np.asarray(skill, dtype=np.int64)
        mode = np.asarray(mode, dtype=np.int64)
        quiz = mode == c
        has_k = self.bits[:, skill].T  # (n, S)

        p_correct = np.where(has_k, 1.0 - profile["slip"][:, None], profile["guess"][:, None])
        lik = np.where(np.asarray(correct, dtype=bool)[:, None], p_correct, 1.0 - p_correct)
        b = belief * np.where(quiz[:, None], lik, 1.0)
        z = b.sum(axis=1, keepdims=True)
        if not np.all(z > 0.0):
            bad = np.flatnonzero(z[:, 0] <= 0.0).tolist()
            raise ValueError(f"quiz answers impossible under the given profiles (students {bad})")
        b = b / z

        p_learn = profile["learn"][rows, skill] * profile["content_affinity"][rows, np.minimum(mode, c - 1)]
        q = np.where(~has_k & ~quiz[:, None], p_learn[:, None] * self.gate[:, skill].T, 0.0)
        moved = b * q
        src = self._states[None, :] ^ (1 << skill)[:, None]  # s − e_k for the states with s_k = 1
        b = b - moved + np.where(has_k, np.take_along_axis(moved, src, axis=1), 0.0)

        for lost in range(self.n_skills):
            f = np.where(skill == lost, 0.0, profile["forget"])[:, None]
            has = self.bits[:, lost]
            src = self._states ^ (1 << lost)
            b = np.where(has, b * (1.0 - f), b + b[:, src] * f)
        return b

    def marginals(self, belief: np.ndarray) -> np.ndarray:
        """``P(M_k = 1)`` per student and skill, ``(n, K)``."""
        return belief @ self.bits.astype(np.float64)

    def expected_learning(self, belief: np.ndarray) -> np.ndarray:
        """``E[g_k(M) · 1{M_k = 0}]`` per student and skill ``(n, K)``: times ``learn_k ·
        affinity`` it is the chance that teaching ``k`` now makes it mastered."""
        return belief @ (self.gate * ~self.bits)
