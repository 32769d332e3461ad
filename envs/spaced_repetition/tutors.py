"""Heuristic tutors of SpacedRepetition-v0 (and SpacedRepetitionGoals-v0): Leitner, SM-2,
recall threshold and FSRS.

All four see only observations plus the course layout from ``dynamics.config()`` (number
of cards, step times), like a flash-card app. They find the card just shown from the
observation – the card whose count of presentations went up – and its answer from the
last-answer flags, so they stay right when a vector env ignores the action of a finished
sub-env. Each keeps per-student memory and works on single and vector envs through
:class:`envs.tutors.Tutor`.

Scheduling rule shared by all four: first keep pace with new cards – while fewer than
``new_per_session × (sessions so far)`` cards have been introduced, introduce the next new
card (like a flash-card app's daily new-card limit, this guarantees every card is seen;
the default pace introduces all cards within the first half of the course); then present
the most urgent due card; otherwise introduce the next new card; otherwise review ahead
the most urgent card. For the interval-based tutors (Leitner, SM-2, FSRS) a card is *due*
when the time since it was last shown reaches its interval (with 1 % slack for rounding).

:class:`PlannerTutor` is privileged: it reads the true memory state and profile, as an
upper bound for evaluation (it follows its own rule, not the one above).
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from envs.core import check_choice, check_float, check_int
from envs.spaced_repetition.dynamics import decode_elapsed
from envs.spaced_repetition.memory_models import STATE_FIELDS, make_model
from envs.tutors import Tutor, register_tutor

ENV_ID = "MetaTutor/SpacedRepetition-v0"
#: the goal-weighted variant: its observation starts with the same 4·K columns and ends
#: with the same time column, the only ones the tutors read, so every tutor runs on it
#: (only the privileged planner reads the goal)
GOALS_ENV_ID = "MetaTutor/SpacedRepetitionGoals-v0"
_DUE_SLACK = 0.99


class _SRTutor(Tutor):
    """Decodes the SpacedRepetition-v0 observation (layout in ``SpacedRepetitionEnv``)."""

    def __init__(
        self, env: Any, seed: int | None = 0, new_per_session: int | None = None, day: float | None = None
    ) -> None:
        super().__init__(env, seed=seed)
        cfg = self.dynamics.config()
        self.k = int(cfg["n_items"])
        self.horizon = int(cfg["horizon"])
        self.times = np.asarray(cfg["times"], dtype=np.float64)
        self.session_length = int(cfg["session_length"])
        #: the interval unit (days) of the day-based algorithms (Leitner, SM-2): ``day``, by
        #: default the gap between sessions (1 day in the default course)
        self._stamp_shift = int(cfg.get("reward_timing", "next_step") == "just_reviewed")
        gap = float(cfg["session_gap"])
        self.day = (gap if gap > 0 else 1.0) if day is None else check_float("day", day, 1e-6, 3650.0)
        n_sessions = -(-self.horizon // self.session_length)
        default_pace = -(-self.k // max(1, n_sessions // 2))
        self.new_per_session = (
            default_pace if new_per_session is None else check_int("new_per_session", new_per_session, 0)
        )

    def _init_memory(self, n: int) -> None:
        self.prev_counts = np.zeros((n, self.k))
        self._init_cards(n)

    def _start_episode(self, idx: np.ndarray) -> None:
        self.prev_counts[idx] = 0.0
        self._clear_cards(idx)

    def _init_cards(self, n: int) -> None:
        """Allocate the per-card memory of ``n`` students."""

    def _clear_cards(self, idx: np.ndarray) -> None:
        """Forget the cards of students ``idx``."""

    def _act(self, obs: np.ndarray) -> np.ndarray:
        k = self.k
        counts = obs[:, k : 2 * k]
        step = np.rint(obs[:, -1] * self.horizon).astype(np.int64)
        rise = counts - self.prev_counts
        rows = np.flatnonzero((rise > 0).any(axis=1) & (step > 0))
        if len(rows):
            item = rise[rows].argmax(axis=1)
            correct = obs[rows, 2 * k + item] > 0.5
            first = self.prev_counts[rows, item] <= 0.0
            # reward_timing="just_reviewed": the env stamps a presentation at the end of its gap
            when = self.times[step[rows] - 1 + self._stamp_shift]
            self._update(rows, item, correct, first, when)
        self.prev_counts = counts.copy()
        seen = obs[:, 3 * k : 4 * k] + obs[:, 2 * k : 3 * k] > 0.5
        elapsed = np.where(seen, decode_elapsed(obs[:, :k]), np.inf)
        now = self.times[np.minimum(step, self.horizon)]
        # start_state="seen": cards shown before the course enter as first presentations
        # (answered wrongly, see the env) made elapsed days before the first step
        pre_r, pre_j = np.nonzero(seen & (step == 0)[:, None])
        if len(pre_r):
            when = now[pre_r] - elapsed[pre_r, pre_j]
            wrong, first = np.zeros(len(pre_r), dtype=bool), np.ones(len(pre_r), dtype=bool)
            self._update(pre_r, pre_j, wrong, first, when)
        choice = self._choose(seen, elapsed, now)
        # keep pace with new cards: by the end of session s, new_per_session × (s + 1) introduced
        target = np.minimum(self.new_per_session * (step // self.session_length + 1), self.k)
        behind = (seen.sum(axis=1) < target) & ~seen.all(axis=1)
        return np.where(behind, (~seen).argmax(axis=1), choice)

    @abstractmethod
    def _update(
        self, rows: np.ndarray, item: np.ndarray, correct: np.ndarray, first: np.ndarray, when: np.ndarray
    ) -> None:
        """Record that card ``item[j]`` of student ``rows[j]`` was shown at ``when[j]``."""

    @abstractmethod
    def _choose(self, seen: np.ndarray, elapsed: np.ndarray, now: np.ndarray) -> np.ndarray:
        """The card to show each student, from what was seen and how long ago."""

    @staticmethod
    def _schedule(seen: np.ndarray, urgency: np.ndarray, due: np.ndarray) -> np.ndarray:
        """Most urgent due card, else the first new card, else the most urgent card."""
        new = ~seen
        has_due = (due & seen).any(axis=1)
        due_pick = np.where(due & seen, urgency, -np.inf).argmax(axis=1)
        ahead = np.where(seen, urgency, -np.inf).argmax(axis=1)
        return np.where(has_due, due_pick, np.where(new.any(axis=1), new.argmax(axis=1), ahead))


class LeitnerTutor(_SRTutor):
    """Leitner boxes (Leitner 1972) with day-based intervals.

    A new or failed card goes to box 0, a correct answer moves it up one box (at most
    ``n_boxes − 1``). A card in box ``b`` is due ``2^b`` days (session gaps) after it was
    last shown. Among due cards the lowest box goes first, then the most overdue.
    """

    name = "leitner"

    def __init__(
        self,
        env: Any,
        seed: int | None = 0,
        new_per_session: int | None = None,
        n_boxes: int = 5,
        day: float | None = None,
    ) -> None:
        super().__init__(env, seed=seed, new_per_session=new_per_session, day=day)
        self.n_boxes = check_int("n_boxes", n_boxes, 1, 30)

    def _init_cards(self, n: int) -> None:
        self.box = np.zeros((n, self.k), dtype=np.int64)

    def _clear_cards(self, idx: np.ndarray) -> None:
        self.box[idx] = 0

    def _update(
        self, rows: np.ndarray, item: np.ndarray, correct: np.ndarray, first: np.ndarray, when: np.ndarray
    ) -> None:
        up = np.minimum(self.box[rows, item] + 1, self.n_boxes - 1)
        self.box[rows, item] = np.where(correct & ~first, up, 0)

    def _choose(self, seen: np.ndarray, elapsed: np.ndarray, now: np.ndarray) -> np.ndarray:
        interval = self.day * 2.0**self.box
        ratio = elapsed / interval
        urgency = np.minimum(ratio, 1e6) - 1e7 * self.box  # lower box first, then most overdue
        return self._schedule(seen, np.where(ratio >= _DUE_SLACK, urgency, ratio), ratio >= _DUE_SLACK)


class SM2Tutor(_SRTutor):
    """SuperMemo-2 (Woźniak 1990) with intervals in days (session gaps).

    Answers are graded ``q = 4`` if correct and ``q = 1`` if wrong. A correct answer sets
    the interval to 1, then 6, then the previous interval × the E-factor ``EF``; a wrong
    one restarts at 1. ``EF ← max(1.3, EF + 0.1 − (5 − q)(0.08 + 0.02 (5 − q)))`` after
    every review (start 2.5). A first presentation starts the card at interval 1.
    Among due cards the most overdue (elapsed / interval) goes first.
    """

    name = "sm2"

    def _init_cards(self, n: int) -> None:
        self.reps = np.zeros((n, self.k), dtype=np.int64)
        self.ef = np.full((n, self.k), 2.5)
        self.interval = np.ones((n, self.k))

    def _clear_cards(self, idx: np.ndarray) -> None:
        self.reps[idx] = 0
        self.ef[idx] = 2.5
        self.interval[idx] = 1.0

    def _update(
        self, rows: np.ndarray, item: np.ndarray, correct: np.ndarray, first: np.ndarray, when: np.ndarray
    ) -> None:
        reps, ef, ivl = self.reps[rows, item], self.ef[rows, item], self.interval[rows, item]
        q = np.where(correct, 4.0, 1.0)
        grown = np.where(reps == 0, 1.0, np.where(reps == 1, 6.0, np.rint(ivl * ef)))
        new_ivl = np.where(correct, grown, 1.0)
        new_reps = np.where(correct, reps + 1, 0)
        new_ef = np.maximum(1.3, ef + 0.1 - (5.0 - q) * (0.08 + 0.02 * (5.0 - q)))
        self.interval[rows, item] = np.where(first, 1.0, new_ivl)
        self.reps[rows, item] = np.where(first, 0, new_reps)
        self.ef[rows, item] = np.where(first, 2.5, new_ef)

    def _choose(self, seen: np.ndarray, elapsed: np.ndarray, now: np.ndarray) -> np.ndarray:
        ratio = elapsed / (self.interval * self.day)
        return self._schedule(seen, ratio, ratio >= _DUE_SLACK)


class ThresholdTutor(_SRTutor):
    """Review by estimated recall, with a threshold (``rule="weakest"``, default) or a target
    (``rule="closest"``, Reddy et al. 2017).

    The estimate is the env's own memory model (``config()["memory_model"]``, its
    ``strength_rule`` and ``hlr_coefficients``) run on the observed history with the
    population's median student (``decay = config()["typical_decay"]``, ``gain = fail_effect
    = 1``, every card of median difficulty) and the estimated recall in place of the true one.

    * ``"weakest"``: if the weakest seen card is estimated below ``threshold`` it is reviewed,
      otherwise the next new card is introduced, or – when all are introduced – the weakest
      card is reviewed anyway. The threshold therefore only decides *when new cards are
      introduced* (ahead of the new-card pace); once every card has been seen (always, with
      ``start_state="seen"``) it has no effect and the tutor reviews the weakest card. That is
      the intended rule ("review what is most at risk", near-optimal for the exam score in
      this env: ``docs/spaced_repetition.md``); on 128 ``train`` students of the exponential
      model the expected exam score is flat (0.78 ± 0.005) for thresholds 0.3 … 0.9 and 0.77
      at 0.2; the default is 0.5.
    * ``"closest"``: deeptutor's ``ThresholdTutor``: review the seen card whose estimated
      recall is closest to ``threshold`` (new cards when none is seen); ``threshold = 0``
      is the weakest-first rule. deeptutor's tutor reads the *true* model; this one does
      not (see :class:`OracleThresholdTutor`).
    """

    name = "threshold"
    RULES = ("weakest", "closest")

    def __init__(
        self,
        env: Any,
        seed: int | None = 0,
        new_per_session: int | None = None,
        threshold: float = 0.5,
        rule: str = "weakest",
    ) -> None:
        super().__init__(env, seed=seed, new_per_session=new_per_session)
        self.threshold = check_float("threshold", threshold, 0.0, 1.0)
        self.rule = check_choice("rule", rule, self.RULES)
        cfg = self.dynamics.config()
        self.model = make_model(
            cfg["memory_model"], cfg.get("strength_rule", "spacing"), cfg.get("hlr_coefficients")
        )
        self.decay = float(cfg.get("typical_decay", 1.0))

    def _init_cards(self, n: int) -> None:
        self.state = self.model.initial_state((n, self.k))
        self.last = np.zeros((n, self.k))

    def _clear_cards(self, idx: np.ndarray) -> None:
        fresh = self.model.initial_state((len(idx), self.k))
        for f in STATE_FIELDS:
            self.state[f][idx] = fresh[f]
        self.last[idx] = 0.0

    def _update(
        self, rows: np.ndarray, item: np.ndarray, correct: np.ndarray, first: np.ndarray, when: np.ndarray
    ) -> None:
        old = {f: v[rows, item] for f, v in self.state.items()}
        real = when - self.last[rows, item]
        p_hat = self.model.recall(old["S"], real * self.decay)
        ones = np.ones(len(rows))
        reviewed = self.model.review(old, p_hat, correct, real, ones, ones)
        learned = self.model.learn((len(rows),))
        for f in STATE_FIELDS:
            self.state[f][rows, item] = np.where(first, learned[f], reviewed[f])
        self.last[rows, item] = when

    def estimated_recall(self, seen: np.ndarray, now: np.ndarray) -> np.ndarray:
        """Estimated recall probability of every card at ``now`` (0 if never shown)."""
        p = self.model.recall(self.state["S"], (now[:, None] - self.last) * self.decay)
        return np.where(seen, p, 0.0)

    def _choose(self, seen: np.ndarray, elapsed: np.ndarray, now: np.ndarray) -> np.ndarray:
        return self._by_recall(seen, self.estimated_recall(seen, now))

    def _by_recall(self, seen: np.ndarray, p: np.ndarray) -> np.ndarray:
        if self.rule == "closest":
            pick = np.where(seen, np.abs(p - self.threshold), np.inf).argmin(axis=1)
            return np.where(seen.any(axis=1), pick, (~seen).argmax(axis=1))
        urgency = np.where(seen, -p, -np.inf)
        return self._schedule(seen, urgency, seen & (p < self.threshold))


class OracleThresholdTutor(ThresholdTutor):
    """:class:`ThresholdTutor` on the *true* recall probabilities (privileged, like deeptutor's
    threshold tutor, which deep-copies the student model): same rules, but ``p`` is read from
    the env's dynamics instead of estimated. Not registered (so it adds no method to the
    evaluation protocol); ``benchmarks/reddy2017.py`` builds it directly."""

    name = "threshold_oracle"
    privileged = True

    def _choose(self, seen: np.ndarray, elapsed: np.ndarray, now: np.ndarray) -> np.ndarray:
        d = self.dynamics
        t = np.minimum(d.t, d.horizon - 1)
        return self._by_recall(seen, d.recall_matrix(d.times[t]))


class FSRSTutor(_SRTutor):
    """The ``fsrs`` package's own scheduler (FSRS-6, default weights) on real ``Card`` objects.

    Env time ``τ`` (days) becomes the datetime ``2024-01-01 UTC + τ``. A correct answer is
    rated *Good*, a wrong one (including the first presentation) *Again*. The scheduler is
    ``fsrs.Scheduler(desired_retention, learning_steps=(), relearning_steps=(),
    enable_fuzzing=False)``: without Anki's minute-scale (re)learning steps, which would
    spend the scarce presentations of a session re-showing the same card minutes apart,
    and without random fuzz, so runs are reproducible. Due cards are shown lowest
    retrievability first (``Scheduler.get_card_retrievability``); then new cards; then,
    reviewing ahead, the card of lowest retrievability.
    """

    name = "fsrs"
    EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def __init__(
        self,
        env: Any,
        seed: int | None = 0,
        new_per_session: int | None = None,
        desired_retention: float = 0.9,
    ) -> None:
        super().__init__(env, seed=seed, new_per_session=new_per_session)
        import fsrs

        self._fsrs = fsrs
        self.desired_retention = check_float("desired_retention", desired_retention, 0.01, 0.99)
        self.scheduler = fsrs.Scheduler(
            desired_retention=self.desired_retention,
            learning_steps=(),
            relearning_steps=(),
            enable_fuzzing=False,
        )

    def _when(self, days: float) -> datetime:
        return self.EPOCH + timedelta(days=float(days))

    def _init_cards(self, n: int) -> None:
        self.cards: list[list[Any]] = [[None] * self.k for _ in range(n)]
        self.due = np.full((n, self.k), np.inf)  # days, mirrors card.due for vectorised checks

    def _clear_cards(self, idx: np.ndarray) -> None:
        for i in idx:
            self.cards[i] = [None] * self.k
        self.due[idx] = np.inf

    def _update(
        self, rows: np.ndarray, item: np.ndarray, correct: np.ndarray, first: np.ndarray, when: np.ndarray
    ) -> None:
        rating = self._fsrs.Rating
        for i, j, c, w in zip(rows, item, correct, when):
            card = self.cards[i][j]
            if card is None:
                card = self._fsrs.Card(card_id=int(j) + 1, due=self._when(w))
            card, _ = self.scheduler.review_card(card, rating.Good if c else rating.Again, self._when(w))
            self.cards[i][j] = card
            self.due[i, j] = (card.due - self.EPOCH).total_seconds() / 86400.0

    def _choose(self, seen: np.ndarray, elapsed: np.ndarray, now: np.ndarray) -> np.ndarray:
        due = seen & (self.due <= now[:, None] + 1e-6)  # 1e-6 days: datetime rounding
        # the library's retrievability ranks due cards and, when nothing is due or new, all cards
        ask = np.where((due.any(axis=1) | (~seen).any(axis=1))[:, None], due, seen)
        urgency = np.zeros(seen.shape)
        for i, j in zip(*np.nonzero(ask)):
            urgency[i, j] = 1.0 - self.scheduler.get_card_retrievability(self.cards[i][j], self._when(now[i]))
        return self._schedule(seen, urgency, due)


class PlannerTutor(Tutor):
    """Privileged planner (an upper bound, not a deployable tutor): reads every card's true
    memory state, last presentation time and forgetting speed, and the student's
    ``gain`` and ``fail_effect`` (and, in SpacedRepetitionGoals-v0, the student's goal),
    from the env's dynamics, and predicts with the env's own memory model.

    Rule, per student and step:

    * before that: the oracle threshold rule – present the
      seen card of lowest true recall if that recall is below ``threshold``, otherwise the
      next new card, otherwise (every card seen) the card of lowest recall – all among the
      cards on the student's exam (every card, except in SpacedRepetitionGoals-v0);
    * in the last ``final_sessions`` sessions, but never in the first half of the course
      (:meth:`final_start`): the card whose presentation now most
      increases the expected exam score (expected over the answer, correct with the
      true recall probability; a new card counts from 0), assuming no later presentation.

    The exam-gain rule alone is myopic (it never introduces a card early enough to be
    reviewed again: 0.53 on ``val``); the threshold rule alone ignores when the exam comes.
    ``threshold=0.4`` and ``final_sessions=2`` were chosen on 200 ``val`` students (one
    episode each; thresholds 0.3 … 0.6 and 1 … 3 final sessions: 0.789 … 0.814, the
    threshold heuristic 0.788). Measured returns are in ``docs/spaced_repetition.md``.
    """

    name = "planner"
    privileged = True

    def __init__(
        self, env: Any, seed: int | None = 0, threshold: float = 0.4, final_sessions: int = 2
    ) -> None:
        super().__init__(env, seed=seed)
        self.threshold = check_float("threshold", threshold, 0.0, 1.0)
        self.final_sessions = check_int("final_sessions", final_sessions, 0)

    def final_start(self, horizon: int, session_length: int) -> int:
        """First step of the exam-gain phase: ``max(T − final_sessions·session_length, ⌈T/2⌉)``.

        The cap keeps the first half of every course for the threshold rule: the exam-gain
        rule never introduces cards early enough to review them, so in a course of one or two
        sessions (``session_length ≥ T/2``, the phase would start at step 0) it scored below
        the random tutor with most cards never shown. It changes nothing when
        ``final_sessions·session_length ≤ T/2`` (the default course: steps 80 … 99).
        """
        return max(horizon - self.final_sessions * session_length, -(-horizon // 2))

    def exam_gain(self, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(gain, recall)``: per card, the expected increase of its exam recall if it is
        presented at ``now`` (one time per student) and never again, and its recall now."""
        d = self.dynamics
        n, k = d.seen.shape
        model, speed, exam = d.model, d._speed, d.times[-1]
        recall_now = d.recall_matrix(now)
        unchanged = d.recall_matrix(np.full(n, exam))
        flat = {f: v.reshape(-1) for f, v in d.state.items()}
        p = recall_now.reshape(-1)
        real = (now[:, None] - d.last_time).reshape(-1)
        gain, fail = np.repeat(d.p["gain"], k), np.repeat(d.p["fail_effect"], k)
        wait = (exam - now)[:, None] * speed  # effective days from now to the exam
        after = {}
        for correct in (True, False):
            s = model.review(flat, p, np.full(n * k, correct), real, gain, fail)["S"].reshape(n, k)
            after[correct] = model.recall(s, wait)
        reviewed = recall_now * after[True] + (1.0 - recall_now) * after[False]
        first = model.recall(model.learn((n, k))["S"], wait)
        return np.where(d.seen, reviewed, first) - unchanged, recall_now

    def _act(self, obs: np.ndarray) -> np.ndarray:
        d = self.dynamics
        # a finished student (t = horizon) is stepped once more by a vector env: act as at the end
        t = np.minimum(d.t, d.horizon - 1)
        gain, recall = self.exam_gain(d.times[t])
        # only the cards that count on this student's exam (all of them in SpacedRepetition-v0)
        weight = d.exam_weights()
        needed = weight > 0.0
        seen, unseen = d.seen & needed, ~d.seen & needed
        weakest = np.where(seen, recall, np.inf).argmin(axis=1)
        due = (seen & (recall < self.threshold)).any(axis=1)
        new = unseen.any(axis=1)
        by_threshold = np.where(due | ~new, weakest, unseen.argmax(axis=1))
        final = t >= self.final_start(d.horizon, d.session_length)
        return np.where(final, (gain * weight).argmax(axis=1), by_threshold)


for _env_id in (ENV_ID, GOALS_ENV_ID):
    for _cls in (LeitnerTutor, SM2Tutor, ThresholdTutor, FSRSTutor, PlannerTutor):
        register_tutor(_env_id, _cls.name, _cls)
