"""MAML's inner adaptation and the MAML-PPO meta-objective, batched over tasks.

Inner update (for every task ``i`` at once, ``k = 0 … K − 1``; data ``D_i^k`` sampled
with ``θ_i^k``, ``θ_i^0 = θ``)::

    θ_i^{k+1} = θ_i^k − α ⊙ ∇_θ L_inner(θ_i^k; D_i^k)

``α`` is ``InnerUpdate.lr``, the one place the inner step size lives: a scalar (MAML), a
learned tensor per parameter (Meta-SGD, Li et al. 2017: one rate per parameter
element), or one mapping per inner step ``k`` (MAML++'s LSLR, Antoniou et al. 2019:
one learned scalar per parameter tensor and step; steps beyond the last trained one
reuse its rates).
Inner objectives, with ``π_old`` the (stored, constant) probability under which
``D^k`` was sampled and ``A`` its advantages:

* ``vpg``: ``L = −E[log π_θ(a|s) · A] − c_H · E[H(π_θ(·|s))]`` (MAML-TRPO, garage);
* ``lvc``: ``L = −E[π_θ(a|s) / π_old(a|s) · A] − c_H · E[H]`` – ProMP's low-variance
  curvature objective. At ``θ = θ_old`` its gradient equals the VPG gradient, but its
  Hessian accounts for the pre-update sampling distribution, giving a better-behaved
  meta-gradient (Rothfuss et al. 2019).

Meta-objective (MAML-PPO; data ``D^K`` sampled with the adapted ``θ'_i = θ_i^K``)::

    J(θ) = (1/N) Σ_i Σ_{t ∈ D_i^K} ℓ_clip(θ'_i(θ); t) − c_H (1/N) Σ_i Σ_{t ∈ D_i^K} H_t(π_θ'_i)
           + β KL(π_θ_sample ‖ π_θ)

``ℓ_clip`` is PPO's clipped surrogate of one step and ``N = Σ_i |D_i^K|`` the number of
valid (unpadded) steps of all ``T`` tasks of the minibatch: one mean pooled over every
step (:func:`meta_rl.ppo.masked_mean`), not a mean of per-task means. A task therefore
weighs in proportion to its number of steps; this equals the mean of per-task losses
``(1/T) Σ_i L_clip,i`` (``L_clip,i`` the mean over task ``i``'s steps) only when every
task has the same number of valid steps (e.g. episodes always run to the horizon), and
favours tasks with longer episodes where they differ (e.g. ZPD students who quit
early). The KL term is likewise a mean over the valid steps of all tasks' ``D^0``.

``θ'_i(θ)`` is *recomputed from the stored inner data in every outer epoch*, so
the gradient flows through the adaptation: ``dθ'/dθ = Π_k (I − α ∇²L_inner)``
(second order), or ``I`` with ``first_order=True`` (FOMAML: the inner gradients are
treated as constants). ``β`` penalises moving the pre-update policy away from the one
that sampled ``D^0`` (ProMP's trust region).

Batching: ``θ`` is expanded to ``T`` copies before the first inner step, and the
gradient of ``Σ_i L_inner,i`` with respect to the expanded tensor gives every task's
own gradient in one backward pass (second order included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from torch import Tensor

from meta_rl.policy import (
    Params,
    PolicySpec,
    entropy,
    entropy_of_factors,
    expand_params,
    factor_actions,
    is_batched,
    kl_divergence,
    log_prob,
    log_prob_of_factors,
    log_softmax_factors,
    mlp,
)
from meta_rl.ppo import approx_kl, clip_fraction, clipped_surrogate, masked_mean

INNER_OBJECTIVES = ("lvc", "vpg")


#: an inner step size: a scalar, learned rates per parameter (Meta-SGD: each tensor of a
#: parameter's shape), or one such mapping per inner step (LSLR: 0-dim tensors)
LearningRate = float | Mapping[str, Tensor] | tuple[Mapping[str, Tensor], ...]


@dataclass(frozen=True, eq=False)
class InnerUpdate:
    """Settings of the inner (adaptation) update, stored with every trained policy.

    ``lr`` is the step size ``α`` in every form (see the module docstring); the learned
    forms are tensors (part of the outer optimisation while training).
    """

    lr: LearningRate = 0.5
    objective: str = "lvc"
    ent_coef: float = 0.0

    def __post_init__(self) -> None:
        if self.objective not in INNER_OBJECTIVES:
            raise ValueError(
                f"inner objective must be one of {list(INNER_OBJECTIVES)}, got {self.objective!r}"
            )
        if isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool):
            object.__setattr__(self, "lr", float(self.lr))
        elif isinstance(self.lr, list):
            object.__setattr__(self, "lr", tuple(self.lr))
        elif not isinstance(self.lr, (Mapping, tuple)):
            raise ValueError(f"inner lr must be a number or learned rate tensors, got {self.lr!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InnerUpdate):
            return NotImplemented
        if (self.objective, self.ent_coef) != (other.objective, other.ent_coef):
            return False
        return _same_lr(self.lr, other.lr)

    __hash__ = None  # type: ignore[assignment] - holds tensors

    @property
    def learned(self) -> bool:
        """Whether ``lr`` holds learned tensors (Meta-SGD or per-step rates)."""
        return not isinstance(self.lr, float)

    def rate(self, name: str, step: int) -> float | Tensor:
        """``α`` of parameter ``name`` at inner step ``step``."""
        lr = self.lr
        if isinstance(lr, float):
            return lr
        if isinstance(lr, tuple):
            return lr[min(step, len(lr) - 1)][name]
        return lr[name]

    def tensors(self) -> list[Tensor]:
        """The learned rate tensors (empty for a scalar step size)."""
        if isinstance(self.lr, float):
            return []
        if isinstance(self.lr, tuple):
            return [v for m in self.lr for v in m.values()]
        return list(self.lr.values())

    def detached(self) -> InnerUpdate:
        """A copy whose learned rates are detached (for rollouts and logging)."""
        if isinstance(self.lr, float):
            return self
        if isinstance(self.lr, tuple):
            return replace(self, lr=tuple({k: v.detach() for k, v in m.items()} for m in self.lr))
        return replace(self, lr={k: v.detach() for k, v in self.lr.items()})

    def mean_lr(self) -> float:
        """The scalar step size, or the mean of the learned rates (a summary for logs)."""
        if isinstance(self.lr, float):
            return self.lr
        return float(torch.cat([v.detach().reshape(-1) for v in self.tensors()]).mean())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings; learned rates are summarised by their mean (the tensors
        are stored apart, see :mod:`meta_rl.checkpoint`), summed in float64 in key order
        so that the summary survives a round trip that reorders the tensors."""
        lr = self.lr
        if not isinstance(lr, float):
            maps = lr if isinstance(lr, tuple) else (lr,)
            flat = [m[k].detach().reshape(-1).double() for m in maps for k in sorted(m)]
            lr = float(torch.cat(flat).mean())
        return {"lr": lr, "objective": self.objective, "ent_coef": self.ent_coef}


