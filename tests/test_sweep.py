"""``meta-tutor sweep`` on a local 2-CPU Ray instance: trials are ordinary run directories,
the summary over seeds, resuming, failed trials, and sweep files rejected before any run."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray")

from meta_rl.checkpoint import load_policy  # noqa: E402
from meta_rl.cli import main  # noqa: E402
from meta_rl.config import default_config_path, load_config  # noqa: E402
from meta_rl.sweep import INSTALL_HINT, load_sweep, run_sweep, t_interval  # noqa: E402
from meta_rl.trainer import WALL_COLUMNS, Trainer  # noqa: E402

SET = {
    "n_iterations": 2,
    "meta_batch_size": 2,
    "rollouts_per_task": 2,
    "val_tasks": 2,
    "val_episodes": 2,
    "eval_every": 1,
    "hidden_sizes": [8],
    "outer_epochs": 1,
    "n_minibatches": 1,
    "tensorboard": False,
    "env_kwargs.n_skills": 3,
    "env_kwargs.n_content": 2,
    "env_kwargs.horizon": 10,
}
NAMES = ["inner_lr=0.3,seed=0", "inner_lr=0.3,seed=1", "inner_lr=0.5,seed=0", "inner_lr=0.5,seed=1"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _write(path: Path, **sweep) -> Path:
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny sweep (2 inner_lr values x 2 seeds), run once through the CLI."""
    d = tmp_path_factory.mktemp("sweep")
    f = _write(d / "sweep.yaml", out=str(d / "out"), set=SET, seeds=[0, 1], grid={"inner_lr": [0.3, 0.5]})
    assert main(["sweep", "--config", str(f)]) == 0
    return f, d / "out"


def test_trials_are_ordinary_run_directories(swept, tmp_path: Path) -> None:
    _, out = swept
    assert sorted(p.name for p in out.iterdir() if p.name in NAMES) == NAMES
    run = out / "inner_lr=0.5,seed=1"
    assert {"config.yaml", "metrics.csv", "checkpoint.pt", "best.pt"} <= {p.name for p in run.iterdir()}
    # base config (the env's shipped one) + set + grid value + seed, trained as by Trainer directly
    overrides = [f"{k}={json.dumps(v)}" for k, v in SET.items()] + ["inner_lr=0.5"]
    cfg = load_config(default_config_path("MetaTutor/SkillGraph-v0"), overrides, seed=1)
    assert load_config(run / "config.yaml") == cfg
    Trainer(cfg, tmp_path / "direct", progress=False).train()
    assert _rows(run) == _rows(tmp_path / "direct")
    assert load_policy(run).spec == load_policy(tmp_path / "direct").spec


def test_summary_over_seeds(swept, capsys) -> None:
    f, out = swept
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "post" and len(summary["settings"]) == 2
    for s in summary["settings"]:
        runs = [out / f"{s['setting']},seed={seed}" for seed in (0, 1)]
        last = [float(_rows(r)[-1]["val_return_k1"]) for r in runs]
        assert s["n"] == 2 and s["mean"] == pytest.approx(np.mean(last))
        assert s["ci_low"] <= s["mean"] <= s["ci_high"]
    means = [s["mean"] for s in summary["settings"]]
    assert means == sorted(means, reverse=True)
    md = (out / "summary.md").read_text()
    assert "post-adaptation" in md and f"meta-tutor sweep --config {f} --summary-only" in md
    assert md.count("| inner_lr=") == 2


def test_rerun_resumes_and_summary_only_rebuilds(swept, capsys) -> None:
    f, out = swept
    before = (out / "summary.json").read_text()
    metrics = {n: _rows(out / n) for n in NAMES}
    assert main(["sweep", "--config", str(f)]) == 0  # every trial finished: resumed, nothing added
    assert {n: _rows(out / n) for n in NAMES} == metrics
    assert (out / "summary.json").read_text() == before
    (out / "summary.json").unlink()
    capsys.readouterr()
    assert main(["sweep", "--config", str(f), "--summary-only"]) == 0
    assert (out / "summary.json").read_text() == before
    assert "| inner_lr=0.3 | 2 |" in capsys.readouterr().out


