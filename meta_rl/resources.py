"""Memory estimates of a training and an evaluation, checked before anything is allocated.

A setting such as ``hidden_sizes: [100000000]`` or ``evaluate --profiles`` with 400 000
students used to run until the allocator failed (an 8.4 GB weight matrix; a
``MemoryError`` after 207 s). :func:`training_memory` and :func:`evaluation_memory`
estimate the peak from the settings alone, and :func:`check_memory` refuses clearly
what cannot fit in the memory available now (``/proc/meminfo`` ``MemAvailable``, or
the cgroup limit if lower), naming the estimate, what is available and the override:
``META_TUTOR_NO_MEMORY_CHECK=1`` skips the check (e.g. when swap or memory that frees
up later makes it fit).

The model, in bytes (4 per float32; ``P`` parameters of the policy from its spec on
torch's ``meta`` device, so nothing is allocated to count them):

* parameters: ``4 P · 6`` — θ, its gradient, Adam's two moments, the detached copy
  of a checkpoint and its serialisation buffer — doubled for Meta-SGD step sizes;
  the value network likewise;
* one collection of ``n`` episodes (``n`` sub-envs) of horizon ``H``:
  ``n · ((H + 1) d · 4 + H (4 · n_logits + 23)) + n · env_bytes`` — observations,
  actions (int64), log-probabilities, logits, rewards and three flags per step, plus
  the env's own arrays per sub-env (measured on a small vector env of this env);
* a loss over ``r`` rows (steps): activations kept for the backward pass,
  ``r · 4 · (3 Σ h + 5 n_logits + d) · items`` (pre-activation, bias sum and
  activation per hidden layer; logits, softmax terms; ``items = K`` for an item-wise
  policy, which runs the network once per item), times 3 through a second-order
  inner step (the inner graph, its gradient graph and the outer pass);
* per-task parameters: ``T · P · 4 · 3`` per inner step (adapted parameters, their
  gradient, the graph), ×2 with second order.

Training peak: parameters plus the larger of one iteration (all ``inner_steps + 1``
collections of ``meta_batch_size · rollouts_per_task`` episodes, or
``pooled_episodes``, kept for the epochs, and the loss of one minibatch) and one
validation (:func:`evaluation_memory` on ``val_tasks``). Evaluation peak: the
collections of one adaptation step (adaptation and evaluation episodes for every
student: the sampler keeps a vector env of each size) plus the inner step over all
students at once.

Measured against the peak resident memory of real runs (``tests/test_resources.py``),
the estimate lies within a factor of 2 either way; it is a guard against settings that
cannot fit, not an exact figure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from meta_rl.envspec import EnvSpec
from meta_rl.policy import PolicySpec, init_params

#: set to 1 to skip :func:`check_memory` (the override named in its message)
SKIP_ENV = "META_TUTOR_NO_MEMORY_CHECK"
#: refuse when the estimate exceeds this share of the available memory (the rest is
#: for the interpreter, libraries and the allocator's slack)
HEADROOM = 0.9
_F32 = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory in bytes, with the parts it is made of."""

    what: str
    parts: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def describe(self) -> str:
        big = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{k} {format_bytes(v)}" for k, v in big if v > 0)


class MemoryBudgetError(ValueError):
    """The estimate exceeds the available memory (the message names both and the override)."""


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def param_count(spec: PolicySpec, out_dim: int | None = None) -> int:
    """Number of parameters of the network ``spec`` describes (nothing allocated)."""
    with torch.device("meta"):
        return sum(v.numel() for v in init_params(spec, out_dim=out_dim).values())


def env_bytes_per_subenv(env: EnvSpec, n: int = 32) -> int:
    """Bytes of the numpy arrays a vector env holds per sub-env (measured on ``n`` sub-envs)."""
    venv = env.make_vector_env(n)
    try:
        seen: set[int] = set()
        total = 0
        stack = [venv]
        depth = 0
        while stack and depth < 4:  # the env and the objects it holds directly (dynamics, spaces)
            nxt = []
            for obj in stack:
                for value in getattr(obj, "__dict__", {}).values():
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                    if isinstance(value, np.ndarray):
                        total += value.nbytes
                    elif hasattr(value, "__dict__") and type(value).__module__.startswith("envs"):
                        nxt.append(value)
            stack, depth = nxt, depth + 1
        return math.ceil(total / n)
    finally:
        venv.close()


def collection_bytes(spec: PolicySpec, env: EnvSpec, n_episodes: int, env_bytes: int) -> int:
    """One :meth:`Sampler.collect` of ``n_episodes`` episodes (buffers and sub-envs)."""
    h, d = env.horizon, spec.obs_dim
    per_episode = (h + 1) * d * _F32 + h * (_F32 * spec.n_logits + 8 + 4 + 4 + 3 + 4)
    return int(n_episodes * (per_episode + env_bytes))


