"""Tutors of ``envs.tutors`` on held-out students (constant across adaptation steps: they do
not learn): the heuristics and the privileged ones (``planner``, ``belief_planner``), which read
the true profile from the env and are reported as oracles (or as kind ``"omniscient"`` when they
also read hidden state the observations do not determine; see ``envs.tutors``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from envs.tutors import make_tutor
from meta_rl.adaptation import _seeds as adaptation_seeds
from meta_rl.evaluation.episodes import make_task_env, per_task_mean, run_episodes


def evaluate_tutor(
    name: str,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    profiles: Sequence[Any],
    episodes: int,
    seed: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mean return per profile ``(n,)`` and mean metrics per profile, over ``episodes`` episodes."""
    venv = make_task_env(env_id, env_kwargs, profiles, episodes)
    tutor = make_tutor(name, venv, seed=seed)
    # the env seeds of the learned methods' step-0 evaluation (common random numbers)
    env_seed = int(adaptation_seeds(seed, 0)[0])
    returns, metrics = run_episodes(venv, tutor.act, seed=env_seed, on_reset=tutor.reset)
    n = len(profiles)
    return per_task_mean(returns, n), {k: per_task_mean(v, n) for k, v in metrics.items()}
