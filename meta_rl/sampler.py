"""Multi-task rollouts: ``T`` tasks × ``E`` episodes in ONE native vector env.

Sub-env ``i·E + j`` runs episode ``j`` of task (student) ``i``. At every step the
policies of all tasks are evaluated in one batched call: parameters carry a leading
task dimension and observations are shaped ``(T, E, obs_dim)`` (see
:mod:`meta_rl.policy`), so there is no Python loop over tasks or students.

Episode boundaries are explicit. Each sub-env runs exactly one episode per
:meth:`Sampler.collect`: the env is reset with the tasks' profiles, then stepped
until every sub-env has ended (at most ``horizon`` steps). Gymnasium 1.x vector envs
autoreset in ``NEXT_STEP`` mode: the step after an episode ends resets that sub-env
and ignores its action. Those steps belong to no episode of ours and are masked
out (``mask = False``); episodes may therefore have different lengths (e.g. a ZPD
student who quits early). Per step we record ``terminated`` (the episode really
ended: no bootstrap) and ``truncated`` (it was cut — by the env, or because the
collection window of ``horizon`` steps ran out — so GAE bootstraps from the final
observation, stored at ``obs[..., length, :]``). The education metrics of the env's
``info`` at episode end are kept per episode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from envs.core import StudentVectorEnv
from envs.profiles import StudentProfile
from meta_rl.envspec import EnvSpec
from meta_rl.policy import PolicySpec, is_batched, mlp, sample_with_log_prob

#: a history-dependent tutor for :meth:`Sampler.collect`: ``(t, obs, actions, rewards, mask) -> logits``
Actor = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], Tensor]

#: spacing of the base seeds of different collections (see :func:`spaced_seed`)
SEED_STRIDE = 4096


@dataclass
class Rollouts:
    """Episodes of ``T`` tasks × ``E`` episodes, padded to ``H`` steps."""

    obs: Tensor  # (T, E, H + 1, d) float32; obs[..., length, :] is the final observation
    actions: Tensor  # (T, E, H) int64
    logp: Tensor  # (T, E, H) log π(a|s) under the sampling policy
    logits: Tensor  # (T, E, H, n_logits) of the sampling policy
    rewards: Tensor  # (T, E, H) float32, 0 on padding
    mask: Tensor  # (T, E, H) bool, valid steps
    terminated: Tensor  # (T, E, H) bool
    truncated: Tensor  # (T, E, H) bool
    lengths: np.ndarray  # (T, E) int
    returns: np.ndarray  # (T, E) undiscounted episode returns
    metrics: dict[str, np.ndarray]  # name -> (T, E), NaN where the episode did not end

    @property
    def n_tasks(self) -> int:
        return int(self.actions.shape[0])

    @property
    def env_steps(self) -> int:
        return int(self.lengths.sum())


class Sampler:
    """Collects :class:`Rollouts` for a batch of tasks with per-task policy parameters.

    Vector envs are created once per size and reused (they are reset with explicit
    seeds and profiles at every collection, so no state leaks between calls).
    """

    def __init__(self, env: EnvSpec, policy: PolicySpec) -> None:
        if policy.obs_dim != env.obs_dim:
            raise ValueError(f"policy expects {policy.obs_dim} observation features, env gives {env.obs_dim}")
        if policy.n_actions != env.n_actions:
            raise ValueError(f"policy has {policy.n_actions} actions, env has {env.n_actions}")
        self.env = env
        self.policy = policy
        self._venvs: dict[int, StudentVectorEnv] = {}

    def _venv(self, n: int) -> StudentVectorEnv:
        if n not in self._venvs:
            self._venvs[n] = self.env.make_vector_env(n)
        return self._venvs[n]

    def collect(
        self,
        params: Mapping[str, Tensor],
        profiles: Sequence[StudentProfile],
        episodes: int,
        seed: int,
        act: Actor | None = None,
    ) -> Rollouts:
        """Run ``episodes`` episodes for each profile with the given policy parameters.

        ``params`` are batched over the ``T = len(profiles)`` tasks or shared. Actions
        are sampled from the policy (reproducibly: env seeds ``seed + i``, and a torch
        generator seeded with ``seed`` for the actions).

        ``act``, if given, replaces the policy network: a history-dependent tutor (e.g. one
        conditioned on a student encoding, :mod:`meta_rl.encoder`) whose call
        ``act(t, obs, actions, rewards, mask)`` returns the logits ``(T, E, n_logits)`` of
        step ``t`` given the buffers so far (``obs[:, :t + 1]``, and ``actions``, ``rewards``,
        ``mask`` up to ``t − 1``; sub-env-major rows ``i·E + j``, as in the returned arrays).
        """
        n_t, n_e, spec = len(profiles), int(episodes), self.policy
        check_task_batch(params, n_t)
        n, h, d = n_t * n_e, self.env.horizon, self.policy.obs_dim
        venv = self._venv(n)
        tasks = [p for p in profiles for _ in range(n_e)]
        obs, _ = venv.reset(seed=int(seed), options={"profiles": tasks})
        extra = self.env.profile_features(tasks) if self.env.privileged else None
        gen = torch.Generator().manual_seed(int(seed))

        obs_buf = np.zeros((n, h + 1, d), dtype=np.float32)
        actions = np.zeros((n, h), dtype=np.int64)
        logp = torch.zeros(n, h)
        logits_buf = torch.zeros(n, h, spec.n_logits)
        rewards = np.zeros((n, h), dtype=np.float32)
        mask = np.zeros((n, h), dtype=bool)
        term = np.zeros((n, h), dtype=bool)
        trunc = np.zeros((n, h), dtype=bool)
        done = np.zeros(n, dtype=bool)
        lengths = np.zeros(n, dtype=np.int64)
        metrics = {k: np.full(n, np.nan) for k in self.env.metric_names}

        def put_obs(t: int, o: np.ndarray, rows: np.ndarray | slice) -> None:
            obs_buf[rows, t, : o.shape[1]] = o[rows]
            if extra is not None:
                obs_buf[rows, t, o.shape[1] :] = extra[rows]

        put_obs(0, obs, slice(None))
        for t in range(h):
            if done.all():
                break
            with torch.no_grad():
                if act is None:
                    z = mlp(spec, params, torch.from_numpy(obs_buf[:, t]).reshape(n_t, n_e, d))
                else:
                    z = act(t, obs_buf, actions, rewards, mask)
                a, lp = sample_with_log_prob(spec, z, gen)
                logp[:, t] = lp.reshape(n).float()
                logits_buf[:, t] = z.reshape(n, -1).float()
            actions[:, t] = a.reshape(n).numpy()
            obs, r, te, tr, info = venv.step(actions[:, t])
            active = ~done
            mask[:, t] = active
            rewards[:, t] = np.where(active, r, 0.0)
            term[:, t] = te & active
            trunc[:, t] = tr & active
            put_obs(t + 1, obs, active)
            ended = (te | tr) & active
            for k in metrics:
                if k in info:
                    sel = info["_" + k] & active
                    metrics[k][sel] = info[k][sel]
            lengths += active
            done |= ended
        # the collection window ran out before these episodes ended: bootstrap them
        cut = ~done & (lengths == h)
        trunc[cut, h - 1] = True

        shape = (n_t, n_e)
        return Rollouts(
            obs=torch.from_numpy(obs_buf).reshape(*shape, h + 1, d),
            actions=torch.from_numpy(actions).reshape(*shape, h),
            logp=logp.reshape(*shape, h),
            logits=logits_buf.reshape(*shape, h, -1),
            rewards=torch.from_numpy(rewards).reshape(*shape, h),
            mask=torch.from_numpy(mask).reshape(*shape, h),
            terminated=torch.from_numpy(term).reshape(*shape, h),
            truncated=torch.from_numpy(trunc).reshape(*shape, h),
            lengths=lengths.reshape(shape),
            returns=rewards.sum(1, dtype=np.float64).reshape(shape),
            metrics={k: v.reshape(shape) for k, v in metrics.items()},
        )


def check_task_batch(params: Mapping[str, Tensor], n_tasks: int) -> bool:
    """Whether ``params`` are batched over tasks; batched over another count is an error."""
    if not is_batched(params):
        return False
    if params["l0.weight"].shape[0] != n_tasks:
        raise ValueError(f"parameters are batched over {params['l0.weight'].shape[0]} tasks, got {n_tasks}")
    return True


def nan_mean(values: np.ndarray, axis: int | None = None) -> Any:
    """Mean ignoring NaN (episodes without the value, e.g. a metric that is undefined).

    ``axis=None`` gives one float over all entries; ``axis=1`` on ``(T, E)`` gives the
    per-task means. Where no entry is defined the result is NaN (without a warning).
    """
    values = np.asarray(values)
    with np.errstate(invalid="ignore"):
        counts = np.sum(~np.isnan(values), axis=axis)
        sums = np.nansum(values, axis=axis)
    out = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return float(out) if axis is None else out


def task_means(values: np.ndarray) -> np.ndarray:
    """Mean over episodes per task of a ``(T, E)`` array, ignoring NaN (see :func:`nan_mean`)."""
    return nan_mean(values, axis=1)


def spaced_seed(base: Any) -> Any:
    """Base seed of a collection: ``base * SEED_STRIDE`` (int or integer array).

    :meth:`Sampler.collect` seeds sub-env ``i`` with ``seed + i``; spacing the base seeds
    of different collections by :data:`SEED_STRIDE` keeps those ranges from overlapping
    for up to ``SEED_STRIDE`` sub-envs.
    """
    return base * SEED_STRIDE


def describe(r: Rollouts) -> dict[str, Any]:
    """Summary numbers of a collection (mean return, steps, metric means)."""
    out: dict[str, Any] = {"return": float(r.returns.mean()), "env_steps": r.env_steps}
    for k, v in r.metrics.items():
        out[k] = nan_mean(v)
    return out
