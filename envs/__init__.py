"""Student simulators for meta-RL in education (Gymnasium environments).

``import envs`` registers every environment id with Gymnasium::

    import gymnasium as gym
    import envs

    env = gym.make("MetaTutor/SkillGraph-v0")
    venv = gym.make_vec("MetaTutor/SkillGraph-v0", num_envs=64,
                        vectorization_mode="vector_entry_point")

The registered defaults of every env are the setting its shipped training config
(``meta_rl/configs/<family>.yaml``) trains on, so profiles sampled with the defaults fit
a tutor trained with that config; :func:`default_env_kwargs` lists them.

Profiles (students) of any family are sampled, saved and loaded with
:func:`sample_profiles`, :func:`save_profiles` and :func:`load_profiles`. The
profile file format is JSON::

    {"env_id": "MetaTutor/SkillGraph-v0", "profiles": [{"learn": [...], ...}, ...]}

Profiles for a trained tutor must have the env settings it was trained with:
``sample_profiles(None, n, like=RUN)`` takes the env id and env keyword arguments from
the run (``meta-tutor profiles --like RUN`` on the command line), and
:func:`check_profiles_fit` says which settings profiles must have when they do not fit.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import shlex
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
    "check_profiles_fit",
    "default_env_kwargs",
    "family",
    "load_profiles",
    "sample_profiles",
    "save_profiles",
    "trained_env",
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


def default_env_kwargs(env_id: str) -> dict[str, Any]:
    """Every env keyword argument of ``env_id`` with its registered default.

    These are the settings ``gym.make(env_id)`` builds, the ones :func:`sample_profiles`
    uses when given none, and the ones the env's shipped training config trains on
    (``tests/test_envs_common.py`` checks that they agree).
    """
    out: dict[str, Any] = {}
    # a subclass that forwards **kwargs to its parent (SpacedRepetitionGoals) takes the parent's too
    for cls in family(env_id).load("dynamics").__mro__:
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(vars(cls)["__init__"]).parameters
        for k, p in params.items():
            if p.default is not p.empty:
                out.setdefault(k, p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return out


def distribution(env_id: str, **env_kwargs: Any) -> ProfileDistribution:
    """The default population of ``env_id`` for the env built with ``env_kwargs``."""
    dyn = family(env_id).load("dynamics")(1, **env_kwargs)
    return dyn.distribution()


def trained_env(run: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """``(env_id, env_kwargs)`` a trained tutor was trained on.

    ``run`` is a run directory (``meta-tutor train --out``), a checkpoint file or a file
    inside a run directory, or an export directory (``meta-tutor export --out``).
    """
    # meta_rl sits above envs; imported here only, so the simulators never need torch
    from meta_rl.checkpoint import load_policy

    p = Path(run)
    if p.is_file() and p.suffix not in (".pt", ".json", ".safetensors"):
        p = p.parent  # e.g. RUN/metrics.csv, as `meta-tutor evaluate --checkpoint` accepts
    if not p.exists():
        raise FileNotFoundError(f"{run}: no such run directory or checkpoint")
    policy = load_policy(p)
    return policy.env.env_id, dict(policy.env.env_kwargs)


def sample_profiles(
    env_id: str | None,
    n: int,
    split: str = "test",
    seed: int = 0,
    like: str | os.PathLike[str] | None = None,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """Draw ``n`` student profiles of ``split`` as JSON-ready dicts.

    The profiles fit the env ``env_id`` built with ``env_kwargs`` (default: the
    registered defaults). ``like=RUN`` (a run directory, checkpoint or export) takes
    the env id and env keyword arguments from a trained tutor instead, so the profiles
    fit it: ``sample_profiles(None, 80, like="runs/sg")``. ``env_id`` may then be given
    too, and must be the run's; ``env_kwargs`` may not. (For a run trained on a calibrated
    population, ``like`` takes its env settings, not its students: those held out are in
    the population's ``.test.json`` file.)
    """
    check_split(split)
    if like is not None:
        run_id, run_kwargs = trained_env(like)
        if env_id is not None and env_id != run_id:
            raise ValueError(f"like={str(like)!r} was trained on {run_id}, not {env_id}")
        if env_kwargs:
            raise ValueError(
                f"give either like= or env keyword arguments, not both (like={str(like)!r} "
                f"was trained with env kwargs {run_kwargs})"
            )
        env_id, env_kwargs = run_id, run_kwargs
    if env_id is None:
        raise ValueError("sample_profiles needs an env id or like=RUN")
    return [p.to_dict() for p in distribution(env_id, **env_kwargs).sample(n, split, seed)]


def check_profiles_fit(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    profiles: Sequence[Mapping[str, Any] | StudentProfile],
    *,
    profiles_env_id: str | None = None,
    source: str = "profiles",
    run: str | os.PathLike[str] | None = None,
) -> None:
    """Raise a ``ValueError`` unless every profile fits the env ``env_id`` built with
    ``env_kwargs`` (a trained tutor's env: :func:`trained_env`).

    The message names the profile and what is wrong, the env settings the profiles must
    have (the dimensions such as ``n_skills`` and the run's env kwargs) and the fix:
    ``meta-tutor profiles --like RUN``. ``profiles_env_id`` is the env id recorded with
    the profiles (a profile file's ``env_id``), checked too when given; ``source`` names
    where the profiles come from (e.g. the file) at the start of the message; ``run``, the
    trained tutor's path, is put into the suggested command.
    """
    kwargs = dict(env_kwargs)
    probe = family(env_id).load("dynamics")(1, **kwargs)
    dims = ", ".join(f"{k}={v}" for k, v in probe.dims().items())
    shown = f"env kwargs {kwargs}" if kwargs else "the default env kwargs"
    like = "RUN" if run is None else shlex.quote(str(run))
    fix = (
        f"sample fitting ones with `meta-tutor profiles --like {like} --out FILE` "
        f"(in Python: envs.sample_profiles(None, n, like={like!r}))"
    )
    if profiles_env_id is not None and profiles_env_id != env_id:
        raise ValueError(
            f"{source}: profiles are for {profiles_env_id}, the tutor was trained on {env_id}; {fix}"
        )
    if not profiles:
        raise ValueError(f"{source}: no profiles")
    for i, p in enumerate(profiles):
        try:
            probe.coerce_profile(p)
        except ValueError as e:
            need = f" ({dims})" if dims else ""
            raise ValueError(
                f"{source}: profile {i} does not fit the tutor's env: {e}. The profiles must be for "
                f"{env_id} with {shown}{need}; {fix}"
            ) from e


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
