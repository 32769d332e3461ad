"""MAML's meta-gradient against finite differences, and batched against per-task adaptation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import central_fd

from meta_rl.maml import (
    InnerUpdate,
    OuterSettings,
    StepData,
    adapt_params,
    inner_losses,
    inner_step,
    meta_loss,
    policy_logits,
)
from meta_rl.policy import PolicySpec, expand_params, init_params, log_prob

SPEC = PolicySpec(obs_dim=3, action_nvec=(2, 3), hidden_sizes=(4,))
T, E, H = 2, 3, 4


def _data(theta: dict, seed: int, logits_from: dict | None = None) -> StepData:
    """Fixed random rollouts; log π_old from ``logits_from`` (batched over tasks) or θ."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, E, H, SPEC.obs_dim, generator=g, dtype=torch.float64)
    actions = torch.randint(0, SPEC.n_actions, (T, E, H), generator=g)
    adv = torch.randn(T, E, H, generator=g, dtype=torch.float64)
    mask = torch.rand(T, E, H, generator=g) < 0.85
    with torch.no_grad():
        logits = policy_logits(SPEC, logits_from if logits_from is not None else theta, obs)
    return StepData(obs, actions, adv, mask, log_prob(SPEC, logits, actions), logits)


def _theta(seed: int = 0) -> dict:
    return init_params(SPEC, torch.Generator().manual_seed(seed), torch.float64, out_gain=1.0)


def _flat(params: dict) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in params.values()])


def _unflat(vec: torch.Tensor, like: dict) -> dict:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vec[i : i + v.numel()].reshape(v.shape)
        i += v.numel()
    return out


def _setup(objective: str, steps: int):
    theta = _theta()
    inner = InnerUpdate(lr=0.7, objective=objective, ent_coef=0.05)
    datas = [_data(theta, 10)]
    for k in range(1, steps):
        with torch.no_grad():
            sampled = adapt_params(SPEC, theta, datas, inner, first_order=True)
        datas.append(_data(theta, 10 + k, sampled))
    with torch.no_grad():
        post = adapt_params(SPEC, theta, datas, inner, first_order=True)
    # outer data sampled by a slightly different policy, so ratios ≠ 1; clip wide enough
    # that no ratio sits on a kink of the clipped surrogate
    outer_data = _data(theta, 99, {k: v + 0.05 for k, v in post.items()})
    return theta, inner, datas, outer_data


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(("objective", "steps"), [("lvc", 1), ("vpg", 1), ("lvc", 2)])
def test_second_order_meta_gradient_equals_finite_differences(objective: str, steps: int) -> None:
    theta, inner, datas, outer_data = _setup(objective, steps)
    outer = OuterSettings(clip_eps=5.0, ent_coef=0.01, kl_coef=0.3, first_order=False)

    def f(vec: torch.Tensor) -> torch.Tensor:
        return meta_loss(SPEC, _unflat(vec, theta), inner, datas, outer_data, outer)[0]

    x = _flat(theta).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x), x)
    fd = central_fd(lambda v: f(v).detach(), x.detach())
    assert _rel_err(grad, fd) < 1e-4
    # the Hessian term matters here: first order is measurably different
    first = OuterSettings(clip_eps=5.0, ent_coef=0.01, kl_coef=0.3, first_order=True)
    (fo,) = torch.autograd.grad(meta_loss(SPEC, _unflat(x, theta), inner, datas, outer_data, first)[0], x)
    assert _rel_err(fo, fd) > 1e-2


def test_first_order_meta_gradient_equals_gradient_with_inner_steps_frozen() -> None:
    theta, inner, datas, outer_data = _setup("lvc", 2)
    outer = OuterSettings(clip_eps=5.0, ent_coef=0.01, kl_coef=0.0, first_order=True)
    x = _flat(theta).requires_grad_(True)
    (fo,) = torch.autograd.grad(meta_loss(SPEC, _unflat(x, theta), inner, datas, outer_data, outer)[0], x)
    with torch.no_grad():
        adapted = adapt_params(SPEC, theta, datas, inner, first_order=True)
    # θ'_i(θ + δ) = θ'_i + δ when the inner gradients are constants
    shift = {k: v - theta[k] for k, v in adapted.items()}

    def f(vec: torch.Tensor) -> torch.Tensor:
        params = {k: v.unsqueeze(0) + shift[k] for k, v in _unflat(vec, theta).items()}
        return meta_loss(SPEC, params, inner, [], outer_data, outer)[0]

    fd = central_fd(f, x.detach())
    assert _rel_err(fo, fd) < 1e-4


def test_meta_sgd_learning_rate_gradient_equals_finite_differences() -> None:
    theta, inner, datas, outer_data = _setup("lvc", 1)
    outer = OuterSettings(clip_eps=5.0)
    lrs = {k: torch.full_like(v, 0.5) + 0.1 * torch.rand_like(v) for k, v in theta.items()}

    def f(vec: torch.Tensor) -> torch.Tensor:
        return meta_loss(SPEC, theta, replace(inner, lr=_unflat(vec, lrs)), datas, outer_data, outer)[0]

    x = _flat(lrs).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x), x)
    fd = central_fd(lambda v: f(v).detach(), x.detach())
    assert _rel_err(grad, fd) < 1e-4


@pytest.mark.parametrize("objective", ["lvc", "vpg"])
def test_batched_adaptation_equals_per_task_loop(objective: str) -> None:
    theta, inner, datas, _ = _setup(objective, 2)
    inner = InnerUpdate(lr=0.7, objective=objective)
    batched = adapt_params(SPEC, theta, datas, inner)
    for i in range(T):
        one = [StepData(*(None if x is None else x[i : i + 1] for x in d)) for d in datas]
        alone = adapt_params(SPEC, theta, one, inner)
        for k in theta:
            torch.testing.assert_close(batched[k][i], alone[k][0], rtol=1e-12, atol=1e-13)


def test_lvc_and_vpg_have_the_same_gradient_at_the_sampling_policy() -> None:
    theta = _theta(1)
    data = _data(theta, 5)
    params = {k: v.requires_grad_(True) for k, v in expand_params(theta, T).items()}
    lv = inner_losses(SPEC, params, data, "lvc", 0.0).sum()
    vp = inner_losses(SPEC, params, data, "vpg", 0.0).sum()
    for a, b in zip(
        torch.autograd.grad(lv, list(params.values())), torch.autograd.grad(vp, list(params.values()))
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_small_inner_step_decreases_each_tasks_inner_loss() -> None:
    theta = _theta(2)
    data = _data(theta, 6)
    inner = InnerUpdate(lr=0.01, objective="vpg")
    before = inner_losses(SPEC, expand_params(theta, T), data, "vpg", 0.0)
    after_params = inner_step(SPEC, expand_params(theta, T), data, inner, create_graph=False)
    after = inner_losses(SPEC, after_params, data, "vpg", 0.0)
    assert torch.all(after < before)
    assert not any(v.requires_grad for v in after_params.values())
    np.testing.assert_array_less(0, (before - after).numpy())
