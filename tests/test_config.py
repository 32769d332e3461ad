"""Config loading: types, unknown keys, overrides, per-algorithm dataclasses, shipped YAMLs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from meta_rl.config import (
    MAMLPPOConfig,
    PPOConfig,
    default_config_path,
    field_help,
    load_config,
    make_config,
    save_config,
)

REQUIRED = [
    "n_iterations",
    "meta_batch_size",
    "rollouts_per_task",
    "inner_lr",
    "inner_steps",
    "outer_epochs",
    "outer_lr",
    "clip_eps",
    "gamma",
    "gae_lambda",
    "first_order",
    "seed",
]


def test_required_keys_exist_and_every_key_is_documented() -> None:
    helps = field_help(MAMLPPOConfig)
    for k in REQUIRED:
        assert k in helps
    assert all(h for h in helps.values()), [k for k, h in helps.items() if not h]
    assert all(h for h in field_help(PPOConfig).values())


def test_yaml_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("inner_lr: 0.25\nouter_lr: 1e-3\nenv_kwargs: {n_skills: 4, horizon: 30}\n")
    cfg = load_config(path, ["env_kwargs.horizon=20", "first_order=true", "hidden_sizes=[32, 16]"], seed=7)
    assert isinstance(cfg, MAMLPPOConfig)
    assert cfg.inner_lr == 0.25 and cfg.outer_lr == 1e-3 and cfg.first_order is True and cfg.seed == 7
    assert cfg.env_kwargs == {"n_skills": 4, "horizon": 20}
    assert cfg.hidden_sizes == [32, 16]
    # an int is a valid float
    assert load_config(None, ["inner_lr=1"]).inner_lr == 1.0


def test_unknown_key_lists_valid_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("inner_learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown config key") as e:
        load_config(path)
    for k in REQUIRED:
        assert k in str(e.value)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("n_iterations=ten", "n_iterations"),
        ("n_iterations=2.5", "n_iterations"),
        ("first_order=1", "first_order"),
        ("meta_batch_size=true", "meta_batch_size"),
        ("env_kwargs=5", "env_kwargs"),
        ("head=tree", "head"),
        ("baseline=mean", "baseline"),
        ("n_iterations=0", "n_iterations"),
        ("gamma=1.5", "gamma"),
        ("inner_lr=-1", "inner_lr must be > 0"),
        ("sampler=dask", "sampler must be one of"),
        ("num_workers=0", "num_workers must be >= 1"),
        ("novalue", "key=value"),
    ],
)
def test_ill_typed_or_invalid_values_are_errors(override: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_config(None, [override])


def test_algorithms_have_their_own_keys() -> None:
    cfg = load_config(None, ["algo=ppo"])
    assert isinstance(cfg, PPOConfig)
    with pytest.raises(ValueError, match=r"unknown config key.*first_order"):
        make_config({"algo": "ppo", "first_order": True})
    with pytest.raises(ValueError, match="unknown algo"):
        make_config({"algo": "reinforce"})
    # same number of episodes per iteration as one MAML iteration unless set explicitly (not the
    # same env steps where episodes end early)
    assert cfg.pooled_episodes == cfg.meta_batch_size * cfg.rollouts_per_task * (cfg.inner_steps + 1)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["env_kwargs.n_skills=3", "meta_sgd=true", "inner_steps=2"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_shipped_skill_graph_config_is_valid() -> None:
    path = default_config_path("MetaTutor/SkillGraph-v0")
    assert path is not None and path.name == "skill_graph.yaml"
    raw = yaml.safe_load(path.read_text())
    cfg = load_config(path)
    assert cfg.env == "MetaTutor/SkillGraph-v0"
    assert set(REQUIRED) <= set(raw)  # the tuned values are spelled out


@pytest.mark.parametrize(
    "env_id",
    [
        "MetaTutor/SkillGraph-v0",
        "MetaTutor/ZPD-v0",
        "MetaTutor/SpacedRepetition-v0",
        "MetaTutor/SpacedRepetitionGoals-v0",
    ],
)
def test_every_shipped_config_builds_its_policy(env_id: str) -> None:
    from meta_rl.envspec import EnvSpec
    from meta_rl.trainer import policy_spec

    cfg = load_config(default_config_path(env_id))
    assert cfg.env == env_id
    for privileged in (False, True):
        spec = policy_spec(cfg, EnvSpec(env_id, cfg.env_kwargs, privileged))
        # SpacedRepetition's action picks a card: its configs use the item-wise policy
        assert spec.itemwise == ("SpacedRepetition" in env_id)


def test_switching_algorithm_reuses_a_file_of_the_other_algorithm() -> None:
    path = default_config_path("MetaTutor/SkillGraph-v0")
    maml = load_config(path)
    pooled = load_config(path, ["algo=ppo", "privileged=true"])
    assert isinstance(pooled, PPOConfig) and pooled.privileged
    shared = {k: v for k, v in pooled.to_dict().items() if k not in ("algo", "privileged")}
    assert shared == {k: v for k, v in maml.to_dict().items() if k in shared}
    # a MAML-only key typed for the pooled algorithm is still an error
    with pytest.raises(ValueError, match="first_order"):
        load_config(path, ["algo=ppo", "first_order=true"])


def test_choices_are_the_ones_the_modules_accept() -> None:
    from meta_rl.gae import BASELINES
    from meta_rl.maml import INNER_OBJECTIVES
    from meta_rl.policy import ACTIVATIONS

    for key, choices in (
        ("activation", ACTIVATIONS),
        ("baseline", BASELINES),
        ("inner_objective", INNER_OBJECTIVES),
    ):
        for c in choices:
            assert getattr(make_config({key: c}), key) == c
        with pytest.raises(ValueError, match=re.escape(f"{key} must be one of {list(choices)}")):
            make_config({key: "nope"})
