"""Gymnasium front ends of ZPD-v0 (the model lives in ``dynamics.py``)."""

from __future__ import annotations

from envs.core import StudentEnv, StudentVectorEnv
from envs.zpd.dynamics import ZPDDynamics


class ZPDEnv(StudentEnv):
    """
    ## Description

    A tutor picks practice items for one student: which of ``n_skills`` skills, at which
    of ``n_levels`` difficulty levels. The student answers by an item-response (Rasch)
    model, learns most from items in their *zone of proximal development* (Vygotsky;
    items neither too easy nor too hard for them), and gets frustrated by runs of
    failures and bored by runs of trivially easy items – and quits when engagement
    falls too low. Where the zone lies (the success probability at which this student
    learns best), how quickly they frustrate or get bored, and where they start are
    hidden in the profile (:class:`envs.zpd.profile.ZPDProfile`); a good tutor infers
    them from answers, response times and streaks. The model, with ability ``θ_k``,
    engagement ``E``, difficulties ``b_l`` and ``σ`` the logistic function:

    * Answer: correct with probability ``p = σ(θ_k − b_l)``.
    * Learning: ``θ_k += learn_rate · exp(−(θ_k − b_l − logit(sweet_spot))² / (2 zpd_width²))``,
      largest when ``p = sweet_spot``.
    * Engagement: with ``F`` the current run of failures, ``B`` the current run of
      trivially easy items (``p ≥ easy_threshold``) and ``easy`` whether this item is one,
      ``E ← clip(E − frustration·F − boredom·B·easy + recovery·(1 − E)·[correct ∧ ¬easy], 0, 1)``.
    * Quitting: after an attempt, the student quits if ``E < quit_threshold``.
    * Response time: ``RT = 10 s · exp((1 − p) − 1.5 (1 − E) + 0.3 z)``, ``z ~ N(0, 1)``
      (``E`` during the attempt): disengaged students answer fast (rapid guessing).

    ## Action Space

    ``Discrete(n_skills · n_levels)``: action ``a`` is skill ``k = a // n_levels`` at level
    ``l = a % n_levels`` (level 0 the easiest). ``action_nvec = (n_skills, n_levels)``.
    Default difficulties: ``b = linspace(−2.5, 2.5, n_levels)`` logits.

    ## Observation Space

    ``Box(low, 1, (4 · n_skills + 5,), float32)`` with ``low = 0`` except ``−1`` for the
    streak – only what a real tutor sees (``K = n_skills``, ``L = n_levels``):

    | index | meaning | range |
    |---|---|---|
    | ``0`` | 1 if the last answer was correct (0 before the first) | {0, 1} |
    | ``1`` | response time of the last answer / 60 s, capped at 1 | [0, 1] |
    | ``2`` | level of the last item / (L − 1) | [0, 1] |
    | ``3`` | streak / 10: +n after n correct in a row, −n after n wrong, clipped | [−1, 1] |
    | ``[4, 4+K)`` | one-hot skill of the last item (all 0 before the first) | {0, 1} |
    | ``[4+K, 4+2K)`` | attempts per skill / horizon | [0, 1] |
    | ``[4+2K, 4+3K)`` | success rate of the last ``window`` attempts per skill (0.5 if none) | [0, 1] |
    | ``[4+3K, 4+4K)`` | level of the last item of each skill / (L − 1) (0 if none) | [0, 1] |
    | ``4+4K`` | elapsed steps / horizon (always the last feature) | [0, 1] |

    Never the ability, the engagement or the profile.

    ## Rewards

    ``reward_mode="gain"`` (default): the ability gain of the step (logits; simulator-side).
    ``"posttest"``: 0 until the episode ends, then the expected post-test score
    ``mean_{k,l} σ(θ_k − b_l)`` on a fixed test of one item per skill and level (an
    expectation, not a sampled test). ``"correct"``: 1 per correct answer (observable only).
    In every mode ``quit_penalty`` (default 0) is subtracted in the step where the student quits.

    ## Starting State

    ``θ = ability0``, ``E = engagement0``; all counters zero. Without a fixed task each
    reset draws a new student from the ``train`` split.

    ## Episode End

    The episode *terminates* after ``horizon`` steps (default 50: the session length is
    part of the task and elapsed time is observed) or earlier when the student quits.
    ``info`` at the end carries ``ability_gain`` (mean over skills of ``θ − ability0``),
    ``posttest`` (as above), ``quit`` (1 if the student quit), ``quit_step`` (0-based
    index of the step in which the student quit, NaN if they did not),
    ``final_engagement`` and ``success_rate`` (fraction of correct answers).

    ## Arguments

    ```python
    gym.make("MetaTutor/ZPD-v0", n_skills=4, n_levels=5, horizon=50, difficulties=None,
             reward_mode="gain", quit_penalty=0.0, quit_threshold=0.3, easy_threshold=0.9,
             window=5, render_mode=None)
    ```

    ``difficulties``: ``n_levels`` strictly increasing numbers in [−10, 10] (``None``: the
    default above). ``quit_threshold=0`` disables quitting. ``window``: attempts per
    skill in the observed recent success rate. The student is set with
    ``reset(options={"profile": {...}})`` or ``env.unwrapped.set_task(profile)``.
    """

    dynamics_cls = ZPDDynamics


class ZPDVectorEnv(StudentVectorEnv):
    """Native vector version of :class:`ZPDEnv` (same arguments plus ``num_envs``)."""

    dynamics_cls = ZPDDynamics