def loss_bytes(spec: PolicySpec, rows: int, second_order: bool = False) -> int:
    """Activations a forward + backward pass over ``rows`` steps keeps."""
    items = len(spec.item_cols) if spec.itemwise else 1
    out = 1 if spec.itemwise else spec.n_logits
    per_row = _F32 * (3 * sum(spec.hidden_sizes) + 5 * out + spec.input_dim) * items
    return int(rows * per_row * (3 if second_order else 1))


def parameter_bytes(spec: PolicySpec, meta_sgd: bool = False, value_net: bool = False) -> int:
    """Parameters, gradients, Adam moments and checkpoint copies (module docstring)."""
    p = param_count(spec) * (2 if meta_sgd else 1)
    if value_net:
        p += param_count(spec, out_dim=1)
    return 6 * _F32 * p


def evaluation_memory(
    spec: PolicySpec,
    env: EnvSpec,
    n_profiles: int,
    adapt_steps: int,
    rollouts_per_step: int,
    eval_episodes: int,
    env_bytes: int | None = None,
) -> MemoryEstimate:
    """Peak of :func:`meta_rl.adaptation.adaptation_curve` on ``n_profiles`` students at once.

    For ``meta-tutor evaluate``: call it with the tutor's spec and env and the number of
    held-out students before evaluating (baselines are evaluated one after the other with
    the same sizes, so the largest network's estimate is the peak).
    """
    if env_bytes is None:
        env_bytes = env_bytes_per_subenv(env)
    n_eval = n_profiles * eval_episodes
    n_adapt = n_profiles * rollouts_per_step if adapt_steps > 0 else 0
    parts = {
        "evaluation episodes": collection_bytes(spec, env, n_eval, env_bytes),
        "adaptation episodes": collection_bytes(spec, env, n_adapt, env_bytes),
        "inner step": loss_bytes(spec, n_adapt * env.horizon) if adapt_steps > 0 else 0,
        "per-student parameters": n_profiles * param_count(spec) * _F32 * (3 if adapt_steps > 0 else 1),
    }
    return MemoryEstimate(f"evaluating {n_profiles} students", parts)


def training_memory(config: object, spec: PolicySpec, env: EnvSpec) -> MemoryEstimate:
    """Peak of a training run with ``config`` (a :class:`~meta_rl.config.TrainConfig`)."""
    c = config
    env_bytes = env_bytes_per_subenv(env)
    maml = getattr(c, "algo", "") == "maml_ppo"
    second = maml and not getattr(c, "first_order", False)
    if maml:
        t, e, k = c.meta_batch_size, c.rollouts_per_task, c.inner_steps
        sets, episodes = k + 1, t * e
        per_minibatch = math.ceil(t / max(1, min(c.n_minibatches, t)))
        loss = loss_bytes(spec, per_minibatch * e * env.horizon * sets, second)
        task_params = per_minibatch * param_count(spec) * _F32 * 3 * max(k, 1) * (2 if second else 1)
    else:
        sets, episodes = 1, c.pooled_episodes
        per_minibatch = math.ceil(episodes / max(1, min(c.n_minibatches, episodes)))
        loss, task_params = loss_bytes(spec, per_minibatch * env.horizon), 0
    iteration = sets * collection_bytes(spec, env, episodes, env_bytes) + loss + task_params
    validation = evaluation_memory(
        spec, env, c.val_tasks, c.val_adapt_steps, c.rollouts_per_task, c.val_episodes, env_bytes
    )
    parts = {
        "parameters and optimiser": parameter_bytes(
            spec, bool(getattr(c, "meta_sgd", False)), c.baseline == "value_net"
        ),
        "one iteration" if iteration >= validation.total else "one validation": max(
            iteration, validation.total
        ),
    }
    return MemoryEstimate("training", parts)


def available_memory() -> int | None:
    """Bytes available to this process now: ``MemAvailable``, capped by a cgroup limit."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max" and avail is not None:
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def check_memory(estimate: MemoryEstimate, available: int | None = None) -> None:
    """Raise :class:`MemoryBudgetError` if ``estimate`` cannot fit (unless overridden)."""
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):
        return
    available = available_memory() if available is None else available
    if available is None or estimate.total <= HEADROOM * available:
        return
    raise MemoryBudgetError(
        f"{estimate.what} needs about {format_bytes(estimate.total)} of memory ({estimate.describe()}) "
        f"but {format_bytes(available)} is available: use smaller settings, or set "
        f"{SKIP_ENV}=1 to start anyway"
    )
