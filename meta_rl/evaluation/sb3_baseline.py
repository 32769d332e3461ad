"""The stable-baselines3 baselines: PPO trained on the pooled population, fine-tuned per student.

Pre-training: SB3 ``PPO("MlpPolicy")`` on :class:`envs.sb3.SB3VectorEnv`, where every
episode is a fresh ``train`` student, :data:`SB3_N_ENVS` students stepped together, rollouts
of ``max(horizon, 32)`` steps, four minibatches per rollout, 10 epochs, learning rate 3e-4,
for a given number of env steps (the evaluation gives it the same budget as the
meta-training run). With ``recurrent=True`` the model is
sb3-contrib's ``RecurrentPPO("MlpLstmPolicy")`` instead (an LSTM of ``hidden[0]`` units
before the same MLP): the context-based alternative to gradient-based adaptation, which
can infer the student from the answers of the current episode (its memory is reset at
every episode start, as sb3-contrib does). sb3-contrib is an optional dependency
(``pip install 'meta-tutor[contrib]'``).

Fine-tuning, per held-out student: a copy of the pre-trained policy is trained with SB3
on ``rollouts_per_step`` parallel episodes of that student per adaptation step — one
rollout of ``rollouts_per_step × horizon`` steps and one PPO update (``n_epochs``
epochs), i.e. the same data budget per step as every other method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger

from envs.profiles import ProfileDistribution
from envs.sb3 import SB3VectorEnv
from meta_rl.adaptation import _seeds as adaptation_seeds
from meta_rl.envspec import EnvSpec
from meta_rl.evaluation.episodes import make_task_env, per_task_mean, run_episodes

#: SB3's own default MlpPolicy hidden layers
SB3_DEFAULT_HIDDEN = (64, 64)
#: students stepped together in pre-training. With SB3's four minibatches per rollout, 256
#: students learn better than the 64 used before (val return at k = 0 on SkillGraph-v0, 2
#: seeds x 200 students: 1.70 vs 1.59, paired difference +0.11 [0.05, 0.16]) with 4x fewer,
#: larger PPO updates, about half the CPU time (benchmarks/sb3_students_per_step.py)
SB3_N_ENVS = 256


def _horizon(env_id: str, env_kwargs: Mapping[str, Any]) -> int:
    return EnvSpec(env_id, env_kwargs).horizon


def algorithm(recurrent: bool) -> tuple[type[BaseAlgorithm], str]:
    """The SB3 algorithm class and policy name: ``PPO`` / ``RecurrentPPO`` (sb3-contrib)."""
    if not recurrent:
        return PPO, "MlpPolicy"
    try:
        from sb3_contrib import RecurrentPPO
    except ImportError as e:
        raise ImportError(
            "the recurrent_ppo baseline needs sb3-contrib: pip install 'meta-tutor[contrib]' "
            "(or pip install sb3-contrib)"
        ) from e
    return RecurrentPPO, "MlpLstmPolicy"


def policy_kwargs(hidden: Sequence[int], recurrent: bool) -> dict[str, Any]:
    """SB3 policy arguments: Tanh MLP ``hidden``; recurrent: an LSTM of ``hidden[0]`` units first."""
    kwargs: dict[str, Any] = {"net_arch": list(hidden), "activation_fn": torch.nn.Tanh}
    if recurrent:
        kwargs["lstm_hidden_size"] = int(hidden[0])
    return kwargs


def train_pooled(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    total_steps: int,
    seed: int,
    n_envs: int = SB3_N_ENVS,
    hidden: Sequence[int] = SB3_DEFAULT_HIDDEN,
    learning_rate: float = 3e-4,
    n_epochs: int = 10,
    population: ProfileDistribution | None = None,
    recurrent: bool = False,
) -> BaseAlgorithm:
    """SB3 PPO (``recurrent``: RecurrentPPO) on the pooled ``train`` population (``n_envs``
    students in parallel); ``population`` replaces the env's default one (e.g. a calibrated
    population)."""
    horizon = _horizon(env_id, env_kwargs)
    venv = SB3VectorEnv(env_id, n_envs, population=population, **dict(env_kwargs))
    venv.seed(seed)
    n_steps = max(horizon, 32)
    model = _ppo(venv, n_steps, max(64, n_steps * n_envs // 4), n_epochs, learning_rate,
                 policy_kwargs(hidden, recurrent), seed, recurrent)  # fmt: skip
    model.learn(total_timesteps=int(total_steps))
    return model


def _ppo(
    venv,
    n_steps: int,
    batch_size: int,
    n_epochs: int,
    lr: float,
    policy_kwargs: dict,
    seed: int,
    recurrent: bool = False,
) -> BaseAlgorithm:
    cls, policy = algorithm(recurrent)
    model = cls(
        policy,
        venv,
        n_steps=n_steps,
        batch_size=batch_size,
        n_epochs=n_epochs,
        learning_rate=lr,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.set_logger(_silent_logger())
    return model


def _silent_logger() -> Logger:
    # SB3's default logger creates a fresh SB3-<time> folder in the temp dir for every model
    return Logger(folder=None, output_formats=[])


def is_recurrent(model: BaseAlgorithm) -> bool:
    """Whether ``model``'s policy has an LSTM (sb3-contrib's recurrent policies)."""
    return hasattr(model.policy, "lstm_actor")


def _act(model: BaseAlgorithm):
    """A stochastic policy for :func:`run_episodes`, which starts every sub-env's episode
    together; a recurrent model carries its LSTM state from step to step."""
    if not is_recurrent(model):

        def act(obs: np.ndarray) -> np.ndarray:
            return model.predict(obs, deterministic=False)[0]

        return act
    memory: dict[str, Any] = {"state": None, "start": None}

    def act_recurrent(obs: np.ndarray) -> np.ndarray:
        if memory["start"] is None:
            memory["start"] = np.ones(len(obs), dtype=bool)
        action, memory["state"] = model.predict(
            obs, state=memory["state"], episode_start=memory["start"], deterministic=False
        )
        memory["start"] = np.zeros(len(obs), dtype=bool)
        return action

    return act_recurrent


def adaptation_curve(
    model: BaseAlgorithm,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    profiles: Sequence[Any],
    steps: int,
    rollouts_per_step: int,
    eval_episodes: int,
    seed: int,
    learning_rate: float = 3e-4,
    n_epochs: int = 10,
    students: Sequence[int] | None = None,
    initial: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns ``(n, steps + 1)`` mean returns and metrics ``name -> (n, steps + 1)``.

    Column ``k = 0`` is measured for all students at once (``initial``), then each student
    is fine-tuned by itself: ``students`` (indices into ``profiles``; default all) fine-tunes
    only those, leaving the other rows' later columns NaN, and gives them exactly the values
    of a full run — every student's fine-tuning is seeded by its index alone, which lets the
    evaluation split the students over its cores.
    """
    n, horizon = len(profiles), _horizon(env_id, env_kwargs)
    returns = np.full((n, steps + 1), np.nan)
    metrics: dict[str, np.ndarray] = {}

    def record(col: int, rows: slice | int, r: np.ndarray, m: dict[str, np.ndarray], n_tasks: int) -> None:
        returns[rows, col] = per_task_mean(r, n_tasks).squeeze()
        for k, v in m.items():
            metrics.setdefault(k, np.full((n, steps + 1), np.nan))[rows, col] = per_task_mean(
                v, n_tasks
            ).squeeze()

    # Env seeds follow meta_rl.adaptation (common random numbers across methods): evaluation
    # after step k uses seeds[2k] and the adaptation rollouts of step k seeds[2k + 1], with
    # student i's sub-envs at offsets i * episodes, as in the task-major sampler.
    seeds = adaptation_seeds(seed, steps)
    if initial:
        torch.manual_seed(seed)
        venv = make_task_env(env_id, env_kwargs, profiles, eval_episodes)
        r, m = run_episodes(venv, _act(model), seed=int(seeds[0]))
        record(0, slice(None), r, m, n)

    state = {k: v.clone() for k, v in model.policy.state_dict().items()}
    recurrent = is_recurrent(model)
    for i in map(int, range(n) if students is None else students):
        prof = profiles[i]
        # PPO's constructor seeds torch, NumPy and Python's random with seed + i: nothing of
        # an earlier student carries over
        ft_env = SB3VectorEnv(
            env_id, rollouts_per_step, profiles=[prof] * rollouts_per_step, **dict(env_kwargs)
        )
        batch = max(1, rollouts_per_step * horizon // 4)
        ft = _ppo(ft_env, horizon, batch, n_epochs, learning_rate, model.policy_kwargs, seed + i, recurrent)
        # after PPO's constructor, which seeds the env with its own seed
        ft_env.seed(int(seeds[1]) + i * rollouts_per_step)
        ft.policy.load_state_dict(state)
        eval_env = make_task_env(env_id, env_kwargs, [prof], eval_episodes)
        for k in range(1, steps + 1):
            # one rollout of rollouts_per_step episodes and one PPO update per step; later
            # steps continue the same sub-envs (their next episodes), as SB3 does
            ft.learn(total_timesteps=rollouts_per_step * horizon, reset_num_timesteps=(k == 1))
            r, m = run_episodes(eval_env, _act(ft), seed=int(seeds[2 * k]) + i * eval_episodes)
            record(k, i, r, m, 1)
    return returns, metrics
