"""Reading and validating response logs, without keeping who the students are.

Formats read (CSV files have a header row; a ``.tsv`` file, or a header containing tabs
and no commas, is read as tab-separated; extra columns are ignored):

* knowledge-tracing CSV (ASSISTments exports, pyBKT): ``user_id, skill_name, correct,
  order_id`` and optionally ``timestamp`` and ``item_id`` (the question; ZPD-v0 fits a
  difficulty per item) (``fmt="csv"``);
* the three-line sequence format of the knowledge-tracing literature (DKT's ASSISTments
  and Cognitive Tutor releases; ``fmt="seq3"``): per student, a line with the number of
  answers ``n``, a line of ``n`` comma-separated skill ids, a line of ``n`` 0/1
  correctness values; students are numbered by their position in the file and the
  ``order_id`` of an answer is its position in the sequence;
* review CSV (spaced-repetition apps): ``user_id, item_id, timestamp, correct``
  (``fmt="csv"``);
* Anki / ``fsrs`` review logs (``fmt="anki"``): ``card_id, review_rating, review_time``
  (and optionally ``review_duration``, ``user_id``): ``review_rating`` 1 (Again: forgotten)
  to 4 is read as ``correct = rating > 1``; without a ``user_id`` column the whole file is
  one learner.

``fmt="auto"`` picks the format from the first line: a lone integer is the three-line
format, a header with ``review_rating`` the Anki format, anything else CSV.
Timestamps are numbers in a unit (``time_unit``: seconds, ms or days) or ISO-8601
strings (``2024-03-29T20:32:32.25+00:00``, ``…Z``; a time without a zone is read as UTC).

Every problem raises ``ValueError`` naming the file, the line (the header is line 1)
and what is wrong: a file that is not UTF-8 text, a missing column, an empty user id or
name, ``correct`` not 0/1, a rating outside 1-4, a non-numeric ``order_id`` or a
timestamp that is neither a number nor an ISO-8601 time, a repeated ``order_id`` of one
user, a three-line record whose lengths disagree, an empty log.

Privacy: user ids are only used, in memory, to group rows; the returned logs carry
student *indices* (0, 1, … in order of first appearance) and nothing else about the
user. Skill and item names are kept (they describe the course, not the student) and
mapped to indices in sorted order: numerically if every name is a number (so ``2`` comes
before ``10``), otherwise as strings.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

KT_COLUMNS = ("user_id", "skill_name", "correct", "order_id")
REVIEW_COLUMNS = ("user_id", "item_id", "timestamp", "correct")
ANKI_COLUMNS = ("card_id", "review_rating", "review_time")
FORMATS = ("auto", "csv", "seq3", "anki")
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
    #: index of each row's item in ``item_names`` (knowledge-tracing logs with an ``item_id``
    #: column; the ZPD-v0 calibration fits a difficulty per item), else ``None``
    item: np.ndarray | None = None
    item_names: tuple[str, ...] = ()

    def _rows(self, pick: np.ndarray, **changes) -> ResponseLog:
        """The rows ``pick`` (in that order), every per-row array taken alike."""
        fields = {
            "student": self.student[pick],
            "unit": self.unit[pick],
            "correct": self.correct[pick],
            "time": self.time[pick],
            "item": None if self.item is None else self.item[pick],
        }
        return dataclasses.replace(self, **{**fields, **changes})

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
        return self._rows(pick, student=new_index[self.student[pick]], n_students=len(students))

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


def read_text(path: str | os.PathLike[str]) -> str:
    """The file as text; a file that is not UTF-8 gets an error naming its line and byte.

    A UTF-8 byte-order mark (Excel's CSV export) is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such log file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(
            f"{path}: line {line}: not UTF-8 text (byte {data[e.start : e.start + 1]!r} at column {col}); "
            "save the log as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


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


def _timestamp(path: Path, line: int, column: str, text: str, unit_seconds: float) -> float:
    """Seconds since the Unix epoch: a number in the given unit, or an ISO-8601 time.

    ISO times with a zone (``+02:00``, ``Z``) are converted to UTC; without one they are
    read as UTC.
    """
    try:
        value = float(text)
    except ValueError:
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{path}: line {line}: {column} must be a number or an ISO-8601 time, got {text!r}"
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return stamp.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"{path}: line {line}: {column} must be finite, got {text!r}")
    return value * unit_seconds


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


