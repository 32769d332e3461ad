"""Response logs → the sessions an encoder tutor would have seen, for every env family.

``meta-tutor identify --log`` reads a learner's log in a format ``meta-tutor calibrate``
reads (:mod:`envs.calibration.logs`) and rebuilds, per student, the episodes of the tutor's
env that would have produced it: every logged response becomes the *action* that asked for
it, and the observations are recomputed by the env's own rules from the responses so far.
A student's responses, in log order, are cut into sessions of ``horizon`` responses (the
env's episode length; the last one may be shorter); each session starts from the env's
reset state, as every episode does (a log does not say where an episode ended, e.g. where a
ZPD-v0 student quit and came back: the cut is every ``horizon`` responses). One converter
per family, chosen by the tutor's env id (:data:`CONVERTERS`). A log's skills (cards) map to
the env's in the log's sorted name order (:mod:`envs.calibration.logs`), as ``calibrate`` maps
them: the log must name the skills the tutor was trained on, all of them (a log without a skill
shifts the ones after it; :func:`mapping_note` says when a log names fewer than the env has,
but a run does not record the names, so which one is missing cannot be checked).

A log carries the responses, not the simulator's hidden state, so a reward that is a
function of hidden state (learning gains, recall probabilities, exam scores) is unknown:
it is 0 in the rebuilt sessions, and the estimate rests on the answers (a tutor trained
with such a reward sees rewards outside its training data; a reward-free tutor,
``encoder_reads_reward: false``, does not). A reward that *is* the answer (``quiz`` /
``correct`` reward modes) is the logged answer. Per family (``d_t`` ∈ {0, 1} the answer of
response ``t``, ``h`` the horizon, ``frac(x) = min(x / h, 1)``):

* **SkillGraph-v0** (knowledge-tracing CSV or the three-line format): response ``t`` to
  skill ``k`` is a quiz of ``k`` (action ``k (C + 1) + C``); the observation is the env's
  (times taught 0, quiz count ``frac``, quizzed flag, last answer per skill, steps since the
  skill's last quiz, elapsed steps); reward ``d_t − time_cost`` with ``reward_mode: quiz``, else
  ``−time_cost`` (the gain is hidden).
* **ZPD-v0** (knowledge-tracing CSV *with* an ``item_id`` column, the question answered):
  response ``t`` to an item of skill ``k`` at difficulty level ``l`` is action ``k L + l``.
  The level of an item: an item id ``L<l>`` (what ``meta-tutor simulate-log`` writes) names
  it; any other ids are placed by a Rasch fit of the whole log
  (:func:`envs.calibration.zpd.fit_rasch`, item difficulties ``b_j`` centred at their
  answer-weighted mean, as ``calibrate`` centres them) on the level whose difficulty
  ``b_l`` of the env is nearest: ``l(j) = argmin_l |b_j − b_l|``. The observation is the
  env's (last answer, last level ``l / (L − 1)``, streak ``clip((c − f) / 10, −1, 1)`` of the
  runs of correct ``c`` and failed ``f`` answers, last-skill one-hot, attempts ``frac``, the
  success rate of each skill's last ``window`` answers (0.5 before any), each skill's last
  level, elapsed steps) **except the response time**: a log has none, so that feature is 0
  (its value before the first answer). Reward ``d_t`` with ``reward_mode: correct``, else 0
  (ability gain and post-test are hidden); the quit penalty is not applied (a log does not
  say why it ends).
* **SpacedRepetition-v0 / SpacedRepetitionGoals-v0** (review CSV or Anki / ``fsrs`` log):
  review ``t`` of card ``j`` is action ``j``; the observation is the env's (elapsed time
  since each card was last shown, :func:`~envs.spaced_repetition.dynamics.encode_elapsed`,
  1 if never shown this session; times shown ``log(1 + n) / log(1 + h)``; last answer
  correct / wrong; the Goals variant's constant topic blocks; elapsed steps) with the
  **log's own clock**: the time of step ``t`` is the review's timestamp ``τ_t`` (days). The
  observation after a session's last review (``t = L``) is at ``τ_L = τ_{L−1} + g_{L−1}``
  with the env's gap ``g`` after step ``L − 1`` (``exam_delay`` after step ``h − 1``,
  ``session_gap`` after every ``session_length``-th step, else ``step_gap``): a log does not
  say when the course's exam would be. With ``reward_timing: just_reviewed`` the card shown
  at step ``t`` is time-stamped ``τ_{t+1}``. Reward ``d_t`` with ``reward_mode: correct``,
  else 0 (recall probabilities and exam are hidden). The Goals variant's ``goal`` shows only
  in the reward, so **a log cannot reveal it**: its decoded goal is the encoder's prior
  given the answers. The first presentation of a card in a session is always answered
  wrongly in the env; a real log may have it right, and the observation shows what the log
  says. An env with ``start_state: seen`` (every card shown at random times before the
  course, the ``reddy2017`` presets) cannot be rebuilt from a log: an error says so.

A log with more skills / items than the env has (keep some with ``skills`` / ``top_skills`` of
:func:`read_sessions`, as ``calibrate`` does), a ZPD log without ``item_id`` or with a level
``L<l>`` beyond the env's, is a one-line ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from envs.calibration.logs import ResponseLog, read_log, select_units
from envs.core import frac_table


class Session(NamedTuple):
    """One session of interaction: observations ``(L + 1, d)`` (the last one after the last
    step), teaching actions ``(L,)`` and rewards ``(L,)``."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray


