"""The env side of a trained tutor: which env, its arguments and the observation transform.

A policy is only meaningful together with the env it was trained on and the way
observations were built for it; :class:`EnvSpec` records exactly that and rebuilds
vector envs, profile populations and (for the *privileged* oracle) profile features.

Privileged observations append the true profile of the student to every
observation: every field of ``FIELDS`` in order, vectors flattened, each value
mapped to [0, 1] by its documented range (``(x − low) / (high − low)``; a field with
an infinite upper bound uses ``u / (1 + u)`` with ``u = x − low``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

import envs
from envs.core import StudentDynamics, StudentVectorEnv
from envs.profiles import FieldSpec, ProfileDistribution, StudentProfile


@dataclass(frozen=True)
class EnvSpec:
    """Env id, env keyword arguments and whether the true profile is observed."""

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    privileged: bool = False

    def __post_init__(self) -> None:
        envs.family(self.env_id)  # clear error for an unknown id
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))

    # -------------------------------------------------------------- env facts
    @cached_property
    def probe(self) -> StudentDynamics:
        """A one-student dynamics instance (validates ``env_kwargs``; read-only use)."""
        try:
            return envs.family(self.env_id).load("dynamics")(1, **self.env_kwargs)
        except TypeError as e:
            # an unknown or missing keyword: name the setting the user wrote (env_kwargs)
            raise ValueError(f"env_kwargs {self.env_kwargs} do not fit {self.env_id}: {e}") from None

    @property
    def env_obs_dim(self) -> int:
        return int(self.probe.single_observation_space.shape[0])

    @property
    def obs_dim(self) -> int:
        """Size of the policy's input (env observation plus profile features if privileged)."""
        return self.env_obs_dim + (self.profile_dim if self.privileged else 0)

    @property
    def action_nvec(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.probe.action_nvec)

    @property
    def n_actions(self) -> int:
        return int(self.probe.single_action_space.n)

    @property
    def horizon(self) -> int:
        return int(self.probe.horizon)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self.probe.metric_names)

    def distribution(self) -> ProfileDistribution:
        return self.probe.distribution()

    def make_vector_env(self, num_envs: int) -> StudentVectorEnv:
        return envs.family(self.env_id).load("vector_env")(num_envs=num_envs, **self.env_kwargs)

    def coerce(self, profiles: Sequence[StudentProfile | Mapping[str, Any]]) -> list[StudentProfile]:
        """Validate profiles against this env (dicts or dataclasses)."""
        return [self.probe.coerce_profile(p) for p in profiles]

    @property
    def item_layout(self) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]] | None:
        """``(item_cols, global_cols)`` of an item-wise policy, or None if the env has no
        per-item observation blocks (``StudentDynamics.item_obs_blocks``).

        ``item_cols[i]`` lists the policy-input columns describing item ``i``; privileged
        profile fields with one value per item (e.g. a card's difficulty) join them, the
        other profile fields are global.
        """
        blocks = int(self.probe.item_obs_blocks)
        if blocks < 1 or len(self.action_nvec) != 1:
            return None
        k = self.action_nvec[0]
        items = [[b * k + i for b in range(blocks)] for i in range(k)]
        shared = list(range(blocks * k, self.env_obs_dim))
        if self.privileged:
            col = self.env_obs_dim
            for s, width in self._field_widths():
                if s.dim == self.probe.item_dim:
                    for i in range(k):
                        items[i].append(col + i)
                else:
                    shared.extend(range(col, col + width))
                col += width
        return tuple(tuple(row) for row in items), tuple(shared)

    # ------------------------------------------------------- profile features
    @property
    def profile_dim(self) -> int:
        return sum(width for _, width in self._field_widths())

    def _field_widths(self) -> list[tuple[FieldSpec, int]]:
        """Each profile field with its number of feature columns, in feature order."""
        dims = self.probe.dims()
        return [(s, 1 if s.dim is None else dims[s.dim]) for s in self.probe.profile_cls.FIELDS]

    def profile_features(self, profiles: Sequence[StudentProfile]) -> np.ndarray:
        """``(len(profiles), profile_dim)`` float32 features in [0, 1] (module docstring)."""
        cols = []
        for s in self.probe.profile_cls.FIELDS:
            x = np.asarray([getattr(p, s.name) for p in profiles], dtype=np.float64).reshape(
                len(profiles), -1
            )
            if math.isfinite(s.high) and math.isfinite(s.low):
                cols.append((x - s.low) / max(s.high - s.low, 1e-12))
            else:
                u = x - (s.low if math.isfinite(s.low) else 0.0)
                cols.append(u / (1.0 + np.abs(u)))
        return np.concatenate(cols, axis=1).astype(np.float32)

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "env_kwargs": dict(self.env_kwargs), "privileged": self.privileged}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnvSpec:
        return cls(str(d["env_id"]), dict(d.get("env_kwargs", {})), bool(d.get("privileged", False)))
