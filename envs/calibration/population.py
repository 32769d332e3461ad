"""Fitted populations on disk, and the ``ProfileDistribution`` built from them.

``meta-tutor calibrate --out population.json`` writes three files side by side:

* ``population.json`` — the fitted profiles of the *training* students, in the
  ``envs.save_profiles`` format (``{"env_id": ..., "profiles": [...]}``, nothing else), so
  ``envs.load_profiles`` and ``meta-tutor evaluate --profiles`` accept it. A student is
  identified only by its position in the list.
* ``population.test.json`` — the same for the held-out students (same format): evaluate
  a tutor on them with ``meta-tutor evaluate --profiles population.test.json``.
* ``population.meta.json`` — how the fit was made: env kwargs, settings, skill or item
  names, counts, the pooled (population) parameters and held-out prediction scores.
  It holds no user ids and no responses.

:class:`PopulationDistribution` samples ``train`` and ``val`` students from the training
profiles and ``test`` students from the held-out ones, by resampling with replacement;
with ``jitter > 0`` every draw is perturbed by ``N(0, jitter²)`` on the logit scale of each
field's range (so it stays in range), making every draw a new, similar student.
``val`` reuses the training profiles (there are no other fitted students to select
models on); ``ood`` is undefined for a fitted population and raises ``ValueError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.profiles import ProfileDistribution, StudentProfile, stack_profiles


def sibling(path: str | os.PathLike[str], kind: str) -> Path:
    """``population.json`` → ``population.<kind>.json`` (``kind``: ``test`` or ``meta``)."""
    path = Path(path)
    stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
    return path.with_name(f"{stem}.{kind}.json")


class PopulationDistribution(ProfileDistribution):
    """A population made of fitted profiles (see the module docstring)."""

    def __init__(
        self,
        profiles: Sequence[StudentProfile],
        test_profiles: Sequence[StudentProfile] | None = None,
        jitter: float = 0.0,
    ) -> None:
        if not profiles:
            raise ValueError("a fitted population needs at least one training profile")
        if not jitter >= 0:
            raise ValueError(f"jitter must be >= 0, got {jitter!r}")
        self.profile_cls = type(profiles[0])
        self.train = stack_profiles(list(profiles))
        self.test = stack_profiles(list(test_profiles)) if test_profiles else None
        self.jitter = float(jitter)

    def held_out(self) -> list[StudentProfile]:
        """Every held-out (test) student once, in file order."""
        if self.test is None:
            raise ValueError("this fitted population has no held-out (test) students")
        n = len(next(iter(self.test.values())))
        return [self._profile_from_arrays(self.test, i) for i in range(n)]

    def _sample_arrays(self, rng: np.random.Generator, n: int, split: str) -> dict[str, np.ndarray]:
        if split == "ood":
            raise ValueError("a fitted population has no ood split (use train, val or test)")
        if split == "test" and self.test is None:
            raise ValueError("this fitted population has no held-out (test) students")
        pool = self.test if split == "test" else self.train
        assert pool is not None
        pick = rng.integers(0, len(next(iter(pool.values()))), size=n)
        out = {}
        for spec in self.profile_cls.FIELDS:
            a = pool[spec.name][pick]
            if self.jitter > 0:
                u = np.clip((a - spec.low) / (spec.high - spec.low), 1e-6, 1.0 - 1e-6)
                z = np.log(u / (1.0 - u)) + rng.normal(0.0, self.jitter, size=a.shape)
                a = spec.low + (spec.high - spec.low) / (1.0 + np.exp(-z))
            out[spec.name] = a
        return out


def write_population(
    out: str | os.PathLike[str],
    env_id: str,
    train: Sequence[Mapping[str, Any] | StudentProfile],
    test: Sequence[Mapping[str, Any] | StudentProfile],
    meta: Mapping[str, Any],
) -> dict[str, Path]:
    """Write the three files of a fitted population; returns their paths."""
    import envs

    paths = {"population": Path(out), "test": sibling(out, "test"), "meta": sibling(out, "meta")}
    envs.save_profiles(paths["population"], env_id, train)
    if test:
        envs.save_profiles(paths["test"], env_id, test)
    tmp = paths["meta"].with_name(paths["meta"].name + ".tmp")
    tmp.write_text(json.dumps(dict(meta), indent=1))
    os.replace(tmp, paths["meta"])
    return paths


def meta_path(path: str | os.PathLike[str]) -> Path:
    """The ``.meta.json`` of a population file or of its ``.test.json`` sibling."""
    path = Path(path)
    if path.name.endswith(".test.json"):
        return path.with_name(path.name[: -len(".test.json")] + ".meta.json")
    return sibling(path, "meta")


def population_settings(path: str | os.PathLike[str]) -> tuple[str | None, dict[str, Any]]:
    """The env id and env kwargs a population (or its held-out file) was fitted for.

    ``(None, {})`` when the file has no ``.meta.json`` beside it (a plain profile file).
    """
    meta = meta_path(path)
    if not meta.is_file():
        return None, {}
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{meta}: not a population meta file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("env_kwargs", {}), dict):
        raise ValueError(f"{meta}: not a population meta file (no env_kwargs mapping)")
    return data.get("env_id"), dict(data.get("env_kwargs", {}))


def check_population_settings(
    path: str | os.PathLike[str], env_id: str, env_kwargs: Mapping[str, Any], what: str = "the run"
) -> None:
    """Raise ``ValueError`` naming both values if ``path`` was fitted for another env or kwargs.

    A key the run does not set counts with the env's default value.
    """
    fitted_env, fitted = population_settings(path)
    if fitted_env is not None and fitted_env != env_id:
        raise ValueError(f"{path}: the population is for {fitted_env}, {what} for {env_id}")
    defaults = _env_defaults(env_id) if fitted else {}
    for key, value in fitted.items():
        have = env_kwargs.get(key, defaults.get(key, value))
        if have != value and not _same_numbers(have, value):
            raise ValueError(
                f"{path}: the population was fitted for {key}={value!r}, {what} has {key}={have!r}"
            )


def _env_defaults(env_id: str) -> dict[str, Any]:
    """Default keyword arguments of the env's dynamics (its constructor's signature)."""
    import inspect

    import envs

    params = inspect.signature(envs.family(env_id).load("dynamics").__init__).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def _same_numbers(a: Any, b: Any) -> bool:
    """Equal as numbers or as sequences of numbers (a YAML list vs a JSON list)."""
    try:
        return bool(np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float)))
    except (TypeError, ValueError):
        return False


def population_distribution(
    path: str | os.PathLike[str],
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    jitter: float = 0.0,
) -> PopulationDistribution:
    """The population of ``path`` (and its ``.test.json`` sibling) checked against the env.

    Raises ``ValueError`` naming the file if it is for another env or its profiles do
    not fit the env's dimensions (e.g. a log with 6 skills and an env with 8).
    """
    import envs

    dyn = envs.family(env_id).load("dynamics")(1, **dict(env_kwargs or {}))

    def load(p: Path) -> list[StudentProfile]:
        file_env, dicts = envs.load_profiles(p)
        if file_env != env_id:
            raise ValueError(f"{p}: the population is for {file_env}, not {env_id}")
        try:
            return [dyn.coerce_profile(d) for d in dicts]
        except ValueError as e:
            raise ValueError(f"{p}: {e} (env kwargs {dict(env_kwargs or {})})") from e

    test_path = sibling(path, "test")
    test = load(test_path) if test_path.is_file() else None
    return PopulationDistribution(load(Path(path)), test, jitter)