def _read_rows(
    path: Path, columns: Sequence[str], optional: Sequence[str] = ()
) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs with the required columns present and non-empty names.

    ``optional`` columns are kept when the header has them.
    """
    text = read_text(path)
    header = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(path, header))
    found = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in columns if c not in found]
    if missing:
        raise ValueError(f"{path}: line 1: missing column(s) {missing}; the header has {found}")
    reader.fieldnames = found
    keep = [*columns, *(c for c in optional if c in found)]
    rows = []
    try:
        for row in reader:
            line = reader.line_num
            if any(row.get(c) is None for c in keep):
                raise ValueError(f"{path}: line {line}: too few fields (need {list(keep)})")
            rows.append((line, {c: row[c].strip() for c in keep}))
    except csv.Error as e:
        raise ValueError(f"{path}: line {reader.line_num}: unreadable CSV ({e})") from None
    if not rows:
        raise ValueError(f"{path}: the log has no data rows")
    for line, row in rows:
        for c in ("user_id", "skill_name", "item_id", "card_id"):
            if c in row and not row[c]:
                raise ValueError(f"{path}: line {line}: empty {c}")
    return rows


def _assemble(
    path: Path,
    users: list[str],
    units: list[str],
    correct: list[int],
    time: list[float],
    items: list[str] | None = None,
) -> ResponseLog:
    index: dict[str, int] = {}
    student = np.fromiter((index.setdefault(u, len(index)) for u in users), dtype=np.int64, count=len(users))
    names = sorted_names(units)
    unit_index = {n: i for i, n in enumerate(names)}
    unit = np.fromiter((unit_index[u] for u in units), dtype=np.int64, count=len(units))
    t = np.asarray(time, dtype=np.float64)
    order = np.lexsort((np.arange(len(t)), t, student))
    item, item_names = None, ()
    if items is not None:
        item_names = sorted_names(items)
        item_index = {n: i for i, n in enumerate(item_names)}
        item = np.fromiter((item_index[u] for u in items), dtype=np.int64, count=len(items))[order]
    return ResponseLog(
        student[order],
        unit[order],
        np.asarray(correct, dtype=np.int8)[order],
        t[order],
        names,
        len(index),
        str(path),
        item,
        item_names,
    )


def read_kt_log(path: str | os.PathLike[str]) -> ResponseLog:
    """Read a knowledge-tracing log (``user_id, skill_name, correct, order_id``)."""
    path = Path(path)
    rows = _read_rows(path, KT_COLUMNS, optional=("item_id",))
    seen: dict[tuple[str, float], int] = {}
    users, skills, correct, order, items = [], [], [], [], []
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
        if "item_id" in row:
            if not row["item_id"]:
                raise ValueError(f"{path}: line {line}: empty item_id")
            items.append(row["item_id"])
    return _assemble(path, users, skills, correct, order, items or None)


def _fields(line_text: str) -> list[str]:
    parts = [p.strip() for p in line_text.strip().split(",")]
    return parts[:-1] if len(parts) > 1 and parts[-1] == "" else parts  # a trailing comma


def read_seq3_log(path: str | os.PathLike[str]) -> ResponseLog:
    """Read the three-line sequence format (see the module docstring) as a knowledge-tracing log.

    Student ``i`` (the ``i``-th record) gets the user id ``s<i>``; answer ``j`` of a record
    gets ``order_id = j``, so the result equals :func:`read_kt_log` of the equivalent CSV.
    """
    path = Path(path)
    lines = read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: the log has no data rows")
    if len(lines) % 3:
        raise ValueError(
            f"{path}: line {len(lines)}: the file has {len(lines)} lines, not a multiple of 3 "
            "(three-line format: count, skill ids, correctness per student)"
        )
    users, skills, correct, order = [], [], [], []
    for r in range(0, len(lines), 3):
        head = lines[r].strip().rstrip(",")
        try:
            n = int(head)
        except ValueError:
            raise ValueError(
                f"{path}: line {r + 1}: the number of answers must be an integer, got {head!r}"
            ) from None
        ids, ys = _fields(lines[r + 1]), _fields(lines[r + 2])
        for line, what, got in ((r + 2, "skill ids", ids), (r + 3, "correctness values", ys)):
            if len(got) != n:
                raise ValueError(f"{path}: line {line}: {len(got)} {what}, but line {r + 1} says {n} answers")
        for j, (k, y) in enumerate(zip(ids, ys)):
            if not k:
                raise ValueError(f"{path}: line {r + 2}: empty skill id (answer {j + 1})")
            users.append(f"s{r // 3}")
            skills.append(k)
            correct.append(_correct(path, r + 3, y))
            order.append(float(j))
    return _assemble(path, users, skills, correct, order)


def _from_day0(log: ResponseLog) -> ResponseLog:
    first = np.full(log.n_students, np.inf)
    np.minimum.at(first, log.student, log.time)
    return dataclasses.replace(log, time=log.time - first[log.student])


def read_review_log(path: str | os.PathLike[str], time_unit: str = "s") -> ResponseLog:
    """Read a review log (``user_id, item_id, timestamp, correct``); times become days.

    ``time_unit`` is the unit of numeric timestamps: ``"s"`` (Unix seconds, the default),
    ``"ms"`` or ``"days"``; ISO-8601 strings are read as such. Times are shifted so each
    student starts at day 0.
    """
    unit_seconds = _unit(time_unit)
    path = Path(path)
    rows = _read_rows(path, REVIEW_COLUMNS)
    users, items, correct, times = [], [], [], []
    for line, row in rows:
        users.append(row["user_id"])
        items.append(row["item_id"])
        correct.append(_correct(path, line, row["correct"]))
        times.append(_timestamp(path, line, "timestamp", row["timestamp"], unit_seconds) / 86400.0)
    return _from_day0(_assemble(path, users, items, correct, times))


def _unit(time_unit: str) -> float:
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {list(TIME_UNITS)}, got {time_unit!r}")
    return TIME_UNITS[time_unit]


def read_anki_log(path: str | os.PathLike[str], time_unit: str = "s") -> ResponseLog:
    """Read an Anki / ``fsrs`` review log (``card_id, review_rating, review_time``).

    ``correct = review_rating > 1`` (rating 1, Again, means the card was forgotten); the
    rating must be 1-4. Without a ``user_id`` column every row is one learner. The result
    equals :func:`read_review_log` of the equivalent ``user_id, item_id, timestamp,
    correct`` file.
    """
    unit_seconds = _unit(time_unit)
    path = Path(path)
    rows = _read_rows(path, ANKI_COLUMNS, optional=("user_id",))
    users, items, correct, times = [], [], [], []
    for line, row in rows:
        rating = row["review_rating"]
        if rating not in ("1", "2", "3", "4"):
            raise ValueError(f"{path}: line {line}: review_rating must be 1, 2, 3 or 4, got {rating!r}")
        users.append(row.get("user_id", "learner"))
        items.append(row["card_id"])
        correct.append(int(rating != "1"))
        times.append(_timestamp(path, line, "review_time", row["review_time"], unit_seconds) / 86400.0)
    return _from_day0(_assemble(path, users, items, correct, times))


def detect_format(path: str | os.PathLike[str]) -> str:
    """``seq3``, ``anki`` or ``csv``, from the first line of the file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such log file")
    with path.open("rb") as fh:
        first = fh.readline().decode("utf-8-sig", errors="replace").strip().rstrip(",")
    if first.isdigit():
        return "seq3"
    if "review_rating" in first:
        return "anki"
    return "csv"


