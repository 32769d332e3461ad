"""Checkpoints and exports: round trips, atomic writes, safe loading of foreign files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from meta_rl.checkpoint import (
    export_policy,
    load_checkpoint,
    load_policy,
    policy_from_state,
    save_checkpoint,
)
from meta_rl.config import MAMLPPOConfig
from meta_rl.envspec import EnvSpec
from meta_rl.maml import InnerUpdate
from meta_rl.policy import PolicySpec, init_params
from meta_rl.tutor import AdvantageSettings, TutorPolicy

KW = {"n_skills": 3, "n_content": 2, "horizon": 10}


def _policy(meta_sgd: bool = False, privileged: bool = False) -> TutorPolicy:
    env = EnvSpec("MetaTutor/SkillGraph-v0", KW, privileged)
    spec = PolicySpec(env.obs_dim, env.action_nvec, (8, 8))
    params = init_params(spec, torch.Generator().manual_seed(0), out_gain=1.0)
    lrs = {k: torch.rand_like(v) for k, v in params.items()} if meta_sgd else None
    inner = InnerUpdate(lrs if lrs is not None else 0.3, "vpg", 0.01)
    return TutorPolicy(spec, env, params, inner, AdvantageSettings(0.9, 0.8, "time_mean"), 7)


def _same(a: TutorPolicy, b: TutorPolicy) -> None:
    assert a.meta() == b.meta()
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])
    if a.inner_lrs is not None:
        assert all(torch.equal(a.inner_lrs[k], b.inner_lrs[k]) for k in a.inner_lrs)


def _full(pol: TutorPolicy, **state: object) -> dict[str, object]:
    """A complete checkpoint state of ``pol`` (what the trainer writes, less the optimisers)."""
    config = MAMLPPOConfig(env=pol.env.env_id, env_kwargs=dict(pol.env.env_kwargs), hidden_sizes=[8, 8])
    full = {"policy_meta": pol.meta(), "params": pol.params, "config": config.to_dict()}
    full.update({"inner_lrs": pol.inner_lrs, "iteration": 0, "env_steps": 0, **state})
    return full


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/meta_tutor_pwned"),))


def test_checkpoint_round_trip_is_exact(tmp_path: Path) -> None:
    pol = _policy(meta_sgd=True)
    rng = np.random.default_rng(5)
    state = _full(pol, rng=rng.bit_generator.state, iteration=3)
    save_checkpoint(tmp_path / "c.pt", state)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind
    loaded = load_checkpoint(tmp_path / "c.pt")
    _same(pol, policy_from_state(loaded))
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = loaded["rng"]
    assert rng2.integers(0, 2**62) == rng.integers(0, 2**62)


def test_foreign_files_are_rejected_clearly(tmp_path: Path) -> None:
    marker = Path("/tmp/meta_tutor_pwned")
    marker.unlink(missing_ok=True)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "meta-tutor-checkpoint", "x": _Evil()}, protocol=2))
    with pytest.raises(ValueError, match="not a meta-tutor checkpoint"):
        load_checkpoint(evil)
    assert not marker.exists()  # weights_only: the payload never ran
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(ValueError, match="not a meta-tutor checkpoint"):
        load_checkpoint(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(ValueError, match="not a meta-tutor checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint(path, _full(_policy(), iteration=1))
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        save_checkpoint(path, _full(_policy(), iteration=2, bad=lambda: 0))  # not serialisable
    assert load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


@pytest.mark.parametrize("meta_sgd", [False, True])
def test_export_is_pickle_free_and_round_trips(tmp_path: Path, meta_sgd: bool) -> None:
    pol = _policy(meta_sgd=meta_sgd, privileged=True)
    export_policy(pol, tmp_path / "exp")
    meta = json.loads((tmp_path / "exp" / "policy.json").read_text())
    assert meta["env"] == {"env_id": "MetaTutor/SkillGraph-v0", "env_kwargs": KW, "privileged": True}
    assert meta["policy"]["hidden_sizes"] == [8, 8] and meta["inner"]["objective"] == "vpg"
    for path in (tmp_path / "exp", tmp_path / "exp" / "policy.json", tmp_path / "exp" / "policy.safetensors"):
        _same(pol, load_policy(path))
    # the same observations give the same action probabilities
    back = load_policy(tmp_path / "exp")
    prof = pol.env.distribution().sample(1, "test")[0]
    obs = np.random.default_rng(0).random((5, pol.env.env_obs_dim)).astype(np.float32)
    a = pol.with_params(pol.params, prof).action_probs(obs)
    b = back.with_params(back.params, prof).action_probs(obs)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-5)


def test_export_with_wrong_shapes_is_rejected(tmp_path: Path) -> None:
    pol = _policy()
    export_policy(pol, tmp_path / "exp")
    meta = json.loads((tmp_path / "exp" / "policy.json").read_text())
    meta["policy"]["hidden_sizes"] = [9, 8]
    (tmp_path / "exp" / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not match the architecture"):
        load_policy(tmp_path / "exp")
    (tmp_path / "exp" / "policy.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a meta-tutor export"):
        load_policy(tmp_path / "exp")
