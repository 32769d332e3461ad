"""Reading and validating response logs, without keeping who the students are.

Two log shapes are read, both CSV with a header row (a ``.tsv`` file, or a header
containing tabs and no commas, is read as tab-separated); extra columns are ignored:

* knowledge-tracing logs (ASSISTments exports, pyBKT): ``user_id, skill_name,
  correct, order_id`` and optionally ``timestamp``;
* review logs (spaced-repetition apps): ``user_id, item_id, timestamp, correct``.

Every problem raises ``ValueError`` naming the file, the line (the header is line 1)
and what is wrong: a missing column, an empty user id or name, ``correct`` not 0/1, a
non-numeric ``order_id`` or ``timestamp``, a repeated ``order_id`` of one user, an
empty log.

Privacy: user ids are only used, in memory, to group rows; the returned logs carry
student *indices* (0, 1, … in order of first appearance) and nothing else about the
user. Skill and item names are kept (they describe the course, not the student) and
mapped to indices in sorted order: numerically if every name is a number (so ``2`` comes
before ``10``), otherwise as strings.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KT_COLUMNS = ("user_id", "skill_name", "correct", "order_id")
REVIEW_COLUMNS = ("user_id", "item_id", "timestamp", "correct")
#: seconds per unit of the accepted timestamp units (the memory models count in days)
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "days": 86400.0}


@dataclass(frozen=True)
class ResponseLog:
    """Responses of a log as arrays, grouped by student and in each student's order.

    ``student[r]`` is the student index of row ``r``, ``unit[r]`` the index of its skill
    (knowledge tracing) or item (reviews) in ``names``, ``correct[r]`` 0/1 and
    ``time[r]`` the order id (knowledge tracing) or the time in days (reviews). Rows are
    sorted by student, then by ``time`` (ties keep file order).
    """

    student: np.ndarray
    unit: np.ndarray
    correct: np.ndarray
    time: np.ndarray
    names: tuple[str, ...]
    n_students: int
    source: str

    @property
    def n_rows(self) -> int:
        return len(self.student)

    def subset(self, students: Sequence[int] | np.ndarray) -> ResponseLog:
        """The rows of ``students`` (renumbered 0, 1, … in the given order)."""
        students = np.asarray(students, dtype=np.int64)
        new_index = np.full(self.n_students, -1, dtype=np.int64)
        new_index[students] = np.arange(len(students))
        keep = new_index[self.student] >= 0
        order = np.lexsort((np.arange(keep.sum()), new_index[self.student][keep]))
        pick = np.flatnonzero(keep)[order]
        return ResponseLog(
            new_index[self.student[pick]],
            self.unit[pick],
            self.correct[pick],
            self.time[pick],
            self.names,
            len(students),
            self.source,
        )

    def counts(self) -> np.ndarray:
        """Number of rows of each student."""
        return np.bincount(self.student, minlength=self.n_students)


def sorted_names(names: Iterable[str]) -> tuple[str, ...]:
    """Distinct names, numerically sorted if all are numbers, else as strings."""
    distinct = set(names)
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct))


def _delimiter(path: Path, header: str) -> str:
    if path.suffix.lower() == ".tsv" or ("\t" in header and "," not in header):
        return "\t"
    return ","


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}: line {line}: {column} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}: line {line}: {column} must be finite, got {text!r}")
    return value


def _correct(path: Path, line: int, text: str) -> int:
    value = text.strip()
    if value in ("0", "1"):
        return int(value)
    try:
        f = float(value)
    except ValueError:
        f = math.nan
    if f in (0.0, 1.0):
        return int(f)
    raise ValueError(f"{path}: line {line}: correct must be 0 or 1, got {text!r}")


def _read_rows(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs with the required columns present and non-empty user ids."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such log file")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        header = fh.readline()
        fh.seek(0)
        reader = csv.DictReader(fh, delimiter=_delimiter(path, header))
        found = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in found]
        if missing:
            raise ValueError(f"{path}: line 1: missing column(s) {missing}; the header has {found}")
        reader.fieldnames = found
        rows = []
        for row in reader:
            line = reader.line_num
            if any(row.get(c) is None for c in columns):
                raise ValueError(f"{path}: line {line}: too few fields (need {list(columns)})")
            rows.append((line, {c: row[c].strip() for c in columns}))
    if not rows:
        raise ValueError(f"{path}: the log has no data rows")
    for line, row in rows:
        for c in columns:
            if c in ("user_id", "skill_name", "item_id") and not row[c]:
                raise ValueError(f"{path}: line {line}: empty {c}")
    return rows


def _assemble(
    path: Path,
    users: list[str],
    units: list[str],
    correct: list[int],
    time: list[float],
) -> ResponseLog:
    index: dict[str, int] = {}
    student = np.fromiter((index.setdefault(u, len(index)) for u in users), dtype=np.int64, count=len(users))
    names = sorted_names(units)
    unit_index = {n: i for i, n in enumerate(names)}
    unit = np.fromiter((unit_index[u] for u in units), dtype=np.int64, count=len(units))
    t = np.asarray(time, dtype=np.float64)
    order = np.lexsort((np.arange(len(t)), t, student))
    return ResponseLog(
        student[order],
        unit[order],
        np.asarray(correct, dtype=np.int8)[order],
        t[order],
        names,
        len(index),
        str(path),
    )


def read_kt_log(path: str | os.PathLike[str]) -> ResponseLog:
    """Read a knowledge-tracing log (``user_id, skill_name, correct, order_id``)."""
    path = Path(path)
    rows = _read_rows(path, KT_COLUMNS)
    seen: dict[tuple[str, float], int] = {}
    users, skills, correct, order = [], [], [], []
    for line, row in rows:
        o = _number(path, line, "order_id", row["order_id"])
        key = (row["user_id"], o)
        if key in seen:
            raise ValueError(
                f"{path}: line {line}: duplicate order_id {row['order_id']!r} for this user "
                f"(first used on line {seen[key]})"
            )
        seen[key] = line
        users.append(row["user_id"])
        skills.append(row["skill_name"])
        correct.append(_correct(path, line, row["correct"]))
        order.append(o)
    return _assemble(path, users, skills, correct, order)


def read_review_log(path: str | os.PathLike[str], time_unit: str = "s") -> ResponseLog:
    """Read a review log (``user_id, item_id, timestamp, correct``); times become days.

    ``time_unit`` is the unit of ``timestamp``: ``"s"`` (Unix seconds, the default),
    ``"ms"`` or ``"days"``. Times are shifted so each student starts at day 0.
    """
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {list(TIME_UNITS)}, got {time_unit!r}")
    path = Path(path)
    rows = _read_rows(path, REVIEW_COLUMNS)
    scale = TIME_UNITS[time_unit] / 86400.0
    users, items, correct, times = [], [], [], []
    for line, row in rows:
        users.append(row["user_id"])
        items.append(row["item_id"])
        correct.append(_correct(path, line, row["correct"]))
        times.append(_number(path, line, "timestamp", row["timestamp"]) * scale)
    log = _assemble(path, users, items, correct, times)
    first = np.full(log.n_students, np.inf)
    np.minimum.at(first, log.student, log.time)
    return ResponseLog(
        log.student,
        log.unit,
        log.correct,
        log.time - first[log.student],
        log.names,
        log.n_students,
        log.source,
    )


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV log (used by the simulators); written to a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)