def _same_lr(a: LearningRate, b: LearningRate) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a == b
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (
            isinstance(a, tuple)
            and isinstance(b, tuple)
            and len(a) == len(b)
            and all(_same_lr(x, y) for x, y in zip(a, b))
        )
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class StepData(NamedTuple):
    """Rollouts of ``T`` tasks × ``E`` episodes × ``H`` steps used by a loss."""

    obs: Tensor  # (T, E, H, d)
    actions: Tensor  # (T, E, H) int64
    adv: Tensor  # (T, E, H)
    mask: Tensor  # (T, E, H) bool: valid (non-padding) steps
    logp_old: Tensor  # (T, E, H): log-probability under the sampling policy
    logits_old: Tensor | None = None  # (T, E, H, n_logits) of the sampling policy
    #: a tutor conditioned on a student encoding ``z`` (:mod:`meta_rl.encoder`): the first
    #: layer's offset ``W_z z`` (T, E, H, hidden) and the logits' offset (T, E, H, n_logits)
    #: at every step, constants of the policy network's parameters (``None``: unconditioned)
    bias0: Tensor | None = None
    logit_offset: Tensor | None = None


def policy_logits(
    spec: PolicySpec,
    params: Mapping[str, Tensor],
    obs: Tensor,
    bias0: Tensor | None = None,
    logit_offset: Tensor | None = None,
) -> Tensor:
    """Logits for ``obs`` of shape ``(T, E, H, d)``; params batched over ``T`` or shared.
    ``bias0`` and ``logit_offset`` (``(T, E, H, ·)``) condition the network
    (:class:`StepData`)."""
    t, e, h, d = obs.shape
    b0 = None if bias0 is None else bias0.reshape(t, e * h, -1)
    logits = mlp(spec, params, obs.reshape(t, e * h, d), bias0=b0).reshape(t, e, h, -1)
    return logits if logit_offset is None else logits + logit_offset


