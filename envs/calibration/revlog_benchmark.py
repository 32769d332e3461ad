"""How well each memory model predicts a real learner's reviews: a time-series split.

The benchmark of issue 17, in the manner of the srs-benchmark (open-spaced-repetition):
the reviews of one learner are split in time at ``cut`` (by default the time of the
review at 80 % of the log); every model is fitted on the reviews before the cut and
predicts each review after it from all earlier reviews of the same card (the history
keeps running; the parameters stay fixed). A review is *scored* when its card was last
reviewed at least one day earlier, as in the srs-benchmark and ``fsrs.Optimizer``'s loss
(same-day learning steps are not predictions of memory), and never a card's first review.

Models:

* ``exponential``, ``hlr``, ``power``, ``fsrs``: the memory models of SpacedRepetition-v0,
  replayed through the env's own update (``envs.calibration.memory.replay``); the learner's
  ``decay``, ``gain`` and ``fail_effect`` fitted by maximum likelihood on the training
  reviews (``memory.fit_pooled``, the fit ``meta-tutor calibrate`` makes), the likelihood
  counting the same kind of review as the score (all reviews update the memory state);
  item difficulties are 0. Every card is replayed as its own sequence (cards do not
  interact in these models), which is the same likelihood and much faster than one
  sequence of 10⁴ reviews.
* the same four with ``decay = gain = fail_effect = 1`` (the env's population centre,
  nothing fitted);
* ``fsrs_package_default``: ``fsrs.Scheduler`` (6.3.2) with its default FSRS-6 weights,
  driven exactly as ``fsrs.Optimizer`` computes its loss: every review is replayed with
  its real 1-4 rating and the retrievability is read before it, at whole elapsed days;
* ``fsrs_package_optimized`` (``optimize_fsrs``): the same with the 21 weights fitted by
  ``fsrs.Optimizer`` on the training reviews, as the srs-benchmark does per user;
* ``constant``: the recall rate of the scored training reviews.

Scores: log-loss (natural log) and AUC of the scored reviews after the cut.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from envs.calibration import memory, predict
from envs.calibration.logs import ANKI_COLUMNS, ResponseLog, _read_rows, _timestamp
from envs.spaced_repetition.memory_models import MEMORY_MODELS


@dataclass(frozen=True)
class Revlog:
    """One learner's reviews sorted by (card, time): card index, 1-4 rating, Unix seconds."""

    card: np.ndarray
    rating: np.ndarray
    seconds: np.ndarray
    n_cards: int
    source: str

    @property
    def correct(self) -> np.ndarray:
        return self.rating > 1

    @property
    def days(self) -> np.ndarray:
        return (self.seconds - self.seconds.min()) / 86400.0


def read_revlog(path: str | os.PathLike[str]) -> Revlog:
    """An Anki / fsrs review log of one learner (``card_id, review_rating, review_time``)."""
    path = Path(path)
    rows = _read_rows(path, ANKI_COLUMNS)
    names: dict[str, int] = {}
    card, rating, seconds = [], [], []
    for line, row in rows:
        if row["review_rating"] not in ("1", "2", "3", "4"):
            raise ValueError(f"{path}: line {line}: review_rating must be 1-4, got {row['review_rating']!r}")
        card.append(names.setdefault(row["card_id"], len(names)))
        rating.append(int(row["review_rating"]))
        seconds.append(_timestamp(path, line, "review_time", row["review_time"], 1.0))
    c, r, s = np.array(card), np.array(rating), np.array(seconds)
    order = np.lexsort((np.arange(len(c)), s, c))
    return Revlog(c[order], r[order], s[order], len(names), str(path))


def scored_mask(log: Revlog) -> np.ndarray:
    """Reviews whose card was reviewed before, at least one day earlier."""
    same = np.r_[False, log.card[1:] == log.card[:-1]]
    gap = np.r_[np.inf, np.diff(log.seconds)] / 86400.0
    return same & (gap >= 1.0)


def _per_card(log: Revlog, keep: np.ndarray, scored: np.ndarray | None = None) -> memory.Reviews:
    """Every card a sequence of its own (n_items = 1); ``scored`` rows enter the likelihood."""
    rl = ResponseLog(
        log.card[keep],
        np.zeros(int(keep.sum()), dtype=np.int64),
        log.correct[keep].astype(np.int8),
        log.days[keep],
        ("card",),
        log.n_cards,
        log.source,
    )
    data = memory.reviews(rl, 1)
    if scored is None:
        return data
    cells = np.zeros_like(data.valid)
    cells[data.valid] = scored[keep]  # memory.reviews keeps the (card, time) order of ``log``
    return dataclasses.replace(data, scored=cells)


def _replay(model: str, data: memory.Reviews, params: tuple[float, float, float]) -> np.ndarray:
    from envs.spaced_repetition.memory_models import make_model

    n = data.n_students
    p, _ = memory.replay(
        make_model(model), data, *(np.full(n, v) for v in params), np.zeros((n, data.n_items))
    )
    return p


