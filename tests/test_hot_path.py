"""The trainer's fast paths give bit-identical numbers to the plain formulas they replace.

Training results (metrics, checkpoints, evaluations) are reproducible to the bit, so a
speed-up may only skip or share work, never reorder floating-point operations: every
test here compares with ``torch.equal``, not a tolerance.
"""

from __future__ import annotations

import math

import pytest
import torch

from meta_rl.algorithms.base import TrainingDiverged, check_all_finite
from meta_rl.maml import InnerUpdate, OuterSettings, StepData, inner_step, meta_loss, policy_logits
from meta_rl.policy import (
    PolicySpec,
    entropy,
    entropy_of_factors,
    expand_params,
    factor_actions,
    init_params,
    log_prob,
    log_prob_of_factors,
    log_softmax_factors,
    sample,
    sample_with_log_prob,
)
from meta_rl.ppo import approx_kl, clip_fraction, clipped_surrogate, masked_mean

SPECS = [PolicySpec(5, (4, 4)), PolicySpec(5, (3, 5, 2)), PolicySpec(5, (7,))]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_sample_with_log_prob_equals_sample_then_log_prob(spec: PolicySpec) -> None:
    logits = 3.0 * torch.randn(6, 7, spec.n_logits, generator=torch.Generator().manual_seed(0))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(3):  # the generators stay in step across calls
        a = sample(spec, logits, g1)
        b, lp = sample_with_log_prob(spec, logits, g2)
        assert torch.equal(a, b)
        assert torch.equal(lp, log_prob(spec, logits, a))


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_shared_log_softmax_gives_log_prob_and_entropy(spec: PolicySpec) -> None:
    g = torch.Generator().manual_seed(1)
    logits = 2.0 * torch.randn(4, 9, spec.n_logits, generator=g)
    actions = torch.randint(0, spec.n_actions, (4, 9), generator=g)
    shared = log_softmax_factors(spec, logits)
    factors = factor_actions(spec, actions)
    assert torch.equal(log_prob_of_factors(shared, factors), log_prob(spec, logits, actions))
    assert torch.equal(entropy_of_factors(shared), entropy(spec, logits))


def _reference_ppo_loss(
    spec: PolicySpec, params: dict, data: StepData, outer: OuterSettings
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_clip − c_H H`` with the entropy always in the graph (the formula before the fast path)."""
    logits = policy_logits(spec, params, data.obs)
    logp = log_prob(spec, logits, data.actions)
    surr = clipped_surrogate(logp, data.logp_old, data.adv, outer.clip_eps, data.mask)
    ent = masked_mean(entropy(spec, logits), data.mask)
    stats = {
        "surrogate": surr,
        "entropy": ent,
        "approx_kl": approx_kl(logp, data.logp_old, data.mask),
        "clip_fraction": clip_fraction(logp, data.logp_old, outer.clip_eps, data.mask),
    }
    return surr - outer.ent_coef * ent, stats


def _data(spec: PolicySpec, theta: dict, seed: int) -> StepData:
    g = torch.Generator().manual_seed(seed)
    n_t, n_e, h = 3, 4, 5
    obs = torch.randn(n_t, n_e, h, spec.obs_dim, generator=g)
    actions = torch.randint(0, spec.n_actions, (n_t, n_e, h), generator=g)
    adv = torch.randn(n_t, n_e, h, generator=g)
    mask = torch.rand(n_t, n_e, h, generator=g) < 0.8
    with torch.no_grad():
        logits = policy_logits(spec, theta, obs) + 0.3 * torch.randn(n_t, n_e, h, spec.n_logits, generator=g)
    return StepData(obs, actions, adv, mask, log_prob(spec, logits, actions), logits)


@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
@pytest.mark.parametrize("inner_steps", [0, 1])
def test_meta_loss_and_gradient_equal_the_plain_formula(ent_coef: float, inner_steps: int) -> None:
    """The outer objective (entropy outside the graph when its weight is 0, statistics
    without autograd) has the same value, statistics and gradient, bit for bit."""
    spec = PolicySpec(5, (4, 4), (16, 16))
    theta = init_params(spec, torch.Generator().manual_seed(0))
    theta = {k: v.requires_grad_(True) for k, v in theta.items()}
    inner = InnerUpdate(lr=0.5)
    outer = OuterSettings(clip_eps=0.2, ent_coef=ent_coef)
    datas = [_data(spec, theta, s) for s in range(inner_steps + 1)]

    loss, stats = meta_loss(spec, theta, inner, datas[:-1], datas[-1], outer)
    grads = torch.autograd.grad(loss, list(theta.values()))

    if inner_steps:
        params = inner_step(spec, expand_params(theta, 3), datas[0], inner, create_graph=True)
    else:
        params = theta
    ref_loss, ref_stats = _reference_ppo_loss(spec, params, datas[-1], outer)
    ref_grads = torch.autograd.grad(ref_loss, list(theta.values()))

    assert torch.equal(loss, ref_loss)
    for k in ref_stats:
        assert torch.equal(stats[k], ref_stats[k].detach()), k
    for g, r in zip(grads, ref_grads):
        assert torch.equal(g, r)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", [0, 17, 4095])
def test_check_all_finite_names_the_first_bad_tensor(bad: float, where: int) -> None:
    named = [("a", torch.randn(3)), ("b", torch.randn(64, 64)), ("c", torch.randn(64, 64))]
    check_all_finite(7, named, "parameter ")  # all finite: silent
    named[1][1].view(-1)[where] = bad
    named[2][1].view(-1)[0] = bad
    with pytest.raises(TrainingDiverged, match=r"iteration 7: parameter b is not finite"):
        check_all_finite(7, named, "parameter ")
