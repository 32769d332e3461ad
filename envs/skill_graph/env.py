"""Gymnasium front ends of SkillGraph-v0 (the model lives in ``dynamics.py``)."""

from __future__ import annotations

from envs.core import StudentEnv, StudentVectorEnv
from envs.skill_graph.dynamics import SkillGraphDynamics


class SkillGraphEnv(StudentEnv):
    """
    ## Description

    A tutor teaches one student ``n_skills`` skills linked by a prerequisite graph.
    The student is a Bayesian-Knowledge-Tracing learner: each skill is either
    mastered or not; teaching may make it mastered, quizzes reveal it noisily
    (slip and guess), and unpractised skills are forgotten. How fast the student
    learns, and *which kind of content* works for them, are hidden in the student's
    profile (:class:`envs.skill_graph.profile.SkillGraphProfile`); a good tutor
    discovers them from quiz outcomes. The model:

    * Teach skill ``k`` with content ``j``: an unmastered skill becomes mastered with
      probability ``learn_k · content_affinity_j · g_k``, where ``g_k = 1`` if all
      prerequisites of ``k`` are mastered and ``prereq_penalty`` (default 0.1) otherwise.
    * Quiz skill ``k``: correct with probability ``1 − slip`` if mastered, ``guess`` if not.
    * Forgetting: every mastered skill not taught or quizzed in the step is lost with
      probability ``forget``.

    By default the 4 skills form a chain ``0 → 1 → 2 → 3`` (the setting the shipped
    training config ``meta_rl/configs/skill_graph.yaml`` trains on). The level graph
    ``prerequisites="default"`` for 8 skills is ``0 → {1, 2} → 3 → {4, 5} → 6 → 7``
    (each skill needs every skill of the previous level; levels have widths 1, 2, 1, 2, …).

    ## Action Space

    ``Discrete(n_skills · (n_content + 1))``. Action ``a`` means skill
    ``k = a // (n_content + 1)`` and mode ``m = a % (n_content + 1)``: ``m < n_content``
    teaches ``k`` with content type ``m`` (e.g. worked example, practice problem,
    video); ``m = n_content`` quizzes ``k``. ``action_nvec = (n_skills, n_content + 1)``
    declares this factorisation for policies with one head per factor.

    ## Observation Space

    ``Box(0, 1, (5 · n_skills + 1,), float32)`` – only what a real tutor sees:

    | index | meaning |
    |---|---|
    | ``[0, K)`` | times each skill was taught / horizon |
    | ``[K, 2K)`` | times each skill was quizzed / horizon |
    | ``[2K, 3K)`` | 1 if the skill was ever quizzed |
    | ``[3K, 4K)`` | 1 if the last quiz of the skill was answered correctly |
    | ``[4K, 5K)`` | steps since the last quiz of the skill / horizon (1 if never) |
    | ``5K`` | elapsed steps / horizon |

    Never the hidden mastery or the profile.

    ## Rewards

    ``reward_mode="gain"`` (default): change in the number of mastered skills in the step
    (forgetting makes it negative; a simulator-side dense signal).
    ``"posttest"``: 0 until the last step, then the fraction of skills mastered.
    ``"quiz"``: 1 for a correct quiz answer, else 0 (only observable signals).
    ``time_cost`` (default 0) is subtracted every step.

    ## Starting State

    Each skill is mastered with probability ``prior_k``; all counters are zero. Without
    a fixed task, each reset draws a new student from the ``train`` split.

    ## Episode End

    The episode *terminates* after ``horizon`` steps (default 30): the session length
    is part of the task and elapsed time is observed, so no bootstrapping beyond it.
    ``info`` at the end carries ``posttest`` (fraction mastered), ``learning_gain``
    (fraction mastered minus fraction at start), ``steps_to_mastery`` (first step at
    which every skill was mastered, NaN if never), ``all_mastered`` and ``n_quizzes``.

    ## Arguments

    ```python
    gym.make("MetaTutor/SkillGraph-v0", n_skills=4, n_content=3, horizon=30,
             prerequisites="chain", graph_seed=None, prereq_penalty=0.1,
             reward_mode="gain", time_cost=0.0, render_mode=None)
    ```

    ``prerequisites``: ``"default"``, ``"chain"``, ``"none"``, ``"random"`` (with
    ``graph_seed``) or a list of ``(prerequisite, skill)`` pairs (must be acyclic).
    The student is set with ``reset(options={"profile": {...}})`` or
    ``env.unwrapped.set_task(profile)``.
    """

    dynamics_cls = SkillGraphDynamics


class SkillGraphVectorEnv(StudentVectorEnv):
    """Native vector version of :class:`SkillGraphEnv` (same arguments plus ``num_envs``)."""

    dynamics_cls = SkillGraphDynamics
