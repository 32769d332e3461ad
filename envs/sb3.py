"""A stable-baselines3 ``VecEnv`` over our native vector env.

SB3 does not accept Gymnasium's ``VectorEnv``; its usual ``DummyVecEnv`` steps single
envs in a Python loop, which is hundreds of times slower than our batched students.
:class:`SB3VectorEnv` exposes a native vector env with SB3's conventions: auto-reset in
the same step, the last observation of a finished episode in
``infos[i]["terminal_observation"]``, ``infos[i]["TimeLimit.truncated"]``, and the
episode-end education metrics in ``infos[i]``. Trajectories equal those of
``DummyVecEnv`` over single envs with the same seeds and profiles (tested).

Import only when stable-baselines3 is wanted; ``envs`` itself does not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

import envs
from envs.profiles import ProfileDistribution


class SB3VectorEnv(VecEnv):
    """``num_envs`` students of ``env_id`` in one batch, as an SB3 ``VecEnv``.

    Args:
        env_id: a registered ``MetaTutor/*`` id.
        num_envs: number of students.
        profiles: one profile per sub-env (fixed students), or ``None`` to draw a new
            ``train`` student at every reset.
        population: where fresh students come from when ``profiles`` is ``None``
            (default: the env's own population).
        env_kwargs: keyword arguments of the env.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        profiles: Sequence[Any] | None = None,
        population: ProfileDistribution | None = None,
        **env_kwargs: Any,
    ) -> None:
        envs.family(env_id)
        self.venv = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            autoreset_mode=AutoresetMode.SAME_STEP,
            **env_kwargs,
        ).unwrapped
        if profiles is not None:
            self.venv.set_tasks(profiles)
        self.venv.set_population(population)
        super().__init__(num_envs, self.venv.single_observation_space, self.venv.single_action_space)
        self._actions: np.ndarray | None = None

    def set_tasks(self, profiles: Sequence[Any] | None) -> None:
        """Change the students (each sub-env switches when its current episode ends)."""
        self.venv.set_tasks(profiles)

    def reset(self) -> np.ndarray:
        seeds = [s for s in self._seeds if s is not None]
        obs, _ = self.venv.reset(seed=seeds[0] if seeds else None)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            for key in self.venv.dynamics.metric_names:
                infos[i][key] = float(info[key][i])
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        self.venv.close()

    # SB3's generic attribute access; there are no per-sub-env objects, so it reads the batch
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.venv, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        return [getattr(self.venv, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
