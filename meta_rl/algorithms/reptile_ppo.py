"""Reptile over PPO (``algo: reptile_ppo``; Nichol, Achiam & Schulman 2018, "On
first-order meta-learning algorithms").

One iteration, for ``N = meta_batch_size`` students (tasks) drawn from ``train``, all
at once (per-student parameters ``φ_i`` batched through one policy call, as the MAML
inner step; no loop over students):

1. ``φ_i ← θ``;
2. ``K = inner_steps`` rounds: collect ``rollouts_per_task`` episodes per student with
   ``φ_i``, advantages by GAE with the per-student baseline, then ``inner_epochs``
   full-batch gradient steps on the student's PPO loss::

       φ_i ← φ_i − α ∇_φ L_i(φ_i),
       L_i(φ) = −E_t[min(ρ_t A_t, clip(ρ_t, 1 − ε_clip, 1 + ε_clip) A_t)] − c_H E_t[H(π_φ)]

   (``ρ_t = π_φ(a_t|s_t) / π_old(a_t|s_t)``, ``π_old`` the policy that sampled the
   round; ``α = inner_lr``, ``c_H = inner_ent_coef``). At ``φ = π_old`` the first
   epoch's gradient is the policy gradient, i.e. exactly the MAML / fine-tuning inner
   step, so test-time adaptation uses the same kind of step;
3. outer update with ``φ̄ = (1/N) Σ_i φ_i``, either (``outer_update``)

   * ``interpolate``: ``θ ← θ + ε (φ̄ − θ)`` (``ε = meta_step_size``), or
   * ``adam``: Adam with ``outer_lr`` on the pseudo-gradient ``g = θ − φ̄`` (clipped
     to ``max_grad_norm``; with plain SGD and step ``ε`` this is the interpolation).

Reptile is first order: no gradient flows through the inner loop. With one round of
one plain gradient step (``K = inner_epochs = 1``) ``θ − φ̄ = α (1/N) Σ_i ∇L_i(θ)``,
the gradient of joint training on the meta-batch (Nichol et al., §5); more inner steps
add the terms that favour fast within-task progress.

Which steps: a second round on *fresh* rollouts adds ``−α² H_i^{(2)} g_i^{(1)}`` with
the two rounds' samples independent, whose mean is the gradient of the expected
inner product of two rounds' gradients (the meta-learning term). A second *epoch* on
the same rollouts adds ``−α² H_i g_i = −(α²/2) ∇‖g_i‖²`` of the round's own sample
gradient, and ``E‖g_i‖² = ‖E g_i‖² + tr Cov g_i``: it also climbs the sampling noise of
``rollouts_per_task`` episodes. On SkillGraph-v0 that term lowered the entropy without
raising the return and, with the Adam outer update, collapsed the policy (val return 0.05-0.65;
``benchmarks/reptile_diagnosis.py``, docs/algorithms.md). The shipped SkillGraph-v0 and
ZPD-v0 configs take one epoch per round and Adam on ``θ − φ̄``: the interpolating update moves ``θ`` by
``ε‖φ̄ − θ‖``, about 0.02 per iteration there (pooled PPO's 20 Adam steps: 0.14), and
``φ̄ − θ`` of one meta-batch is mostly noise (``‖θ − φ̄‖ ≈ mean_i ‖φ_i − θ‖ / √N``),
which Adam's running averages over iterations filter.

Budget: one iteration collects ``N · rollouts_per_task · K`` episodes, MAML-PPO's
``N · rollouts_per_task · (K_maml + 1)`` when ``K = K_maml + 1``
(:func:`meta_rl.algorithms.derived_config` sets it so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from meta_rl.adaptation import rollout_step_data
from meta_rl.algorithms.base import Algorithm, check_finite
from meta_rl.config import ReptilePPOConfig
from meta_rl.maml import StepData, policy_logits
from meta_rl.policy import Params, PolicySpec, entropy, kl_divergence, log_prob
from meta_rl.ppo import masked_mean
from meta_rl.sampler import Rollouts


def per_task_ppo_losses(
    spec: PolicySpec, params: Mapping[str, Tensor], data: StepData, clip_eps: float, ent_coef: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-task PPO losses ``L_i`` (shape ``(T,)``, masked means over each task's steps)
    and the per-step log-probabilities and logits (for statistics)."""
    logits = policy_logits(spec, params, data.obs)
    logp = log_prob(spec, logits, data.actions)
    ratio = torch.exp(logp - data.logp_old)
    obj = torch.minimum(ratio * data.adv, torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * data.adv)
    if ent_coef:
        obj = obj + ent_coef * entropy(spec, logits)
    m = data.mask.to(obj.dtype)
    return -(obj * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1.0), logp, logits