def step_logits(spec: PolicySpec, params: Mapping[str, Tensor], data: StepData) -> Tensor:
    """:func:`policy_logits` of ``data``'s observations with its conditioning, if any."""
    return policy_logits(spec, params, data.obs, data.bias0, data.logit_offset)


def inner_losses(
    spec: PolicySpec, params: Mapping[str, Tensor], data: StepData, objective: str, ent_coef: float
) -> Tensor:
    """Per-task inner losses, shape ``(T,)`` (each a masked mean over the task's steps)."""
    logits = step_logits(spec, params, data)
    logp = log_prob(spec, logits, data.actions)
    if objective == "vpg":
        surr = logp * data.adv
    elif objective == "lvc":
        surr = torch.exp(logp - data.logp_old) * data.adv
    else:
        raise ValueError(f"inner objective must be one of {list(INNER_OBJECTIVES)}, got {objective!r}")
    obj = surr + ent_coef * entropy(spec, logits) if ent_coef else surr
    m = data.mask.to(obj.dtype)
    return -(obj * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1.0)


def inner_step(
    spec: PolicySpec,
    params: Mapping[str, Tensor],
    data: StepData,
    inner: InnerUpdate,
    create_graph: bool,
    step: int = 0,
) -> Params:
    """One batched inner step ``θ_i ← θ_i − α_k ⊙ ∇L_inner,i(θ_i)`` for all tasks.

    ``α_k = inner.rate(name, step)``. ``params`` must be batched over tasks. With
    ``create_graph=False`` the gradient is
    a constant (first order); if ``params`` are not part of a graph at all (test-time
    adaptation), they are treated as fresh leaves and the result is detached.
    """
    if not is_batched(params):
        raise ValueError("inner_step needs parameters batched over tasks (see expand_params)")
    rates = inner.tensors()
    # nothing to differentiate through (test-time adaptation): return plain tensors
    detached = not any(v.requires_grad for v in [*params.values(), *rates])
    # the inner gradient needs leaves for parameters that are outside any graph
    params = {k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in params.items()}
    # enable_grad: test-time adaptation may run inside torch.no_grad()
    with torch.enable_grad():
        loss = inner_losses(spec, params, data, inner.objective, inner.ent_coef).sum()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph and not detached)
        new: Params = {}
        for (k, p), g in zip(params.items(), grads):
            new[k] = p - inner.rate(k, step) * g
    if detached:
        new = {k: v.detach() for k, v in new.items()}
    return new


def adapt_params(
    spec: PolicySpec,
    theta: Mapping[str, Tensor],
    datas: Sequence[StepData],
    inner: InnerUpdate,
    first_order: bool = False,
) -> Params:
    """``θ'_i`` after ``len(datas)`` inner steps (``datas[k]`` used at step ``k``), batched."""
    if not datas:
        return dict(theta)
    n_tasks = datas[0].obs.shape[0]
    params = expand_params(theta, n_tasks) if not is_batched(theta) else dict(theta)
    for k, d in enumerate(datas):
        params = inner_step(spec, params, d, inner, create_graph=not first_order, step=k)
    return params


@dataclass(frozen=True)
class OuterSettings:
    """Coefficients of the MAML-PPO meta-objective."""

    clip_eps: float = 0.2
    ent_coef: float = 0.0
    kl_coef: float = 0.0
    first_order: bool = False


