"""Fine-tuning step sizes of the baselines, chosen on ``val`` students and cached per run.

A baseline adapted by fine-tuning (pooled PPO, scratch PPO, the SB3 models) gets the step
size ``α*`` that maximises its mean return after ``K`` adaptation steps on the val
students (never the held-out ones)::

    α* = argmax_{α ∈ grid}  mean_i  R_i(θ_K(α))      (followed outwards at a grid edge)

The choice depends on the policy, the grid and the val protocol but not on the split
being evaluated, so it is remembered in ``RUN_DIR/baselines/step_sizes.json``
(:func:`cached_step`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from meta_rl.adaptation import adaptation_curve
from meta_rl.checkpoint import atomic_write
from meta_rl.evaluation import sb3_baseline
from meta_rl.evaluation.settings import EvaluationSettings
from meta_rl.runlock import run_lock
from meta_rl.tutor import TutorPolicy

LR_GRID = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
#: when the meta-training run gives the per-item logit offsets their own inner step size
#: (``item_bias_lr``), pooled and scratch fine-tuning may too: these multiples of the run's
#: value, each with these step sizes of the shared weights (chosen on val like the scalar step)
ITEM_LR_FACTORS = (1 / 3, 1.0, 3.0)
ITEM_SHARED_LRS = (0.05, 0.5)
SB3_LR_GRID = (1e-4, 3e-4, 1e-3)
#: how far a best step size at a grid's edge is followed outwards (see ``best_on_val``)
MAX_GRID_EXTENSIONS = 4
#: the fine-tuning step sizes chosen on val, per run (see ``cached_step``)
STEP_CACHE = "step_sizes.json"
#: how long an evaluation waits for another one writing the same run's step-size cache
STEP_CACHE_WAIT_S = 60.0
STEP_CACHE_VERSION = 1

#: a fine-tuning step size: one scalar, or (shared weights, per-item logit offsets)
StepSize = float | tuple[float, float]


def best_on_val(grid: Sequence[Any], final_return: Callable[[Any], float]) -> Any:
    """The step size whose adapted return on val students (after K steps) is highest.

    Every entry of ``grid`` is tried. When the best is the largest (or smallest) scalar
    step of the grid, the search follows that edge outwards with the grid's own ratio there
    (e.g. 2.0 -> 4.0 -> 8.0) while the val return keeps improving, at most
    ``MAX_GRID_EXTENSIONS`` times: a baseline's step size must not be capped by a grid that
    stopped too early (a sceptical reader would rightly call that an under-tuned baseline).
    Tuple entries (per-parameter-group steps) are tried as given and never extended, and
    so is a grid with fewer than two distinct positive scalars. A NaN score (a diverging
    step) never wins.
    """
    scores = [final_return(step) for step in grid]
    best_i = int(np.argmax(np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)))
    best, best_score = grid[best_i], scores[best_i]
    scalars = sorted({float(g) for g in grid if not isinstance(g, tuple) and g > 0})
    if isinstance(best, tuple) or len(scalars) < 2 or best not in (scalars[0], scalars[-1]):
        return best
    ratio = scalars[-1] / scalars[-2] if best == scalars[-1] else scalars[0] / scalars[1]
    step = float(best)
    for _ in range(MAX_GRID_EXTENSIONS):
        step *= ratio
        score = final_return(step)
        if not score > best_score:  # ties keep the grid's value
            break
        best, best_score = step, score
    return best


def fine_tuning_grid(run_config: Mapping[str, Any]) -> list[StepSize]:
    """The step sizes offered to fine-tuning of our policies for a meta-training run:
    ``LR_GRID``, plus (shared, per-item) pairs when the run has an ``item_bias_lr``."""
    item_lr = float(run_config.get("item_bias_lr", 0.0) or 0.0)
    grid: list[StepSize] = list(LR_GRID)
    if item_lr > 0:
        grid += [(lr, item_lr * f) for lr in ITEM_SHARED_LRS for f in ITEM_LR_FACTORS]
    return grid


def with_step_size(policy: TutorPolicy, step: StepSize) -> tuple[TutorPolicy, float | None]:
    """``(policy, lr)`` for :func:`adaptation_curve`: a pair becomes per-parameter step sizes
    (then ``lr`` is ``None``: pass ``inner=policy.inner`` too, which an encoder tutor needs to
    take a gradient step at all)."""
    if isinstance(step, tuple):
        shared, item = step
        lrs = {k: torch.full_like(v, item if k == "item_bias" else shared) for k, v in policy.params.items()}
        return policy.with_inner_lr(lrs), None
    return policy, float(step)


def choose_lr(
    policy: TutorPolicy, val: Sequence[dict], s: EvaluationSettings, rollouts: int, grid: Sequence[StepSize]
) -> StepSize:
    """:func:`best_on_val` of ``grid`` for fine-tuning ``policy`` with our inner update."""

    def final_return(step: StepSize) -> float:
        pol, lr = with_step_size(policy, step)
        res = adaptation_curve(
            pol, val, s.adapt_steps, rollouts, s.eval_episodes, seed=s.seed + 1, inner=pol.inner, lr=lr
        )
        return float(res.returns[:, -1].mean())

    return best_on_val(grid, final_return)


def choose_sb3_lr(
    model: Any,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    val: Sequence[dict],
    s: EvaluationSettings,
    rollouts: int,
) -> float:
    """:func:`best_on_val` of ``SB3_LR_GRID`` for fine-tuning an SB3 ``model`` (on half the
    val students, at least two: SB3 fine-tuning loops over students)."""
    val = list(val)[: max(2, len(val) // 2)]

    def final_return(lr: float) -> float:
        ret, _ = sb3_baseline.adaptation_curve(
            model,
            env_id,
            env_kwargs,
            val,
            s.adapt_steps,
            rollouts,
            s.eval_episodes,
            s.seed + 1,
            learning_rate=lr,
        )
        return float(ret[:, -1].mean())

    return best_on_val(SB3_LR_GRID, final_return)


def cached_step(
    run: Path,
    name: str,
    policy_files: Sequence[Path],
    env: tuple[str, Mapping[str, Any]],
    grid: Sequence[StepSize],
    val: Sequence[dict],
    s: EvaluationSettings,
    rollouts: int,
    choose: Callable[[], StepSize],
) -> StepSize:
    """``choose()``, remembered in ``RUN_DIR/baselines/step_sizes.json``.

    The choice depends on the policy, the grid and the val protocol but not on the split
    being evaluated, so evaluating the same run again (``--split ood`` after ``test``)
    reuses it instead of repeating every candidate's val adaptation. The key holds all it
    depends on (hashes of the policy files and of the val students included): a retrained
    baseline or any other setting is chosen afresh. ``STEP_CACHE_VERSION`` stands for the
    rules in code (val seed, SB3's val subset, scoring): bump it when they change. Two
    evaluations of one run writing at the same time may drop each other's entry; that only
    costs a recomputation.
    """
    policy_hash = hashlib.sha256()
    for f in policy_files:
        if f.is_file():
            policy_hash.update(f.name.encode() + hashlib.sha256(f.read_bytes()).digest())
    key = json.dumps(
        {
            "version": STEP_CACHE_VERSION,
            "method": name,
            "env_id": env[0],
            "env_kwargs": dict(env[1]),
            "policy_sha256": policy_hash.hexdigest(),
            "val_sha256": hashlib.sha256(json.dumps(list(val), sort_keys=True).encode()).hexdigest(),
            "grid": [list(g) if isinstance(g, tuple) else g for g in grid],
            "max_grid_extensions": MAX_GRID_EXTENSIONS,
            "seed": s.seed,
            "adapt_steps": s.adapt_steps,
            "rollouts": rollouts,
            "eval_episodes": s.eval_episodes,
        },
        sort_keys=True,
    )
    path = run / "baselines" / STEP_CACHE
    value = _read_step_cache(path, warn=True).get(key)
    if _is_step_size(value):
        s.log(f"{run.name}: {name:<14} step size {value} (chosen on val earlier: {path})")
        return tuple(value) if isinstance(value, list) else float(value)
    if value is not None:
        warnings.warn(f"{path}: {value!r} is not a step size: choosing again", stacklevel=2)
    step = choose()
    # read, merge and write under the cache's own lock: two evaluations of one run that
    # choose at the same time both keep their entries (the choice itself runs unlocked)
    with run_lock(path.parent, "step-size cache", name=".step_sizes.lock", timeout=STEP_CACHE_WAIT_S):
        cache = _read_step_cache(path, warn=False)
        cache[key] = list(step) if isinstance(step, tuple) else step
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n"))
    return step


def _read_step_cache(path: Path, warn: bool) -> dict[str, Any]:
    """The step-size cache at ``path`` (``{}`` when missing or invalid, with a warning)."""
    if not path.is_file():
        return {}
    try:
        cache = json.loads(path.read_text())
        if not isinstance(cache, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        if warn:
            warnings.warn(f"{path} is not a valid step-size cache ({e}): choosing again", stacklevel=3)
        return {}
    return cache


def _is_step_size(value: Any) -> bool:
    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x) and x > 0

    return number(value) or (isinstance(value, list) and len(value) == 2 and all(map(number, value)))
