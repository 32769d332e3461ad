"""The functional categorical policy against torch.distributions and explicit loops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Categorical

from meta_rl.policy import (
    PolicySpec,
    entropy,
    expand_params,
    factor_actions,
    init_params,
    kl_divergence,
    log_prob,
    mlp,
    mode,
    sample,
)

FACTORISED = PolicySpec(obs_dim=5, action_nvec=(3, 4), hidden_sizes=(8,))
FLAT = PolicySpec(obs_dim=5, action_nvec=(12,), hidden_sizes=(8,))


def _joint_probs(spec: PolicySpec, logits: torch.Tensor) -> torch.Tensor:
    """Probabilities of every joint action (row-major), built from per-factor softmaxes."""
    groups = torch.split(logits, list(spec.action_nvec), dim=-1)
    probs = [torch.softmax(g, -1) for g in groups]
    out = []
    for combo in itertools.product(*[range(n) for n in spec.action_nvec]):
        p = torch.ones(logits.shape[:-1], dtype=logits.dtype)
        for f, a in enumerate(combo):
            p = p * probs[f][..., a]
        out.append(p)
    return torch.stack(out, -1)


@pytest.mark.parametrize("spec", [FACTORISED, FLAT])
def test_log_prob_entropy_kl_match_categorical_of_joint(spec: PolicySpec) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, spec.n_logits, generator=g, dtype=torch.float64)
    other = torch.randn(6, spec.n_logits, generator=g, dtype=torch.float64)
    joint = Categorical(probs=_joint_probs(spec, logits))
    assert torch.allclose(joint.probs.sum(-1), torch.ones(6, dtype=torch.float64))
    actions = torch.arange(spec.n_actions).repeat(6, 1).T  # every action for every row
    lp = log_prob(spec, logits.expand(spec.n_actions, 6, -1), actions)
    np.testing.assert_allclose(lp, joint.log_prob(actions), rtol=1e-12)
    np.testing.assert_allclose(entropy(spec, logits), joint.entropy(), rtol=1e-12)
    ref_kl = torch.distributions.kl_divergence(joint, Categorical(probs=_joint_probs(spec, other)))
    np.testing.assert_allclose(kl_divergence(spec, logits, other), ref_kl, rtol=1e-10)
    np.testing.assert_array_equal(mode(spec, logits), joint.probs.argmax(-1))


def test_factor_actions_are_row_major() -> None:
    a = torch.arange(12)
    f0, f1 = factor_actions(FACTORISED, a)
    np.testing.assert_array_equal(f0 * 4 + f1, a)
    assert f1.max() == 3 and f0.max() == 2


def test_sample_frequencies_match_probabilities() -> None:
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, -0.5, 0.3], dtype=torch.float64)
    spec = PolicySpec(obs_dim=1, action_nvec=(3, 4))
    n = 40_000
    draws = sample(spec, logits.expand(n, 7), torch.Generator().manual_seed(1))
    counts = np.bincount(draws.numpy(), minlength=12)
    probs = _joint_probs(spec, logits).numpy()
    assert stats.chisquare(counts, probs * n).pvalue > 1e-4
    # same generator seed, same draws
    again = sample(spec, logits.expand(n, 7), torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)


def test_batched_parameters_equal_per_task_evaluation() -> None:
    g = torch.Generator().manual_seed(2)
    tasks = [init_params(FACTORISED, g, torch.float64, out_gain=1.0) for _ in range(3)]
    stacked = {k: torch.stack([p[k] for p in tasks]) for k in tasks[0]}
    obs = torch.randn(3, 7, 5, generator=g, dtype=torch.float64)
    batched = mlp(FACTORISED, stacked, obs)
    for i, p in enumerate(tasks):
        np.testing.assert_allclose(batched[i], mlp(FACTORISED, p, obs[i]), rtol=1e-12, atol=1e-14)
    shared = mlp(FACTORISED, expand_params(tasks[0], 3), obs)
    np.testing.assert_allclose(shared, mlp(FACTORISED, tasks[0], obs), rtol=1e-12, atol=1e-14)


def test_initial_policy_is_nearly_uniform_and_reproducible() -> None:
    p1 = init_params(FACTORISED, torch.Generator().manual_seed(3))
    p2 = init_params(FACTORISED, torch.Generator().manual_seed(3))
    assert all(torch.equal(p1[k], p2[k]) for k in p1)
    logits = mlp(FACTORISED, p1, torch.rand(100, 5))
    assert entropy(FACTORISED, logits).min() > np.log(12) - 0.01


def test_spec_round_trips_and_validates() -> None:
    assert PolicySpec.from_dict(FACTORISED.to_dict()) == FACTORISED
    with pytest.raises(ValueError, match="activation"):
        PolicySpec(obs_dim=3, action_nvec=(2,), activation="gelu")
