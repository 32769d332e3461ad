"""PPO loss terms against hand-written references."""

from __future__ import annotations

import numpy as np
import torch

from meta_rl.policy import PolicySpec, kl_divergence
from meta_rl.ppo import approx_kl, clip_fraction, clipped_surrogate, masked_mean


def _reference(logp: np.ndarray, logp_old: np.ndarray, adv: np.ndarray, eps: float, mask: np.ndarray):
    """Loss and d loss / d logp written out case by case."""
    n = mask.sum()
    loss, grad = 0.0, np.zeros_like(logp)
    for i in range(len(logp)):
        if not mask[i]:
            continue
        r = np.exp(logp[i] - logp_old[i])
        a = adv[i]
        # min(r·A, clip(r)·A): the clipped branch is active (and flat) when r left the
        # interval in the direction that would increase the objective
        if (a > 0 and r > 1 + eps) or (a < 0 and r < 1 - eps):
            loss -= np.clip(r, 1 - eps, 1 + eps) * a / n
        else:
            loss -= r * a / n
            grad[i] = -r * a / n
    return loss, grad


def test_clipped_surrogate_and_gradient_match_reference_including_clipped_steps() -> None:
    rng = np.random.default_rng(0)
    n, eps = 400, 0.2
    logp_old = rng.normal(-1.5, 0.5, size=n)
    logp = logp_old + rng.normal(0, 0.4, size=n)  # many ratios beyond 1 ± ε
    adv = rng.normal(size=n)
    mask = rng.random(n) < 0.8
    ratio = np.exp(logp - logp_old)
    assert ((ratio > 1 + eps) & (adv > 0)).sum() > 10 and ((ratio < 1 - eps) & (adv < 0)).sum() > 10
    lp = torch.tensor(logp, requires_grad=True)
    loss = clipped_surrogate(lp, torch.tensor(logp_old), torch.tensor(adv), eps, torch.tensor(mask))
    loss.backward()
    ref_loss, ref_grad = _reference(logp, logp_old, adv, eps, mask)
    np.testing.assert_allclose(loss.item(), ref_loss, rtol=1e-12)
    np.testing.assert_allclose(lp.grad.numpy(), ref_grad, rtol=1e-10, atol=1e-14)
    frac = clip_fraction(lp.detach(), torch.tensor(logp_old), eps, torch.tensor(mask)).item()
    np.testing.assert_allclose(frac, (np.abs(ratio - 1) > eps)[mask].mean())


def test_approx_kl_is_exact_kl_in_expectation() -> None:
    # weighting every action by π_old turns the sample estimator into its expectation
    spec = PolicySpec(obs_dim=1, action_nvec=(7,))
    rng = np.random.default_rng(1)
    z_old, z_new = torch.tensor(rng.normal(size=7)), torch.tensor(rng.normal(size=7))
    lp_old, lp_new = torch.log_softmax(z_old, -1), torch.log_softmax(z_new, -1)
    est = approx_kl(lp_new, lp_old, lp_old.exp())
    exact = kl_divergence(spec, z_old, z_new)
    np.testing.assert_allclose(est.item(), exact.item(), rtol=1e-10)


def test_masked_mean_ignores_masked_entries() -> None:
    x = torch.tensor([1.0, 2.0, 100.0, 4.0], dtype=torch.float64)
    m = torch.tensor([True, True, False, True])
    assert masked_mean(x, m).item() == 7.0 / 3.0
    assert masked_mean(x, torch.zeros(4, dtype=torch.bool)).item() == 0.0
