"""Distributed rollouts on Ray: the tasks of a collection split across Ray actors.

:class:`RaySampler` has the interface of :class:`meta_rl.sampler.Sampler` (one
``collect`` call returns the :class:`~meta_rl.sampler.Rollouts` of ``T`` tasks × ``E``
episodes), so the trainer and :func:`~meta_rl.adaptation.adaptation_curve` use it
unchanged. The meta-update stays on the driver; only sampling moves.

Each :class:`RolloutWorker` actor holds an ordinary local ``Sampler`` (a native
vector env and the batched policy call) for its contiguous slice of tasks. Per
collection the parameters are put in Ray's object store once (shared by all workers:
the unbatched parameters when every task uses the same ones, else the task-batched
ones, which each worker slices) and the trajectories come back as NumPy arrays.

Reproducibility. Worker ``w`` with tasks ``[a, b)`` collects with base seed
``seed + a·E``: the env streams of its sub-envs are exactly those of the same
sub-envs in a local collection (sub-env ``i`` is seeded with ``seed + i``), and its
torch generator for the actions is seeded with the same number. Hence

* one worker reproduces the local sampler exactly;
* the same seed and worker count give the same rollouts, run to run;
* different worker counts draw the actions from different generator streams, so they
  give different (equally valid) samples. Making actions independent of the split
  would mean one generator per task and per step, i.e. giving up the batched draws.

A worker that dies (its process crashed, or its node went away) is replaced by a
new actor and its slice is collected again with the same seeds, so the result is
the one an uninterrupted collection would have given and no task is lost. After
``max_replacements`` consecutive failures of one slice the collection raises.

Ray is an optional dependency (``pip install 'meta-tutor[ray]'``); it is imported
only when a ``RaySampler`` is made.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from envs.profiles import StudentProfile
from meta_rl.envspec import EnvSpec
from meta_rl.policy import PolicySpec
from meta_rl.sampler import Rollouts, Sampler, check_task_batch

log = logging.getLogger(__name__)

_TENSOR_FIELDS = ("obs", "actions", "logp", "logits", "rewards", "mask", "terminated", "truncated")

INSTALL_HINT = "the Ray sampler needs Ray: pip install 'meta-tutor[ray]'"


def import_ray() -> Any:
    """``import ray`` with an install hint instead of a bare ModuleNotFoundError."""
    try:
        import ray
    except ImportError as e:
        raise ValueError(INSTALL_HINT) from e
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` (or ``ray://host:port``) nobody listens on.

    ``ray.init`` would otherwise retry the connection for minutes before giving up.
    Other forms (empty, ``auto``, ``local``) are left to Ray.
    """
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"cannot reach the Ray cluster at {address!r}: {e}") from e


def rollouts_to_arrays(r: Rollouts) -> dict[str, Any]:
    """Rollouts as plain NumPy arrays (Ray passes those without copying)."""
    out: dict[str, Any] = {k: getattr(r, k).numpy() for k in _TENSOR_FIELDS}
    out["lengths"] = r.lengths
    out["returns"] = r.returns
    out["metrics"] = dict(r.metrics)
    return out


def concat_rollouts(parts: Sequence[Mapping[str, Any]]) -> Rollouts:
    """Join per-worker array dicts along the task axis into one :class:`Rollouts`."""
    fields: dict[str, Any] = {
        # copies: arrays from Ray's object store are read-only
        k: torch.from_numpy(np.concatenate([p[k] for p in parts], axis=0))
        for k in _TENSOR_FIELDS
    }
    fields["lengths"] = np.concatenate([p["lengths"] for p in parts], axis=0)
    fields["returns"] = np.concatenate([p["returns"] for p in parts], axis=0)
    fields["metrics"] = {
        k: np.concatenate([p["metrics"][k] for p in parts], axis=0) for k in parts[0]["metrics"]
    }
    return Rollouts(**fields)


class RolloutWorker:
    """The body of a Ray actor: a local :class:`Sampler` for a slice of the tasks.

    Kept a plain class (wrapped with ``ray.remote`` by :class:`RaySampler`) so that it
    can be tested and profiled without Ray.
    """

    def __init__(self, env: Mapping[str, Any], policy: Mapping[str, Any], num_threads: int = 1) -> None:
        torch.set_num_threads(int(num_threads))
        self.sampler = Sampler(EnvSpec.from_dict(env), PolicySpec(**policy))

    def collect(
        self,
        params: Mapping[str, Any],
        layout: str | tuple[int, int],
        profiles: Sequence[StudentProfile],
        episodes: int,
        seed: int,
    ) -> dict[str, Any]:
        """Rollouts of ``profiles`` as arrays.

        ``layout`` says how ``params`` relate to the tasks: ``(a, b)`` cuts task-batched
        parameters to this worker's tasks; ``"expand"`` expands shared parameters over
        the tasks, exactly as the trainer passes theta to a local sampler (so the batched
        matmul rounds identically); ``"shared"`` uses them unbatched, as given.
        """
        p = {k: torch.as_tensor(np.asarray(v)) for k, v in params.items()}
        if isinstance(layout, tuple):
            a, b = layout
            p = {k: v[a:b] for k, v in p.items()}
        elif layout == "expand":
            p = {k: v.unsqueeze(0).expand(len(profiles), *v.shape) for k, v in p.items()}
        return rollouts_to_arrays(self.sampler.collect(p, profiles, episodes, seed))

    def pid(self) -> int:
        import os

        return os.getpid()


