"""MAML-PPO (``algo: maml_ppo``): meta-learn an initialisation (and optionally the inner
step sizes) that adapts to a new student in a few inner steps. Equations in
:mod:`meta_rl.maml`.

One iteration:

1. draw ``meta_batch_size`` students (tasks) from the ``train`` split;
2. for ``k = 0 … K − 1`` (``K = inner_steps``): collect ``rollouts_per_task`` episodes
   per task with ``θ_i^k`` (all tasks in one vector env), estimate advantages with a
   baseline fitted per task, and take the inner step ``θ_i^{k+1} = θ_i^k − α ∇L_inner``;
3. collect ``rollouts_per_task`` post-update episodes per task with ``θ'_i = θ_i^K``;
4. for ``outer_epochs`` epochs (× ``n_minibatches`` minibatches of tasks) minimise the
   meta-objective with Adam: ``θ'_i(θ)`` is recomputed from the stored pre-update data
   every time, so the gradient flows through the adaptation (second order unless
   ``first_order``); the outer gradient is clipped to ``max_grad_norm``; the epochs stop
   early once the post-update policy's approximate KL exceeds ``1.5 · target_kl``.

The first ``pretrain_iterations`` iterations are pooled PPO iterations (a warm start
in the same run). With ``meta_sgd`` the step size ``α`` is one learned rate per
parameter element (Li et al. 2017), initialised to ``inner_lr`` (``item_bias_lr`` for
the per-item logit offsets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from meta_rl.adaptation import rollout_step_data
from meta_rl.algorithms.base import Algorithm, check_finite, select
from meta_rl.config import MAMLPPOConfig
from meta_rl.maml import LearningRate, OuterSettings, StepData, inner_step, meta_loss, step_logits
from meta_rl.policy import PolicySpec, kl_divergence
from meta_rl.ppo import masked_mean
from meta_rl.sampler import Rollouts


def initial_inner_lr(cfg: Any, theta: Mapping[str, Tensor]) -> LearningRate:
    """The inner step size at the start: ``cfg.inner_lr``, or with ``cfg.meta_sgd`` one learned
    rate per element of ``θ`` initialised to it (``cfg.item_bias_lr`` for the per-item logit
    offsets when set)."""
    if not cfg.meta_sgd:
        return float(cfg.inner_lr)
    first = {k: cfg.inner_lr for k in theta}
    if cfg.item_bias_lr > 0:
        first["item_bias"] = cfg.item_bias_lr
    return {k: torch.full_like(v, first[k]).requires_grad_(True) for k, v in theta.items()}


def adaptation_kl(
    spec: PolicySpec, theta: Mapping[str, Tensor], data0: StepData, params: Mapping[str, Tensor]
) -> float:
    """Mean KL between the policy before (``θ``) and after (``params``, batched) its inner
    steps on the first inner data ``D^0``, with that data's conditioning if any (a log column)."""
    with torch.no_grad():
        pre = step_logits(spec, {k: v.detach() for k, v in theta.items()}, data0)
        post = step_logits(spec, params, data0)
        return float(masked_mean(kl_divergence(spec, pre, post), data0.mask))


class MAMLPPO(Algorithm):
    """MAML-PPO (module docstring)."""

    name = "maml_ppo"
    config_class = MAMLPPOConfig
    cfg: MAMLPPOConfig

    def initial_lr(self) -> LearningRate:
        return initial_inner_lr(self.cfg, self.theta)

    def outer_settings(self) -> OuterSettings:
        cfg = self.cfg
        return OuterSettings(cfg.clip_eps, cfg.ent_coef, cfg.kl_coef, cfg.first_order)

    def iteration(self, it: int) -> dict[str, Any]:
        if it < self.cfg.pretrain_iterations:
            return self.pooled_iteration(it)
        return self.maml_iteration(it)

    def collect_adapted(self, it: int) -> tuple[list[Rollouts], list[StepData], list[Tensor], dict]:
        """Steps 1–3: rollouts ``D^0 … D^K`` of ``θ_i^0 … θ_i^K`` for a fresh meta-batch;
        returns them with their step data, returns-to-go and the adapted parameters."""
        cfg, spec = self.cfg, self.spec
        n_t, n_e = cfg.meta_batch_size, cfg.rollouts_per_task
        profiles = self.ctx.dist.sample(n_t, "train", rng=self.rng)
        params = {k: v.detach().unsqueeze(0).expand(n_t, *v.shape) for k, v in self.theta.items()}
        inner = self.inner.detached()
        rolls: list[Rollouts] = []
        datas: list[StepData] = []
        rets: list[Tensor] = []
        for k in range(cfg.inner_steps + 1):
            roll = self.ctx.sampler.collect(params, profiles, n_e, seed=self.next_seed())
            check_finite(it, "episode return", torch.as_tensor(roll.returns))
            data, ret = rollout_step_data(spec, roll, self.adv, self.value_detached())
            rolls.append(roll)
            datas.append(data)
            rets.append(ret)
            if k < cfg.inner_steps:
                params = inner_step(spec, params, data, inner, create_graph=False, step=k)
        return rolls, datas, rets, params

    def maml_iteration(self, it: int) -> dict[str, Any]:
        rolls, datas, rets, params = self.collect_adapted(it)
        adapt_kl = adaptation_kl(self.spec, self.theta, datas[0], params)
        loss_fn = self.meta_loss_fn(datas)
        stats = self.optimise(it, loss_fn, self.cfg.meta_batch_size, 0, datas, rets)
        row = self.row(it, "maml", rolls[0], rolls[-1], stats)
        row["adapt_kl"] = adapt_kl
        row["_env_steps"] = sum(r.env_steps for r in rolls)
        row["_iter_steps"] = row["_env_steps"]
        return row

    def meta_loss_fn(self, datas: Sequence[StepData]):
        """Step 4's minibatch loss: ``J`` on the tasks ``idx`` (:func:`meta_rl.maml.meta_loss`)."""
        inner_datas, outer_data = datas[:-1], datas[-1]

        def loss_fn(idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            sub = [select(d, idx, 0) for d in inner_datas]
            return meta_loss(self.spec, self.theta, self.inner, sub, select(outer_data, idx, 0), self.outer)

        return loss_fn
