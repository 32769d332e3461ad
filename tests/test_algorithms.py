"""The algorithm registry: configs per algorithm, keys of another algorithm rejected by
name, shipped per-env sections, ``derived_config`` and ``meta-tutor train`` on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TINY_TRAIN

from meta_rl.algorithms import ALGORITHMS, derived_config
from meta_rl.algorithms.derive import iteration_episodes
from meta_rl.cli import main
from meta_rl.config import (
    ALGORITHMS as CONFIGS,
)
from meta_rl.config import (
    MAMLPlusPlusPPOConfig,
    PPOConfig,
    ReptilePPOConfig,
    default_config_path,
    load_config,
    make_config,
)

ENVS = ["MetaTutor/SkillGraph-v0", "MetaTutor/ZPD-v0", "MetaTutor/SpacedRepetition-v0"]
ENVS += ["MetaTutor/SpacedRepetitionGoals-v0"]


def test_one_registry_names_every_algorithm_and_its_config() -> None:
    names = {"maml_ppo", "ppo", "reptile_ppo", "mamlpp_ppo", "encoder_ppo", "encoder_maml_ppo"}
    assert set(ALGORITHMS) == names
    assert {k: v.config_class for k, v in ALGORITHMS.items()} == CONFIGS
    assert isinstance(load_config(None, ["algo=reptile_ppo"]), ReptilePPOConfig)
    assert isinstance(load_config(None, ["algo=mamlpp_ppo"]), MAMLPlusPlusPPOConfig)


@pytest.mark.parametrize(
    ("overrides", "key", "owner"),
    [
        (["algo=ppo", "lslr=true"], "lslr", "'mamlpp_ppo'"),
        (["algo=reptile_ppo", "meta_sgd=true"], "meta_sgd", "'maml_ppo' / 'mamlpp_ppo'"),
        (["algo=maml_ppo", "outer_update=adam"], "outer_update", "'reptile_ppo'"),
    ],
)
def test_a_key_of_another_algorithm_is_rejected_by_name(overrides, key, owner) -> None:
    with pytest.raises(ValueError, match=f"unknown config key '{key}' for algo .*belongs to algo {owner}"):
        load_config(None, overrides)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"inner_epochs": 0}, "inner_epochs must be >= 1"),
        ({"outer_update": "sgd"}, "outer_update must be one of"),
        ({"meta_step_size": 1.5}, r"meta_step_size must lie in \(0, 1\]"),
    ],
)
def test_reptile_settings_are_checked(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_config({"algo": "reptile_ppo", **change})


def test_mamlpp_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="lslr and meta_sgd exclude each other"):
        make_config({"algo": "mamlpp_ppo", "lslr": True})  # meta_sgd is on by default
    with pytest.raises(ValueError, match="first_order_iterations must be >= 0"):
        make_config({"algo": "mamlpp_ppo", "first_order_iterations": -1})
    with pytest.raises(ValueError, match="outer_lr_min must lie in"):
        make_config({"algo": "mamlpp_ppo", "outer_lr_min": 1.0})


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_every_shipped_config_loads_for_every_algorithm(env: str, algo: str) -> None:
    cfg = load_config(default_config_path(env), [f"algo={algo}"])
    assert cfg.algo == algo and cfg.env == env


def test_algorithms_section_is_checked(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("algorithms: {sarsa: {inner_steps: 2}}\n")
    with pytest.raises(ValueError, match="unknown algo 'sarsa'"):
        load_config(f)
    f.write_text("algorithms: {reptile_ppo: {algo: ppo}}\n")
    with pytest.raises(ValueError, match="must not set 'algo'"):
        load_config(f)
    f.write_text("inner_steps: 1\nalgorithms: {reptile_ppo: {inner_steps: 3}}\n")
    assert load_config(f).inner_steps == 1  # the file's own algo (maml_ppo)
    assert load_config(f, ["algo=reptile_ppo"]).inner_steps == 3
    assert load_config(f, ["algo=reptile_ppo", "inner_steps=4"]).inner_steps == 4  # --set wins


def _old_baseline_config(cfg: dict, privileged: bool) -> PPOConfig:
    """What meta_rl/evaluation/runner.py _train_our_baseline built before derived_config
    (copied verbatim as the reference)."""
    ppo_keys = {f for f in PPOConfig.__dataclass_fields__}
    maml_cfg = CONFIGS[cfg["algo"]](**cfg)
    base = {k: v for k, v in cfg.items() if k in ppo_keys}
    base.update(
        algo="ppo",
        privileged=privileged,
        init_from="",
        episodes_per_iteration=maml_cfg.pooled_episodes,
        tensorboard=False,
        sampler="local",
        select_on="pre" if privileged else "post",
    )
    return PPOConfig(**base)


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("privileged", [False, True])
def test_derived_ppo_config_is_the_evaluations_baseline(env: str, privileged: bool) -> None:
    run = load_config(default_config_path(env), ["init_from=x.pt", "sampler=ray"]).to_dict()
    assert derived_config(run, "ppo", privileged=privileged) == _old_baseline_config(run, privileged)


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", ["reptile_ppo", "mamlpp_ppo", "maml_ppo"])
def test_derived_configs_keep_the_run_and_its_budget(env: str, algo: str) -> None:
    run_cfg = load_config(default_config_path(env), ["seed=3", "n_iterations=7", "tensorboard=true"])
    run = run_cfg.to_dict()
    d = derived_config(run, algo)
    assert d.algo == algo and not d.tensorboard and d.sampler == "local" and d.select_on == "post"
    for key in (
        "env",
        "env_kwargs",
        "architecture",
        "hidden_sizes",
        "seed",
        "n_iterations",
        "rollouts_per_task",
    ):
        assert getattr(d, key) == run[key], key
    target = run_cfg.pooled_episodes
    per_student = iteration_episodes(d) // d.meta_batch_size
    assert abs(iteration_episodes(d) - target) <= per_student / 2  # within half a student's episodes
    if algo == "reptile_ppo":
        assert iteration_episodes(d) == target  # K + 1 rounds: exact
    assert derived_config(run, algo, privileged=True).select_on == "pre"
    with pytest.raises(ValueError, match="unknown algo 'sarsa'"):
        derived_config(run, "sarsa")


def test_cli_lists_the_new_keys_and_trains_reptile(tmp_path: Path, capsys) -> None:
    assert main(["train", "--list-keys"]) == 0
    out = capsys.readouterr().out
    for key in ("[algo: reptile_ppo]", "outer_update:", "meta_step_size:", "[algo: mamlpp_ppo]", "lslr:"):
        assert key in out
    sets = [a for s in [*TINY_TRAIN, "algo=reptile_ppo", "n_iterations=2"] for a in ("--set", s)]
    assert main(["train", "--no-progress", "--out", str(tmp_path / "r"), *sets]) == 0
    assert (tmp_path / "r" / "best.pt").is_file()
    assert main(["train", "--out", str(tmp_path / "x"), "--set", "algo=ppo", "--set", "lslr=true"]) == 2
    assert "belongs to algo 'mamlpp_ppo'" in capsys.readouterr().err
