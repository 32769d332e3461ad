"""Item-wise (permutation-equivariant) policies: structure, batching, gradients, envs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_ITEMWISE

from meta_rl.config import MAMLPPOConfig
from meta_rl.envspec import EnvSpec
from meta_rl.maml import InnerUpdate, OuterSettings, StepData, adapt_params, meta_loss, policy_logits
from meta_rl.policy import PolicySpec, init_params, log_prob, mlp, state_value
from meta_rl.trainer import policy_spec

K, F, G = 5, 2, 1
# observation: feature 0 of items 0..4, feature 1 of items 0..4, one global feature
ITEM = PolicySpec(
    obs_dim=F * K + G,
    action_nvec=(K,),
    hidden_sizes=(6,),
    item_cols=tuple((i, K + i) for i in range(K)),
    global_cols=(F * K,),
)
ITEM_BIAS = PolicySpec(
    obs_dim=ITEM.obs_dim,
    action_nvec=ITEM.action_nvec,
    hidden_sizes=(6,),
    item_cols=ITEM.item_cols,
    global_cols=ITEM.global_cols,
    item_bias=True,
)
SR = "MetaTutor/SpacedRepetition-v0"


def _params(seed: int, out_dim: int | None = None) -> dict:
    return init_params(
        ITEM, torch.Generator().manual_seed(seed), torch.float64, out_dim=out_dim, out_gain=1.0
    )


def _permute_items(obs: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    out = obs.clone()
    for b in range(F):
        out[..., b * K : (b + 1) * K] = obs[..., b * K + perm]
    return out


def test_logits_follow_a_permutation_of_the_items_and_the_value_ignores_it() -> None:
    theta, value = _params(0), _params(1, out_dim=1)
    obs = torch.rand(7, ITEM.obs_dim, dtype=torch.float64)
    perm = torch.randperm(K, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(mlp(ITEM, theta, _permute_items(obs, perm)), mlp(ITEM, theta, obs)[:, perm])
    torch.testing.assert_close(
        state_value(ITEM, value, _permute_items(obs, perm)), state_value(ITEM, value, obs)
    )
    assert mlp(ITEM, theta, obs).shape == (7, K) and state_value(ITEM, value, obs).shape == (7,)


def test_item_logit_equals_the_shared_mlp_on_its_own_input() -> None:
    """Reference written out by hand: one tanh layer on [own features, mean features, global]."""
    theta = _params(0)
    obs = torch.rand(4, ITEM.obs_dim, dtype=torch.float64)
    feats = torch.stack([obs[:, [i, K + i]] for i in range(K)], dim=1)  # (4, K, F)
    for i in range(K):
        x = torch.cat([feats[:, i], feats.mean(1), obs[:, -1:]], dim=1)
        h = torch.tanh(x @ theta["l0.weight"].T + theta["l0.bias"])
        ref = (h @ theta["l1.weight"].T + theta["l1.bias"])[:, 0]
        torch.testing.assert_close(mlp(ITEM, theta, obs)[:, i], ref)


def test_batched_parameters_equal_one_policy_at_a_time() -> None:
    tasks = [_params(s) for s in range(3)]
    stacked = {k: torch.stack([t[k] for t in tasks]) for k in tasks[0]}
    obs = torch.rand(3, 8, ITEM.obs_dim, dtype=torch.float64)
    batched = mlp(ITEM, stacked, obs)
    for i in range(3):
        torch.testing.assert_close(batched[i], mlp(ITEM, tasks[i], obs[i]))


@pytest.mark.parametrize("spec", [ITEM, ITEM_BIAS], ids=["shared", "with_item_bias"])
def test_second_order_meta_gradient_equals_finite_differences(spec: PolicySpec) -> None:
    t, e, h = 2, 2, 3
    theta = init_params(spec, torch.Generator().manual_seed(0), torch.float64, out_gain=1.0)
    if spec.item_bias:  # away from zero, so the offsets matter in every term
        theta["item_bias"] = torch.linspace(-0.5, 0.5, K, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)

    def data(seed_params: dict) -> StepData:
        obs = torch.rand(t, e, h, spec.obs_dim, generator=g, dtype=torch.float64)
        actions = torch.randint(0, K, (t, e, h), generator=g)
        adv = torch.randn(t, e, h, generator=g, dtype=torch.float64)
        mask = torch.ones(t, e, h, dtype=torch.bool)
        with torch.no_grad():
            logits = policy_logits(spec, seed_params, obs)
        return StepData(obs, actions, adv, mask, log_prob(spec, logits, actions), logits)

    inner = InnerUpdate(lr=0.7, objective="lvc", ent_coef=0.05)
    pre = data(theta)
    outer_data = data({k: v + 0.05 for k, v in theta.items()})
    outer = OuterSettings(clip_eps=5.0, ent_coef=0.01, kl_coef=0.3, first_order=False)
    names = list(theta)

    def f(vec: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for k in names:
            params[k] = vec[i : i + theta[k].numel()].reshape(theta[k].shape)
            i += theta[k].numel()
        return meta_loss(spec, params, inner, [pre], outer_data, outer)[0]

    x = torch.cat([theta[k].reshape(-1) for k in names]).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x), x)
    fd = torch.zeros_like(x)
    for i in range(len(x)):
        step = torch.zeros_like(x)
        step[i] = 1e-6
        fd[i] = (f(x.detach() + step) - f(x.detach() - step)) / 2e-6
    assert float((grad - fd).norm() / fd.norm()) < 1e-4
    # adaptation really moves the parameters (the gradient is not just the outer one)
    adapted = adapt_params(spec, theta, [pre], inner, first_order=True)
    assert float((adapted["l0.weight"] - theta["l0.weight"]).abs().max()) > 1e-4


def test_item_bias_is_a_per_item_logit_offset_adapted_per_task() -> None:
    theta = init_params(ITEM_BIAS, torch.Generator().manual_seed(0), torch.float64)
    assert torch.equal(theta["item_bias"], torch.zeros(K, dtype=torch.float64))
    assert "item_bias" not in init_params(ITEM_BIAS, out_dim=1)  # the value network has none
    theta["item_bias"] = torch.arange(K, dtype=torch.float64)
    shared = {k: v for k, v in theta.items() if k != "item_bias"}
    obs = torch.rand(4, ITEM.obs_dim, dtype=torch.float64)
    torch.testing.assert_close(
        mlp(ITEM_BIAS, theta, obs) - mlp(ITEM, shared, obs), theta["item_bias"].expand(4, K)
    )
    # batched over tasks: each task its own offsets
    stacked = {k: torch.stack([v, v + 1.0]) for k, v in theta.items()}
    obs2 = torch.rand(2, 3, ITEM.obs_dim, dtype=torch.float64)
    for i in range(2):
        torch.testing.assert_close(
            mlp(ITEM_BIAS, stacked, obs2)[i], mlp(ITEM_BIAS, {k: v[i] for k, v in stacked.items()}, obs2[i])
        )
    with pytest.raises(ValueError, match="only meaningful with item_cols"):
        PolicySpec(obs_dim=3, action_nvec=(3,), item_bias=True)
    with pytest.raises(ValueError, match="item_bias needs architecture: itemwise"):
        MAMLPPOConfig(item_bias=True)


def test_spec_round_trips_and_old_specs_load_as_mlp() -> None:
    assert PolicySpec.from_dict(ITEM.to_dict()) == ITEM
    assert PolicySpec.from_dict(ITEM_BIAS.to_dict()) == ITEM_BIAS
    old = {"obs_dim": 5, "action_nvec": [3], "hidden_sizes": [8], "activation": "tanh"}
    assert not PolicySpec.from_dict(old).itemwise


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"action_nvec": (K + 1,)}, "one action per item"),
        ({"action_nvec": (K, 2)}, "one action per item"),
        ({"item_cols": ((0, 5), (1,), (2, 7), (3, 8), (4, 9))}, "same, non-zero number"),
        ({"item_cols": tuple((i, 20 + i) for i in range(K))}, "must lie in"),
        ({"item_cols": (), "global_cols": (1,)}, "only meaningful"),
        ({"global_cols": (0,)}, "not both or twice"),
        ({"item_cols": ((0, 5), (0, 6), (2, 7), (3, 8), (4, 9))}, "not both or twice"),
    ],
)
def test_invalid_item_layouts_are_rejected(kwargs: dict, match: str) -> None:
    base = {
        "obs_dim": ITEM.obs_dim,
        "action_nvec": ITEM.action_nvec,
        "hidden_sizes": (6,),
        "item_cols": ITEM.item_cols,
        "global_cols": ITEM.global_cols,
    }
    with pytest.raises(ValueError, match=match):
        PolicySpec(**{**base, **kwargs})


def test_spaced_repetition_layout_matches_its_observation() -> None:
    env = EnvSpec(SR, {"n_items": 6})
    spec = policy_spec(MAMLPPOConfig(env=SR, env_kwargs={"n_items": 6}, architecture="itemwise"), env)
    venv = env.make_vector_env(2)
    obs, _ = venv.reset(seed=0)
    for a in ([2, 4], [5, 4]):
        obs, *_ = venv.step(np.array(a))
    # student 0 was shown cards 2 and 5, student 1 card 4: only their columns say "shown"
    cols = np.asarray(spec.item_cols)
    shown = obs[:, cols[:, 2]] + obs[:, cols[:, 3]] > 0.5
    expected = np.zeros((2, 6), dtype=bool)
    expected[0, [2, 5]] = expected[1, 4] = True
    np.testing.assert_array_equal(shown, expected)
    assert spec.global_cols == (4 * 6,)
    # privileged: each card's difficulty joins its own features, the rest is global
    priv = EnvSpec(SR, {"n_items": 6}, privileged=True)
    cols, shared = priv.item_layout
    assert [len(c) for c in cols] == [5] * 6 and len(shared) == 1 + 3
    dist = priv.distribution()
    profile = dist.sample(1, "test", seed=0)[0]
    feats = priv.profile_features([profile])[0]
    lo, hi = -3.0, 3.0
    for i in range(6):
        assert feats[cols[i][-1] - priv.env_obs_dim] == pytest.approx(
            (profile.item_difficulty[i] - lo) / (hi - lo), rel=1e-6
        )


def test_envs_without_item_blocks_refuse_the_itemwise_architecture() -> None:
    cfg = MAMLPPOConfig(architecture="itemwise")
    with pytest.raises(ValueError, match="architecture 'itemwise' needs"):
        policy_spec(cfg, EnvSpec(cfg.env))
    with pytest.raises(ValueError, match="architecture must be one of"):
        MAMLPPOConfig(architecture="transformer")


def test_itemwise_training_runs_saves_and_reloads(tmp_path) -> None:
    """MAML-PPO and pooled PPO with an item-wise policy (value-network baseline too) train,
    checkpoint and come back as a tutor whose actions are the saved policy's."""
    from meta_rl.checkpoint import load_policy
    from meta_rl.config import make_config
    from meta_rl.trainer import Trainer

    tiny = {**TINY_ITEMWISE, "env": SR}
    for algo, baseline, bias in (("maml_ppo", "linear", True), ("ppo", "value_net", False)):
        out = tmp_path / algo
        cfg = make_config({**tiny, "algo": algo, "baseline": baseline, "item_bias": bias})
        trainer = Trainer(cfg, out, progress=False)
        trainer.train()
        assert trainer.spec.itemwise and trainer.spec.item_bias == bias
        policy = load_policy(out / "checkpoint.pt")
        assert policy.spec == trainer.spec
        obs = np.random.default_rng(0).random((6, policy.spec.obs_dim)).astype(np.float32)
        probs = policy.action_probs(obs)
        assert probs.shape == (6, 4)
        np.testing.assert_allclose(probs, trainer.policy().action_probs(obs), rtol=1e-6)
        assert not np.allclose(probs, 0.25, atol=1e-4)  # trained, not the near-uniform start
        if baseline == "value_net":
            for k, v in trainer.algo.value.items():
                torch.testing.assert_close(policy.value_params[k], v.detach())
