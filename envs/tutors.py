"""Heuristic tutors: the classic, non-learning baselines.

A tutor sees only observations, like a real teacher. The interface works on a
single env (observation of shape ``(obs_dim,)``, returns an ``int``) and on a
vector env (observations ``(n, obs_dim)``, returns an ``int64`` array)::

    tutor = make_tutor("mastery_threshold", env)
    obs, _ = env.reset(seed=0)
    tutor.reset()
    while True:
        obs, r, term, trunc, info = env.step(tutor.act(obs))
        if term or trunc:
            break

Tutors with memory keep it per student; they notice a new episode when the
observation's normalised time is back to 0 (the last observation feature of every
env here), so they work with vector-env autoreset without extra calls.
Family-specific tutors live in ``envs/<family>/tutors.py`` and register in
:data:`TUTORS` under their env id.

*Privileged* tutors (``Tutor.privileged``, listed by :func:`privileged_tutor_names`)
break the first rule on purpose: they read the true profile of the students from
``self.dynamics``. They are upper references for evaluation (reported as oracles), not
deployable tutors. Each family's ``planner`` is one. Most also read the hidden state,
which is harmless where the profile and the observations determine it (ZPD-v0,
SpacedRepetition-v0: no hidden randomness). Where they do not (SkillGraph-v0's sampled
mastery), the tutor is *omniscient* (``Tutor.omniscient``, :func:`omniscient_tutor_names`):
it knows more than any tutor could infer from the observations even with the true
profile, so evaluation reports it apart (kind ``"omniscient"``) and does not use it as
the default oracle reference.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np


def _dynamics(env: Any) -> Any:
    inner = env.unwrapped
    if not hasattr(inner, "dynamics"):
        raise ValueError(f"{env!r} is not a meta-tutor env")
    return inner.dynamics


class Tutor(ABC):
    """Base class. Subclasses implement :meth:`_act` on a batch of observations."""

    name = "tutor"
    #: True for tutors that read the true profile / hidden state from ``self.dynamics``
    #: (privileged information no real tutor has): upper bounds for evaluation, not
    #: deployable tutors. They act on the env's current students, so ``act`` must get
    #: the observations of every student of the env, in order.
    privileged: bool = False
    #: True for privileged tutors that also read hidden state which the profile and the
    #: observations do not determine (e.g. a sampled mastery): bounds beyond any tutor
    #: that only knows who the student is.
    omniscient: bool = False

    def __init__(self, env: gym.Env | gym.vector.VectorEnv, seed: int | None = 0) -> None:
        self.dynamics = _dynamics(env)
        self.n_actions = int(self.dynamics.single_action_space.n)
        self.rng = np.random.default_rng(seed)
        self._n: int | None = None

    def reset(self) -> None:
        """Forget everything about the students (memory is re-created lazily)."""
        self._n = None

    def act(self, obs: np.ndarray) -> int | np.ndarray:
        o = np.asarray(obs, dtype=np.float64)
        single = o.ndim == 1
        batch = o[None] if single else o
        if batch.ndim != 2:
            raise ValueError(f"observations must have shape (obs_dim,) or (n, obs_dim), got {o.shape}")
        if self.privileged and len(batch) != self.dynamics.n:
            raise ValueError(
                f"{self.name} reads the env's hidden state: it needs the observations of all "
                f"{self.dynamics.n} students of the env, got {len(batch)}"
            )
        if self._n != len(batch):
            self._n = len(batch)
            self._init_memory(len(batch))
        new_episode = batch[:, -1] <= 0.0
        if new_episode.any():
            self._start_episode(np.flatnonzero(new_episode))
        actions = self._act(batch).astype(np.int64)
        return int(actions[0]) if single else actions

    def _init_memory(self, n: int) -> None:  # noqa: B027 - optional hook, empty by default
        """Allocate per-student memory for ``n`` students."""

    def _start_episode(self, idx: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Clear the memory of students ``idx`` at the start of an episode."""

    @abstractmethod
    def _act(self, obs: np.ndarray) -> np.ndarray:
        """One action per row of ``obs`` (``(n, obs_dim)``), as an integer array."""


class RandomTutor(Tutor):
    """Uniformly random actions (the floor every tutor must beat)."""

    name = "random"

    def _act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.integers(0, self.n_actions, size=len(obs))


class RoundRobinTutor(Tutor):
    """Cycles through the actions in order, ``0, 1, 2, …`` (per student)."""

    name = "round_robin"

    def _init_memory(self, n: int) -> None:
        self.next = np.zeros(n, dtype=np.int64)

    def _start_episode(self, idx: np.ndarray) -> None:
        self.next[idx] = 0

    def _act(self, obs: np.ndarray) -> np.ndarray:
        a = self.next.copy()
        self.next = (self.next + 1) % self.n_actions
        return a


TutorFactory = Callable[..., Tutor]

#: tutors usable on every env
GENERIC_TUTORS: dict[str, TutorFactory] = {"random": RandomTutor, "round_robin": RoundRobinTutor}
#: family-specific tutors by env id; families add theirs in ``envs/<family>/tutors.py``
TUTORS: dict[str, dict[str, TutorFactory]] = {}


def register_tutor(env_id: str, name: str, factory: TutorFactory) -> None:
    TUTORS.setdefault(env_id, {})[name] = factory


def tutor_names(env_id: str) -> list[str]:
    """Names of every tutor available for ``env_id``."""
    _load_family_tutors(env_id)
    return [*GENERIC_TUTORS, *TUTORS.get(env_id, {})]


def _flag(factory: TutorFactory, attr: str) -> bool:
    """Class attribute ``attr`` of the tutor a factory builds (a class, or a partial of one)."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    return bool(getattr(factory, attr, False))


def is_privileged(factory: TutorFactory) -> bool:
    """Whether a registered factory builds a privileged tutor (a class, or a partial of one)."""
    return _flag(factory, "privileged")


def _names_with(env_id: str, *attrs: str) -> list[str]:
    """Names of the tutors of ``env_id`` whose class sets every flag of ``attrs``."""
    _load_family_tutors(env_id)
    options = {**GENERIC_TUTORS, **TUTORS.get(env_id, {})}
    return [name for name, f in options.items() if all(_flag(f, a) for a in attrs)]


def privileged_tutor_names(env_id: str) -> list[str]:
    """Names of the privileged tutors (upper references that read the true profile) of ``env_id``."""
    return _names_with(env_id, "privileged")


def omniscient_tutor_names(env_id: str) -> list[str]:
    """Names of the privileged tutors of ``env_id`` that also read hidden state the profile and
    the observations do not determine."""
    return _names_with(env_id, "privileged", "omniscient")


def make_tutor(name: str, env: Any, seed: int | None = 0, **kwargs: Any) -> Tutor:
    """Build tutor ``name`` for ``env`` (single or vector)."""
    import envs

    env_id = envs.env_id_of(_dynamics(env))
    _load_family_tutors(env_id)
    options = {**GENERIC_TUTORS, **TUTORS.get(env_id, {})}
    if name not in options:
        raise ValueError(f"unknown tutor {name!r} for {env_id}; available: {sorted(options)}")
    return options[name](env, seed=seed, **kwargs)


def _load_family_tutors(env_id: str) -> None:
    import importlib
    import importlib.util

    import envs

    fam = envs.family(env_id)
    module = fam.package + ".tutors"
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)
