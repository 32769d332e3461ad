"""Gymnasium front ends of SpacedRepetition-v0 (the model lives in ``dynamics.py``)."""

from __future__ import annotations

from envs.core import StudentEnv, StudentVectorEnv
from envs.spaced_repetition.dynamics import SpacedRepetitionDynamics


class SpacedRepetitionEnv(StudentEnv):
    """
    ## Description

    A flash-card tutor schedules the reviews of ``n_items`` facts (e.g. vocabulary) for one
    student. Each step the tutor presents one card: the student tries to recall it, then
    sees the answer. Memory of every card decays with time and is strengthened by each
    presentation, more so when it was partly forgotten (the spacing effect). Steps come in
    sessions of ``session_length`` cards a minute apart, one day between sessions; a final
    exam tests every card one day after the last session. How fast this student forgets,
    how much a review helps, how useful a failed review is and which cards are hard are
    hidden in the profile (:class:`envs.spaced_repetition.profile.SpacedRepetitionProfile`);
    a good tutor infers them from the answers and adapts the schedule.

    Time ``τ`` is in **days**. For card ``j`` last presented at ``L_j`` with strength ``S_j``
    (days), the recall probability is ``p_j = 0`` if never presented, else
    ``p_j = curve(x)`` with ``x = decay · exp(ℓ_j) · (τ − L_j) / S_j``, where ``curve`` is

    * ``"exponential"`` (default): ``exp(−x)``;
    * ``"hlr"`` (half-life regression): ``2^(−x)``, ``S`` being the half-life
      ``2^(θ_b + θ⁺·gain·(√(1+N⁺) − 1) + θ⁻·fail_effect·(√(1+N⁻) − 1))``;
    * ``"power"``: ``(1 + x/ψ)^(−ψ)`` with ``ψ = 0.5``;
    * ``"fsrs"``: FSRS-6, ``(1 + F·x)^(−w20)`` with ``F = 0.9^(−1/w20) − 1`` and the default
      weights of the ``fsrs`` package 6.3.2.

    A presentation is answered correctly with probability ``p_j`` (``1`` right after a
    review, ``0`` for a new card). The first presentation sets ``S_j = S0``; a later one
    multiplies the strength by ``exp((1 − p)·κ)`` with ``κ = 2·gain`` if correct and
    ``0.5·fail_effect`` if wrong (exponential and power), adds ``1 − p`` to the correct
    (``N⁺``) or wrong (``N⁻``) review count (hlr), or applies FSRS-6's stability and
    difficulty updates (rating *Good* / *Again*). The full equations and references are in
    :mod:`envs.spaced_repetition.memory_models`.

    ## Action Space

    ``Discrete(n_items)``: the card to present next (``action_nvec = (n_items,)``).

    ## Observation Space

    ``Box(0, 1, (4 · n_items + 1,), float32)`` – what a flash-card app sees:

    | index | meaning |
    |---|---|
    | ``[0, K)`` | time since last shown, ``log(1 + Δ/1 min) / log(1 + 100 d/1 min)`` ≤ 1 (1: never) |
    | ``[K, 2K)`` | ``log(1 + times shown) / log(1 + horizon)`` |
    | ``[2K, 3K)`` | 1 if the last answer to the card was correct |
    | ``[3K, 4K)`` | 1 if the last answer to the card was wrong (both 0: never shown) |
    | ``4K`` | elapsed steps / horizon |

    Never the recall probabilities, the strengths or the profile.

    ## Rewards

    ``reward_mode="recall"`` (default, dense): the change ``m(τ_{t+1}) − m(τ_t)`` of the mean
    recall probability ``m`` over all cards, from just before this presentation to the next
    one (for the last step: to the exam), so forgetting gives negative rewards. We report the
    change rather than the level because the undiscounted return then telescopes to
    ``m(τ_T)``, the *expected exam score*: the dense reward is a potential-based shaping of
    the exam objective and has the same optimal schedule, with far less variance. A level
    reward would instead pay for keeping cards fresh during sessions, i.e. for massed drilling.
    ``"exam"`` (sparse): 0 until the last step, then the fraction of cards recalled at the
    exam (each sampled with its recall probability). ``"correct"``: 1 if the presented card
    was answered correctly – the only signal a real app observes; it rewards drilling what
    is already known (included to study reward misspecification). ``"likelihood"`` (L of
    Reddy et al. 2017): the level ``m(τ_{t+1})``, so the return is the sum of the mean
    recall after every step; ``"log_likelihood"`` (LL): the mean of ``log(1e-9 + p_j)``
    after every step (deeptutor's ``_recall_log_likelihoods``). ``reward_timing`` sets when
    a presentation is time-stamped: ``"next_step"`` (default) when it is made;
    ``"just_reviewed"`` (deeptutor) at the end of the step's gap, so the step's reward
    counts the presented card at recall 1.

    ## Starting State

    No card has been shown; every recall probability is 0 (``start_state="unseen"``). With
    ``start_state="seen"`` (Reddy et al. 2017) every card was presented once before the
    course, ``Δ_j`` days before the first step, ``log Δ_j ~ N(start_elapsed_log_mean,
    start_elapsed_log_sd²)`` (default: median one hour, sd 1); every recall is then in
    (0, 1] and the card counts as shown once, last answer wrong. Without a fixed task, each
    reset draws a new student from the ``train`` split.

    ## Episode End

    The episode *terminates* after ``horizon`` steps (default 100; the course length is
    part of the task and elapsed time is observed). ``info`` at the end carries
    ``exam_recall`` (fraction of cards recalled at the exam, sampled – the same draws as the
    ``"exam"`` reward), ``final_mean_recall_prob`` (its expectation ``m(τ_T)``),
    ``mean_recall`` (``m`` averaged over the ``horizon`` post-step times),
    ``items_never_reviewed`` (cards never shown) and ``accuracy`` (fraction of correct answers).

    ## Arguments

    ```python
    gym.make("MetaTutor/SpacedRepetition-v0", n_items=20, horizon=100,
             memory_model="exponential", step_gap=1 / 1440, session_length=10,
             session_gap=1.0, exam_delay=1.0, reward_mode="recall", render_mode=None)
    ```

    Every argument is a field of
    :class:`envs.spaced_repetition.settings.SpacedRepetitionSettings` (defaults and help
    text there), including ``strength_rule`` (``"spacing"``, default, or ``"count"``: Reddy et
    al.'s ``S = 1 + number of reviews``), ``hlr_coefficients``, ``start_state``,
    ``start_elapsed_log_mean``, ``start_elapsed_log_sd``, ``reward_timing`` and
    ``population`` (``"default"``, ``"reddy2017-efc"``, ``"reddy2017-hlr"``).
    ``preset="reddy2017-efc"`` / ``"reddy2017-hlr"`` sets all of them to the published
    setting of Reddy, Levine & Dragan (2017) (30 cards, 200 steps 5 h apart, EFC or HLR
    memory, reward L, pre-seen cards; the values and their source in
    :mod:`envs.spaced_repetition.settings`); other keyword arguments override the preset,
    e.g. ``gym.make("MetaTutor/SpacedRepetition-v0", preset="reddy2017-efc",
    reward_mode="log_likelihood")``.

    Times are in days: ``step_gap`` (default one minute) separates presentations within a
    session, ``session_gap`` (default one day) runs from the last presentation of a session
    to the first of the next, ``exam_delay`` (default one day) from the last presentation
    to the exam. ``memory_model`` is one of ``"exponential"``, ``"hlr"``, ``"power"``,
    ``"fsrs"``. The student is set with ``reset(options={"profile": {...}})`` or
    ``env.unwrapped.set_task(profile)``.
    """

    dynamics_cls = SpacedRepetitionDynamics


class SpacedRepetitionVectorEnv(StudentVectorEnv):
    """Native vector version of :class:`SpacedRepetitionEnv` (same arguments plus ``num_envs``)."""

    dynamics_cls = SpacedRepetitionDynamics
