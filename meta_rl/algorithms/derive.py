"""The config that trains another algorithm with a run's env, students, network and budget.

:func:`derived_config` is how the evaluation trains comparison rows (pooled PPO, the
privileged oracle, Reptile-PPO, MAML++-PPO, …) for a meta-training run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from meta_rl.config import (
    PPOConfig,
    ReptilePPOConfig,
    TrainConfig,
    algorithm_sections,
    config_classes,
    default_config_path,
    make_config,
    read_yaml_mapping,
)

#: what makes two runs comparable: never taken from an algorithm's per-env settings
RUN_KEYS = (
    "env",
    "env_kwargs",
    "population",
    "architecture",
    "hidden_sizes",
    "activation",
    "head",
    "item_bias",
    "seed",
    "n_iterations",
    "rollouts_per_task",
    "eval_every",
    "val_tasks",
    "val_episodes",
    "val_adapt_steps",
    "val_seed",
    "num_threads",
)


def shipped_settings(env_id: str, algo: str) -> dict[str, Any]:
    """The ``algorithms.<algo>`` section of the env's shipped config (``{}`` if none)."""
    path = default_config_path(env_id)
    if path is None:
        return {}
    return algorithm_sections(read_yaml_mapping(path)).get(algo, {})


def iteration_episodes(cfg: TrainConfig) -> int:
    """Episodes one training iteration of ``cfg`` collects (pooled warm-up excluded)."""
    if isinstance(cfg, PPOConfig):
        return cfg.pooled_episodes
    rounds = cfg.inner_steps if isinstance(cfg, ReptilePPOConfig) else cfg.inner_steps + 1
    return cfg.meta_batch_size * cfg.rollouts_per_task * rounds


#: algorithms whose iterations collect a number of episodes known from the config (a
#: warm-start pooled iteration ``pooled_episodes``, the others :func:`iteration_episodes`)
_CONSTANT_EPISODES = ("maml_ppo", "mamlpp_ppo", "ppo")


def predicted_env_steps(run_config: Mapping[str, Any]) -> int | None:
    """The env steps a run of ``run_config`` will have trained on when it is done, known
    before it starts, or ``None`` when they depend on the policy.

    ``(P · pooled_episodes + (N − P) · iteration_episodes) · horizon`` for ``N`` iterations
    of which the first ``P = min(pretrain_iterations, N)`` are pooled warm-start iterations
    (MAML-PPO and MAML++-PPO; pooled PPO has ``P = 0``), when every episode lasts exactly the
    horizon (:attr:`envs.core.StudentDynamics.fixed_length`: SkillGraph, SpacedRepetition)
    and the algorithm collects a fixed number of episodes per iteration (those three);
    ``None`` otherwise (ZPD students who quit early; the other algorithms). Lets a baseline
    whose budget is the run's env steps (SB3) train while the run itself is training.
    """
    from meta_rl.envspec import EnvSpec

    cfg = make_config(dict(run_config))
    if cfg.algo not in _CONSTANT_EPISODES:
        return None
    spec = EnvSpec(cfg.env, cfg.env_kwargs)
    if not spec.probe.fixed_length:
        return None
    n = int(cfg.n_iterations)
    warm = min(int(getattr(cfg, "pretrain_iterations", 0)), n)
    episodes = warm * cfg.pooled_episodes + (n - warm) * iteration_episodes(cfg)
    return episodes * spec.horizon


def derived_config(run_config: Mapping[str, Any], algo: str, *, privileged: bool = False) -> TrainConfig:
    """The config that trains ``algo`` comparably to the run whose config is ``run_config``.

    Same env, env arguments, population, architecture, seed and validation students as
    the run; the same number of iterations and episodes per iteration (the run's
    ``pooled_episodes``: for MAML-PPO ``meta_batch_size · rollouts_per_task ·
    (inner_steps + 1)``, for Reptile-PPO ``… · inner_steps``); plus ``algo``'s shipped
    per-env settings (the ``algorithms.<algo>`` section of the env's
    ``meta_rl/configs/<env>.yaml``). Trained in this process without TensorBoard,
    from scratch; ``select_on: pre`` for a privileged (oracle) config, used unadapted.

    Budget matching is in *episodes*, not env steps: the env steps per iteration are
    equal only when episodes have the same length under both algorithms (e.g. always
    run to the horizon); where episodes end early (ZPD students who quit) they differ
    and depend on the policy — ``metrics.csv`` records the real ``env_steps``. For
    ``ppo`` the episodes are ``episodes_per_iteration``; for the meta-learners the
    meta-batch is sized to match, ``meta_batch_size = round(E_run / (rollouts_per_task ·
    rounds))`` (``rounds`` the collections per iteration, ``inner_steps + 1`` for
    MAML-PPO and MAML++-PPO, ``inner_steps`` for Reptile-PPO): exact when it divides,
    otherwise within half a student's episodes. Reptile-PPO without a shipped
    ``inner_steps`` does ``inner_steps + 1`` of the run's rounds (exact).

    ``algo="ppo"`` is the pooled PPO baseline (``privileged=True``: the oracle) exactly
    as the evaluation has always trained it: the run's PPO keys, ``init_from=""``,
    ``episodes_per_iteration`` = the run's ``pooled_episodes``, ``sampler="local"``.
    """
    classes = config_classes()
    if algo not in classes:
        raise ValueError(f"unknown algo {algo!r}; valid: {list(classes)}")
    cfg = dict(run_config)
    run = classes[cfg.get("algo", "maml_ppo")](**cfg)
    fixed = {
        "privileged": privileged,
        "init_from": "",
        "tensorboard": False,
        # baselines train in this process (or an evaluation worker process), never on Ray
        "sampler": "local",
        # the oracle is used unadapted: pick its checkpoint on pre-adaptation validation return
        "select_on": "pre" if privileged else "post",
    }
    if algo == "ppo":
        ppo_keys = {f for f in PPOConfig.__dataclass_fields__}
        base = {k: v for k, v in cfg.items() if k in ppo_keys}
        # the same episodes per iteration and the same number of iterations as meta-training
        base.update(algo="ppo", episodes_per_iteration=run.pooled_episodes, **fixed)
        return PPOConfig(**base)
    cls = classes[algo]
    valid = {f.name for f in dataclasses.fields(cls)}
    base = {k: v for k, v in cfg.items() if k in valid and k != "episodes_per_iteration"}
    shipped = shipped_settings(run.env, algo)
    base.update({k: v for k, v in shipped.items() if k not in RUN_KEYS})
    base.update(algo=algo, **fixed)
    if cls is ReptilePPOConfig and "inner_steps" not in shipped:
        base["inner_steps"] = run.inner_steps + 1
    target = run.pooled_episodes
    probe = make_config(base)
    if iteration_episodes(probe) != target:
        per_task = iteration_episodes(probe) // probe.meta_batch_size
        base["meta_batch_size"] = max(1, round(target / per_task))
    return make_config(base)
