"""The calibration path end to end: log -> fitted population -> meta-training -> evaluation."""

from __future__ import annotations

import json

import envs
from meta_rl.checkpoint import load_checkpoint
from meta_rl.cli import main as cli_main
from meta_rl.config import make_config
from meta_rl.trainer import Trainer

ENV = "MetaTutor/SkillGraph-v0"
KW = '{"n_skills": 3, "n_content": 2, "horizon": 12, "prerequisites": "chain"}'


def test_simulate_calibrate_train_evaluate(tmp_path, capsys) -> None:
    log, pop = tmp_path / "log.csv", tmp_path / "population.json"
    sim = ["simulate-log", "--env", ENV, "--n-students", "60", "--length", "10", "--env-kwargs", KW]
    assert cli_main([*sim, "--out", str(log)]) == 0
    assert (
        cli_main(["calibrate", "--env", ENV, "--log", str(log), "--out", str(pop), "--env-kwargs", KW]) == 0
    )
    run = tmp_path / "run"
    # no env kwargs and no --env: train takes both from the population (fitted with KW)
    overrides = ["n_iterations=2", "meta_batch_size=3", "rollouts_per_task=3",
                 "eval_every=2", "val_tasks=3", "val_episodes=2", "tensorboard=false"]  # fmt: skip
    args = ["train", "--population", str(pop), "--out", str(run), "--no-progress"]
    assert cli_main(args + [a for o in overrides for a in ("--set", o)]) == 0
    cfg = load_checkpoint(run / "checkpoint.pt")["config"]
    assert cfg["population"] == str(pop)
    assert cfg["env"] == ENV and cfg["env_kwargs"] == json.loads(KW)
    # the run's validation students are fitted students of the population, not the env's default ones
    _, fitted = envs.load_profiles(pop)
    trainer = Trainer(make_config(cfg), run, resume=True, progress=False)
    assert all(p.to_dict() in fitted for p in trainer.val_profiles)
    out = tmp_path / "eval"
    test_file = tmp_path / "population.test.json"
    assert cli_main(["evaluate", "--checkpoint", str(run), "--profiles", str(test_file), "--adapt-steps", "1",
                     "--eval-episodes", "2", "--val-profiles", "2", "--methods", "maml_ppo", "random",
                     "--out", str(out)]) == 0  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert res["n_profiles"] == len(envs.load_profiles(test_file)[1])
    assert "population.test.json" in res["split"]
    assert (
        "raw" not in (run / "config.yaml").read_text() and "u0000" not in (out / "results.json").read_text()
    )


def test_population_settings_conflicts_name_both_values(tmp_path) -> None:
    import pytest

    from envs.calibration.population import check_population_settings, population_settings

    pop = tmp_path / "p.json"
    (tmp_path / "p.meta.json").write_text(json.dumps({"env_id": ENV, "env_kwargs": {"n_skills": 3}}))
    assert population_settings(pop) == (ENV, {"n_skills": 3})
    assert population_settings(tmp_path / "p.test.json") == (ENV, {"n_skills": 3})
    assert population_settings(tmp_path / "plain.json") == (None, {})
    check_population_settings(pop, ENV, {"n_skills": 3, "horizon": 9})
    with pytest.raises(ValueError, match=r"fitted for n_skills=3, the run has n_skills=4"):
        check_population_settings(pop, ENV, {"n_skills": 4}, "the run")
    with pytest.raises(ValueError, match="is for MetaTutor/SkillGraph-v0"):
        check_population_settings(pop, "MetaTutor/ZPD-v0", {})
    # a key the run leaves out counts with the env's default (SkillGraph: n_skills=4)
    with pytest.raises(ValueError, match=r"fitted for n_skills=3, the run has n_skills=4"):
        check_population_settings(pop, ENV, {}, "the run")
