"""Reptile-PPO against hand computations and the joint-training gradient (Nichol et al. 2018)."""

from __future__ import annotations

import torch

from meta_rl.algorithms.reptile_ppo import (
    per_task_ppo_losses,
    ppo_inner_epochs,
    pseudo_gradient,
    reptile_update,
)
from meta_rl.maml import StepData, policy_logits
from meta_rl.policy import PolicySpec, expand_params, init_params, log_prob

SPEC = PolicySpec(obs_dim=3, action_nvec=(2, 3), hidden_sizes=(4,))
T, E, H = 2, 3, 4


def test_outer_update_equals_hand_computation_on_two_tasks() -> None:
    theta = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.0, -1.0]])}
    phi = {  # two tasks' adapted parameters
        "w": torch.tensor([[3.0, 2.0], [1.0, 6.0]]),
        "b": torch.tensor([[[1.0, 1.0]], [[-1.0, 3.0]]]),
    }
    # mean phi: w (2, 4), b (0, 2); theta + 0.5 (mean phi - theta)
    new = reptile_update(theta, phi, 0.5)
    assert torch.equal(new["w"], torch.tensor([1.5, 3.0]))
    assert torch.equal(new["b"], torch.tensor([[0.0, 0.5]]))
    g = pseudo_gradient(theta, phi)
    assert torch.equal(g["w"], torch.tensor([-1.0, -2.0])) and torch.equal(
        g["b"], torch.tensor([[0.0, -3.0]])
    )
    # epsilon = 1 jumps to the mean
    assert torch.equal(reptile_update(theta, phi, 1.0)["w"], torch.tensor([2.0, 4.0]))


def _data(theta: dict, seed: int) -> StepData:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, E, H, SPEC.obs_dim, generator=g, dtype=torch.float64)
    actions = torch.randint(0, SPEC.n_actions, (T, E, H), generator=g)
    adv = torch.randn(T, E, H, generator=g, dtype=torch.float64)
    mask = torch.rand(T, E, H, generator=g) < 0.85
    with torch.no_grad():
        logits = policy_logits(SPEC, theta, obs)
    return StepData(obs, actions, adv, mask, log_prob(SPEC, logits, actions), logits)


def test_one_plain_gradient_step_gives_the_joint_training_gradient() -> None:
    """K = 1 round of 1 epoch: θ − φ̄ = α ∇_θ (1/N) Σ_i L_i(θ), the gradient of joint training.

    The reference differentiates the mean of the tasks' policy-gradient losses
    ``−E[log π_θ(a|s) A]`` (which the clipped surrogate equals in gradient at ``θ = θ_old``)
    with unbatched parameters, one task at a time."""
    theta = init_params(SPEC, torch.Generator().manual_seed(0), torch.float64, out_gain=1.0)
    data = _data(theta, 1)
    alpha = 0.3
    phi, _ = ppo_inner_epochs(SPEC, expand_params(theta, T), data, alpha, epochs=1, clip_eps=0.2)
    step = pseudo_gradient(theta, phi)

    leaves = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    joint = 0.0
    for i in range(T):
        obs = data.obs[i : i + 1]
        logp = log_prob(SPEC, policy_logits(SPEC, leaves, obs), data.actions[i : i + 1])
        m = data.mask[i : i + 1].to(logp.dtype)
        joint = joint + (-(logp * data.adv[i : i + 1] * m).sum() / m.sum()) / T
    grads = torch.autograd.grad(joint, list(leaves.values()))
    for k, g in zip(theta, grads):
        torch.testing.assert_close(step[k], alpha * g, rtol=1e-10, atol=1e-12)


def test_batched_inner_epochs_equal_a_loop_over_students() -> None:
    """Several clipped PPO epochs for all students at once equal each student alone."""
    theta = init_params(SPEC, torch.Generator().manual_seed(3), torch.float64, out_gain=1.0)
    data = _data(theta, 2)
    phi, _ = ppo_inner_epochs(SPEC, expand_params(theta, T), data, 0.8, epochs=3, clip_eps=0.1, ent_coef=0.01)
    for i in range(T):
        alone = {k: v.clone() for k, v in theta.items()}
        one = StepData(*(None if x is None else x[i : i + 1] for x in data))
        for _ in range(3):
            leaves = {k: v.unsqueeze(0).requires_grad_(True) for k, v in alone.items()}
            loss = per_task_ppo_losses(SPEC, leaves, one, 0.1, 0.01)[0].sum()
            grads = torch.autograd.grad(loss, list(leaves.values()))
            alone = {k: (v - 0.8 * g[0]).detach() for (k, v), g in zip(alone.items(), grads)}
        for k in theta:
            torch.testing.assert_close(phi[k][i], alone[k], rtol=1e-10, atol=1e-12)


def test_a_second_epoch_on_the_same_rollouts_adds_the_curvature_term() -> None:
    """Two plain gradient epochs on one batch: θ − φ = 2αg − α²Hg + O(α³) per task.

    ``H g = ½∇‖g‖²`` with ``g`` the gradient of the task's own batch, whose expectation
    holds the sampling noise (``E‖g‖² = ‖E g‖² + tr Cov g``): the reason why the shipped
    Reptile-PPO takes one epoch per round (docs/algorithms.md, Reptile diagnosis). The
    reference is autograd's Hessian-vector product of each task's surrogate at θ."""
    theta = init_params(SPEC, torch.Generator().manual_seed(5), torch.float64, out_gain=1.0)
    data = _data(theta, 4)
    alpha = 1e-4  # small enough that no ratio leaves the clip range
    phi, _ = ppo_inner_epochs(SPEC, expand_params(theta, T), data, alpha, epochs=2, clip_eps=0.2)
    leaves = {k: v.clone().requires_grad_(True) for k, v in expand_params(theta, T).items()}
    loss = per_task_ppo_losses(SPEC, leaves, data, 0.2, 0.0)[0].sum()
    g = torch.autograd.grad(loss, list(leaves.values()), create_graph=True)
    hg = torch.autograd.grad(sum((gi * gi.detach()).sum() for gi in g), list(leaves.values()))
    for (k, th), gk, hk in zip(leaves.items(), g, hg):
        second_order = ((th.detach() - phi[k]) - 2 * alpha * gk.detach()) / alpha**2
        torch.testing.assert_close(second_order, -hk, rtol=2e-3, atol=2e-5)
