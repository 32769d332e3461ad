"""The encoder's item term (``z_item_logits``): item ``j``'s logit gains ``x_jᵀ U z``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import TINY_ENCODER_SETS, check_step_data_reproduces_the_tutors_logits

from meta_rl.checkpoint import export_policy, load_policy
from meta_rl.config import load_config
from meta_rl.encoder import EncoderSpec, conditioned_logits, encoder_spec, init_encoder
from meta_rl.encoder_tutor import EncoderTutor
from meta_rl.policy import PolicySpec, init_params, mlp
from meta_rl.trainer import Trainer

K, F, G = 5, 3, 2  # items, features per item, global columns


def _itemwise_spec() -> PolicySpec:
    # item j's features are columns j, K + j, 2K + j (block layout, as the envs'); then G globals
    item_cols = tuple(tuple(b * K + j for b in range(F)) for j in range(K))
    return PolicySpec(
        obs_dim=F * K + G,
        action_nvec=(K,),
        hidden_sizes=(6,),
        item_cols=item_cols,
        global_cols=tuple(range(F * K, F * K + G)),
        item_bias=True,
    )


def test_item_term_adds_each_items_features_times_u_z() -> None:
    """Against a loop over items written from the formula."""
    spec = _itemwise_spec()
    gen = torch.Generator().manual_seed(0)
    theta = init_params(spec, gen)
    theta["item_bias"] = torch.randn(K, generator=gen)
    espec = encoder_spec(spec, profile_dim=2, hidden=4, z_dim=3, item_logits=True)
    assert espec.item_features == F
    params = init_encoder(espec, gen)
    params["cond.item"] = torch.randn(F, 3, generator=gen)
    obs = torch.rand(2, 4, spec.obs_dim, generator=gen)  # (tasks, rows, obs_dim)
    z = torch.randn(2, 4, 3, generator=gen)
    got = conditioned_logits(spec, theta, params, obs, z)
    base = mlp(spec, theta, obs, bias0=z @ params["cond.weight"].T)
    want = base.clone()
    for j in range(K):
        x_j = obs[..., list(spec.item_cols[j])]  # (2, 4, F)
        want[..., j] += (x_j * (z @ params["cond.item"].T)).sum(-1)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, base)


def test_item_term_starts_at_zero_and_leaves_the_other_weights_as_they_were() -> None:
    spec = _itemwise_spec()
    plain = encoder_spec(spec, profile_dim=2, hidden=4, z_dim=3)
    with_item = encoder_spec(spec, profile_dim=2, hidden=4, z_dim=3, item_logits=True)
    a = init_encoder(plain, torch.Generator().manual_seed(1))
    b = init_encoder(with_item, torch.Generator().manual_seed(1))
    assert set(b) - set(a) == {"cond.item"} and not b["cond.item"].any()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    theta = init_params(spec, torch.Generator().manual_seed(2))
    obs, z = torch.rand(7, spec.obs_dim), torch.randn(7, 3)
    assert torch.equal(conditioned_logits(spec, theta, a, obs, z), conditioned_logits(spec, theta, b, obs, z))


def test_item_term_needs_an_itemwise_policy() -> None:
    dense = PolicySpec(obs_dim=4, action_nvec=(3,), hidden_sizes=(5,))
    with pytest.raises(ValueError, match="item-wise"):
        encoder_spec(dense, profile_dim=2, item_logits=True)
    with pytest.raises(ValueError, match="z_item_logits needs architecture: itemwise"):
        load_config(None, [*TINY_ENCODER_SETS, "z_item_logits=true"])
    with pytest.raises(ValueError, match="item_features"):
        EncoderSpec(obs_dim=4, action_nvec=(3,), profile_dim=2, cond_dim=5, item_features=-1)


def test_an_encoder_saved_without_the_item_term_loads_without_it() -> None:
    spec = EncoderSpec(obs_dim=4, action_nvec=(3,), profile_dim=2, cond_dim=5)
    old = {k: v for k, v in spec.to_dict().items() if k != "item_features"}
    assert EncoderSpec.from_dict(old) == spec and spec.item_features == 0
    with_item = EncoderSpec(obs_dim=4, action_nvec=(3,), profile_dim=2, cond_dim=5, item_features=3)
    assert EncoderSpec.from_dict(with_item.to_dict()) == with_item


def test_a_trained_item_term_moves_and_survives_export(tmp_path: Path) -> None:
    """A tiny SpacedRepetitionGoals-v0 run: ``U`` leaves zero, and the exported tutor gives
    the in-training tutor's logits."""
    torch.set_num_threads(1)
    sets = [*TINY_ENCODER_SETS, "env=MetaTutor/SpacedRepetitionGoals-v0", "z_item_logits=true"]
    sets += ["env_kwargs.n_items=4", "env_kwargs.n_topics=2", "env_kwargs.horizon=8"]
    sets += ["env_kwargs.session_length=4", "architecture=itemwise", "item_bias=true", "n_iterations=2"]
    t = Trainer(load_config(None, sets), tmp_path / "run", progress=False)
    t.train()
    policy = t.policy()
    t.close()
    assert isinstance(policy, EncoderTutor) and policy.espec.item_features == 4 + 2
    assert policy.encoder["cond.item"].abs().sum() > 0
    export_policy(policy, tmp_path / "export")
    loaded = load_policy(tmp_path / "export")
    assert isinstance(loaded, EncoderTutor) and loaded.espec == policy.espec
    gen = torch.Generator().manual_seed(3)
    obs = torch.rand(5, policy.spec.obs_dim, generator=gen)
    z = torch.randn(5, policy.espec.z_dim, generator=gen)
    torch.testing.assert_close(loaded.logits(obs, z), policy.logits(obs, z))
    check_step_data_reproduces_the_tutors_logits(policy)  # the item term's offset included
