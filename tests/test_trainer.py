"""The training loop: reproducibility, resume after a kill, NaN guard, run directory, baselines."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_TRAIN

from meta_rl.adaptation import adaptation_curve, rollout_step_data
from meta_rl.checkpoint import load_checkpoint, load_policy
from meta_rl.config import load_config
from meta_rl.sampler import Sampler
from meta_rl.trainer import WALL_COLUMNS, Trainer, TrainingDiverged

TINY = [*TINY_TRAIN]
#: MAML++ with every component on (LSLR in place of the default Meta-SGD)
MAMLPP_ALL_SWITCHES = [
    "algo=mamlpp_ppo",
    "inner_steps=2",
    "first_order_iterations=2",
    "msl_anneal_iterations=3",
]
MAMLPP_ALL_SWITCHES += ["lslr=true", "meta_sgd=false", "cosine_outer_lr=true"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(f)]


def test_same_seed_same_metrics_and_run_directory(tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY, "tensorboard=true"])
    Trainer(cfg, tmp_path / "a", progress=False).train()
    Trainer(cfg, tmp_path / "b", progress=False).train()
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert len(a) == 4 and a == b
    assert {"config.yaml", "checkpoint.pt", "best.pt", "metrics.csv", "tb"} <= {
        p.name for p in (tmp_path / "a").iterdir()
    }
    assert any((tmp_path / "a" / "tb").iterdir())
    assert load_config(tmp_path / "a" / "config.yaml") == cfg
    # validation rows every eval_every iterations, with the adaptation curve
    assert [r["val_return_k1"] != "" for r in a] == [False, True, False, True]
    assert int(a[-1]["env_steps"]) == 4 * 4 * 3 * 8 * 2
    other = Trainer(load_config(None, [*TINY, "seed=1"]), tmp_path / "c", progress=False)
    other.train()
    assert _rows(tmp_path / "c") != a
    with pytest.raises(FileExistsError):
        Trainer(cfg, tmp_path / "a", progress=False)


def test_start_killed_in_its_first_iteration_can_start_again(tmp_path: Path) -> None:
    cfg = load_config(None, TINY)
    Trainer(cfg, tmp_path / "full", progress=False).train()
    Trainer(cfg, tmp_path / "killed", progress=False)  # header written, then killed: no row
    assert len(_rows(tmp_path / "killed")) == 0 and not (tmp_path / "killed" / "checkpoint.pt").exists()
    Trainer(cfg, tmp_path / "killed", progress=False).train()
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "full")
    with pytest.raises(FileExistsError):  # a run with rows is never overwritten
        Trainer(cfg, tmp_path / "killed", progress=False)


def test_one_tensorboard_event_file_however_many_train_calls(tmp_path: Path) -> None:
    t = Trainer(load_config(None, [*TINY, "tensorboard=true"]), tmp_path / "r", progress=False)
    for _ in range(4):
        t.train(max_iterations=1)  # as a sweep trial does
    t.close()
    assert len(list((tmp_path / "r" / "tb").iterdir())) == 1


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["algo=ppo", "n_minibatches=2"],
        ["meta_sgd=true", "inner_steps=2", "pretrain_iterations=1"],
        ["algo=reptile_ppo", "inner_steps=2", "outer_update=adam"],
        [*MAMLPP_ALL_SWITCHES],
    ],
)
def test_resume_after_kill_reproduces_uninterrupted_run(
    tmp_path: Path, monkeypatch, extra: list[str]
) -> None:
    cfg = load_config(None, [*TINY, *extra])
    Trainer(cfg, tmp_path / "full", progress=False).train()

    calls = {"n": 0}
    original = Sampler.collect

    def dying_collect(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # in the middle of the third iteration
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Sampler, "collect", dying_collect)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "killed", progress=False).train()
    monkeypatch.setattr(Sampler, "collect", original)
    assert 0 < load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["iteration"] < 4
    resumed = Trainer(cfg, tmp_path / "killed", resume=True, progress=False)
    resumed.train()
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "full")
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    for k in a["params"]:
        assert torch.equal(a["params"][k], b["params"][k])


def test_resume_rejects_a_changed_config(tmp_path: Path) -> None:
    Trainer(load_config(None, TINY), tmp_path / "r", progress=False).train(1)
    with pytest.raises(ValueError, match="inner_lr"):
        Trainer(load_config(None, [*TINY, "inner_lr=0.9"]), tmp_path / "r", resume=True, progress=False)


def test_non_finite_loss_stops_with_iteration_and_keeps_last_checkpoint(tmp_path: Path, monkeypatch) -> None:
    cfg = load_config(None, TINY)
    trainer = Trainer(cfg, tmp_path / "nan", progress=False)
    trainer.train(2)
    original = Sampler.collect

    def nan_collect(self, *args, **kwargs):
        roll = original(self, *args, **kwargs)
        roll.rewards[0, 0, 0] = float("nan")
        roll.returns[0, 0] = 0.0  # hide it from the return check: the loss must catch it
        return roll

    monkeypatch.setattr(Sampler, "collect", nan_collect)
    with pytest.raises(TrainingDiverged, match="iteration 2: loss is not finite"):
        trainer.train()
    state = load_checkpoint(tmp_path / "nan" / "checkpoint.pt")
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["params"].values())
    assert len(_rows(tmp_path / "nan")) == 2


def test_pooled_and_privileged_policies_share_the_checkpoint_format(tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY, "algo=ppo", "privileged=true"])
    trainer = Trainer(cfg, tmp_path / "oracle", progress=False)
    trainer.train()
    pol = load_policy(tmp_path / "oracle")
    assert (
        pol.algo == "ppo"
        and pol.env.privileged
        and pol.spec.obs_dim == pol.env.env_obs_dim + pol.env.profile_dim
    )
    profiles = pol.env.distribution().sample(3, "test", seed=0)
    res = adaptation_curve(pol, profiles, steps=2, rollouts_per_step=2, eval_episodes=2, seed=0)
    assert res.returns.shape == (3, 3) and np.isfinite(res.returns).all()


def test_learned_value_network_trains(tmp_path: Path) -> None:
    cfg = load_config(
        None, [*TINY, "algo=ppo", "baseline=value_net", "n_iterations=12", "value_lr=3e-3", "outer_epochs=4"]
    )
    trainer = Trainer(cfg, tmp_path / "v", progress=False)
    before = {k: v.detach().clone() for k, v in trainer.algo.value.items()}
    trainer.train()
    after = trainer.algo.value_detached()
    # prediction error on fresh episodes (never trained on) against their Monte-Carlo returns
    pol = trainer.policy()
    roll = Sampler(trainer.env, trainer.spec).collect(
        pol.params, trainer.dist.sample(40, "val", seed=9), 1, seed=123
    )
    errors = []
    for params in (before, after):
        _, returns = rollout_step_data(trainer.spec, roll, pol.advantage, params)
        with torch.no_grad():
            from meta_rl.policy import state_value

            pred = state_value(trainer.spec, params, roll.obs.reshape(40, -1, roll.obs.shape[-1])).reshape(
                roll.obs.shape[:3]
            )
        m = roll.mask
        errors.append(float(((pred[..., :-1] - returns)[m] ** 2).mean()))
    assert errors[1] < 0.5 * errors[0], errors
    assert float(_rows(tmp_path / "v")[-1]["value_loss"]) < float(_rows(tmp_path / "v")[0]["value_loss"])


SMALL_META = [
    "env_kwargs.n_skills=1",
    "env_kwargs.n_content=3",
    "env_kwargs.horizon=6",
    "env_kwargs.prerequisites=none",
    "meta_batch_size=10",
    "rollouts_per_task=16",
    "hidden_sizes=[32]",
    "outer_lr=3e-3",
    "inner_lr=1.0",
    "n_minibatches=2",
    "n_iterations=30",
    "eval_every=1000",
    "val_tasks=2",
    "val_episodes=1",
    "tensorboard=false",
]


def _lower_ci(diff: np.ndarray) -> float:
    """Lower end of the 95 % confidence interval of a mean of paired differences."""
    return float(diff.mean() - 1.96 * diff.std(ddof=1) / np.sqrt(len(diff)))


def test_short_meta_training_learns_to_adapt_on_held_out_students(tmp_path: Path) -> None:
    # one skill, three content types: the preferred content (hidden, per student) must be
    # found by the inner update; ~60 k env steps of meta-training
    trainer = Trainer(load_config(None, SMALL_META), tmp_path / "meta", progress=False)
    initial = trainer.policy()
    trainer.train()
    held_out = trainer.dist.sample(60, "val", seed=3)
    # the same seed gives both policies the same students and env randomness (paired)
    before = adaptation_curve(initial, held_out, steps=1, rollouts_per_step=16, eval_episodes=20, seed=1)
    after = adaptation_curve(
        trainer.policy(), held_out, steps=1, rollouts_per_step=16, eval_episodes=20, seed=1
    )
    # post-adaptation return improved over the initial policy's post-adaptation return
    assert _lower_ci(after.returns[:, 1] - before.returns[:, 1]) > 0, (
        before.mean_returns(),
        after.mean_returns(),
    )
    # and after meta-training, adaptation helps: post-adaptation beats pre-adaptation
    assert _lower_ci(after.returns[:, 1] - after.returns[:, 0]) > 0, after.mean_returns()


def test_cli_train_resume_and_export(tmp_path: Path, capsys) -> None:
    from meta_rl.cli import main

    out = tmp_path / "run"
    sets = [x for s in TINY if not s.startswith("n_iterations") for x in ("--set", s)]
    args = [
        "train",
        "--env",
        "MetaTutor/SkillGraph-v0",
        "--out",
        str(out),
        "--seed",
        "3",
        "--no-progress",
        *sets,
    ]
    assert main([*args, "--set", "n_iterations=2"]) == 0
    assert "done: 2 iterations" in capsys.readouterr().out
    assert load_config(out / "config.yaml").seed == 3
    # the run exists: refuse to overwrite it, continue it with --resume
    assert main([*args, "--set", "n_iterations=2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--set", "n_iterations=3"]) == 0
    assert len(_rows(out)) == 3
    capsys.readouterr()
    # resuming a finished run trains nothing and says so (no 'nan' return)
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("already done: 3 iterations") and "nan" not in said and len(_rows(out)) == 3
    assert main(["train", "--out", str(tmp_path / "x"), "--set", "inner_learning_rate=1"]) == 2
    assert "valid keys" in capsys.readouterr().err
    assert main(["export", str(out), "--out", str(tmp_path / "exported")]) == 0
    pol = load_policy(tmp_path / "exported")
    assert pol.env.env_id == "MetaTutor/SkillGraph-v0" and pol.env.env_kwargs["n_skills"] == 2


@pytest.mark.parametrize("algo", ["maml_ppo", "ppo"])
def test_target_kl_stops_the_epochs_early(tmp_path: Path, algo: str) -> None:
    free = Trainer(
        load_config(None, [*TINY, f"algo={algo}", "outer_epochs=6", "outer_lr=0.01"]), tmp_path / "a", False
    )
    free.train(1)
    capped = load_config(None, [*TINY, f"algo={algo}", "outer_epochs=6", "outer_lr=0.01", "target_kl=1e-7"])
    Trainer(capped, tmp_path / "b", progress=False).train(1)
    assert float(_rows(tmp_path / "a")[0]["epochs"]) == 6
    # the first update moves the policy, the next minibatch sees KL > 1.5 * target and stops
    assert float(_rows(tmp_path / "b")[0]["epochs"]) < 2


@pytest.mark.slow
def test_resume_after_sigkill_of_the_cli_process(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    sets = [x for s in TINY if not s.startswith("n_iterations") for x in ("--set", s)]
    base = [sys.executable, "-m", "meta_rl.cli", "train", "--no-progress", *sets, "--set", "n_iterations=8"]
    subprocess.run([*base, "--out", str(tmp_path / "full")], check=True, capture_output=True)
    proc = subprocess.Popen([*base, "--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and (not ckpt.exists() or load_checkpoint(ckpt)["iteration"] < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(ckpt)["iteration"] < 8
    subprocess.run([*base, "--out", str(tmp_path / "killed"), "--resume"], check=True, capture_output=True)
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "full")


@pytest.mark.parametrize("select_on", ["post", "pre"])
def test_best_checkpoint_is_the_best_validation_iteration(tmp_path: Path, select_on: str) -> None:
    cfg = load_config(
        None, [*TINY, "eval_every=1", "n_iterations=5", "outer_lr=0.01", f"select_on={select_on}"]
    )
    Trainer(cfg, tmp_path / "r", progress=False).train()
    column = "val_return_k1" if select_on == "post" else "val_return_k0"
    scores = [float(r[column]) for r in _rows(tmp_path / "r")]
    best = load_checkpoint(tmp_path / "r" / "best.pt")
    assert best["iteration"] == int(np.argmax(scores)) + 1  # saved after iteration argmax
    assert best["best_val"] == max(scores)


def test_kill_between_best_and_checkpoint_writes_keeps_best_pt_current(tmp_path: Path, monkeypatch) -> None:
    import meta_rl.rundir as trainer_module

    # a run whose best validation is neither the first (no checkpoint.pt to resume from yet)
    # nor the last iteration, so that later validations do not beat it
    for seed in (2, 0, 6, 7, 8, 9):
        cfg = load_config(
            None,
            [*TINY, "eval_every=1", "n_iterations=5", "outer_lr=0.03", "val_tasks=6", "val_episodes=4"],
            seed=seed,
        )
        full = tmp_path / f"full{seed}"
        Trainer(cfg, full, progress=False).train()
        scores = [float(r["val_return_k1"]) for r in _rows(full)]
        best_it = int(np.argmax(scores)) + 1  # the last improvement: later validations never beat it
        if 1 < best_it < cfg.n_iterations:
            break
    else:
        pytest.fail("no seed gives a run whose best validation is in the middle")
    reference = load_checkpoint(full / "best.pt")
    assert reference["iteration"] == best_it

    # that iteration writes two files (best.pt and checkpoint.pt): die between them
    original = trainer_module.save_checkpoint
    written: list[str] = []

    def dying_save(path, state):
        if state["iteration"] == best_it:
            if written:
                raise KeyboardInterrupt
            written.append(Path(path).name)
        original(path, state)

    monkeypatch.setattr(trainer_module, "save_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "killed", progress=False).train()
    monkeypatch.setattr(trainer_module, "save_checkpoint", original)
    assert written == ["best.pt"]  # best.pt is written first
    Trainer(cfg, tmp_path / "killed", resume=True, progress=False).train()
    assert _rows(tmp_path / "killed") == _rows(full)
    best = load_checkpoint(tmp_path / "killed" / "best.pt")
    assert best["iteration"] == best_it and best["best_val"] == max(scores)
    for k in reference["params"]:
        assert torch.equal(best["params"][k], reference["params"][k])


def test_checkpoint_records_the_real_env_steps_when_students_quit(tmp_path: Path) -> None:
    # pooled PPO matches MAML's budget in episodes; on ZPD students quit early, so the env
    # steps (what evaluation reports as the budget) must be counted, not episodes x horizon
    cfg = load_config(
        None,
        [
            "algo=ppo",
            "env=MetaTutor/ZPD-v0",
            "env_kwargs={n_skills: 2, horizon: 10, quit_threshold: 0.9}",
            "meta_batch_size=4",
            "rollouts_per_task=3",
            "hidden_sizes=[16]",
            "outer_epochs=1",
            "val_tasks=2",
            "val_episodes=1",
            "eval_every=2",
            "tensorboard=false",
            "n_iterations=2",
        ],
    )
    Trainer(cfg, tmp_path / "z", progress=False).train()
    rows = _rows(tmp_path / "z")
    state = load_checkpoint(tmp_path / "z" / "checkpoint.pt")
    assert state["env_steps"] == int(rows[-1]["env_steps"])
    assert 0 < state["env_steps"] < cfg.n_iterations * cfg.pooled_episodes * 10
