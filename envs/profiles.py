"""Student profiles (tasks) and the populations they are drawn from.

A *profile* is the hidden, fixed description of one student for one model family:
learning rates, slip and guess, forgetting, preferences … Each family defines a
frozen dataclass deriving from :class:`StudentProfile` whose class attribute
``FIELDS`` documents every field's range. A profile validates itself on
construction, so an invalid student can never reach the dynamics.

A :class:`ProfileDistribution` is a population of students. It samples profiles
in four splits:

* ``train`` – the students a tutor is (meta-)trained on;
* ``val``   – the same population, used for model selection during training;
* ``test``  – the same population, kept for the final held-out evaluation;
* ``ood``   – a shifted population (each family states how in its docstring).

Every split draws from its own random stream (a ``numpy.random.SeedSequence``
keyed by the seed *and* the split), so the same seed always gives the same
profiles and no profile of one split equals a profile of another.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test", "ood")
_SPLIT_STREAM = {name: i for i, name in enumerate(SPLITS)}

P = TypeVar("P", bound="StudentProfile")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """Documentation and range of one profile field.

    ``dim`` is ``None`` for a scalar, or the name of the env dimension the vector
    runs over (e.g. ``"n_skills"``); all fields with the same ``dim`` must have the
    same length.
    """

    name: str
    low: float
    high: float
    doc: str
    dim: str | None = None
    low_open: bool = False
    high_open: bool = False

    def range_text(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"

    def contains(self, x: np.ndarray) -> np.ndarray:
        lo = x > self.low if self.low_open else x >= self.low
        hi = x < self.high if self.high_open else x <= self.high
        return lo & hi


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"profile field {name!r} must be a number, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class StudentProfile:
    """Base class of every family's profile; subclasses are frozen dataclasses.

    Scalar fields are ``float``; vector fields are ``tuple[float, ...]``. Values are
    coerced and validated in ``__post_init__``: a wrong type, NaN, an out-of-range
    value or inconsistent vector lengths raise ``ValueError`` naming the field and
    its allowed range.
    """

    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()

    def __post_init__(self) -> None:
        dims: dict[str, tuple[int, str]] = {}
        for spec in self.FIELDS:
            raw = getattr(self, spec.name)
            if spec.dim is None:
                value: Any = _as_float(spec.name, raw)
                arr = np.asarray([value])
            else:
                if isinstance(raw, (str, bytes)) or not isinstance(raw, (Sequence, np.ndarray)):
                    raise ValueError(
                        f"profile field {spec.name!r} must be a sequence of numbers "
                        f"(one per {spec.dim}), got {raw!r}"
                    )
                value = tuple(_as_float(spec.name, v) for v in raw)
                if len(value) == 0:
                    raise ValueError(f"profile field {spec.name!r} must not be empty")
                if spec.dim in dims and dims[spec.dim][0] != len(value):
                    other_len, other = dims[spec.dim]
                    raise ValueError(
                        f"profile field {spec.name!r} has length {len(value)} but {other!r} has "
                        f"length {other_len}; both run over {spec.dim}"
                    )
                dims.setdefault(spec.dim, (len(value), spec.name))
                arr = np.asarray(value)
            if np.any(np.isnan(arr)) or not np.all(spec.contains(arr)):
                raise ValueError(f"profile field {spec.name!r} must lie in {spec.range_text()}, got {raw!r}")
            object.__setattr__(self, spec.name, value)

    @classmethod
    def check_batch(cls, arrays: Mapping[str, np.ndarray]) -> None:
        """The checks across fields that a subclass's ``__post_init__`` adds, on a batch of
        arrays ``(n,)`` / ``(n, dim)`` per field whose values passed their fields' ranges
        (:meth:`ProfileDistribution.sample_arrays`); none here."""

    @classmethod
    def _from_checked(cls, **values: Any) -> StudentProfile:
        # a profile from values coerced and validated as a batch (sample_arrays, which also
        # runs check_batch): re-checking every object in __post_init__ took 15 % of a pooled
        # PPO iteration, which draws 800 students
        obj = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(obj, name, value)
        return obj

    # ----------------------------------------------------------------- queries
    def dims(self) -> dict[str, int]:
        """Lengths of the vector dimensions, e.g. ``{"n_skills": 8}``."""
        out: dict[str, int] = {}
        for spec in self.FIELDS:
            if spec.dim is not None:
                out[spec.dim] = len(getattr(self, spec.name))
        return out

    def check_dims(self, **expected: int) -> None:
        """Raise ``ValueError`` if a vector field does not match the env's dimensions."""
        for spec in self.FIELDS:
            if spec.dim is not None and spec.dim in expected:
                n = len(getattr(self, spec.name))
                if n != expected[spec.dim]:
                    raise ValueError(
                        f"profile field {spec.name!r} has length {n}, but the env has "
                        f"{spec.dim}={expected[spec.dim]}"
                    )

    # ------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``from_dict(to_dict())`` gives back an equal profile."""
        out: dict[str, Any] = {}
        for spec in self.FIELDS:
            v = getattr(self, spec.name)
            out[spec.name] = list(v) if spec.dim is not None else v
        return out

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(s.name for s in cls.FIELDS)

    @classmethod
    def from_dict(cls: type[P], data: Mapping[str, Any]) -> P:
        """Build a profile from a mapping; unknown or missing fields are an error."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"a {cls.__name__} must be given as a dict, got {type(data).__name__}")
        names = cls.field_names()
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data]
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {list(names)}")
        if missing:
            raise ValueError(f"missing {cls.__name__} field(s) {missing}")
        return cls(**{n: data[n] for n in names})

    @classmethod
    def describe_fields(cls) -> str:
        """One line per field: name, range, dimension and meaning (used in docstrings)."""
        lines = []
        for s in cls.FIELDS:
            shape = f" per {s.dim}" if s.dim else ""
            lines.append(f"- ``{s.name}`` in {s.range_text()}{shape}: {s.doc}")
        return "\n".join(lines)


def stack_profiles(profiles: Sequence[StudentProfile]) -> dict[str, np.ndarray]:
    """Stack profiles of one family into arrays of shape ``(n,)`` or ``(n, dim)``."""
    if not profiles:
        raise ValueError("need at least one profile")
    cls = type(profiles[0])
    for p in profiles:
        if type(p) is not cls:
            raise ValueError(f"cannot stack a {type(p).__name__} with a {cls.__name__}")
    return {s.name: np.asarray([getattr(p, s.name) for p in profiles], dtype=np.float64) for s in cls.FIELDS}


class ProfileDistribution(ABC):
    """A population of students of one family, sampled in splits.

    Subclasses set ``profile_cls`` and implement :meth:`_sample_arrays`, which
    draws ``n`` students as arrays from a ``numpy.random.Generator`` for a given
    split. Constructor keyword arguments are the env dimensions (``n_skills`` …)
    that fix the length of vector fields.
    """

    profile_cls: ClassVar[type[StudentProfile]]

    @classmethod
    def learning_speed(cls, profile: Mapping[str, Any]) -> float | None:
        """How fast this student learns, one number (larger = faster), or ``None`` when the
        family defines none.

        The evaluation splits held-out students into the slowest and fastest quartiles of
        this number (``subgroups`` in ``results.json``); ``profile`` is the dict form of a
        profile (:meth:`StudentProfile.to_dict`). Families override it.
        """
        return None

    @abstractmethod
    def _sample_arrays(self, rng: np.random.Generator, n: int, split: str) -> dict[str, np.ndarray]:
        """Return one array per profile field, shape ``(n,)`` or ``(n, dim)``."""

    @staticmethod
    def split_rng(seed: int, split: str) -> np.random.Generator:
        """The random stream of ``split`` for ``seed`` (independent across splits)."""
        check_split(split)
        # below 2**32: SeedSequence([s, k]) equals SeedSequence(s + k * 2**32), so a larger seed
        # could reproduce another split's stream (or a generator seeded with that integer)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _SPLIT_STREAM[split]])))

    def sample(
        self,
        n: int,
        split: str = "train",
        seed: int | None = 0,
        rng: np.random.Generator | None = None,
    ) -> list[StudentProfile]:
        """Draw ``n`` profiles of ``split``.

        With ``rng`` given it is used (and advanced) instead of ``seed``; this is
        how envs draw a fresh student at reset.
        """
        check_split(split)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if rng is None:
            rng = self.split_rng(0 if seed is None else seed, split)
        arrays = self.sample_arrays(int(n), split, rng)
        return [self._profile_from_arrays(arrays, i) for i in range(int(n))]

    def sample_arrays(self, n: int, split: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` students as arrays (one per field), validated as a whole batch.

        The fast path of envs that draw a fresh student at every reset: no profile
        objects are built, yet every value is checked against its field's range.
        """
        check_split(split)
        arrays = self._sample_arrays(rng, n, split)
        widths: dict[str, int] = {}
        for spec in self.profile_cls.FIELDS:
            a = np.asarray(arrays[spec.name], dtype=np.float64)
            if a.shape[0] != n or (a.ndim != 1 if spec.dim is None else a.ndim != 2):
                raise ValueError(f"{type(self).__name__} drew {spec.name!r} with shape {a.shape}")
            if spec.dim is not None and (
                a.shape[1] == 0 or widths.setdefault(spec.dim, a.shape[1]) != a.shape[1]
            ):
                raise ValueError(f"{type(self).__name__} drew {spec.name!r} with {a.shape[1]} {spec.dim}")
            if np.isnan(a).any() or not spec.contains(a).all():
                raise ValueError(f"{type(self).__name__} drew {spec.name!r} outside {spec.range_text()}")
            arrays[spec.name] = a
        self.profile_cls.check_batch(arrays)
        return arrays

    def _profile_from_arrays(self, arrays: Mapping[str, np.ndarray], i: int) -> StudentProfile:
        kwargs: dict[str, Any] = {}
        for s in self.profile_cls.FIELDS:
            a = arrays[s.name][i]
            # round-trip through Python floats so JSON gives back exactly the same profile
            kwargs[s.name] = tuple(float(v) for v in a) if s.dim is not None else float(a)
        return self.profile_cls._from_checked(**kwargs)


def check_split(split: str) -> None:
    if split not in _SPLIT_STREAM:
        raise ValueError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")


def clipped_normal(
    rng: np.random.Generator, mean: float, sd: float, low: float, high: float, size: Any
) -> np.ndarray:
    """Normal draws clipped into ``[low, high]`` – a simple bounded population model."""
    return np.clip(rng.normal(mean, sd, size=size), low, high)


def logit_normal(rng: np.random.Generator, mean: float, sd: float, size: Any) -> np.ndarray:
    """Draws in (0, 1) whose logit is Normal(logit(mean), sd)."""
    mu = math.log(mean / (1.0 - mean))
    return 1.0 / (1.0 + np.exp(-rng.normal(mu, sd, size=size)))
