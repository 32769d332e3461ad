"""Student simulators for meta-RL in education (Gymnasium environments).

``import envs`` registers every environment id with Gymnasium::

    import gymnasium as gym
    import envs

    env = gym.make("MetaTutor/SkillGraph-v0")
    venv = gym.make_vec("MetaTutor/SkillGraph-v0", num_envs=64,
                        vectorization_mode="vector_entry_point")

Profiles (students) of any family are sampled, saved and loaded with
:func:`sample_profiles`, :func:`save_profiles` and :func:`load_profiles`. The
profile file format is JSON::

    {"env_id": "MetaTutor/SkillGraph-v0", "profiles": [{"learn": [...], ...}, ...]}
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from envs.profiles import SPLITS, ProfileDistribution, StudentProfile, check_split

__all__ = [
    "ENV_IDS",
    "SPLITS",
    "ProfileDistribution",
    "StudentProfile",
    "family",
    "load_profiles",
    "sample_profiles",
    "save_profiles",
]


@dataclass(frozen=True)
class Family:
    """Where the pieces of one model family live (imported lazily)."""

    env_id: str
    package: str
    env: str
    vector_env: str
    dynamics: str
    profile: str
    distribution: str
    #: name of the shipped default config ``meta_rl/configs/<config>.yaml`` (default: the package's)
    config: str = ""

    def load(self, name: str) -> Any:
        return getattr(importlib.import_module(self.package), getattr(self, name))


_FAMILIES: dict[str, Family] = {
    "MetaTutor/SkillGraph-v0": Family(
        "MetaTutor/SkillGraph-v0",
        "envs.skill_graph",
        "SkillGraphEnv",
        "SkillGraphVectorEnv",
        "SkillGraphDynamics",
        "SkillGraphProfile",
        "SkillGraphDistribution",
    ),
    "MetaTutor/SpacedRepetition-v0": Family(
        "MetaTutor/SpacedRepetition-v0",
        "envs.spaced_repetition",
        "SpacedRepetitionEnv",
        "SpacedRepetitionVectorEnv",
        "SpacedRepetitionDynamics",
        "SpacedRepetitionProfile",
        "SpacedRepetitionDistribution",
    ),
    "MetaTutor/SpacedRepetitionGoals-v0": Family(
        "MetaTutor/SpacedRepetitionGoals-v0",
        "envs.spaced_repetition",
        "SpacedRepetitionGoalsEnv",
        "SpacedRepetitionGoalsVectorEnv",
        "SpacedRepetitionGoalsDynamics",
        "SpacedRepetitionGoalsProfile",
        "SpacedRepetitionGoalsDistribution",
        "spaced_repetition_goals",
    ),
    "MetaTutor/ZPD-v0": Family(
        "MetaTutor/ZPD-v0",
        "envs.zpd",
        "ZPDEnv",
        "ZPDVectorEnv",
        "ZPDDynamics",
        "ZPDProfile",
        "ZPDDistribution",
    ),
}


def _available(fam: Family) -> bool:
    return importlib.util.find_spec(fam.package) is not None


ENV_IDS: tuple[str, ...] = tuple(i for i, f in _FAMILIES.items() if _available(f))

for _id in ENV_IDS:
    _f = _FAMILIES[_id]
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point=f"{_f.package}:{_f.env}",
            vector_entry_point=f"{_f.package}:{_f.vector_env}",
        )


def family(env_id: str) -> Family:
    """The :class:`Family` record of a registered env id (clear error if unknown)."""
    if env_id not in ENV_IDS:
        raise ValueError(f"unknown env id {env_id!r}; known ids: {list(ENV_IDS)}")
    return _FAMILIES[env_id]


def env_id_of(dynamics: Any) -> str:
    """The env id whose student model ``dynamics`` (an instance) belongs to."""
    cls = type(dynamics)
    for fam in _FAMILIES.values():
        if cls.__module__.startswith(fam.package + ".") and cls.__name__ == fam.dynamics:
            return fam.env_id
    raise ValueError(f"{cls.__name__} is not the dynamics of a registered meta-tutor env")


def distribution(env_id: str, **env_kwargs: Any) -> ProfileDistribution:
    """The default population of ``env_id`` for the env built with ``env_kwargs``."""
    dyn = family(env_id).load("dynamics")(1, **env_kwargs)
    return dyn.distribution()


def sample_profiles(
    env_id: str, n: int, split: str = "test", seed: int = 0, **env_kwargs: Any
) -> list[dict[str, Any]]:
    """Draw ``n`` student profiles of ``split`` as JSON-ready dicts."""
    check_split(split)
    return [p.to_dict() for p in distribution(env_id, **env_kwargs).sample(n, split, seed)]


def save_profiles(
    path: str | os.PathLike[str],
    env_id: str,
    profiles: Sequence[Mapping[str, Any] | StudentProfile],
) -> None:
    """Validate and write profiles to ``path`` as ``{"env_id": ..., "profiles": [...]}``.

    The file is written to a temporary name and renamed, so a crash never leaves a
    half-written file.
    """
    cls = family(env_id).load("profile")
    checked = [_validated(cls, p, f"profile {i}").to_dict() for i, p in enumerate(profiles)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"env_id": env_id, "profiles": checked}, indent=1))
    os.replace(tmp, path)


def load_profiles(path: str | os.PathLike[str]) -> tuple[str, list[dict[str, Any]]]:
    """Read a profile file; every error names the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ValueError(f"{path}: no such profile file") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or set(data) != {"env_id", "profiles"}:
        raise ValueError(f'{path}: expected an object with exactly the keys "env_id" and "profiles"')
    env_id = data["env_id"]
    if env_id not in ENV_IDS:
        raise ValueError(f"{path}: unknown env id {env_id!r}; known ids: {list(ENV_IDS)}")
    if not isinstance(data["profiles"], list) or not data["profiles"]:
        raise ValueError(f'{path}: "profiles" must be a non-empty list')
    cls = family(env_id).load("profile")
    try:
        profiles = [_validated(cls, p, f"profile {i}").to_dict() for i, p in enumerate(data["profiles"])]
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return env_id, profiles


def _validated(cls: type[StudentProfile], p: Any, where: str) -> StudentProfile:
    try:
        return cls.from_dict(p)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
