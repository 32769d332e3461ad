"""Tutors of ``envs.tutors`` on held-out students (constant across adaptation steps: they do
not learn): the heuristics and the privileged ones (``planner``, ``belief_planner``), which read
the true profile from the env and are reported as oracles (or as kind ``"omniscient"`` when they
also read hidden state the observations do not determine; see ``envs.tutors``).

:class:`TutorMethod` is one such tutor as an evaluation method (the registry makes one per
tutor of the env being evaluated)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

import envs
from envs.tutors import make_tutor, omniscient_tutor_names, privileged_tutor_names
from meta_rl.adaptation import _seeds as adaptation_seeds
from meta_rl.evaluation.episodes import make_task_env, per_task_mean, run_episodes
from meta_rl.evaluation.methods import Curve, EvalContext, Method, Run


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


def tutor_error(env_id: str, env_kwargs: Mapping[str, Any], name: str) -> str | None:
    """Why tutor ``name`` cannot run on this env configuration (e.g. ``belief_planner`` on
    more skills than its exact filter enumerates), or ``None`` if it can."""
    probe = envs.family(env_id).load("vector_env")(num_envs=1, **dict(env_kwargs))
    try:
        make_tutor(name, probe)
    except ValueError as e:
        return str(e)
    return None


@dataclass(frozen=True)
class TutorMethod(Method):
    """Tutor ``name`` of ``envs.tutors``: the same numbers at every adaptation step. Kind
    ``"heuristic"``, or for a privileged tutor ``"oracle"`` (it knows the true profile) or
    ``"omniscient"`` (it also reads hidden state the profile does not determine)."""

    needs_run: ClassVar[bool] = False

    def kind(self, env_id: str) -> str:
        if self.name in privileged_tutor_names(env_id):
            return "omniscient" if self.name in omniscient_tutor_names(env_id) else "oracle"
        return "heuristic"

    def cannot_run(self, env_id: str, env_kwargs: Mapping[str, Any]) -> str | None:
        return tutor_error(env_id, env_kwargs, self.name)

    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        s = ctx.settings
        ret, met = evaluate_tutor(
            self.name, ctx.env_id, ctx.env_kwargs, ctx.profiles, s.eval_episodes, s.seed
        )
        return Curve.constant(ret, met, ctx.adapt_steps)