def _flat(p: np.ndarray, data: memory.Reviews) -> np.ndarray:
    return p[data.valid]


def fsrs_package_predictions(log: Revlog, parameters: list[float] | None = None) -> np.ndarray:
    """Retrievability of ``fsrs.Scheduler`` before every review (0 for first ones).

    ``parameters``: FSRS-6 weights (default: the package's ``DEFAULT_PARAMETERS``).
    """
    from fsrs import Card, Rating, Scheduler
    from fsrs.scheduler import DEFAULT_PARAMETERS

    scheduler = Scheduler(parameters=parameters or DEFAULT_PARAMETERS, enable_fuzzing=False)
    out = np.zeros(len(log.card))
    card = None
    for i, (c, r, s) in enumerate(zip(log.card.tolist(), log.rating.tolist(), log.seconds.tolist())):
        when = datetime.fromtimestamp(s, tz=timezone.utc)
        if i == 0 or c != log.card[i - 1]:
            card = Card(card_id=c + 1, due=when)
        assert card is not None
        out[i] = float(scheduler.get_card_retrievability(card, current_datetime=when))
        card, _ = scheduler.review_card(card, Rating(r), review_datetime=when)
    return out


def fsrs_package_optimized(log: Revlog, keep: np.ndarray) -> list[float]:
    """FSRS-6 weights fitted by ``fsrs.Optimizer`` on the reviews ``keep`` (minutes per 10⁴ reviews)."""
    from fsrs import Optimizer, Rating, ReviewLog

    reviews = [
        ReviewLog(int(c) + 1, Rating(int(r)), datetime.fromtimestamp(s, tz=timezone.utc), None)
        for c, r, s in zip(log.card[keep], log.rating[keep], log.seconds[keep])
    ]
    return [float(v) for v in Optimizer(reviews).compute_optimal_parameters()]


def run(
    path: str | os.PathLike[str],
    train_fraction: float = 0.8,
    models: tuple[str, ...] = MEMORY_MODELS,
    max_iter: int = 200,
    optimize_fsrs: bool = False,
) -> dict[str, Any]:
    """Fit on the reviews before the cut, score the ones after (see the module docstring).

    ``optimize_fsrs`` adds ``fsrs_package_optimized``: the package's FSRS-6 with its 21
    weights fitted by ``fsrs.Optimizer`` on the training reviews (the srs-benchmark's
    protocol; slow).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    log = read_revlog(path)
    by_time = np.sort(log.seconds)
    cut = by_time[int(train_fraction * (len(by_time) - 1))]
    scored = scored_mask(log)
    train, test = log.seconds < cut, log.seconds >= cut
    y = log.correct
    ev = scored & test
    # fitted on the same kind of review as scored (>= 1 day since the card's last review)
    train_data = _per_card(log, train, scored)
    full_data = _per_card(log, np.ones(len(log.card), dtype=bool))
    preds: dict[str, np.ndarray] = {}
    fitted: dict[str, dict[str, Any]] = {}
    for name in models:
        fit = memory.fit_pooled(train_data, name, max_iter=max_iter)
        params = (float(fit.decay[0]), float(fit.gain[0]), float(fit.fail_effect[0]))
        fitted[name] = {
            "decay": params[0],
            "gain": params[1],
            "fail_effect": params[2],
            "converged": fit.converged,
        }
        preds[f"{name} (fitted)"] = _flat(_replay(name, full_data, params), full_data)
        preds[f"{name} (env default)"] = _flat(_replay(name, full_data, (1.0, 1.0, 1.0)), full_data)
    preds["fsrs_package_default"] = fsrs_package_predictions(log)
    if optimize_fsrs:
        weights = fsrs_package_optimized(log, train)
        fitted["fsrs_package_optimized"] = {"parameters": weights}  # type: ignore[dict-item]
        preds["fsrs_package_optimized"] = fsrs_package_predictions(log, weights)
    preds["constant"] = np.full(len(y), y[scored & train].mean())
    # memory.reviews keeps rows in (card, time) order, the order of ``log``: flat predictions align
    scores = {k: predict.scores(y[ev], p[ev]) for k, p in preds.items()}
    return {
        "log": str(path),
        "n_reviews": len(log.card),
        "n_cards": log.n_cards,
        "recall_rate": float(y.mean()),
        "train_fraction": train_fraction,
        "cut_utc": datetime.fromtimestamp(float(cut), tz=timezone.utc).isoformat(),
        "n_scored": {"train": int((scored & train).sum()), "test": int(ev.sum())},
        "fitted": fitted,
        "scores": scores,
    }


def table(result: dict[str, Any]) -> str:
    """The scores as a Markdown table, best log-loss first."""
    rows = sorted(result["scores"].items(), key=lambda kv: kv[1]["log_loss"])
    lines = ["| model | log-loss | AUC |", "|---|---|---|"]
    lines += [f"| {k} | {s['log_loss']:.4f} | {s['auc']:.3f} |" for k, s in rows]
    return "\n".join(lines)
