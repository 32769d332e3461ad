"""The common base of the training algorithms, in the spirit of stable-baselines3's
``BaseAlgorithm``: an algorithm owns its parameters, its optimisers and *one training
iteration* (collect → advantages → update) over the functional core
(:mod:`meta_rl.policy`, :mod:`meta_rl.gae`, :mod:`meta_rl.ppo`, :mod:`meta_rl.maml`,
:mod:`meta_rl.sampler`). :class:`~meta_rl.trainer.Trainer` runs the loop, validation
and checkpoints around it.

The base also holds what every PPO-family algorithm shares: the policy parameters
``θ`` (orthogonal initialisation seeded by ``seed``), the optional value network,
the outer Adam optimiser, PPO's epochs × minibatches loop (:meth:`Algorithm.optimise`)
and the pooled-PPO iteration (:meth:`Algorithm.pooled_iteration`: one episode from each
of ``pooled_episodes`` fresh ``train`` students, one baseline and advantage
normalisation over the batch, PPO's clipped surrogate), which is pooled PPO itself and
the warm start (``pretrain_iterations``) of the meta-learners.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from envs.profiles import ProfileDistribution
from meta_rl.adaptation import rollout_step_data
from meta_rl.checkpoint import load_policy
from meta_rl.config import TrainConfig
from meta_rl.envspec import EnvSpec
from meta_rl.maml import InnerUpdate, LearningRate, OuterSettings, StepData, meta_loss
from meta_rl.policy import PolicySpec, init_params, state_value
from meta_rl.ppo import value_loss
from meta_rl.sampler import Rollouts, Sampler, nan_mean, spaced_seed
from meta_rl.tutor import AdvantageSettings, TutorPolicy

#: the loss statistics every row of metrics.csv has (NaN where an algorithm has none)
STAT_COLUMNS = (
    "loss",
    "surrogate",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "kl_pre",
    "grad_norm",
    "value_loss",
)


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN/inf; the message names the iteration and quantity."""


def _diverged(it: int, name: str) -> TrainingDiverged:
    return TrainingDiverged(
        f"iteration {it}: {name} is not finite; training stopped, the last good checkpoint is kept"
    )


def check_finite(it: int, name: str, value: Tensor) -> None:
    """Raise :class:`TrainingDiverged` if ``value`` holds a NaN or inf."""
    if not bool(torch.isfinite(value).all()):
        raise _diverged(it, name)


def check_finite_float(it: int, name: str, value: float) -> None:
    """:func:`check_finite` of a number already read into Python."""
    if not math.isfinite(value):
        raise _diverged(it, name)


def check_all_finite(it: int, named: Sequence[tuple[str, Tensor]], prefix: str = "") -> None:
    """:func:`check_finite` of every tensor of ``named`` (the first bad one is named).

    One fused test for all of them (the max-norm of a tensor is NaN or inf exactly when
    one of its entries is), then the tensors one by one only if it fails.
    """
    with torch.no_grad():
        norms = torch._foreach_norm([v for _, v in named], math.inf)
        if bool(torch.isfinite(torch.stack(norms)).all()):
            return
    for k, v in named:
        check_finite(it, prefix + k, v.detach())


@dataclass
class Context:
    """What the trainer hands an algorithm: the env, network, sampler, students and the
    run's one seeded random generator (its state is checkpointed by the trainer)."""

    env: EnvSpec
    spec: PolicySpec
    sampler: Sampler
    dist: ProfileDistribution
    rng: np.random.Generator


