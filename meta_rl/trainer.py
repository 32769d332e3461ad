"""The training loop: one registered algorithm, validation, checkpoint cadence.

:class:`Trainer` builds the algorithm named by ``config.algo``
(:data:`meta_rl.algorithms.ALGORITHMS`: MAML-PPO, pooled PPO, …; each owns one training
iteration, see its module) and runs it for ``n_iterations`` iterations. The budget of
pooled PPO is matched to MAML-PPO's in *episodes*, not env steps (see
:attr:`meta_rl.config.TrainConfig.pooled_episodes`); the real count is recorded: the
``env_steps`` column of ``metrics.csv`` and ``env_steps`` in every checkpoint hold the
cumulative env steps of all training rollouts (validation excluded).

Every ``eval_every`` iterations the tutor is validated with adaptation on fixed
students of the ``val`` split (:func:`meta_rl.adaptation.adaptation_curve`); the best
checkpoint by post-adaptation validation return (or pre-adaptation, ``select_on: pre``)
is kept as ``best.pt``.

The run directory (config, metrics, TensorBoard, checkpoints, resume) is a
:class:`~meta_rl.rundir.RunDirectory`. Randomness comes from one seeded numpy generator
whose state is checkpointed, so a resumed run continues exactly as the uninterrupted
one, and the same seed and config give identical ``metrics.csv`` (apart from the
wall-time columns).
Non-finite losses or parameters stop the run (:class:`TrainingDiverged`) before the
checkpoint of that iteration is written, so the last good checkpoint stays intact.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.profiles import ProfileDistribution
from meta_rl.adaptation import adaptation_curve
from meta_rl.algorithms import ALGORITHMS, Algorithm, Context, TrainingDiverged
from meta_rl.algorithms.base import STAT_COLUMNS
from meta_rl.checkpoint import one_line_error
from meta_rl.config import TrainConfig
from meta_rl.envspec import EnvSpec
from meta_rl.policy import PolicySpec
from meta_rl.resources import check_memory, training_memory
from meta_rl.rundir import RunDirectory
from meta_rl.sampler import Sampler
from meta_rl.tutor import TutorPolicy

#: metrics.csv columns that depend on the machine's speed, not on the computation
WALL_COLUMNS = ("iter_time_s", "wall_time_s", "steps_per_s")


class Trainer:
    """Trains a tutor from a :class:`~meta_rl.config.TrainConfig` into ``out_dir``.

    ``resume=True`` continues from ``out_dir/checkpoint.pt``; otherwise ``out_dir`` must
    not hold a run yet.
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | os.PathLike[str],
        resume: bool = False,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg = config
        self.out = Path(out_dir)
        self.progress = progress
        torch.set_num_threads(cfg.num_threads)
        self.env = EnvSpec(cfg.env, cfg.env_kwargs, cfg.privileged)
        self.spec = policy_spec(cfg, self.env)
        # refuse what cannot fit before the first allocation (META_TUTOR_NO_MEMORY_CHECK=1 skips)
        check_memory(training_memory(cfg, self.spec, self.env))
        self.sampler = make_sampler(cfg, self.env, self.spec)
        self.dist = self._population()
        self.val_profiles = self.dist.sample(cfg.val_tasks, "val", seed=cfg.val_seed)
        self.rng = np.random.default_rng(cfg.seed)
        algo_cls = ALGORITHMS[cfg.algo]
        if not isinstance(cfg, algo_cls.config_class):
            need = algo_cls.config_class.__name__
            raise ValueError(f"algo {cfg.algo!r} needs a {need}, got {type(cfg).__name__}")
        self.algo: Algorithm = algo_cls(cfg, Context(self.env, self.spec, self.sampler, self.dist, self.rng))

        self.iteration = 0
        self.env_steps = 0
        self.best_val = -math.inf
        self.wall_time = 0.0
        self.columns = self._columns()
        self.resumed = resume
        self.run_dir = RunDirectory(self.out, self.columns, cfg.tensorboard)
        state = self.run_dir.open(cfg, resume)
        if state is not None:
            self._restore(state)

    # ------------------------------------------------------------ public API
    def policy(self) -> TutorPolicy:
        """The current tutor (detached copy)."""
        return self.algo.policy()

    def train(self, max_iterations: int | None = None) -> dict[str, Any]:
        """Run until ``n_iterations`` (or ``max_iterations`` more); returns the last row."""
        cfg = self.cfg
        stop = (
            cfg.n_iterations
            if max_iterations is None
            else min(cfg.n_iterations, self.iteration + max_iterations)
        )
        writer = self.run_dir.writer()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=cfg.n_iterations, initial=self.iteration, desc=cfg.algo, unit="it", dynamic_ncols=True
            )
        row: dict[str, Any] = {}
        try:
            while self.iteration < stop:
                row = self._one_iteration()
                if writer is not None:
                    for k, v in row.items():
                        if isinstance(v, float) and math.isfinite(v):
                            writer.add_scalar(k, v, row["iteration"])
                    writer.flush()
                if bar is not None:
                    post = {"ret": f"{row['return_post']:.3f}"}
                    if math.isfinite(self.best_val):
                        post["val_best"] = f"{self.best_val:.3f}"
                    bar.set_postfix(post)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return row

    def close(self) -> None:
        """Close the TensorBoard writer, release the sampler's workers (Ray actors) and the
        run directory's lock (:mod:`meta_rl.runlock`)."""
        self.run_dir.close()
        close = getattr(self.sampler, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------- iteration
    def _one_iteration(self) -> dict[str, Any]:
        cfg, it = self.cfg, self.iteration
        t0 = time.perf_counter()
        row = self.algo.iteration(it)
        self.env_steps += row.pop("_env_steps")
        row["env_steps"] = self.env_steps
        improved = False
        if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.n_iterations:
            improved = self._validate(row)
        dt = time.perf_counter() - t0
        self.wall_time += dt
        row["iter_time_s"] = dt
        row["wall_time_s"] = self.wall_time
        row["steps_per_s"] = row.pop("_iter_steps") / dt
        self.run_dir.append_metrics(row)
        self.iteration = it + 1
        self.run_dir.save_state(self._state(), best=improved)
        return row

    def _population(self) -> ProfileDistribution:
        """The students to train and validate on: the env's population or a calibrated one."""
        if not self.cfg.population:
            return self.env.distribution()
        from envs.calibration import population_distribution

        return population_distribution(self.cfg.population, self.cfg.env, self.cfg.env_kwargs)

    def _validate(self, row: dict[str, Any]) -> bool:
        cfg = self.cfg
        res = adaptation_curve(
            self.policy(),
            self.val_profiles,
            steps=cfg.val_adapt_steps,
            rollouts_per_step=cfg.rollouts_per_task,
            eval_episodes=cfg.val_episodes,
            seed=cfg.val_seed,
            sampler=self.sampler,
        )
        curve = res.mean_returns()
        for k, v in enumerate(curve):
            row[f"val_return_k{k}"] = float(v)
        for name in self.env.metric_names:
            m = res.mean_metric(name)
            row[f"val_{name}_k0"] = float(m[0])
            row[f"val_{name}_k{cfg.val_adapt_steps}"] = float(m[-1])
        score = float(curve[-1] if cfg.select_on == "post" else curve[0])
        if score > self.best_val:
            self.best_val = score
            return True
        return False

    # ------------------------------------------------------------ run state
    def _columns(self) -> list[str]:
        metric_cols = [f"{m}_{s}" for m in self.env.metric_names for s in ("pre", "post")]
        kv = self.cfg.val_adapt_steps
        val_cols = [f"val_return_k{k}" for k in range(kv + 1)]
        val_cols += [f"val_{m}_k{k}" for m in self.env.metric_names for k in (0, kv)]
        stats = list(STAT_COLUMNS)
        return [
            "iteration",
            "phase",
            "env_steps",
            "return_pre",
            "return_post",
            *metric_cols,
            *stats[:6],
            "adapt_kl",
            *stats[6:],
            "inner_lr",
            "epochs",
            *self.algo.extra_columns,
            *dict.fromkeys(val_cols),
            *WALL_COLUMNS,
        ]

    def _state(self) -> dict[str, Any]:
        pol = self.policy()
        return {
            "policy_meta": pol.meta(),
            "params": pol.params,
            "inner_lrs": pol.inner_lrs,
            "value_params": pol.value_params,
            **self.algo.optimizer_state(),
            "rng": self.rng.bit_generator.state,
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "best_val": self.best_val,
            "wall_time": self.wall_time,
            "config": self.cfg.to_dict(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        path = self.out / "checkpoint.pt"
        if PolicySpec.from_dict(state["policy_meta"]["policy"]) != self.spec:
            raise ValueError(f"{path}: its policy architecture differs from the one its config describes")
        try:  # load_checkpoint checked the structure; this checks it fits this run's tensors
            self.algo.load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"{path}: its training state does not fit this run ({one_line_error(e)})"
            ) from None
        self.rng.bit_generator.state = state["rng"]
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.best_val = float(state["best_val"])
        self.wall_time = float(state["wall_time"])


#: the historical name of the trainer (the package's public API)
MAMLPPO = Trainer


def policy_spec(cfg: TrainConfig, env: EnvSpec) -> PolicySpec:
    """The policy architecture a config asks for, on ``env``."""
    nvec = env.action_nvec if cfg.head == "factorised" else (env.n_actions,)
    if cfg.architecture == "mlp":
        return PolicySpec(env.obs_dim, nvec, tuple(cfg.hidden_sizes), cfg.activation)
    layout = env.item_layout
    if layout is None:
        raise ValueError(
            f"architecture 'itemwise' needs an env whose action picks one of K items and whose "
            f"observation has per-item blocks; {env.env_id} has none: use architecture 'mlp'"
        )
    return PolicySpec(
        env.obs_dim,
        (env.n_actions,),
        tuple(cfg.hidden_sizes),
        cfg.activation,
        *layout,
        item_bias=cfg.item_bias,
    )


def make_sampler(cfg: TrainConfig, env: EnvSpec, spec: PolicySpec) -> Sampler:
    """The sampler the config asks for: local, or split across Ray actors."""
    if cfg.sampler == "ray":
        from meta_rl.ray_sampler import RaySampler

        return RaySampler(  # type: ignore[return-value] - same interface as Sampler
            env, spec, num_workers=cfg.num_workers, address=cfg.ray_address, cpus_per_worker=cfg.num_threads
        )
    return Sampler(env, spec)


__all__ = ["MAMLPPO", "WALL_COLUMNS", "Trainer", "TrainingDiverged", "make_sampler", "policy_spec"]
