"""Profiles and trained tutors fit together: the registered defaults, ``profiles --like RUN``,
the fit check of ``evaluate --profiles`` and ``export --checkpoint``."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

import envs
from meta_rl import adapt, load_policy
from meta_rl.cli import main

#: the shipped config of each env, shrunk to seconds (keys every shipped config accepts)
TINY = [
    "n_iterations=1",
    "pretrain_iterations=0",
    "meta_batch_size=2",
    "rollouts_per_task=2",
    "n_minibatches=1",
    "outer_epochs=1",
    "eval_every=1",
    "val_tasks=2",
    "val_episodes=1",
    "tensorboard=false",
]
SG = "MetaTutor/SkillGraph-v0"


def train_tiny(env_id: str, out: Path, *extra: str) -> Path:
    sets = [a for kv in [*TINY, *extra] for a in ("--set", kv)]
    assert main(["train", "--env", env_id, "--out", str(out), "--no-progress", *sets]) == 0
    return out


@pytest.fixture(scope="module")
def sg_run(tmp_path_factory) -> Path:
    return train_tiny(SG, tmp_path_factory.mktemp("sg") / "run")


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_default_profiles_work_with_a_tutor_trained_from_the_shipped_config(env_id: str, tmp_path) -> None:
    run = train_tiny(env_id, tmp_path / "run")
    policy = load_policy(run)
    profiles = envs.sample_profiles(env_id, 2)  # the registered defaults, no env kwargs
    envs.check_profiles_fit(policy.env.env_id, policy.env.env_kwargs, profiles)
    mine = adapt(policy, profiles[0], steps=1, rollouts=2)
    env = gym.make(env_id)  # the defaults again: the tutor's observation and action spaces
    obs, _ = env.reset(seed=0, options={"profile": profiles[0]})
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(mine.act(obs))
        done = terminated or truncated


def test_profiles_like_run_round_trip_through_evaluate(tmp_path, capsys) -> None:
    """A run trained with non-default env kwargs: --like gives fitting profiles, evaluate takes them."""
    run = train_tiny(SG, tmp_path / "run6", "env_kwargs.n_skills=6", "env_kwargs.horizon=12")
    like = tmp_path / "like.json"
    assert main(["profiles", "--like", str(run), "--n", "3", "--split", "ood", "--out", str(like)]) == 0
    env_id, profiles = envs.load_profiles(like)
    assert env_id == SG and len(profiles) == 3 and all(len(p["learn"]) == 6 for p in profiles)
    assert profiles == envs.sample_profiles(None, 3, split="ood", like=run)
    assert profiles == envs.sample_profiles(SG, 3, split="ood", n_skills=6, horizon=12)
    out = tmp_path / "eval"
    argv = ["evaluate", "--checkpoint", str(run), "--profiles", str(like), "--out", str(out)]
    fast = [
        "--methods",
        "random",
        "round_robin",
        "--adapt-steps",
        "1",
        "--eval-episodes",
        "2",
        "--val-profiles",
        "2",
    ]
    assert main([*argv, *fast]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["n_profiles"] == 3 and set(results["methods"]) == {"random", "round_robin"}
    capsys.readouterr()
    # the default-setting profiles do not fit this run: a clear error naming the kwargs and the fix
    default = tmp_path / "default.json"
    assert main(["profiles", "--env", SG, "--n", "2", "--out", str(default)]) == 0
    assert (
        main(["evaluate", "--checkpoint", str(run), "--profiles", str(default), "--out", str(out), *fast])
        == 2
    )
    err = capsys.readouterr().err
    assert "n_skills=6" in err and "'horizon': 12" in err and f"--like {run}" in err
    assert "profile 0" in err and "Traceback" not in err


def test_sample_profiles_like_errors(sg_run: Path, tmp_path) -> None:
    with pytest.raises(ValueError, match="not MetaTutor/ZPD-v0"):
        envs.sample_profiles("MetaTutor/ZPD-v0", 1, like=sg_run)
    with pytest.raises(ValueError, match="not both"):
        envs.sample_profiles(None, 1, like=sg_run, n_skills=4)
    with pytest.raises(ValueError, match="needs an env id"):
        envs.sample_profiles(None, 1)
    with pytest.raises(FileNotFoundError, match="no such run"):
        envs.sample_profiles(None, 1, like=tmp_path / "missing")
    assert envs.trained_env(sg_run / "metrics.csv") == envs.trained_env(sg_run)  # a file in the run
    with pytest.raises(ValueError, match="profiles are for MetaTutor/ZPD-v0"):
        envs.check_profiles_fit(
            SG, {}, envs.sample_profiles("MetaTutor/ZPD-v0", 1), profiles_env_id="MetaTutor/ZPD-v0"
        )


def test_profiles_command_errors(sg_run: Path, tmp_path, capsys) -> None:
    out = str(tmp_path / "p.json")
    assert main(["profiles", "--out", out]) == 2
    assert "--env ENV_ID or --like RUN" in capsys.readouterr().err
    assert main(["profiles", "--env", "MetaTutor/ZPD-v0", "--like", str(sg_run), "--out", out]) == 2
    assert "not --env MetaTutor/ZPD-v0" in capsys.readouterr().err
    assert main(["profiles", "--env", SG, "--env-kwargs", "[1]", "--out", out]) == 2
    assert "JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --like and --env-kwargs exclude each other
        main(["profiles", "--like", str(sg_run), "--env-kwargs", "{}", "--out", out])


def test_export_takes_checkpoint_like_evaluate(sg_run: Path, tmp_path, capsys) -> None:
    assert main(["export", "--checkpoint", str(sg_run), "--out", str(tmp_path / "a")]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert load_policy(tmp_path / "a").env.env_id == SG
    # the former positional form still works, with a deprecation note
    assert main(["export", str(sg_run), "--out", str(tmp_path / "b")]) == 0
    assert "deprecated; use --checkpoint RUN" in capsys.readouterr().err
    assert (tmp_path / "b" / "policy.safetensors").read_bytes() == (
        tmp_path / "a" / "policy.safetensors"
    ).read_bytes()
    assert main(["export", "--out", str(tmp_path / "c")]) == 2
    assert "--checkpoint RUN is required" in capsys.readouterr().err
    assert main(["export", str(sg_run), "--checkpoint", str(sg_run), "--out", str(tmp_path / "c")]) == 2
