"""Advantage estimation: GAE(γ, λ) and the baselines fitted per task.

GAE (Schulman et al. 2016) over a padded batch of shape ``(..., H)``::

    δ_t = r_t + γ (1 − term_t) V(s_{t+1}) − V(s_t)
    A_t = δ_t + γ λ (1 − term_t)(1 − trunc_t) A_{t+1}

``terminated`` (the student's session really ended) stops bootstrapping;
``truncated`` (the collection window ran out) bootstraps from the value of the final
observation but cuts the recursion, because the next step belongs to another
episode. Steps after an episode's end are padding and must be masked by the caller.

Baselines ``V`` (all fitted on the data of *one task* at a time, batched over tasks):

* ``linear`` – the linear feature baseline of Duan et al. (2016, rllab), fitted in
  closed form by ridge regression on the Monte-Carlo discounted returns; features
  ``[o, o², t/100, (t/100)², (t/100)³, 1]`` with ``o`` the observation clipped to
  [−10, 10]. The ridge coefficient starts at 1e-5 and grows ×10 if the solve fails.
* ``time_mean`` – the mean discounted return-to-go at each time step over the task's
  episodes (a per-timestep mean baseline).
* a learned value network (fitted by the trainer; its predictions are passed in).
"""

from __future__ import annotations

import torch
from torch import Tensor

BASELINES = ("linear", "time_mean", "value_net")


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """GAE advantages; all inputs have shape ``(..., H)`` (see the module docstring)."""
    term = terminated.to(rewards.dtype)
    cont = (1.0 - term) * (1.0 - truncated.to(rewards.dtype))
    delta = rewards + gamma * (1.0 - term) * next_values - values
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        last = delta[..., t] + gamma * lam * cont[..., t] * last
        adv[..., t] = last
    return adv


def discounted_returns(rewards: Tensor, done: Tensor, gamma: float) -> Tensor:
    """Monte-Carlo returns-to-go ``G_t = r_t + γ (1 − done_t) G_{t+1}`` over ``(..., H)``."""
    cont = 1.0 - done.to(rewards.dtype)
    out = torch.zeros_like(rewards)
    g = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        g = rewards[..., t] + gamma * cont[..., t] * g
        out[..., t] = g
    return out


def linear_features(obs: Tensor) -> Tensor:
    """Duan et al. (2016) features of observations ``(..., H + 1, d)`` (time = index)."""
    o = obs.double().clamp(-10.0, 10.0)
    steps = obs.shape[-2]
    al = (torch.arange(steps, dtype=torch.float64) / 100.0).reshape(steps, 1).expand(*obs.shape[:-1], 1)
    return torch.cat([o, o * o, al, al**2, al**3, torch.ones_like(al)], dim=-1)


def fit_linear_baseline(obs: Tensor, returns: Tensor, mask: Tensor, reg: float = 1e-5) -> Tensor:
    """Fit the linear feature baseline per task and predict it at every observation.

    Args:
        obs: ``(T, E, H + 1, d)`` observations (index ``H`` only used for bootstrapping).
        returns: ``(T, E, H)`` regression targets; mask: ``(T, E, H)`` valid steps.

    Returns:
        ``(T, E, H + 1)`` baseline values (float64), from
        ``w = (XᵀX + reg·I)⁻¹ Xᵀ y`` over each task's valid steps.
    """
    feats = linear_features(obs)
    n_t, n_e, h1, f = feats.shape
    x = feats[:, :, :-1].reshape(n_t, -1, f)
    m = mask.double().reshape(n_t, -1, 1)
    y = returns.double().reshape(n_t, -1, 1)
    xtx = x.transpose(1, 2) @ (m * x)
    xty = x.transpose(1, 2) @ (m * y)
    eye = torch.eye(f, dtype=torch.float64)
    for _ in range(6):
        w = torch.linalg.solve(xtx + reg * eye, xty)
        if torch.isfinite(w).all():
            break
        reg *= 10.0
    return (feats.reshape(n_t, -1, f) @ w).reshape(n_t, n_e, h1)


def time_mean_baseline(returns: Tensor, mask: Tensor) -> Tensor:
    """Per-task, per-timestep mean of ``returns`` over valid episodes; ``(T, E, H + 1)``."""
    m = mask.double()
    num = (returns.double() * m).sum(1, keepdim=True)
    den = m.sum(1, keepdim=True)
    mean = torch.where(den > 0, num / den.clamp_min(1.0), torch.zeros_like(num))
    mean = mean.expand_as(m)
    return torch.cat([mean, torch.zeros_like(mean[..., :1])], dim=-1)


def normalize_per_task(adv: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Standardise advantages within each task (over its valid steps); shape ``(T, ...)``."""
    m = mask.to(adv.dtype)
    dims = tuple(range(1, adv.dim()))
    n = m.sum(dims, keepdim=True).clamp_min(1.0)
    mean = (adv * m).sum(dims, keepdim=True) / n
    var = (((adv - mean) * m) ** 2).sum(dims, keepdim=True) / n
    return (adv - mean) / (var.sqrt() + eps) * m


def compute_advantages(
    obs: Tensor,
    rewards: Tensor,
    mask: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
    baseline: str = "linear",
    values: Tensor | None = None,
    normalize: bool = True,
) -> tuple[Tensor, Tensor]:
    """Advantages and Monte-Carlo returns for rollouts of shape ``(T, E, H)``.

    ``values`` (``(T, E, H + 1)``) is required for ``baseline="value_net"``. Returns
    ``(advantages, returns)`` as float32, zero on padding steps.
    """
    done = terminated | truncated
    returns = discounted_returns(rewards.double() * mask, done | ~mask, gamma)
    if baseline == "linear":
        v = fit_linear_baseline(obs, returns, mask)
    elif baseline == "time_mean":
        v = time_mean_baseline(returns, mask)
    elif baseline == "value_net":
        if values is None:
            raise ValueError("baseline='value_net' needs the value network's predictions")
        v = values.double()
    else:
        raise ValueError(f"baseline must be one of {list(BASELINES)}, got {baseline!r}")
    adv = gae(rewards.double(), v[..., :-1], v[..., 1:], terminated | ~mask, truncated, gamma, lam)
    adv = adv * mask
    if normalize:
        adv = normalize_per_task(adv, mask)
    return adv.float(), returns.float()
