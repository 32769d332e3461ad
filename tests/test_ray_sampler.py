"""The Ray sampler on a local 2-CPU Ray instance: equality with the local sampler,
reproducibility, and replacement of a worker that dies mid-collection."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from helpers import TINY_TRAIN  # noqa: E402

from meta_rl.config import load_config  # noqa: E402
from meta_rl.envspec import EnvSpec  # noqa: E402
from meta_rl.policy import PolicySpec, init_params  # noqa: E402
from meta_rl.ray_sampler import (  # noqa: E402
    RaySampler,
    RolloutWorker,
    check_reachable,
    concat_rollouts,
    rollouts_to_arrays,
)
from meta_rl.sampler import Rollouts, Sampler  # noqa: E402
from meta_rl.trainer import WALL_COLUMNS, Trainer  # noqa: E402

SG = ("MetaTutor/SkillGraph-v0", {"n_skills": 3, "n_content": 2, "horizon": 10})
ZPD = ("MetaTutor/ZPD-v0", {"horizon": 15})
TINY = [*TINY_TRAIN, "n_iterations=3"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _setup(env_id: str, kw: dict, n_tasks: int) -> tuple[EnvSpec, PolicySpec, list, dict]:
    env = EnvSpec(env_id, kw)
    spec = PolicySpec(env.obs_dim, env.action_nvec, (16,))
    profiles = env.distribution().sample(n_tasks, "train", seed=3)
    per_task = [init_params(spec, torch.Generator().manual_seed(i)) for i in range(n_tasks)]
    batched = {k: torch.stack([p[k] for p in per_task]) for k in per_task[0]}
    return env, spec, profiles, batched


def _assert_same(a: Rollouts, b: Rollouts) -> None:
    for k in ("obs", "actions", "logp", "logits", "rewards", "mask", "terminated", "truncated"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    np.testing.assert_array_equal(a.lengths, b.lengths)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.metrics.keys() == b.metrics.keys()
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k])


def _one_worker_equals_local(
    env: EnvSpec, spec: PolicySpec, params, profiles, episodes: int, seed: int
) -> Rollouts:
    """Collect with one Ray worker and locally; assert they are equal; return the local rollouts."""
    local = Sampler(env, spec).collect(params, profiles, episodes, seed=seed)
    rs = RaySampler(env, spec, num_workers=1)
    try:
        _assert_same(rs.collect(params, profiles, episodes, seed=seed), local)
    finally:
        rs.close()
    return local


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(f)]


def test_arrays_round_trip_without_ray() -> None:
    env, spec, profiles, params = _setup(*SG, n_tasks=3)
    r = Sampler(env, spec).collect(params, profiles, 2, seed=5)
    _assert_same(concat_rollouts([rollouts_to_arrays(r)]), r)
    # the actor body is a plain class: its task slice equals a local collection of that slice
    w = RolloutWorker(env.to_dict(), {"obs_dim": spec.obs_dim, "action_nvec": spec.action_nvec})
    w.sampler = Sampler(env, spec)  # the same env with a 16-unit policy
    part = w.collect({k: v.numpy() for k, v in params.items()}, (1, 3), profiles[1:], 2, seed=9)
    assert w.pid() == os.getpid()
    local = Sampler(env, spec).collect({k: v[1:3] for k, v in params.items()}, profiles[1:], 2, seed=9)
    _assert_same(concat_rollouts([part]), local)


@pytest.mark.parametrize("env_id,kw", [SG, ZPD])
@pytest.mark.parametrize("layout", ["batched", "expanded", "shared"])
def test_one_worker_equals_local_sampler(env_id: str, kw: dict, layout: str) -> None:
    env, spec, profiles, params = _setup(env_id, kw, n_tasks=5)
    if layout == "expanded":  # theta expanded over the tasks, as in a MAML iteration
        params = {k: v[0].unsqueeze(0).expand(5, *v.shape[1:]) for k, v in params.items()}
    elif layout == "shared":  # unbatched, as in a pooled PPO iteration
        params = {k: v[0] for k, v in params.items()}
    local = _one_worker_equals_local(env, spec, params, profiles, 4, seed=4096)
    if env_id == ZPD[0]:  # early quits: episodes of different lengths survived the trip
        assert len(np.unique(local.lengths)) > 1


def test_one_worker_equals_local_sampler_with_an_itemwise_policy() -> None:
    env = EnvSpec("MetaTutor/SpacedRepetition-v0", {"n_items": 5, "horizon": 12, "session_length": 4})
    spec = PolicySpec(env.obs_dim, env.action_nvec, (8,), "tanh", *env.item_layout)
    profiles = env.distribution().sample(3, "train", seed=3)
    per_task = [init_params(spec, torch.Generator().manual_seed(i), out_gain=1.0) for i in range(3)]
    params = {k: torch.stack([p[k] for p in per_task]) for k in per_task[0]}
    _one_worker_equals_local(env, spec, params, profiles, 2, seed=11)


def test_two_workers_reproducible_and_same_env_streams() -> None:
    env, spec, profiles, params = _setup(*SG, n_tasks=5)
    rs = RaySampler(env, spec, num_workers=2)
    try:
        a = rs.collect(params, profiles, 3, seed=100)
        b = rs.collect(params, profiles, 3, seed=100)
        _assert_same(a, b)
        assert not torch.equal(a.actions, rs.collect(params, profiles, 3, seed=200).actions)
        # a policy that always takes the same action removes the action draws: what is left
        # (students' answers, forgetting …) must be the local sampler's env streams exactly
        det = {k: v.clone() for k, v in params.items()}
        det["l1.weight"].zero_()
        det["l1.bias"].fill_(-50.0)
        det["l1.bias"][:, 0] = 50.0
        det["l1.bias"][:, spec.action_nvec[0]] = 50.0
        local = Sampler(env, spec).collect(det, profiles, 3, seed=7)
        _assert_same(rs.collect(det, profiles, 3, seed=7), local)
    finally:
        rs.close()


def test_worker_killed_mid_collection_is_replaced_and_nothing_is_lost() -> None:
    env, spec, profiles, params = _setup(SG[0], {**SG[1], "horizon": 100}, n_tasks=2)
    rs = RaySampler(env, spec, num_workers=2)
    try:
        # a collection long enough (>= 1 s) that a kill after a tenth of it lands mid-task: early,
        # because under a loaded machine (pytest -n 2) the measured time can overstate the next
        # collection's by far, and a kill after the worker's task has finished replaces nothing
        episodes, dt = 1000, 0.0
        while dt < 1.0:
            episodes *= 2
            rs.collect(params, profiles, episodes, seed=11)  # the first call of a size builds its env
            t0 = time.perf_counter()
            expected = rs.collect(params, profiles, episodes, seed=11)
            dt = time.perf_counter() - t0
        pid = ray.get(rs.workers[1].pid.remote())
        timer = threading.Timer(dt / 10, os.kill, args=(pid, signal.SIGKILL))
        timer.start()
        got = rs.collect(params, profiles, episodes, seed=11)
        timer.join()
        assert rs.replacements == 1
        assert ray.get(rs.workers[1].pid.remote()) != pid
        _assert_same(got, expected)
    finally:
        rs.close()


def test_worker_that_keeps_dying_fails_clearly() -> None:
    env, spec, profiles, params = _setup(*SG, n_tasks=2)
    rs = RaySampler(env, spec, num_workers=2, max_replacements=0)
    try:
        ray.kill(rs.workers[0])
        with pytest.raises(RuntimeError, match=r"worker 0 died 1 times collecting tasks 0\.\.0"):
            rs.collect(params, profiles, 2, seed=1)
    finally:
        rs.close()


def test_training_with_ray_one_worker_equals_local_and_two_workers_reproduce(tmp_path: Path) -> None:
    Trainer(load_config(None, TINY), tmp_path / "local", progress=False).train()
    runs = {"one": 1, "two_a": 2, "two_b": 2}
    for name, n in runs.items():
        cfg = load_config(None, [*TINY, "sampler=ray", f"num_workers={n}"])
        t = Trainer(cfg, tmp_path / name, progress=False)
        try:
            t.train()
        finally:
            t.close()
    assert _rows(tmp_path / "one") == _rows(tmp_path / "local")
    assert _rows(tmp_path / "two_a") == _rows(tmp_path / "two_b")
    assert _rows(tmp_path / "two_a") != _rows(tmp_path / "local")


def test_training_survives_a_worker_killed_mid_iteration(tmp_path: Path, monkeypatch) -> None:
    cfg = load_config(None, [*TINY, "sampler=ray", "num_workers=2"])
    t = Trainer(cfg, tmp_path / "full", progress=False)
    t.train()
    t.close()

    calls = {"n": 0}
    original = RaySampler.collect

    def collect_then_lose_a_worker(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # second iteration, between its pre- and post-adaptation collections
            os.kill(ray.get(self.workers[1].pid.remote()), signal.SIGKILL)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RaySampler, "collect", collect_then_lose_a_worker)
    t = Trainer(cfg, tmp_path / "killed", progress=False)
    try:
        t.train()
        assert t.sampler.replacements == 1
    finally:
        t.close()
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "full")


def test_bad_settings_are_clear_errors() -> None:
    env, spec, _, _ = _setup(*SG, n_tasks=1)
    with pytest.raises(ValueError, match="num_workers must be >= 1"):
        RaySampler(env, spec, num_workers=0)
    with pytest.raises(ValueError, match="policy expects"):
        RaySampler(env, PolicySpec(env.obs_dim + 1, env.action_nvec), num_workers=1)
    with pytest.raises(ValueError, match=r"cannot reach the Ray cluster at '127\.0\.0\.1:9'"):
        check_reachable("127.0.0.1:9")  # nothing listens on the discard port
    for ok in ("", "auto", "local"):
        check_reachable(ok)
    with pytest.raises(ValueError, match="sampler must be one of"):
        load_config(None, ["sampler=dask"])
    with pytest.raises(ValueError, match="num_workers must be >= 1"):
        load_config(None, ["num_workers=0"])


def test_missing_ray_gives_the_install_hint(monkeypatch) -> None:
    import sys

    env, spec, _, _ = _setup(*SG, n_tasks=1)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r"pip install 'meta-tutor\[ray\]'"):
        RaySampler(env, spec, num_workers=1)


def test_train_command_with_ray_sampler(tmp_path: Path) -> None:
    from meta_rl.cli import main

    args = [f"--set={s}" for s in TINY] + ["--set=n_iterations=2", "--no-progress"]
    assert main(["train", "--out", str(tmp_path / "local"), *args]) == 0
    ray_args = ["--sampler", "ray", "--num-workers", "1"]
    assert main(["train", "--out", str(tmp_path / "ray"), *ray_args, *args]) == 0
    cfg = load_config(tmp_path / "ray" / "config.yaml")
    assert (cfg.sampler, cfg.num_workers) == ("ray", 1)
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")


def test_default_install_and_local_training_do_not_need_ray(tmp_path: Path) -> None:
    import configparser
    import subprocess
    import sys

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    assert "ray" not in cfg["options"]["install_requires"].lower()
    assert "ray" in cfg["options.extras_require"]["ray"]
    # the CLI, the trainer and a local training run never import ray
    code = (
        "import sys; from meta_rl.cli import main; "
        f"main(['train', '--out', {str(tmp_path / 'run')!r}, '--no-progress', "
        + ", ".join(repr(f"--set={s}") for s in [*TINY, "n_iterations=1"])
        + "]); assert 'ray' not in sys.modules, 'ray was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