class Algorithm:
    """One registered training algorithm (see the module docstring).

    Subclasses set ``name`` and ``config_class`` and implement :meth:`iteration`; the
    learned inner step sizes, if any, come from :meth:`initial_lr`.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    #: extra metrics.csv columns of this algorithm (after the shared ones)
    extra_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: TrainConfig, ctx: Context) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.spec, self.env, self.rng = ctx.spec, ctx.env, ctx.rng
        self.adv = AdvantageSettings(cfg.gamma, cfg.gae_lambda, cfg.baseline, cfg.normalize_advantages)
        self.outer = self.outer_settings()
        gen = torch.Generator().manual_seed(cfg.seed)
        self.theta = {k: v.requires_grad_(True) for k, v in init_params(self.spec, gen).items()}
        self.inner = InnerUpdate(self.initial_lr(), cfg.inner_objective, cfg.inner_ent_coef)
        self.value: dict[str, Tensor] | None = None
        self.value_opt: torch.optim.Optimizer | None = None
        if cfg.baseline == "value_net":
            vparams = init_params(self.spec, gen, out_dim=1, out_gain=1.0)
            self.value = {k: v.requires_grad_(True) for k, v in vparams.items()}
            self.value_opt = torch.optim.Adam(list(self.value.values()), lr=cfg.value_lr, eps=1e-5)
        if cfg.init_from:
            self._warm_start(cfg.init_from)
        self.opt = torch.optim.Adam(self.outer_params(), lr=cfg.outer_lr, eps=1e-5)

    # ------------------------------------------------------------ to override
    def initial_lr(self) -> LearningRate:
        """The inner step size ``α`` at the start: the config's scalar unless learned."""
        return float(self.cfg.inner_lr)

    def outer_settings(self) -> OuterSettings:
        return OuterSettings(self.cfg.clip_eps, self.cfg.ent_coef)

    def iteration(self, it: int) -> dict[str, Any]:
        """Train one iteration; returns its metrics row plus ``_env_steps`` (the env steps
        of its training rollouts) and ``_iter_steps`` (those that count for speed)."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """Algorithm-specific checkpoint entries (besides parameters and optimisers)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`extra_state` from a checkpoint."""

    # ------------------------------------------------------------ public API
    def policy(self) -> TutorPolicy:
        """The current tutor (detached copy)."""
        inner = replace(self.inner, lr=_clone_lr(self.inner.detached().lr))
        return TutorPolicy(
            spec=self.spec,
            env=self.env,
            params={k: v.detach().clone() for k, v in self.theta.items()},
            inner=inner,
            advantage=self.adv,
            rollouts_per_step=self.cfg.rollouts_per_task,
            value_params=None
            if self.value is None
            else {k: v.detach().clone() for k, v in self.value.items()},
            algo=self.cfg.algo,
        )

    def optimizer_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.opt.state_dict(),
            "value_optimizer": None if self.value_opt is None else self.value_opt.state_dict(),
            **self.extra_state(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore parameters, learned step sizes, value network and optimisers."""
        with torch.no_grad():
            for k, v in self.theta.items():
                v.copy_(state["params"][k])
            saved = state["inner_lrs"]
            mine = self.inner.lr
            if isinstance(mine, tuple):
                for m, s in zip(mine, saved):
                    for k, v in m.items():
                        v.copy_(s[k])
            elif not isinstance(mine, float):
                for k, v in mine.items():
                    v.copy_(saved[k])
            if self.value is not None:
                for k, v in self.value.items():
                    v.copy_(state["value_params"][k])
        self.opt.load_state_dict(state["optimizer"])
        if self.value_opt is not None:
            self.value_opt.load_state_dict(state["value_optimizer"])
        self.load_extra_state(state)

    def named_outer_params(self) -> list[tuple[str, Tensor]]:
        """The tensors the outer optimiser updates: ``θ`` and any learned step sizes."""
        named = list(self.theta.items())
        lr = self.inner.lr
        if isinstance(lr, tuple):
            named += [(f"inner_lr.{s}.{k}", v) for s, m in enumerate(lr) for k, v in m.items()]
        elif not isinstance(lr, float):
            named += [(f"inner_lr.{k}", v) for k, v in lr.items()]
        return named

    def outer_params(self) -> list[Tensor]:
        return [v for _, v in self.named_outer_params()]

    # ------------------------------------------------------------ shared steps
    def next_seed(self) -> int:
        return spaced_seed(int(self.rng.integers(0, 2**31 - 1)))

    def value_detached(self) -> dict[str, Tensor] | None:
        return None if self.value is None else {k: v.detach() for k, v in self.value.items()}

    def pooled_iteration(self, it: int) -> dict[str, Any]:
        """One pooled PPO iteration (module docstring)."""
        cfg, spec = self.cfg, self.spec
        n = cfg.pooled_episodes
        profiles = self.ctx.dist.sample(n, "train", rng=self.rng)
        theta = {k: v.detach() for k, v in self.theta.items()}
        roll = self.ctx.sampler.collect(theta, profiles, 1, seed=self.next_seed())
        check_finite(it, "episode return", torch.as_tensor(roll.returns))
        data, ret = rollout_step_data(spec, roll, self.adv, self.value_detached(), pooled=True)
        # one "task" holding every episode, so minibatches split episodes (dim 1)
        data = StepData(*(None if x is None else x.reshape(1, n, *x.shape[2:]) for x in data))
        ret = ret.reshape(1, n, -1)

        def loss_fn(idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            return meta_loss(spec, self.theta, self.inner, [], select(data, idx, 1), self.outer)

        stats = self.optimise(it, loss_fn, n, 1, [data], [ret])
        row = self.row(it, "ppo", roll, roll, stats)
        row["adapt_kl"] = float("nan")
        row["_env_steps"] = roll.env_steps
        row["_iter_steps"] = roll.env_steps
        return row

    def optimise(
        self,
        it: int,
        loss_fn: Callable[[Tensor], tuple[Tensor, dict[str, Tensor]]],
        n_items: int,
        dim: int,
        datas: list[StepData],
        rets: list[Tensor],
    ) -> dict[str, float]:
        """Epochs × minibatches of Adam steps on ``loss_fn`` (and the value network).

        ``loss_fn(idx)`` is the loss of the minibatch ``idx`` of the ``n_items`` tasks
        (``dim = 0``) or episodes (``dim = 1``); the epochs stop early once its
        ``approx_kl`` exceeds ``1.5 · target_kl``.
        """
        cfg = self.cfg
        sums: dict[str, float] = {}
        count, epochs_done, stop = 0, 0, False
        params = self.outer_params()
        named = self.named_outer_params()
        for _ in range(cfg.outer_epochs):
            perm = torch.from_numpy(self.rng.permutation(n_items))
            for idx in perm.chunk(min(cfg.n_minibatches, n_items)):
                loss, st = loss_fn(idx)
                # the scalars are read once; each is checked as check_finite would
                parts = {"loss": float(loss.detach())}
                parts.update({k: float(v) for k, v in st.items()})
                for k, v in parts.items():
                    check_finite_float(it, k, v)
                if cfg.target_kl and parts["approx_kl"] > 1.5 * cfg.target_kl:
                    stop = True
                    break
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
                gn = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
                check_finite_float(it, "gradient norm", gn)
                self.opt.step()
                check_all_finite(it, named, "parameter ")
                vl = self.value_step(it, idx, dim, datas, rets)
                parts.update({"grad_norm": gn, "value_loss": vl})
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
            if stop:
                break
            epochs_done += 1
        out = {k: v / max(count, 1) for k, v in sums.items()}
        out["epochs"] = float(epochs_done)
        out["updates"] = float(count)
        return out

    def value_step(self, it: int, idx: Tensor, dim: int, datas: list[StepData], rets: list[Tensor]) -> float:
        """One Adam step of the value network on the minibatch ``idx`` of every batch."""
        if self.value is None or self.value_opt is None:
            return float("nan")
        losses = []
        for d, r in zip(datas, rets):
            d = select(d, idx, dim)
            r = r.index_select(dim, idx)
            t = d.obs.shape[0]
            pred = state_value(self.spec, self.value, d.obs.reshape(t, -1, d.obs.shape[-1])).reshape(r.shape)
            losses.append(value_loss(pred, r, d.mask))
        loss = torch.stack(losses).mean()
        check_finite(it, "value loss", loss)
        self.value_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.value_opt.step()
        return float(loss.detach())

    def row(
        self, it: int, phase: str, pre: Rollouts, post: Rollouts, stats: Mapping[str, float]
    ) -> dict[str, Any]:
        """The shared part of a metrics row: returns and education metrics before and after
        adaptation, loss statistics, epochs done and the (mean) inner step size."""
        row: dict[str, Any] = {"iteration": it, "phase": phase}
        row["return_pre"] = float(pre.returns.mean())
        row["return_post"] = float(post.returns.mean())
        for name in self.env.metric_names:
            row[f"{name}_pre"] = nan_mean(pre.metrics[name])
            row[f"{name}_post"] = nan_mean(post.metrics[name])
        for k in STAT_COLUMNS:
            row[k] = float(stats.get(k, float("nan")))
        row["epochs"] = stats.get("epochs", 0.0)
        row["inner_lr"] = self.inner.mean_lr()
        return row

    def _warm_start(self, path: str) -> None:
        src = load_policy(path)
        if src.spec != self.spec:
            raise ValueError(f"init_from {path}: architecture {src.spec} differs from this run's {self.spec}")
        with torch.no_grad():
            for k, v in self.theta.items():
                v.copy_(src.params[k])


def select(d: StepData, idx: Tensor, dim: int) -> StepData:
    """The tasks (``dim = 0``) or episodes (``dim = 1``) ``idx`` of ``d``."""
    return StepData(*(None if x is None else x.index_select(dim, idx) for x in d))


def _clone_lr(lr: LearningRate) -> LearningRate:
    if isinstance(lr, tuple):
        return tuple({k: v.clone() for k, v in m.items()} for m in lr)
    if isinstance(lr, Mapping):
        return {k: v.clone() for k, v in lr.items()}
    return lr
