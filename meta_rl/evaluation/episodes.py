"""Run exactly one episode in every sub-env of a native vector env with any policy.

Used for the methods whose policy is not one of ours (heuristic tutors, SB3 models).
Gymnasium 1.x vector envs autoreset in ``NEXT_STEP`` mode, so after a sub-env's
episode ends its later steps belong to a new episode: they are masked out here, and
the loop stops once every sub-env has finished its first episode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import envs
from envs.core import StudentVectorEnv

ActFn = Callable[[np.ndarray], np.ndarray]


def make_task_env(
    env_id: str, env_kwargs: Mapping[str, Any], profiles: Sequence[Any], episodes: int
) -> StudentVectorEnv:
    """A vector env with ``episodes`` sub-envs per profile, task-major (sub-env ``i·E + j``)."""
    venv = envs.family(env_id).load("vector_env")(num_envs=len(profiles) * episodes, **dict(env_kwargs))
    venv.set_tasks([p for p in profiles for _ in range(episodes)])
    return venv


def run_episodes(
    venv: StudentVectorEnv, act: ActFn, seed: int, on_reset: Callable[[], None] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns per sub-env: undiscounted return of its first episode, and its end-of-episode metrics."""
    obs, _ = venv.reset(seed=seed)
    if on_reset is not None:
        on_reset()
    n = venv.num_envs
    total = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    metrics = {k: np.full(n, np.nan) for k in venv.dynamics.metric_names}
    while not done.all():
        obs, reward, term, trunc, info = venv.step(np.asarray(act(obs), dtype=np.int64))
        live = ~done
        total[live] += reward[live]
        ended = live & (term | trunc)
        for k in metrics:
            if k in info:
                metrics[k][ended] = info[k][ended]
        done |= ended
    return total, metrics


def per_task_mean(values: np.ndarray, n_tasks: int) -> np.ndarray:
    """Average task-major ``(n_tasks · E,)`` values to ``(n_tasks,)``, ignoring NaN.

    A metric can be undefined for some episodes (e.g. steps to mastery when never
    mastered); a task's mean is NaN only if it is undefined in every episode.
    """
    v = np.asarray(values, dtype=np.float64).reshape(n_tasks, -1)
    ok = np.isfinite(v)
    count = ok.sum(axis=1)
    total = np.where(ok, v, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(n_tasks, np.nan), where=count > 0)