def ppo_inner_epochs(
    spec: PolicySpec,
    params: Mapping[str, Tensor],
    data: StepData,
    lr: float,
    epochs: int,
    clip_eps: float,
    ent_coef: float = 0.0,
) -> tuple[Params, dict[str, float]]:
    """``epochs`` gradient steps ``φ_i ← φ_i − α ∇L_i(φ_i)`` for every task at once.

    ``params`` are batched over tasks; the gradient of ``Σ_i L_i`` with respect to them
    holds every task's own gradient. Returns detached parameters and the statistics of
    the last epoch's loss.
    """
    phi = {k: v.detach() for k, v in params.items()}
    stats: dict[str, float] = {}
    for _ in range(epochs):
        leaves = {k: v.requires_grad_(True) for k, v in ((k, v.clone()) for k, v in phi.items())}
        with torch.enable_grad():
            losses, logp, logits = per_task_ppo_losses(spec, leaves, data, clip_eps, ent_coef)
            grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
        phi = {k: (v - lr * g).detach() for (k, v), g in zip(leaves.items(), grads)}
        log_ratio = logp.detach() - data.logp_old
        stats = {
            "entropy": float(masked_mean(entropy(spec, logits.detach()), data.mask)),
            "loss": float(losses.detach().mean()),
            "surrogate": float(losses.detach().mean()),
            "approx_kl": float(masked_mean(torch.expm1(log_ratio) - log_ratio, data.mask)),
            "clip_fraction": float(
                masked_mean(((log_ratio.exp() - 1.0).abs() > clip_eps).to(log_ratio.dtype), data.mask)
            ),
        }
    return phi, stats


def reptile_update(theta: Mapping[str, Tensor], phi: Mapping[str, Tensor], epsilon: float) -> Params:
    """``θ + ε (φ̄ − θ)`` with ``φ̄`` the mean of ``phi`` over its first (task) dimension."""
    return {k: v + epsilon * (phi[k].mean(0) - v) for k, v in theta.items()}


def pseudo_gradient(theta: Mapping[str, Tensor], phi: Mapping[str, Tensor]) -> Params:
    """Reptile's pseudo-gradient ``θ − φ̄`` (the direction an outer optimiser descends)."""
    return {k: v - phi[k].mean(0) for k, v in theta.items()}


class ReptilePPO(Algorithm):
    """Reptile-PPO (module docstring)."""

    name = "reptile_ppo"
    config_class = ReptilePPOConfig
    cfg: ReptilePPOConfig

    def iteration(self, it: int) -> dict[str, Any]:
        cfg, spec = self.cfg, self.spec
        n_t, n_e = cfg.meta_batch_size, cfg.rollouts_per_task
        profiles = self.ctx.dist.sample(n_t, "train", rng=self.rng)
        theta = {k: v.detach() for k, v in self.theta.items()}
        phi = {k: v.unsqueeze(0).expand(n_t, *v.shape) for k, v in theta.items()}
        rolls: list[Rollouts] = []
        datas: list[StepData] = []
        rets: list[Tensor] = []
        sums: dict[str, float] = {}
        for _ in range(cfg.inner_steps):
            roll = self.ctx.sampler.collect(phi, profiles, n_e, seed=self.next_seed())
            check_finite(it, "episode return", torch.as_tensor(roll.returns))
            data, ret = rollout_step_data(spec, roll, self.adv, self.value_detached())
            rolls.append(roll)
            datas.append(data)
            rets.append(ret)
            phi, st = ppo_inner_epochs(
                spec, phi, data, float(cfg.inner_lr), cfg.inner_epochs, cfg.clip_eps, cfg.inner_ent_coef
            )
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + v / cfg.inner_steps
            for k, v in phi.items():
                check_finite(it, f"adapted parameter {k}", v)
        with torch.no_grad():
            pre = policy_logits(spec, theta, datas[0].obs)
            post = policy_logits(spec, phi, datas[0].obs)
            adapt_kl = float(masked_mean(kl_divergence(spec, pre, post), datas[0].mask))
        grad_norm = self.outer_step(it, phi)
        stats = {**sums, "grad_norm": grad_norm, "epochs": float(cfg.inner_epochs)}
        if self.value is not None:
            stats["value_loss"] = self.value_step(it, torch.arange(n_t), 0, datas, rets)
        row = self.row(it, "reptile", rolls[0], rolls[-1], stats)
        row["adapt_kl"] = adapt_kl
        row["_env_steps"] = sum(r.env_steps for r in rolls)
        row["_iter_steps"] = row["_env_steps"]
        return row

    def outer_step(self, it: int, phi: Mapping[str, Tensor]) -> float:
        """Step 3 (module docstring); returns the norm of the pseudo-gradient ``θ − φ̄``."""
        cfg = self.cfg
        g = pseudo_gradient({k: v.detach() for k, v in self.theta.items()}, phi)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in g.values()]))
        check_finite(it, "gradient norm", norm)
        if cfg.outer_update == "interpolate":
            new = reptile_update({k: v.detach() for k, v in self.theta.items()}, phi, cfg.meta_step_size)
            with torch.no_grad():
                for k, v in self.theta.items():
                    v.copy_(new[k])
        else:
            self.opt.zero_grad(set_to_none=True)
            for k, v in self.theta.items():
                v.grad = g[k].clone()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(list(self.theta.values()), cfg.max_grad_norm)
            self.opt.step()
        for k, v in self.named_outer_params():
            check_finite(it, f"parameter {k}", v.detach())
        return float(norm)
