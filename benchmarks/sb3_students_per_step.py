#!/usr/bin/env python
"""SB3's pooled PPO baseline with more students per rollout: as fast, and does it learn as well?

stable-baselines3 PPO (``MlpPolicy``, the run's 64-64 tanh network) on our native vector
env (:class:`envs.sb3.SB3VectorEnv`) with ``n_envs`` students stepped together, for the
main command's budget (3.6 M env steps of ``MetaTutor/SkillGraph-v0`` at its registered
defaults). Everything else follows ``meta_rl.evaluation.sb3_baseline.train_pooled``:
``n_steps = max(horizon, 32)``, four minibatches per rollout, 10 epochs, learning rate
3e-4. More students per rollout means fewer, larger PPO updates for the same env steps.

For each ``n_envs`` and seed it reports the training time (wall clock, and CPU time of the
training process, which time-sharing inflates much less) and the pre-trained policy's
mean return (k = 0, no fine-tuning) on ``--val`` **val** students (never the held-out
test students) x 10 episodes, with a 95 % bootstrap interval over students, and the
paired difference against the first ``n_envs`` (same students, same env seeds).

    python benchmarks/sb3_students_per_step.py [--n-envs 64 256 1024] [--seeds 0 1]
        [--steps 3600000] [--val 200] [--workers 2] [--out benchmarks/results/sb3_students_per_step.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENV = "MetaTutor/SkillGraph-v0"
EPISODES = 10


def _job(n_envs: int, seed: int, steps: int, n_val: int) -> dict:
    import torch

    torch.set_num_threads(1)
    import envs
    from meta_rl.evaluation import sb3_baseline
    from meta_rl.evaluation.episodes import make_task_env, per_task_mean, run_episodes

    kwargs: dict = {}  # the registered defaults (those of the shipped config)
    t0, c0 = time.perf_counter(), time.process_time()
    model = sb3_baseline.train_pooled(ENV, kwargs, steps, seed, n_envs=n_envs, hidden=(64, 64))
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    val = envs.sample_profiles(ENV, n_val, split="val", seed=1, **kwargs)
    torch.manual_seed(0)
    returns, _ = run_episodes(make_task_env(ENV, kwargs, val, EPISODES), sb3_baseline._act(model), seed=12345)
    return {
        "n_envs": n_envs,
        "seed": seed,
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "env_steps": int(model.num_timesteps),
        "gradient_steps": int(model._n_updates * (model.n_steps * n_envs // model.batch_size)),
        "batch_size": int(model.batch_size),
        "val_returns": per_task_mean(returns, n_val).tolist(),
    }


def _ci(x: np.ndarray, rng: np.random.Generator) -> list[float]:
    boot = rng.choice(x, size=(2000, len(x))).mean(axis=1)
    return [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--n-envs", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=3_600_000)
    p.add_argument("--val", type=int, default=200, help="val students (default 200)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    jobs = [(n, s, a.steps, a.val) for s in a.seeds for n in a.n_envs]
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn")) as pool:
        done = list(pool.map(_job, *zip(*jobs)))
    rng = np.random.default_rng(0)
    rows = []
    for n in a.n_envs:
        mine = [d for d in done if d["n_envs"] == n]
        ref = [d for d in done if d["n_envs"] == a.n_envs[0]]
        r = np.mean([d["val_returns"] for d in mine], axis=0)
        diff = r - np.mean([d["val_returns"] for d in ref], axis=0)
        rows.append(
            {
                "n_envs": n,
                "batch_size": mine[0]["batch_size"],
                "gradient_steps": mine[0]["gradient_steps"],
                "train_seconds": [round(d["train_seconds"], 1) for d in mine],
                "train_cpu_seconds": [round(d["train_cpu_seconds"], 1) for d in mine],
                "val_return_per_seed": [round(float(np.mean(d["val_returns"])), 4) for d in mine],
                "val_return": round(float(r.mean()), 4),
                "val_return_ci95": [round(v, 4) for v in _ci(r, rng)],
                f"minus_n_envs_{a.n_envs[0]}": round(float(diff.mean()), 4),
                f"minus_n_envs_{a.n_envs[0]}_ci95": [round(v, 4) for v in _ci(diff, rng)],
            }
        )
    out = {
        "benchmark": "sb3_students_per_step",
        "command": "python benchmarks/sb3_students_per_step.py " + " ".join(sys.argv[1:]),
        "env": ENV,
        "env_steps": a.steps,
        "val_students": a.val,
        "episodes_per_student": EPISODES,
        "seeds": a.seeds,
        "workers": a.workers,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "results": rows,
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
