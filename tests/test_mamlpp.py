"""MAML++-PPO: multi-step loss weights and objective, per-step step sizes (LSLR) against
finite differences, derivative-order annealing, cosine learning rate, and the
all-switches-off run equal to MAML-PPO."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAIN, central_fd
from test_maml import SPEC, _flat, _rel_err, _setup, _unflat

from meta_rl.algorithms.mamlpp_ppo import cosine_lr
from meta_rl.config import load_config
from meta_rl.maml import OuterSettings, meta_loss, multi_step_meta_loss, multi_step_weights
from meta_rl.trainer import WALL_COLUMNS, Trainer


@pytest.mark.parametrize("k_steps", [1, 2, 3, 5])
def test_multi_step_weights_anneal_from_uniform_to_the_last_step(k_steps: int) -> None:
    n = 10
    assert multi_step_weights(k_steps, 0, n) == pytest.approx([1 / k_steps] * k_steps)
    for t in range(n + 5):
        w = multi_step_weights(k_steps, t, n)
        assert len(w) == k_steps and math.isclose(sum(w), 1.0, rel_tol=1e-12)
        assert all(x > 0 for x in w) if t < n else all(x >= 0 for x in w)
        if t >= n:
            assert w == [0.0] * (k_steps - 1) + [1.0]
        if 0 < t < n and k_steps > 1:  # moving towards the last step
            prev = multi_step_weights(k_steps, t - 1, n)
            assert w[-1] > prev[-1] and w[0] < prev[0]
    assert multi_step_weights(3, 0, 0) == [0.0, 0.0, 1.0]  # no annealing: plain MAML


def test_multi_step_loss_is_the_weighted_sum_of_per_step_maml_objectives() -> None:
    """Reference: step k's objective is MAML's J with k inner steps and outer data D^k."""
    theta, inner, datas, outer_data = _setup("lvc", 2)
    all_data = [*datas, outer_data]  # D^0, D^1, D^2
    outer = OuterSettings(clip_eps=5.0, ent_coef=0.01)
    w = [0.3, 0.7]
    got, _ = multi_step_meta_loss(SPEC, theta, inner, all_data, w, outer)
    ref = sum(
        wk * meta_loss(SPEC, theta, inner, all_data[: k + 1], all_data[k + 1], outer)[0]
        for k, wk in enumerate(w)
    )
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    # last-step weights only: exactly MAML's objective
    last, _ = multi_step_meta_loss(SPEC, theta, inner, all_data, [0.0, 1.0], outer)
    assert torch.equal(last, meta_loss(SPEC, theta, inner, datas, outer_data, outer)[0])


def _lslr(theta: dict, k_steps: int) -> tuple:
    g = torch.Generator().manual_seed(5)
    return tuple(
        {k: torch.tensor(0.4 + 0.2 * float(torch.rand(1, generator=g)), dtype=torch.float64) for k in theta}
        for _ in range(k_steps)
    )


def test_per_step_learned_step_sizes_gradient_equals_finite_differences() -> None:
    theta, inner, datas, outer_data = _setup("lvc", 2)
    all_data = [*datas, outer_data]
    outer = OuterSettings(clip_eps=5.0, ent_coef=0.01)
    rates = _lslr(theta, 2)
    names = list(theta)

    def f(vec: torch.Tensor, theta_vec: torch.Tensor | None = None) -> torch.Tensor:
        lr = tuple({k: vec[s * len(names) + i] for i, k in enumerate(names)} for s in range(2))
        th = theta if theta_vec is None else _unflat(theta_vec, theta)
        return multi_step_meta_loss(SPEC, th, replace(inner, lr=lr), all_data, [0.4, 0.6], outer)[0]

    x = torch.stack([r[k] for r in rates for k in names]).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x), x)
    fd = central_fd(lambda v: f(v).detach(), x.detach())
    assert _rel_err(grad, fd) < 1e-4
    assert float(grad[len(names) :].abs().sum()) > 0  # step 2's rates get a gradient of their own
    # and the gradient with respect to θ through both steps (second order)
    y = _flat(theta).requires_grad_(True)
    (gt,) = torch.autograd.grad(f(x.detach(), y), y)
    assert _rel_err(gt, central_fd(lambda v: f(x.detach(), v).detach(), y.detach())) < 1e-4


def _tiny_mamlpp(extra: list[str]):
    return load_config(None, [*TINY_TRAIN, "algo=mamlpp_ppo", *extra])


def test_derivative_order_annealing_switches_from_first_to_second_order(tmp_path: Path) -> None:
    """Before the switch the meta-gradient is first-order MAML's, after it second order's."""
    cfg = _tiny_mamlpp(["lslr=false", "multi_step_loss=false", "first_order_iterations=3"])
    algo = Trainer(cfg, tmp_path / "r", progress=False).algo
    theta, inner, datas, outer_data = _setup("lvc", 1)
    x = _flat(theta).requires_grad_(True)

    def grad(outer: OuterSettings) -> torch.Tensor:
        outer = replace(outer, clip_eps=5.0)
        loss = multi_step_meta_loss(SPEC, _unflat(x, theta), inner, [*datas, outer_data], [1.0], outer)[0]
        return torch.autograd.grad(loss, x)[0]

    def maml_grad(first_order: bool) -> torch.Tensor:
        outer = OuterSettings(clip_eps=5.0, first_order=first_order)
        return torch.autograd.grad(meta_loss(SPEC, _unflat(x, theta), inner, datas, outer_data, outer)[0], x)[
            0
        ]

    first, second = maml_grad(True), maml_grad(False)
    assert _rel_err(first, second) > 1e-2  # the two orders differ measurably here
    for it in range(3):
        assert torch.equal(grad(algo.outer_at(it)), first)
    for it in (3, 4, 10):
        assert torch.equal(grad(algo.outer_at(it)), second)


def test_cosine_learning_rate() -> None:
    assert cosine_lr(1e-3, 1e-5, 0, 100) == 1e-3
    assert cosine_lr(1e-3, 1e-5, 100, 100) == pytest.approx(1e-5)
    assert cosine_lr(1e-3, 0.0, 50, 100) == pytest.approx(5e-4)


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(f)]


def test_every_switch_off_is_maml_ppo_bit_for_bit(tmp_path: Path) -> None:
    off = ["multi_step_loss=false", "lslr=false", "first_order_iterations=0", "cosine_outer_lr=false"]
    extra = ["inner_steps=2", "meta_sgd=true"]
    Trainer(_tiny_mamlpp([*off, *extra]), tmp_path / "pp", progress=False).train()
    Trainer(load_config(None, [*TINY_TRAIN, *extra]), tmp_path / "maml", progress=False).train()
    pp, maml = _rows(tmp_path / "pp"), _rows(tmp_path / "maml")
    mine = ("outer_lr_now", "first_order_now", "msl_weight_last")
    assert [{k: v for k, v in r.items() if k not in mine} for r in pp] == maml


def test_lslr_policy_adapts_with_its_per_step_rates_after_reload(tmp_path: Path) -> None:
    from meta_rl.checkpoint import export_policy, load_policy

    cfg = _tiny_mamlpp(["inner_steps=2", "n_iterations=2", "lslr=true", "meta_sgd=false"])
    t = Trainer(cfg, tmp_path / "r", progress=False)
    t.train()
    pol = load_policy(tmp_path / "r" / "checkpoint.pt")
    assert isinstance(pol.inner.lr, tuple) and len(pol.inner.lr) == 2
    assert pol.inner == t.policy().inner
    assert load_policy(export_policy(pol, tmp_path / "export")).inner == pol.inner
    # the rates moved away from their start (they are learned)
    assert any(float(v) != 0.5 for m in pol.inner.lr for v in m.values())
