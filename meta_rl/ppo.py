"""PPO's loss terms as pure functions of tensors (Schulman et al. 2017).

With ratio ``ρ_t = exp(log π(a_t|s_t) − log π_old(a_t|s_t))`` and advantage ``A_t``::

    L_clip = −E_t[ min(ρ_t A_t, clip(ρ_t, 1 − ε, 1 + ε) A_t) ]

Every expectation is a masked mean over the valid (non-padding) steps. The same
terms serve pooled PPO and the outer loop of MAML-PPO, where ``log π`` is the
*adapted* policy's log-probability.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is true (0 if there are none)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def clipped_surrogate(logp: Tensor, logp_old: Tensor, adv: Tensor, clip_eps: float, mask: Tensor) -> Tensor:
    """PPO's clipped surrogate loss ``L_clip`` (to be minimised)."""
    ratio = torch.exp(logp - logp_old)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    return -masked_mean(torch.minimum(unclipped, clipped), mask)


def approx_kl(logp: Tensor, logp_old: Tensor, mask: Tensor) -> Tensor:
    """Estimate of ``KL(π_old ‖ π)`` from samples of ``π_old``: ``E[(ρ − 1) − log ρ]`` (≥ 0)."""
    log_ratio = logp - logp_old
    return masked_mean(torch.expm1(log_ratio) - log_ratio, mask)


def clip_fraction(logp: Tensor, logp_old: Tensor, clip_eps: float, mask: Tensor) -> Tensor:
    """Fraction of steps whose ratio lies outside ``[1 − ε, 1 + ε]``."""
    ratio = torch.exp(logp - logp_old)
    return masked_mean(((ratio - 1.0).abs() > clip_eps).to(logp.dtype), mask)


def value_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error of a value prediction over valid steps."""
    return masked_mean((pred - target) ** 2, mask)
