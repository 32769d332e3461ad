"""What ``meta-tutor evaluate`` evaluates and how: :class:`EvaluationSettings`."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class EvaluationSettings:
    """What to evaluate and how (``meta-tutor evaluate`` options)."""

    split: str = "test"
    n_profiles: int = 80
    profile_seed: int = 0
    profiles_file: str | None = None
    adapt_steps: int = 3
    rollouts_per_step: int | None = None  # default: the meta-training run's rollouts_per_task
    eval_episodes: int = 10
    seed: int = 0
    methods: list[str] | None = None  # default: every registered method but the optional ones
    val_profiles: int = 20  # students of the val split used to choose fine-tuning step sizes
    workers: int = 2  # cores: this process and workers - 1 worker processes (1: all in this process)
    command: str = field(default_factory=lambda: " ".join(shlex.quote(a) for a in sys.argv))
    log: Callable[[str], None] = print