def meta_loss(
    spec: PolicySpec,
    theta: Mapping[str, Tensor],
    inner: InnerUpdate,
    inner_datas: Sequence[StepData],
    outer_data: StepData,
    outer: OuterSettings,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The MAML-PPO objective ``J(θ)`` (module docstring) and its parts for logging."""
    adapted = adapt_params(spec, theta, inner_datas, inner, outer.first_order)
    loss, stats = _ppo_objective(spec, adapted, outer_data, outer)
    d0 = inner_datas[0] if inner_datas else outer_data
    return _with_kl_penalty(spec, theta, d0, outer, loss, stats)


def _ppo_objective(
    spec: PolicySpec, params: Mapping[str, Tensor], data: StepData, outer: OuterSettings
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_clip − c_H H`` of ``params`` on ``data`` (pooled over all valid steps) and its parts."""
    logits = step_logits(spec, params, data)
    log_probs = log_softmax_factors(spec, logits)
    logp = log_prob_of_factors(log_probs, factor_actions(spec, data.actions))
    mask = data.mask
    surr = clipped_surrogate(logp, data.logp_old, data.adv, outer.clip_eps, mask)
    if outer.ent_coef:
        # its own log-softmax, so that the gradient is summed exactly as it always was
        ent = masked_mean(entropy(spec, logits), mask)
    else:
        # a logged number only: no autograd graph (a zero-weighted term adds nothing to
        # the gradient), and the log-softmax of log π is reused
        with torch.no_grad():
            ent = masked_mean(entropy_of_factors(log_probs), mask)
    loss = surr - outer.ent_coef * ent
    with torch.no_grad():  # statistics for the log, outside the graph
        logp_d = logp.detach()
        stats = {
            "surrogate": surr.detach(),
            "entropy": ent.detach(),
            "approx_kl": approx_kl(logp_d, data.logp_old, mask),
            "clip_fraction": clip_fraction(logp_d, data.logp_old, outer.clip_eps, mask),
        }
    return loss, stats


def _with_kl_penalty(
    spec: PolicySpec,
    theta: Mapping[str, Tensor],
    d0: StepData,
    outer: OuterSettings,
    loss: Tensor,
    stats: dict[str, Tensor],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Add ``β KL(π_θ_sample ‖ π_θ)`` on the pre-update data ``d0`` (if ``β > 0``)."""
    if outer.kl_coef and d0.logits_old is not None:
        pre_logits = step_logits(spec, theta, d0)
        kl_pre = masked_mean(kl_divergence(spec, d0.logits_old.to(pre_logits.dtype), pre_logits), d0.mask)
        loss = loss + outer.kl_coef * kl_pre
        stats["kl_pre"] = kl_pre.detach()
    return loss, stats


def multi_step_meta_loss(
    spec: PolicySpec,
    theta: Mapping[str, Tensor],
    inner: InnerUpdate,
    datas: Sequence[StepData],
    weights: Sequence[float],
    outer: OuterSettings,
) -> tuple[Tensor, dict[str, Tensor]]:
    """MAML++'s multi-step loss (Antoniou et al. 2019, "How to train your MAML")::

        J_MSL(θ) = Σ_{k=1}^{K} w_k J_k(θ) + β KL(π_θ_sample ‖ π_θ)

    ``J_k`` is the PPO objective (clipped surrogate − entropy bonus, pooled over the
    valid steps) of the parameters after ``k`` inner steps, ``θ_i^k(θ)``, on the
    rollouts ``D^k`` sampled with them; ``datas = [D^0, …, D^K]`` (``D^k`` is the inner
    data of step ``k + 1`` and the outer data of step ``k``, so no extra rollouts are
    needed). ``weights`` ``(w_1 … w_K)`` sum to 1; ``w = (0, …, 0, 1)`` is :func:`meta_loss`.
    Steps with zero weight cost nothing beyond the inner step. The statistics are those
    of the last step ``K``.
    """
    k_steps = len(datas) - 1
    if len(weights) != k_steps or k_steps < 1:
        raise ValueError(f"need one weight per inner step ({k_steps}), got {len(weights)}")
    n_tasks = datas[0].obs.shape[0]
    params = expand_params(theta, n_tasks) if not is_batched(theta) else dict(theta)
    total: Tensor | None = None
    stats: dict[str, Tensor] = {}
    for k in range(k_steps):
        params = inner_step(spec, params, datas[k], inner, create_graph=not outer.first_order, step=k)
        w = float(weights[k])
        if w == 0.0 and k < k_steps - 1:
            continue
        loss_k, stats = _ppo_objective(spec, params, datas[k + 1], outer)
        total = w * loss_k if total is None else total + w * loss_k
    assert total is not None
    return _with_kl_penalty(spec, theta, datas[0], outer, total, stats)


def multi_step_weights(k_steps: int, iteration: int, anneal_iterations: int) -> list[float]:
    """MAML++'s per-step loss weights: uniform ``1/K`` at iteration 0, moving linearly to
    the last step only, ``(0, …, 0, 1)``, at ``anneal_iterations`` (and after)::

        w_k(t) = (1 − s) / K + s · [k = K],   s = min(1, t / anneal_iterations)

    Positive before the end of annealing, summing to 1 throughout
    (``anneal_iterations = 0``: the last step only, plain MAML).
    """
    if k_steps < 1:
        raise ValueError(f"k_steps must be >= 1, got {k_steps}")
    s = 1.0 if anneal_iterations <= 0 else min(1.0, iteration / anneal_iterations)
    w = [(1.0 - s) / k_steps] * k_steps
    w[-1] += s
    return w