def read_log(path: str | os.PathLike[str], kind: str, fmt: str = "auto", time_unit: str = "s") -> ResponseLog:
    """Read a log of ``kind`` ``"kt"`` (answers to skills) or ``"review"`` in format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {list(FORMATS)}, got {fmt!r}")
    if kind not in ("kt", "review"):
        raise ValueError(f"log kind must be 'kt' or 'review', got {kind!r}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if kind == "kt":
        if fmt == "anki":
            raise ValueError(f"{path}: an Anki review log cannot calibrate a knowledge-tracing env")
        return read_seq3_log(path) if fmt == "seq3" else read_kt_log(path)
    if fmt == "seq3":
        raise ValueError(f"{path}: a three-line sequence log has no times; a review log needs them")
    return read_anki_log(path, time_unit) if fmt == "anki" else read_review_log(path, time_unit)


def select_units(log: ResponseLog, names: Sequence[str] | None = None, top: int | None = None) -> ResponseLog:
    """Keep the rows of the skills/items ``names``, or of the ``top`` most-answered ones.

    Ties in the answer count are broken by name order. The kept units are re-indexed in
    the log's name order; students keep their indices (one with no row left is dropped
    later, as too short).
    """
    if names is not None and top is not None:
        raise ValueError("choose skills by name or by count (--skills or --top-skills), not both")
    if names is None and top is None:
        return log
    if names is not None:
        index = {n: i for i, n in enumerate(log.names)}
        unknown = [n for n in names if n not in index]
        if unknown:
            shown = list(log.names[:20]) + (["…"] if len(log.names) > 20 else [])
            raise ValueError(f"{log.source}: unknown skill/item name(s) {unknown}; the log has {shown}")
        if len(set(names)) != len(names):
            raise ValueError(f"repeated skill/item name in {list(names)}")
        chosen = np.sort([index[n] for n in names])
    else:
        assert top is not None
        if not 1 <= top:
            raise ValueError(f"--top-skills must be a positive integer, got {top!r}")
        counts = np.bincount(log.unit, minlength=len(log.names))
        chosen = np.sort(np.argsort(-counts, kind="stable")[: min(top, len(log.names))])
    new = np.full(len(log.names), -1)
    new[chosen] = np.arange(len(chosen))
    keep = np.flatnonzero(new[log.unit] >= 0)
    return log._rows(keep, unit=new[log.unit[keep]], names=tuple(log.names[i] for i in chosen))


def group_decks(log: ResponseLog, deck_size: int) -> ResponseLog:
    """Cut each student's items into decks of ``deck_size`` items; every deck becomes a student.

    A learner's items are ranked by their first review; item ``r`` goes to deck
    ``r // deck_size`` as deck item ``r % deck_size``. The decks of a student keep the
    student's clock, shifted so each deck starts at 0. The names become the positions
    ``"0" … "deck_size − 1"``. One learner's review log thus gives many same-sized tasks,
    each the size of the env's ``n_items``.
    """
    if not (isinstance(deck_size, int) and deck_size >= 1):
        raise ValueError(f"deck size must be a positive integer, got {deck_size!r}")
    n_units = len(log.names)
    key = log.student * n_units + log.unit
    # rank of each (student, item) by its first appearance in the log (students, then time)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    by_time = np.argsort(first)
    starts = np.searchsorted(log.student[first[by_time]], np.arange(log.n_students))
    rank_unique = np.empty(len(first), dtype=np.int64)
    rank_unique[by_time] = np.arange(len(first)) - starts[log.student[first[by_time]]]
    rank = rank_unique[inverse.reshape(-1)]
    decks_per_student = np.zeros(log.n_students, dtype=np.int64)
    np.maximum.at(decks_per_student, log.student, rank // deck_size + 1)
    offset = np.concatenate([[0], np.cumsum(decks_per_student)[:-1]])
    student = offset[log.student] + rank // deck_size
    order = np.lexsort((np.arange(len(student)), student))
    out = ResponseLog(
        student[order],
        (rank % deck_size)[order],
        log.correct[order],
        log.time[order],
        tuple(str(i) for i in range(deck_size)),
        int(decks_per_student.sum()),
        log.source,
    )
    return _from_day0(out)


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
