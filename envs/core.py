"""One student model, two front ends.

Every family implements its student model once, as a subclass of
:class:`StudentDynamics` that advances a *batch* of students with NumPy array
operations. :class:`StudentEnv` (a ``gymnasium.Env``) runs a batch of one;
:class:`StudentVectorEnv` (a native ``gymnasium.vector.VectorEnv``) runs a batch
of ``num_envs``. Neither front end contains any model logic, so the single env and
sub-env ``i`` of the vector env produce the same trajectory for the same seed and
profile (see :mod:`envs.rng` for why the random numbers allow that).

Tasks: a *task* is a student profile. ``set_task(profile)`` (single) or
``set_tasks(profiles)`` (vector) fixes the student for all following episodes,
starting with each sub-env's next reset. ``reset(options={"profile": p})`` uses ``p``
for that one episode of the single env; the vector env's
``reset(options={"profiles": [...]})`` is ``set_tasks`` followed by a reset, so those
students stay. Without a fixed task every reset draws a fresh student from the
family's ``train`` split (or from the population given to ``set_population``); such
fresh students come from the env's own generator, so only runs with the same fixed
profiles are comparable between the single and the vector env.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from envs.profiles import ProfileDistribution, StudentProfile, stack_profiles
from envs.rng import StudentStreams

ProfileLike = StudentProfile | Mapping[str, Any]
#: ``salt`` for the random draws of a reset, so they never coincide with step 0's draws
RESET_SALT = 0x5EED


def frac_table(horizon: int) -> np.ndarray:
    """``min(a / horizon, 1)`` for ``a = 0 … horizon`` as float32, computed in float64 and
    rounded as the direct formula is: observing a step fraction by table look-up is then
    bit-identical to evaluating it (every family's observation, and the sessions rebuilt
    from logs, use it)."""
    return np.minimum(np.arange(horizon + 1) / float(horizon), 1.0).astype(np.float32)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Validate an integer env argument and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float) -> float:
    """Validate a real env argument (finite, within ``[low, high]``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < low or v > high:
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return str(value)


class StudentDynamics(ABC):
    """A batch of ``num_students`` students of one model family.

    Subclasses define the spaces in ``__init__`` (after validating their keyword
    arguments) and implement the model in :meth:`_reset_students`, :meth:`_step`,
    :meth:`observe` and :meth:`episode_metrics`. The base class owns the profile
    arrays (``self.p[field]``, shape ``(n,)`` or ``(n, dim)``), the per-student
    random streams (``self.streams``) and the step counter ``self.t``.

    Attributes set by subclasses:
        single_observation_space: ``Box`` for one student.
        single_action_space: ``Discrete`` for one student.
        action_nvec: factorisation of the discrete action, e.g. ``(n_skills, n_modes)``
            meaning ``action = i * n_modes + j``; a policy may use one head per factor.
        horizon: episode length in steps.
    """

    profile_cls: ClassVar[type[StudentProfile]]
    distribution_cls: ClassVar[type[ProfileDistribution]]
    #: names of the per-episode education metrics reported at episode end
    metric_names: ClassVar[tuple[str, ...]] = ()
    #: every episode lasts exactly ``horizon`` steps (none ends early, e.g. by a student who
    #: quits), so a run's env steps follow from its config (tested per family)
    fixed_length: ClassVar[bool] = False
    #: observation layout for item-wise policies: if ``B > 0`` and the action picks one of
    #: ``K`` items (``action_nvec == (K,)``), observation columns ``[b·K, (b+1)·K)`` hold
    #: feature ``b`` of items ``0 … K−1`` for ``b < B`` and the rest are global features
    #: (read from the instance: a variant may set it in ``__init__`` from its arguments)
    item_obs_blocks: int = 0
    #: name (in :meth:`dims`) of the item dimension: privileged profile vectors of that
    #: dimension describe one item each
    item_dim: ClassVar[str] = ""

    single_observation_space: gym.spaces.Box
    single_action_space: gym.spaces.Discrete
    action_nvec: tuple[int, ...]
    horizon: int

    def __init__(self, num_students: int) -> None:
        self.n = check_int("num_students", num_students, 1)
        self.streams = StudentStreams(self.n)
        self.t = np.zeros(self.n, dtype=np.int64)
        self.p: dict[str, np.ndarray] = {}
        self.has_profile = np.zeros(self.n, dtype=bool)

    # ---------------------------------------------------------------- profiles
    def dims(self) -> dict[str, int]:
        """Env dimensions that profile vectors must match, e.g. ``{"n_skills": 8}``."""
        return {}

    def distribution(self) -> ProfileDistribution:
        """The default population of this env (its ``train`` split is used at reset)."""
        return self.distribution_cls(**self.dims())

    def coerce_profile(self, profile: ProfileLike) -> StudentProfile:
        """Validate a profile (dict or dataclass) against this family and env's dimensions."""
        if isinstance(profile, StudentProfile) and not isinstance(profile, self.profile_cls):
            raise ValueError(f"expected a {self.profile_cls.__name__}, got a {type(profile).__name__}")
        prof = self.profile_cls.from_dict(profile)
        prof.check_dims(**self.dims())
        return prof

    def _coerce_all(self, profiles: Sequence[ProfileLike]) -> list[StudentProfile]:
        # tasks usually repeat (one entry per episode): validate each distinct object once,
        # and keep identity so stack_profiles can stack each distinct profile once too
        seen: dict[int, StudentProfile] = {}
        out = []
        for p in profiles:
            if id(p) not in seen:
                seen[id(p)] = self.coerce_profile(p)
            out.append(seen[id(p)])
        return out

    def set_profiles(self, idx: np.ndarray, profiles: Sequence[ProfileLike]) -> None:
        """Assign ``profiles[k]`` to student ``idx[k]``."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(profiles) != len(idx):
            raise ValueError(f"got {len(profiles)} profiles for {len(idx)} students")
        # tasks are usually repeated (one per episode): validate each distinct object once
        self.set_profile_arrays(idx, stack_profiles(self._coerce_all(profiles)))

    def set_profile_arrays(self, idx: np.ndarray, arrays: Mapping[str, np.ndarray]) -> None:
        """Assign students given as validated arrays (from ``ProfileDistribution.sample_arrays``)."""
        idx = np.asarray(idx, dtype=np.int64)
        dims = self.dims()
        for s in self.profile_cls.FIELDS:
            want = (len(idx),) if s.dim is None else (len(idx), dims[s.dim])
            if arrays[s.name].shape != want:
                raise ValueError(
                    f"profile field {s.name!r} has shape {arrays[s.name].shape}, expected {want}"
                )
        if not self.p:
            self.p = {
                s.name: np.zeros((self.n, *arrays[s.name].shape[1:]), dtype=np.float64)
                for s in self.profile_cls.FIELDS
            }
        for s in self.profile_cls.FIELDS:
            self.p[s.name][idx] = arrays[s.name]
        self.has_profile[idx] = True
        self._profiles_changed(idx)

    def _profiles_changed(self, idx: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Hook: recompute cached per-student quantities after profiles change."""

    def profile_of(self, i: int) -> StudentProfile:
        """The profile of student ``i`` as a dataclass."""
        if not self.has_profile[i]:
            raise ValueError(f"student {i} has no profile yet; call reset first")
        kwargs = {}
        for s in self.profile_cls.FIELDS:
            v = self.p[s.name][i]
            kwargs[s.name] = tuple(float(x) for x in v) if s.dim else float(v)
        return self.profile_cls(**kwargs)

    # ------------------------------------------------------------------- model
    def reset(self, idx: np.ndarray) -> None:
        """Start a new episode for students ``idx`` (profiles must be set)."""
        idx = np.asarray(idx, dtype=np.int64)
        if not np.all(self.has_profile[idx]):
            raise ValueError("every student must have a profile before reset")
        self.t[idx] = 0
        self._reset_students(idx)

    @abstractmethod
    def _reset_students(self, idx: np.ndarray) -> None:
        """Draw the starting state of students ``idx`` (use ``self.streams.uniform``)."""

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action per student. Returns ``(reward, terminated, truncated)``."""
        a = np.asarray(actions)
        if a.shape != (self.n,) or a.dtype.kind not in "iu":
            raise ValueError(
                f"actions must be an integer array of shape ({self.n},), got {a.dtype} {a.shape}"
            )
        n_act = self.single_action_space.n
        if a.min() < 0 or a.max() >= n_act:
            bad = a[(a < 0) | (a >= n_act)][0]
            raise ValueError(f"action {bad} is outside the action space Discrete({n_act})")
        reward, terminated = self._step(a.astype(np.int64, copy=False))
        self.t += 1
        self.streams.advance()
        truncated = np.zeros(self.n, dtype=bool)
        return reward, terminated, truncated

    @abstractmethod
    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance every student one step; return ``(reward, terminated)``.

        ``self.t`` still holds the index of the step being taken.
        """

    @abstractmethod
    def observe(self) -> np.ndarray:
        """Observations of all students, ``float32`` of shape ``(n, obs_dim)``."""

    @abstractmethod
    def episode_metrics(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Education metrics of students ``idx`` at the end of their episode."""

    def describe(self, i: int) -> str:
        """Human-readable state of student ``i`` (used by ``render_mode="ansi"``)."""
        return f"student {i}: t={int(self.t[i])}"


# --------------------------------------------------------------------------- front ends
class StudentEnv(gym.Env):
    """``gymnasium.Env`` over a batch of one student; families subclass it.

    Subclasses set ``dynamics_cls``; all keyword arguments go to the dynamics.
    """

    dynamics_cls: ClassVar[type[StudentDynamics]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.dynamics = self.dynamics_cls(1, **kwargs)
        self.observation_space = self.dynamics.single_observation_space
        self.action_space = self.dynamics.single_action_space
        self._task: StudentProfile | None = None
        self._idx = np.zeros(1, dtype=np.int64)
        self._needs_reset = True
        self._seeded = False

    @property
    def action_nvec(self) -> tuple[int, ...]:
        return self.dynamics.action_nvec

    def set_task(self, profile: ProfileLike | None) -> None:
        """Fix the student for all following episodes (``None``: sample at each reset)."""
        self._task = None if profile is None else self.dynamics.coerce_profile(profile)
        self._needs_reset = True

    def get_task(self) -> StudentProfile | None:
        return self._task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        profile = options.pop("profile", None)
        if options:
            raise ValueError(f"unknown reset option(s) {sorted(options)}; valid: ['profile']")
        if seed is not None:
            self.dynamics.streams.seed(self._idx, np.asarray([seed]))
        elif not self._seeded:
            self.dynamics.streams.seed(self._idx, self.np_random.integers(0, 2**63, size=1))
        else:
            self.dynamics.streams.new_episode(self._idx)
        self._seeded = True
        if profile is not None:
            prof = self.dynamics.coerce_profile(profile)
        elif self._task is not None:
            prof = self._task
        else:
            prof = self.dynamics.distribution().sample(1, "train", rng=self.np_random)[0]
        self.dynamics.set_profiles(self._idx, [prof])
        self.dynamics.reset(self._idx)
        self._needs_reset = False
        return self.dynamics.observe()[0], {"profile": prof.to_dict()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        reward, terminated, truncated = self.dynamics.step(np.asarray([action], dtype=np.int64))
        term, trunc = bool(terminated[0]), bool(truncated[0])
        info: dict[str, Any] = {}
        if term or trunc:
            self._needs_reset = True
            info.update({k: float(v[0]) for k, v in self.dynamics.episode_metrics(self._idx).items()})
        return self.dynamics.observe()[0], float(reward[0]), term, trunc, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.dynamics.describe(0)
        return None


class StudentVectorEnv(VectorEnv):
    """Native ``gymnasium.vector.VectorEnv``: ``num_envs`` students in one dynamics batch.

    Sub-env ``i`` reset with ``seed=s`` uses seed ``s + i`` (Gymnasium's convention),
    so it reproduces a single env reset with ``seed=s + i`` and the same profile.
    Autoreset follows Gymnasium 1.x: ``NEXT_STEP`` by default (the step after an
    episode ends resets that sub-env and ignores its action), or ``SAME_STEP``
    (the final observation is returned in ``info["final_obs"]``) or ``DISABLED``.
    At episode end ``info`` carries the education metrics with ``_name`` masks.
    """

    dynamics_cls: ClassVar[type[StudentDynamics]]
    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi"],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.dynamics = self.dynamics_cls(num_envs, **kwargs)
        self.num_envs = self.dynamics.n
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError as e:
            valid = [m.value for m in AutoresetMode]
            raise ValueError(f"autoreset_mode must be one of {valid}, got {autoreset_mode!r}") from e
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        if render_mode is not None and render_mode != "ansi":
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.single_observation_space = self.dynamics.single_observation_space
        self.single_action_space = self.dynamics.single_action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._all = np.arange(self.num_envs)
        self._tasks: list[StudentProfile] | None = None
        # which sub-envs already hold their fixed task: a new task takes effect at that sub-env's reset
        self._task_applied = np.zeros(self.num_envs, dtype=bool)
        self._distribution: ProfileDistribution = self.dynamics.distribution()
        self._pending = np.zeros(self.num_envs, dtype=bool)  # NEXT_STEP: reset on next step
        self._seeded = False

    @property
    def action_nvec(self) -> tuple[int, ...]:
        return self.dynamics.action_nvec

    def set_tasks(self, profiles: Sequence[ProfileLike] | None) -> None:
        """Fix one profile per sub-env for all following episodes (``None``: sample).

        A sub-env keeps its current student until its episode ends: the new tasks take
        effect at each sub-env's next reset (or autoreset).
        """
        self._task_applied[:] = False
        if profiles is None:
            self._tasks = None
            return
        if len(profiles) != self.num_envs:
            raise ValueError(f"set_tasks needs {self.num_envs} profiles, got {len(profiles)}")
        self._tasks = self.dynamics._coerce_all(profiles)

    def get_tasks(self) -> list[StudentProfile] | None:
        return None if self._tasks is None else list(self._tasks)

    def set_population(self, distribution: ProfileDistribution | None) -> None:
        """Draw fresh students (when no tasks are fixed) from ``distribution``'s ``train``
        split instead of the env's default population (``None``: back to the default)."""
        self._distribution = self.dynamics.distribution() if distribution is None else distribution

    def _assign_profiles(self, idx: np.ndarray) -> None:
        if self._tasks is not None:
            # fixed tasks stay in the dynamics' arrays across episodes: assign each once
            todo = idx[~self._task_applied[idx]]
            if len(todo):
                self.dynamics.set_profiles(todo, [self._tasks[i] for i in todo])
                self._task_applied[todo] = True
        else:
            arrays = self._distribution.sample_arrays(len(idx), "train", self.np_random)
            self.dynamics.set_profile_arrays(idx, arrays)

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        options = dict(options or {})
        profiles = options.pop("profiles", None)
        if options:
            raise ValueError(f"unknown reset option(s) {sorted(options)}; valid: ['profiles']")
        if seed is None and not self._seeded:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        if seed is not None:
            seeds = (
                np.asarray(seed, dtype=np.int64)
                if not isinstance(seed, (int, np.integer))
                else seed + np.arange(self.num_envs)
            )
            if seeds.shape != (self.num_envs,):
                raise ValueError(f"seed must be an int or {self.num_envs} ints, got {seed!r}")
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(int(seeds[0]))
            self.dynamics.streams.seed(self._all, seeds)
            self._seeded = True
        else:
            self.dynamics.streams.new_episode(self._all)
        if profiles is not None:
            self.set_tasks(profiles)
        self._assign_profiles(self._all)
        self.dynamics.reset(self._all)
        self._pending[:] = False
        return self.dynamics.observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._seeded:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        mode = self.metadata["autoreset_mode"]
        pending = self._pending
        if mode is AutoresetMode.NEXT_STEP and pending.any():
            # those sub-envs start a new episode; their actions are ignored
            actions = np.where(pending, 0, actions)
        elif mode is AutoresetMode.DISABLED and pending.any():
            raise RuntimeError(
                "autoreset is disabled and sub-env(s) "
                f"{np.flatnonzero(pending).tolist()} have ended; call reset()"
            )
        reward, terminated, truncated = self.dynamics.step(actions)
        info: dict[str, Any] = {}
        done = terminated | truncated
        if mode is AutoresetMode.NEXT_STEP and pending.any():
            idx = np.flatnonzero(pending)
            self.dynamics.streams.new_episode(idx)
            self._assign_profiles(idx)
            self.dynamics.reset(idx)
            reward = np.where(pending, 0.0, reward)
            terminated = terminated & ~pending
            truncated = truncated & ~pending
            done = done & ~pending
        if done.any():
            idx = np.flatnonzero(done)
            for k, v in self.dynamics.episode_metrics(idx).items():
                arr = np.zeros(self.num_envs, dtype=np.float64)
                arr[idx] = v
                info[k], info["_" + k] = arr, done.copy()
        obs = self.dynamics.observe()
        if mode is AutoresetMode.SAME_STEP and done.any():
            idx = np.flatnonzero(done)
            final = np.full(self.num_envs, None, dtype=object)
            for i in idx:
                final[i] = obs[i].copy()
            info["final_obs"], info["_final_obs"] = final, done.copy()
            self.dynamics.streams.new_episode(idx)
            self._assign_profiles(idx)
            self.dynamics.reset(idx)
            obs = self.dynamics.observe()
        self._pending = done.copy() if mode is not AutoresetMode.SAME_STEP else np.zeros_like(done)
        return obs, reward.astype(np.float64), terminated, truncated, info

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode == "ansi":
            return tuple(self.dynamics.describe(i) for i in range(self.num_envs))
        return None
