"""Heuristic tutors for SkillGraph-v0: mastery learning in prerequisite order.

:class:`MasteryThresholdTutor` is the classic mastery-learning loop of intelligent
tutoring systems: take the skills in prerequisite (topological) order; teach the
current skill, then quiz it; after ``k_correct`` correct answers in a row move on,
after a wrong answer teach it again. Once every skill has been passed it keeps
quizzing skills in order and re-teaches any skill answered wrongly (forgetting).

The content type of each teaching action is chosen either round-robin or by observed
success: a teaching action with content ``j`` followed by a correct quiz of that
skill counts as a success of ``j``, and the tutor picks the content with the highest
posterior mean ``(successes + 1) / (attempts + 2)`` (ties broken at random). Only
observations are used; the tutor knows the course (skills, content types, graph),
never the student.

:class:`PlannerTutor` is privileged: it reads the hidden mastery and the profile, as an
upper bound for evaluation. :class:`BeliefPlannerTutor` reads only the profile: it
tracks the hidden mastery with an exact Bayes filter (:mod:`envs.skill_graph.belief`), as
a tutor who knew the student's parameters could.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.skill_graph.belief import MasteryFilter
from envs.skill_graph.dynamics import topological_order
from envs.tutors import Tutor, register_tutor

ENV_ID = "MetaTutor/SkillGraph-v0"
#: what the belief planner's filter reads of the profile each step (``prior`` at resets)
PROFILE_FIELDS = ("learn", "content_affinity", "slip", "guess", "forget")


class MasteryThresholdTutor(Tutor):
    """Mastery learning: teach, quiz, advance after ``k_correct`` correct answers in a row."""

    name = "mastery_threshold"

    def __init__(self, env: Any, seed: int | None = 0, k_correct: int = 2, content: str = "success") -> None:
        super().__init__(env, seed)
        if content not in ("success", "round_robin"):
            raise ValueError(f"content must be 'success' or 'round_robin', got {content!r}")
        if not isinstance(k_correct, int) or k_correct < 1:
            raise ValueError(f"k_correct must be a positive integer, got {k_correct!r}")
        cfg = self.dynamics.config()
        self.k, self.c = cfg["n_skills"], cfg["n_content"]
        self.order = np.asarray(topological_order(cfg["prerequisites"]), dtype=np.int64)
        self.k_correct = k_correct
        self.content_rule = content

    def _init_memory(self, n: int) -> None:
        self.pos = np.zeros(n, dtype=np.int64)  # index into self.order; >= K means reviewing
        self.review = np.zeros(n, dtype=np.int64)
        self.streak = np.zeros(n, dtype=np.int64)
        self.needs_teach = np.ones(n, dtype=bool)  # new skill to learn, or a wrong answer
        self.last_skill = np.full(n, -1, dtype=np.int64)
        self.last_quiz = np.zeros(n, dtype=bool)
        self.credit = np.full(n, -1, dtype=np.int64)  # content of the last teaching, awaiting a quiz
        self.attempts = np.zeros((n, self.c))
        self.successes = np.zeros((n, self.c))
        self.rr = np.zeros(n, dtype=np.int64)

    def _start_episode(self, idx: np.ndarray) -> None:
        for arr, value in (
            (self.pos, 0),
            (self.review, 0),
            (self.streak, 0),
            (self.needs_teach, True),
            (self.last_skill, -1),
            (self.last_quiz, False),
            (self.credit, -1),
            (self.attempts, 0.0),
            (self.successes, 0.0),
            (self.rr, 0),
        ):
            arr[idx] = value

    def _target(self) -> np.ndarray:
        reviewing = self.pos >= self.k
        return np.where(
            reviewing, self.order[self.review % self.k], self.order[np.minimum(self.pos, self.k - 1)]
        )

    def _observe_answers(self, obs: np.ndarray) -> None:
        rows = np.flatnonzero(self.last_quiz)
        if len(rows) == 0:
            return
        skill = self.last_skill[rows]
        correct = obs[rows, 3 * self.k + skill] > 0.5
        credited = rows[correct & (self.credit[rows] >= 0)]
        self.successes[credited, self.credit[credited]] += 1
        self.credit[rows] = -1
        self.streak[rows] = np.where(correct, self.streak[rows] + 1, 0)
        self.needs_teach[rows[~correct]] = True
        reviewing = self.pos[rows] >= self.k
        # learning phase: advance after k_correct in a row; review phase: move on after one
        need = np.where(reviewing, 1, self.k_correct)
        done = rows[self.streak[rows] >= need]
        self.streak[done] = 0
        was_learning = self.pos[done] < self.k
        self.pos[done[was_learning]] += 1
        self.review[done[~was_learning]] += 1
        # a new skill to learn is taught first; a skill under review is quizzed first
        self.needs_teach[done] = self.pos[done] < self.k

    def _choose_content(self, rows: np.ndarray) -> np.ndarray:
        if self.content_rule == "round_robin":
            content = self.rr[rows] % self.c
            self.rr[rows] += 1
            return content
        score = (self.successes[rows] + 1.0) / (self.attempts[rows] + 2.0)
        score = score + 1e-9 * self.rng.random(score.shape)  # random tie-break
        return np.argmax(score, axis=1)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        self._observe_answers(obs)
        target = self._target()
        teach = self.needs_teach.copy()
        action = target * (self.c + 1) + self.c  # quiz by default
        rows = np.flatnonzero(teach)
        if len(rows):
            content = self._choose_content(rows)
            action[rows] = target[rows] * (self.c + 1) + content
            self.attempts[rows, content] += 1
            self.credit[rows] = content
            self.needs_teach[rows] = False
        self.last_skill = target
        self.last_quiz = ~teach
        return action


class PlannerTutor(Tutor):
    """Privileged planner (an upper bound, not a deployable tutor): reads the true hidden
    mastery and the profile (``learn``, ``content_affinity``) from the env's dynamics.

    Rule, per student and step: among the unmastered skills whose prerequisites are all
    mastered (there is one whenever a skill is unmastered), teach the one most likely to
    be learned now, ``learn_k · max_j content_affinity_j`` (ties: the lower index), with
    the content type ``j`` the student learns best from. Teaching a skill whose
    prerequisites are missing is ``prereq_penalty`` times less effective, a quiz teaches
    nothing, so this maximises the expected gain of the step. Once every skill is
    mastered it quizzes skill 0 (practising a skill keeps it from being forgotten in that
    step; all skills are forgotten at the same rate). It never quizzes to find out: it
    knows. It looks one step ahead only.

    Evaluation setting (4 skills in a chain, 3 content types, horizon 30), 80 students ×
    10 episodes, skills gained: ``test`` 3.39 (best heuristic ``mastery_threshold``
    1.39), ``ood`` 1.65 (0.17).

    It is *omniscient* (``Tutor.omniscient``): mastery is sampled, so no tutor can know it
    from the observations even with the true profile (:class:`BeliefPlannerTutor` plans
    without seeing it); evaluation shows it but never takes it as the default oracle
    reference.
    """

    name = "planner"
    privileged = True
    omniscient = True

    def _act(self, obs: np.ndarray) -> np.ndarray:
        d = self.dynamics
        c = d.n_content
        mastered = d.mastered_km.T  # (n, K)
        # ready[i, k]: every prerequisite l of k (prereq[k, l]) is mastered by student i
        ready = ~(d.prereq[None, :, :] & ~mastered[:, None, :]).any(axis=2)
        affinity = d.p["content_affinity"]
        chance = d.p["learn"] * affinity.max(axis=1, keepdims=True)
        score = np.where(~mastered & ready, chance, -1.0)
        skill = score.argmax(axis=1)
        teach = score.max(axis=1) >= 0.0
        mode = np.where(teach, affinity.argmax(axis=1), c)
        return np.where(teach, skill, 0) * (c + 1) + mode


class BeliefPlannerTutor(Tutor):
    """Privileged planner that knows the student's profile but not their mastery: a
    planner with the true profile, a reference for what a tutor can reach once it has
    identified the student.

    It keeps the exact posterior over the joint mastery (:class:`MasteryFilter`, from
    its own actions and the quiz answers in the observation) and, per step, teaches the
    skill and content of largest expected gain of mastered skills in the step,
    ``learn_k · max_j content_affinity_j · E[g_k(M) · 1{M_k = 0}] + forget · P(M_k = 1)``
    (the second term: practising a mastered skill keeps it from being forgotten; ties:
    the lower index), with the content type the student learns best from. A quiz teaches
    nothing and protects no more than teaching, so it never quizzes: it looks one step
    ahead and does not value information. It reads ``learn``, ``content_affinity``,
    ``slip``, ``guess``, ``forget`` and ``prior`` from the env's dynamics, never the
    mastery.
    """

    name = "belief_planner"
    privileged = True

    def __init__(self, env: Any, seed: int | None = 0) -> None:
        super().__init__(env, seed)
        d = self.dynamics
        self.k, self.c = d.n_skills, d.n_content
        self.filter = MasteryFilter(d.prereq, d.prereq_penalty, d.n_content)

    def _init_memory(self, n: int) -> None:
        self.belief = np.zeros((n, self.filter.n_states))
        self.last_action = np.full(n, -1, dtype=np.int64)
        self.tracking = np.zeros(n, dtype=bool)  # seen this episode from its first step

    def _start_episode(self, idx: np.ndarray) -> None:
        self.belief[idx] = self.filter.initial(self.dynamics.p["prior"][idx])
        self.last_action[idx] = -1
        self.tracking[idx] = True

    def _act(self, obs: np.ndarray) -> np.ndarray:
        if not self.tracking.all():
            late = np.flatnonzero(~self.tracking).tolist()
            raise ValueError(
                f"{self.name} tracks mastery from the first step of an episode: students {late} are "
                "mid-episode (reset the env, then call tutor.reset())"
            )
        p = self.dynamics.p
        rows = np.flatnonzero(self.last_action >= 0)
        if len(rows):
            skill, mode = np.divmod(self.last_action[rows], self.c + 1)
            correct = obs[rows, 3 * self.k + skill] > 0.5
            profile = {name: p[name][rows] for name in PROFILE_FIELDS}
            self.belief[rows] = self.filter.update(self.belief[rows], skill, mode, correct, profile)
        affinity = p["content_affinity"]
        best_affinity = affinity.max(axis=1, keepdims=True)
        learn_now = self.filter.expected_learning(self.belief) * p["learn"] * best_affinity
        value = learn_now + p["forget"][:, None] * self.filter.marginals(self.belief)
        action = value.argmax(axis=1) * (self.c + 1) + affinity.argmax(axis=1)
        self.last_action = action.astype(np.int64)
        return action


register_tutor(ENV_ID, "mastery_threshold", MasteryThresholdTutor)
register_tutor(
    ENV_ID,
    "mastery_threshold_rr",
    lambda env, seed=0, **kw: MasteryThresholdTutor(env, seed=seed, content="round_robin", **kw),
)
register_tutor(ENV_ID, "planner", PlannerTutor)
register_tutor(ENV_ID, "belief_planner", BeliefPlannerTutor)
