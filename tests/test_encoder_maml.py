"""Encoder-MAML-PPO: MAML's step on a conditioned network, training, checkpoints, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers import (
    TINY_ENCODER_SETS,
    central_fd,
    check_step_data_reproduces_the_tutors_logits,
    kill_and_resume,
    train_tiny,
)

from meta_rl.checkpoint import export_policy, load_checkpoint, load_policy
from meta_rl.config import load_config
from meta_rl.encoder_tutor import EncoderTutor
from meta_rl.maml import InnerUpdate, OuterSettings, StepData, adapt_params, meta_loss, policy_logits
from meta_rl.policy import PolicySpec, init_params, log_prob
from meta_rl.trainer import WALL_COLUMNS

TINY = [
    *TINY_ENCODER_SETS,
    "algo=encoder_maml_ppo",
    "meta_sgd=true",
    "env_kwargs.n_skills=2",
    "env_kwargs.n_content=2",
    "env_kwargs.horizon=8",
    "n_iterations=4",
]

SPEC = PolicySpec(obs_dim=3, action_nvec=(2, 3), hidden_sizes=(4,))
T, E, H = 2, 3, 4


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("encmaml") / "run", TINY)


def _conditioned_data(theta: dict, seed: int, logits_from: dict | None = None) -> StepData:
    """Fixed random rollouts with a random conditioning (first-layer and logit offsets, as an
    encoder's ``z`` gives), log π_old from ``logits_from`` (batched over tasks) or θ."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, E, H, SPEC.obs_dim, generator=g, dtype=torch.float64)
    actions = torch.randint(0, SPEC.n_actions, (T, E, H), generator=g)
    adv = torch.randn(T, E, H, generator=g, dtype=torch.float64)
    mask = torch.rand(T, E, H, generator=g) < 0.85
    bias0 = torch.randn(T, E, H, SPEC.hidden_sizes[0], generator=g, dtype=torch.float64)
    offset = torch.randn(T, E, H, SPEC.n_logits, generator=g, dtype=torch.float64)
    with torch.no_grad():
        logits = policy_logits(SPEC, logits_from if logits_from is not None else theta, obs, bias0, offset)
    return StepData(obs, actions, adv, mask, log_prob(SPEC, logits, actions), logits, bias0, offset)


def test_meta_gradient_through_a_conditioned_inner_step_equals_finite_differences() -> None:
    """MAML's second-order meta-gradient when the inner and outer data carry a conditioning
    (``StepData.bias0`` / ``logit_offset``, an encoder's ``z``): against central differences;
    and the conditioning matters (the same data without it gives another gradient)."""
    theta = init_params(SPEC, torch.Generator().manual_seed(0), torch.float64, out_gain=1.0)
    inner = InnerUpdate(lr=0.7, objective="lvc", ent_coef=0.05)
    datas = [_conditioned_data(theta, 10)]
    with torch.no_grad():
        post = adapt_params(SPEC, theta, datas, inner, first_order=True)
    outer_data = _conditioned_data(theta, 99, {k: v + 0.05 for k, v in post.items()})
    outer = OuterSettings(clip_eps=5.0, ent_coef=0.01, kl_coef=0.3, first_order=False)
    sizes = [(k, v.shape, v.numel()) for k, v in theta.items()]

    def unflat(vec: torch.Tensor) -> dict:
        out, i = {}, 0
        for k, shape, n in sizes:
            out[k] = vec[i : i + n].reshape(shape)
            i += n
        return out

    def f(vec: torch.Tensor, ds=datas, od=outer_data) -> torch.Tensor:
        return meta_loss(SPEC, unflat(vec), inner, ds, od, outer)[0]

    x = torch.cat([v.reshape(-1) for v in theta.values()]).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x), x)
    fd = central_fd(lambda v: f(v).detach(), x.detach())
    assert float((grad - fd).norm() / fd.norm()) < 1e-4
    plain = [d._replace(bias0=None, logit_offset=None) for d in datas]
    (other,) = torch.autograd.grad(f(x, plain, outer_data._replace(bias0=None, logit_offset=None)), x)
    assert float((other - grad).norm() / grad.norm()) > 1e-2


def test_training_logs_adapted_rounds_and_keeps_learned_step_sizes(tiny_run: Path, tmp_path: Path) -> None:
    """Each iteration is logged as ``encoder_maml`` with the inner step's KL; the tutor is an
    encoder tutor with its Meta-SGD step sizes, which a checkpoint and an export keep; the
    conditioning it acts on reproduces its logits."""
    with open(tiny_run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["phase"] for r in rows] == ["encoder_maml"] * 4
    assert all(float(r["adapt_kl"]) > 0 for r in rows)
    pol = load_policy(tiny_run)
    assert isinstance(pol, EncoderTutor) and pol.algo == "encoder_maml_ppo"
    rates = pol.inner_lrs
    assert isinstance(rates, dict) and rates.keys() == pol.params.keys()
    assert any(not torch.all(v == 0.5) for v in rates.values())  # learned, moved from inner_lr
    loaded = load_policy(export_policy(pol, tmp_path / "export"))
    assert isinstance(loaded, EncoderTutor) and isinstance(loaded.inner_lrs, dict)
    for k, v in rates.items():
        assert torch.equal(loaded.inner_lrs[k], v)
    check_step_data_reproduces_the_tutors_logits(pol)


def test_its_curve_takes_its_own_step_on_each_session(tiny_run: Path) -> None:
    """The adaptation curve of an encoder-MAML tutor takes its own inner step on each session
    of context by default: the per-student networks move, and they equal the curve with the
    tutor's inner update given explicitly; k = 0 is the context-only curve's."""
    pol = load_policy(tiny_run)
    profiles = pol.env.distribution().sample(3, "test", seed=3)
    own = pol.context_adaptation_curve(profiles, 2, 3, eval_episodes=2, seed=5)
    explicit = pol.context_adaptation_curve(profiles, 2, 3, eval_episodes=2, seed=5, inner=pol.inner)
    for k in pol.params:
        assert torch.equal(own.params[k], explicit.params[k])
    assert not torch.equal(own.params["l0.weight"][0], pol.params["l0.weight"])
    assert (own.returns == explicit.returns).all()


def test_resume_of_a_killed_run_is_bit_identical(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    kill_and_resume(load_config(None, TINY), tmp_path / "killed", monkeypatch, at_call=8)

    def rows(run: Path) -> list[dict[str, str]]:
        with open(run / "metrics.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(f)]

    assert rows(tmp_path / "killed") == rows(tiny_run)
    a = load_checkpoint(tiny_run / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    for group in ("params", "encoder", "inner_lrs"):
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            assert torch.equal(a[group][k], b[group][k]), (group, k)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["inner_steps=0"], "encoder_maml_ppo needs inner_steps >= 1"),
        (["item_bias_lr=0.5"], "item_bias_lr needs meta_sgd: true and item_bias: true"),
        (["kl_coef=0.1"], "it belongs to algo"),
    ],
)
def test_bad_settings_are_one_clear_error(sets: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(None, [*TINY, *sets])