def _chunks(log: ResponseLog, horizon: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(student, rows)`` of every session: each student's rows cut into runs of ``horizon``."""
    # rows are grouped by student (ResponseLog's order): student i's are the counts[i] rows
    # ending before cumsum(counts)[i]
    counts = log.counts()
    for student, (end, n) in enumerate(zip(np.cumsum(counts), counts)):
        rows = np.arange(end - n, end)
        for start in range(0, len(rows), horizon):
            yield student, rows[start : start + horizon]


def _group(log: ResponseLog, sessions: Iterator[tuple[int, Session]]) -> list[list[Session]]:
    out: list[list[Session]] = [[] for _ in range(log.n_students)]
    for student, s in sessions:
        out[student].append(s)
    return out


# ------------------------------------------------------------------ SkillGraph-v0
def skill_graph_sessions(env: Any, log: ResponseLog) -> list[list[Session]]:
    """SkillGraph-v0 sessions of a knowledge-tracing log: every answer a quiz (module docstring)."""
    dyn = env.probe
    k, c, h = dyn.n_skills, dyn.n_content, dyn.horizon
    reward_is_answer = dyn.reward_mode == "quiz"
    frac = frac_table(h)

    def one(rows: np.ndarray) -> Session:
        skills, correct = log.unit[rows].astype(np.int64), log.correct[rows].astype(np.float32)
        obs = np.zeros((len(rows) + 1, 5 * k + 1), dtype=np.float32)
        # times taught (no lessons in a log: stays 0), times quizzed, ever quizzed, last answer
        feat = np.zeros(4 * k, dtype=np.float32)
        last = np.full(k, -(1 << 40), dtype=np.int64)  # step of each skill's last quiz
        for t in range(len(rows) + 1):
            obs[t, : 4 * k] = feat
            obs[t, 4 * k : 5 * k] = frac[np.minimum(t - last, h)]
            obs[t, 5 * k] = frac[min(t, h)]
            if t < len(rows):
                sk = skills[t]
                feat[k + sk] += np.float32(1.0 / h)
                feat[2 * k + sk] = 1.0
                feat[3 * k + sk] = correct[t]
                last[sk] = t
        rewards = (correct if reward_is_answer else np.zeros(len(rows))) - np.float64(dyn.time_cost)
        return Session(obs, skills * (c + 1) + c, rewards.astype(np.float32))

    return _group(log, ((i, one(rows)) for i, rows in _chunks(log, h)))


# ------------------------------------------------------------------ ZPD-v0
def zpd_levels(dyn: Any, log: ResponseLog) -> np.ndarray:
    """Difficulty level of every row's item (module docstring): ``L<l>`` ids name it, other ids
    go to the level of nearest difficulty after a Rasch fit of the log."""
    if log.item is None:
        raise ValueError(
            f"{log.source}: ZPD-v0 needs an item_id column (the question answered, which sets the "
            "difficulty level of the action)"
        )
    names = log.item_names
    if all(n[:1] == "L" and n[1:].isdigit() for n in names):
        levels = np.array([int(n[1:]) for n in names], dtype=np.int64)
        if levels.max() >= dyn.n_levels:
            raise ValueError(
                f"{log.source}: item {names[int(np.argmax(levels))]} is level {levels.max()} but the "
                f"tutor's env has n_levels={dyn.n_levels}"
            )
    else:
        from envs.calibration.zpd import fit_rasch

        b = fit_rasch(log).b
        levels = np.abs(b[:, None] - dyn.difficulties[None, :]).argmin(axis=1)
    return levels[log.item]


def zpd_sessions(env: Any, log: ResponseLog) -> list[list[Session]]:
    """ZPD-v0 sessions of a knowledge-tracing log with items (module docstring)."""
    from envs.zpd.dynamics import STREAK_MAX

    dyn = env.probe
    k, lv, h, w = dyn.n_skills, dyn.n_levels, dyn.horizon, dyn.window
    lay = dyn.layout
    level_of_row = zpd_levels(dyn, log)
    frac = frac_table(h)
    level_table = (np.arange(lv) / (lv - 1)).astype(np.float32)

    def rate(succ: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """The env's windowed success rate: successes / outcomes in the window, 0.5 before any."""
        return np.where(seen > 0, succ / np.maximum(seen, 1), 0.5)

    def one(rows: np.ndarray) -> Session:
        skills, levels = log.unit[rows].astype(np.int64), level_of_row[rows]
        correct = log.correct[rows].astype(bool)
        obs = np.zeros((len(rows) + 1, dyn.obs_dim), dtype=np.float32)
        history = [[] for _ in range(k)]  # each skill's outcomes, oldest first
        skill_level = np.zeros(k, dtype=np.int64)
        runs = [0, 0]  # correct run, failure run
        for t in range(len(rows) + 1):
            o = obs[t]
            if t:
                sk, ok = skills[t - 1], correct[t - 1]
                history[sk].append(ok)
                skill_level[sk] = levels[t - 1]
                runs = [runs[0] + 1, 0] if ok else [0, runs[1] + 1]
                o[lay["last_correct"]] = ok
                o[lay["last_level"]] = level_table[levels[t - 1]]
                o[lay["last_skill"].start + sk] = 1.0
            o[lay["streak"]] = np.clip((runs[0] - runs[1]) / STREAK_MAX, -1.0, 1.0)
            n_att = np.array([len(x) for x in history])
            succ = np.array([sum(x[-w:]) for x in history])
            o[lay["attempts"]] = frac[np.minimum(n_att, h)]
            o[lay["success_rate"]] = rate(succ, np.minimum(n_att, w)).astype(np.float32)
            o[lay["skill_level"]] = level_table[skill_level]
            o[lay["time"]] = frac[min(t, h)]
        rewards = correct if dyn.reward_mode == "correct" else np.zeros(len(rows))
        return Session(obs, skills * lv + levels, rewards.astype(np.float32))

    return _group(log, ((i, one(rows)) for i, rows in _chunks(log, h)))


# ------------------------------------------------------------------ SpacedRepetition-v0 (+ Goals)
def review_sessions(env: Any, log: ResponseLog) -> list[list[Session]]:
    """SpacedRepetition-v0 / SpacedRepetitionGoals-v0 sessions of a review log (module docstring)."""
    from envs.spaced_repetition.dynamics import encode_elapsed

    dyn = env.probe
    k, h = dyn.n_items, dyn.horizon
    if dyn.start_state != "unseen":
        raise ValueError(
            f"{log.source}: the tutor's env has start_state={dyn.start_state!r} (every card shown at a "
            "random time before the course); a log cannot give those times, so its sessions cannot be "
            "rebuilt: use a tutor trained with start_state: unseen"
        )
    gaps = np.diff(dyn.times)  # the env's gap after each step
    shown_feature = np.log1p(np.arange(h + 1)) / np.log1p(h)
    frac = frac_table(h)
    # the Goals variant's constant topic blocks (1 for the cards of topic c, block c), or none
    n_topics, card_topic = getattr(dyn, "n_topics", 0), getattr(dyn, "topics", np.zeros(k))
    topics = (card_topic[None, :] == np.arange(n_topics)[:, None]).reshape(-1)
    just_reviewed = dyn.reward_timing == "just_reviewed"

    def one(rows: np.ndarray) -> Session:
        items, correct = log.unit[rows].astype(np.int64), log.correct[rows].astype(bool)
        n = len(rows)
        clock = np.empty(n + 1)
        clock[:n] = log.time[rows]
        clock[n] = clock[n - 1] + gaps[n - 1]
        # state before step t (rows t = 0 … n), vectorised over the steps: shown[t, j] = times card
        # j was shown in steps < t; after[t, j] = 1 + the last such step (0: never), whose answer
        # and time stamp (τ_s, or τ_{s+1} just reviewed) the observation shows
        shown_at = np.zeros((n + 1, k), dtype=np.int64)
        shown_at[np.arange(1, n + 1), items] = 1
        shown = np.cumsum(shown_at, axis=0)
        after = np.maximum.accumulate(np.where(shown_at > 0, np.arange(n + 1)[:, None], 0), axis=0)
        seen = after > 0
        stamp = clock[after] if just_reviewed else clock[np.maximum(after - 1, 0)]
        right = np.concatenate([[False], correct])[after]
        obs = np.zeros((n + 1, dyn.obs_dim), dtype=np.float32)
        obs[:, :k] = np.where(seen, encode_elapsed(clock[:, None] - stamp), 1.0)
        obs[:, k : 2 * k] = shown_feature[np.minimum(shown, h)]
        obs[:, 2 * k : 3 * k] = seen & right
        obs[:, 3 * k : 4 * k] = seen & ~right
        obs[:, 4 * k : -1] = topics
        obs[:, -1] = frac[np.minimum(np.arange(n + 1), h)]
        rewards = correct if dyn.reward_mode == "correct" else np.zeros(n)
        return Session(obs, items, rewards.astype(np.float32))

    return _group(log, ((i, one(rows)) for i, rows in _chunks(log, h)))


# ------------------------------------------------------------------ the mapping
@dataclass(frozen=True)
class Converter:
    """How one family's logs are read (``kind`` of :func:`envs.calibration.logs.read_log`) and
    turned into sessions."""

    kind: str
    convert: Callable[[Any, ResponseLog], list[list[Session]]]
    #: the env's argument that the log's units (skills or cards) are indices of
    unit_dim: str
    #: what a log of this family cannot tell (printed by ``meta-tutor identify``)
    caveat: str = ""


CONVERTERS: dict[str, Converter] = {
    "MetaTutor/SkillGraph-v0": Converter(
        "kt",
        skill_graph_sessions,
        "n_skills",
        "every answer is read as a quiz; learning gains are hidden (reward 0)",
    ),
    "MetaTutor/ZPD-v0": Converter(
        "kt",
        zpd_sessions,
        "n_skills",
        "a log has no response times (observed as 0); ability gains are hidden",
    ),
    "MetaTutor/SpacedRepetition-v0": Converter(
        "review",
        review_sessions,
        "n_items",
        "recall probabilities are hidden (reward 0 unless reward_mode: correct)",
    ),
    "MetaTutor/SpacedRepetitionGoals-v0": Converter(
        "review",
        review_sessions,
        "n_items",
        "the goal shows only in rewards, which a log lacks: its estimate is the prior",
    ),
}


def converter(env_id: str) -> Converter:
    """The converter of ``env_id``; an env without one is a clear error."""
    if env_id not in CONVERTERS:
        known = list(CONVERTERS)
        raise ValueError(f"identify --log has no log reader for {env_id}; it reads logs for {known}")
    return CONVERTERS[env_id]


def sessions_from_log(env: Any, log: ResponseLog) -> list[list[Session]]:
    """Per student of ``log`` (a list, in the log's student order), its sessions in the env of
    ``env`` (a :class:`~meta_rl.envspec.EnvSpec`)."""
    conv = converter(env.env_id)
    n = int(getattr(env.probe, conv.unit_dim))
    if len(log.names) > n:
        what = "skill" if conv.unit_dim == "n_skills" else "item"
        raise ValueError(
            f"{log.source}: the log has {len(log.names)} {what}s but the tutor's env ({env.env_id}) has "
            f"{conv.unit_dim}={n}: keep fewer with --top-skills K or --skills A,B, or train the tutor "
            "with as many"
        )
    return conv.convert(env, log)


def load_log(
    env: Any,
    path: str | os.PathLike[str],
    fmt: str = "auto",
    time_unit: str = "s",
    skills: Sequence[str] | None = None,
    top_skills: int | None = None,
) -> ResponseLog:
    """The log at ``path``, read as the kind the env's family calibrates from, with the skills /
    items ``skills`` (by name) or the ``top_skills`` most answered ones kept
    (:func:`envs.calibration.logs.select_units`, as ``calibrate`` does)."""
    log = read_log(path, converter(env.env_id).kind, fmt, time_unit)
    return select_units(log, skills, top_skills)


def mapping_note(env: Any, log: ResponseLog) -> str:
    """How the log's skills / items map to the env's when it names fewer than the env has
    (module docstring), else ``""``."""
    dim = converter(env.env_id).unit_dim
    n = int(getattr(env.probe, dim))
    if len(log.names) >= n:
        return ""
    shown = ", ".join(log.names[:8]) + (", …" if len(log.names) > 8 else "")
    return (
        f"the log names {len(log.names)} of the env's {dim}={n} ({shown}): mapped to indices "
        f"0 … {len(log.names) - 1} in that order"
    )


def read_sessions(
    env: Any,
    path: str | os.PathLike[str],
    fmt: str = "auto",
    time_unit: str = "s",
    skills: Sequence[str] | None = None,
    top_skills: int | None = None,
) -> list[list[Session]]:
    """:func:`load_log`, then :func:`sessions_from_log`."""
    return sessions_from_log(env, load_log(env, path, fmt, time_unit, skills, top_skills))