class RaySampler:
    """A drop-in :class:`~meta_rl.sampler.Sampler` whose collections run on Ray actors.

    Args:
        env, policy: as for :class:`~meta_rl.sampler.Sampler`.
        num_workers: actors (each needs ``cpus_per_worker`` CPUs of the Ray cluster).
        address: Ray cluster address (e.g. ``"auto"`` or ``"ray://head:10001"``); empty:
            use the Ray instance this process already started, else start a local one.
        cpus_per_worker: CPUs reserved per actor (its torch thread count too).
        max_replacements: consecutive deaths of one slice before a collection fails.
    """

    def __init__(
        self,
        env: EnvSpec,
        policy: PolicySpec,
        num_workers: int = 2,
        address: str = "",
        cpus_per_worker: int = 1,
        max_replacements: int = 3,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker must be >= 1, got {cpus_per_worker}")
        Sampler(env, policy)  # the same checks of env against policy, before any actor starts
        ray = import_ray()
        if not ray.is_initialized():
            check_reachable(address)
            try:
                ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError) as e:
                raise ValueError(f"cannot connect to the Ray cluster at {address!r}: {e}") from e
        self._ray = ray
        self.env, self.policy = env, policy
        self.num_workers = int(num_workers)
        self.max_replacements = int(max_replacements)
        self.replacements = 0  # actors replaced so far (each logged as a warning)
        self._actor_cls = ray.remote(num_cpus=cpus_per_worker)(RolloutWorker)
        self._init_args = (env.to_dict(), dataclasses.asdict(policy), cpus_per_worker)
        self.workers = [self._new_worker() for _ in range(self.num_workers)]

    def _new_worker(self) -> Any:
        return self._actor_cls.remote(*self._init_args)

    def collect(
        self,
        params: Mapping[str, Tensor],
        profiles: Sequence[StudentProfile],
        episodes: int,
        seed: int,
    ) -> Rollouts:
        """As :meth:`meta_rl.sampler.Sampler.collect`, split over the workers by task."""
        ray = self._ray
        n_t, n_e = len(profiles), int(episodes)
        layout: str | None = None  # None: task-batched, each worker takes its slice
        if not check_task_batch(params, n_t):
            layout = "shared"
        elif all(v.stride(0) == 0 for v in params.values()):
            # theta expanded over the tasks: send it once, unbatched; workers expand it again
            params, layout = {k: v[0] for k, v in params.items()}, "expand"
        ref = ray.put({k: v.detach().contiguous().numpy() for k, v in params.items()})
        bounds = np.linspace(0, n_t, min(self.num_workers, n_t) + 1).round().astype(int)
        slices = [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

        def submit(w: int) -> Any:
            a, b = slices[w]
            return self.workers[w].collect.remote(
                ref, (a, b) if layout is None else layout, list(profiles[a:b]), n_e, int(seed) + a * n_e
            )

        pending = {w: submit(w) for w in range(len(slices))}
        parts: dict[int, dict[str, Any]] = {}
        failures = dict.fromkeys(pending, 0)
        while pending:
            for w, fut in list(pending.items()):
                try:
                    parts[w] = ray.get(fut)
                    del pending[w]
                except ray.exceptions.RayActorError as e:
                    failures[w] += 1
                    if failures[w] > self.max_replacements:
                        raise RuntimeError(
                            f"Ray rollout worker {w} died {failures[w]} times collecting tasks "
                            f"{slices[w][0]}..{slices[w][1] - 1}; giving up ({e})"
                        ) from e
                    log.warning(
                        "Ray rollout worker %d died (%s); replacing it and collecting its tasks %d..%d again",
                        w,
                        type(e).__name__,
                        slices[w][0],
                        slices[w][1] - 1,
                    )
                    self.workers[w] = self._new_worker()
                    self.replacements += 1
                    pending[w] = submit(w)
        return concat_rollouts([parts[w] for w in range(len(slices))])

    def close(self) -> None:
        """Stop the actors (the Ray instance itself is left running)."""
        for w in self.workers:
            self._ray.kill(w)
        self.workers = []
