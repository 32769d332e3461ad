"""Meta-training and the evaluation's baselines trained at once, on every core.

The baselines of our trainer (pooled PPO, the oracle, Reptile-PPO, MAML++-PPO) take only
the run's *config* (its iterations and episodes per iteration, see
:func:`meta_rl.algorithms.derived_config`), so they can train while the run itself does;
SB3's baseline takes the run's measured env steps and starts as soon as the run is done.
``meta-tutor demo`` uses this to keep both cores busy from the first second; the results
are those of training everything one after another (every training seeds itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from meta_rl.evaluation.methods import Method
from meta_rl.evaluation.parallel import Job, run_jobs
from meta_rl.trainer import Trainer


def train_baseline(m: Method, run: Path, env_id: str, env_kwargs: Mapping[str, Any]) -> None:
    """One baseline of ``run`` (in this process or a worker)."""
    # these networks are tiny: one thread is fastest, and more threads thrash on a shared 2-core machine
    torch.set_num_threads(1)
    m.train(run, env_id, dict(env_kwargs), print)


def _train_run(trainer: Trainer) -> None:
    trainer.train()


def train_run_and_baselines(trainer: Trainer, methods: Sequence[Method], workers: int) -> None:
    """Train ``trainer``'s run in this process and the missing baselines of ``methods``
    alongside it on ``workers - 1`` worker processes (see the module docstring). The caller
    closes ``trainer``."""
    run, env = trainer.out, trainer.env
    missing = [m for m in methods if m.needs_run and m.needs_training(run)]
    # the run first (this process); the ones that need the finished run before the others, so
    # that a slot takes them as soon as they can start; then the most expensive first
    missing.sort(key=lambda m: (m.trains_before_run, -m.cost(run)))
    jobs = [Job(_train_run, (trainer,), local=True)]
    jobs += [
        Job(
            train_baseline,
            (m, run, env.env_id, dict(env.env_kwargs)),
            after=() if m.trains_before_run else (0,),
        )
        for m in missing
    ]
    run_jobs(jobs, workers)