def test_failed_trial_is_named_and_exits_nonzero(swept, tmp_path: Path, capsys) -> None:
    # a run directory trained with inner_lr=0.3 cannot be resumed as inner_lr=0.4
    _, out = swept
    shutil.copytree(out / "inner_lr=0.3,seed=0", tmp_path / "out" / "inner_lr=0.4,seed=0")
    f = _write(tmp_path / "s.yaml", out=str(tmp_path / "out"), set=SET, seeds=[0], grid={"inner_lr": [0.4]})
    assert main(["sweep", "--config", str(f)]) == 1
    err = capsys.readouterr().err
    assert "1 of 1 trials failed" in err and "inner_lr=0.4,seed=0: ValueError" in err
    assert "cannot resume with a different config" in err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": [0, 1]}, "unknown sweep key.*'seed'.*valid keys: out, seeds"),
        ({"seeds": []}, "'seeds' must be a non-empty list"),
        ({"seeds": [0, 0]}, "distinct integers"),
        ({"out": None}, "'out' is required"),
        ({"set": {**SET, "sampler": "ray"}}, "local sampler"),
        ({"grid": {"sampler": ["local", "ray"]}}, "local sampler"),
        # (inner_lr: [-1] would pass: TrainConfig does not check the sign of inner_lr)
        ({"grid": {"activation": ["tanh", "sigmoid"]}}, "trial activation=sigmoid,seed=0: .*activation"),
        ({"grid": {"inner_lr": [0.3, 0.3]}}, "repeated values"),
        ({"grid": {"env_kwargs.n_skils": [3]}}, "trial env_kwargs.n_skils=3,seed=0: .*n_skils"),
        ({"set": {"n_iteration": 3}}, "unknown config key.*n_iteration"),
        ({"metric": "mean"}, "'metric' must be one of"),
    ],
)
def test_bad_sweep_file_fails_before_any_run(tmp_path: Path, capsys, change, message) -> None:
    sweep = {"out": str(tmp_path / "out"), "set": SET, "seeds": [0], "grid": {"inner_lr": [0.3]}, **change}
    f = _write(tmp_path / "s.yaml", **sweep)
    with pytest.raises(ValueError, match=message):
        load_sweep(f)
    assert main(["sweep", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meta-tutor sweep: error: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_missing_ray_and_ray_free_imports(tmp_path: Path, monkeypatch) -> None:
    f = _write(tmp_path / "s.yaml", out=str(tmp_path / "out"), set=SET, seeds=[0])
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=re.escape(INSTALL_HINT)):
        run_sweep(load_sweep(f))
    code = "import sys, meta_rl.sweep, meta_rl.commands.sweep; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_t_interval_and_missing_runs(tmp_path: Path, capsys) -> None:
    assert all(math.isnan(x) for x in t_interval([1.0]))
    low, high = t_interval([1.0, 2.0, 3.0])
    assert (low + high) / 2 == pytest.approx(2.0) and high - 2.0 == pytest.approx(4.302653 / math.sqrt(3))
    f = _write(tmp_path / "s.yaml", out=str(tmp_path / "out"), set=SET, seeds=[0], grid={"inner_lr": [0.3]})
    assert main(["sweep", "--config", str(f), "--summary-only"]) == 0  # nothing run yet: n/a, no error
    assert "| inner_lr=0.3 | 0 of 1 | n/a | n/a |" in capsys.readouterr().out


def test_shipped_example_sweeps_are_valid(tmp_path: Path) -> None:
    files = sorted((Path(__file__).resolve().parent.parent / "meta_rl" / "configs" / "sweeps").glob("*.yaml"))
    assert files
    for f in files:
        sweep = load_sweep(f, out=tmp_path / f.stem)
        assert len(sweep.trials) >= 2 and not (tmp_path / f.stem).exists()
