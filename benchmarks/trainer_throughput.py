#!/usr/bin/env python
"""Env-steps per second of training: MAML-PPO, Reptile-PPO, MAML++-PPO, pooled PPO and SB3 PPO.

All train the same env (the default ``configs/skill_graph.yaml`` env settings; each of
our algorithms with its shipped section of that file, MAML++ timed at second order)
with the same network (MLP 64-64 tanh, categorical head), one torch thread each,
and count *every* env step including the time spent on updates. SB3 runs its
standard ``PPO("MlpPolicy")`` on a ``DummyVecEnv`` of the single-student env.

    python benchmarks/trainer_throughput.py [--out benchmarks/results/trainer_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure_ours(algo: str, iterations: int, overrides: list[str]) -> dict[str, float]:
    from meta_rl.config import default_config_path, load_config
    from meta_rl.trainer import Trainer

    cfg = load_config(
        default_config_path("MetaTutor/SkillGraph-v0"),
        [
            f"algo={algo}",
            "tensorboard=false",
            "n_iterations=100000",
            "eval_every=100000",
            "num_threads=1",
            *overrides,
        ],
    )
    tmp = Path(tempfile.mkdtemp())
    try:
        trainer = Trainer(cfg, tmp / "run", progress=False)
        trainer.train(1)  # warm-up (allocations, first vector env)
        steps0, t0 = trainer.env_steps, time.perf_counter()
        trainer.train(iterations)
        dt = time.perf_counter() - t0
        steps = trainer.env_steps - steps0
    finally:
        shutil.rmtree(tmp)
    return {"env_steps": steps, "seconds": dt, "env_steps_per_s": steps / dt, "iterations": iterations}


def measure_sb3(total_steps: int, env_kwargs: dict) -> dict[str, float]:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    import envs  # noqa: F401 - registers the env ids

    torch.set_num_threads(1)
    venv = make_vec_env(lambda: gym.make("MetaTutor/SkillGraph-v0", **env_kwargs), n_envs=8, seed=0)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=512,
        batch_size=1024,
        n_epochs=5,
        policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh},
        device="cpu",
        seed=0,
        verbose=0,
    )
    model.learn(4096)  # warm-up
    t0 = time.perf_counter()
    model.learn(total_steps, reset_num_timesteps=False)
    dt = time.perf_counter() - t0
    return {"env_steps": total_steps, "seconds": dt, "env_steps_per_s": total_steps / dt, "n_envs": 8}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/trainer_throughput.json"))
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations of our trainers")
    parser.add_argument("--sb3-steps", type=int, default=16384, help="timed env steps of SB3 PPO")
    args = parser.parse_args()

    from meta_rl.config import default_config_path, load_config

    cfg = load_config(default_config_path("MetaTutor/SkillGraph-v0"))
    maml = measure_ours("maml_ppo", args.iterations, [])
    ppo = measure_ours("ppo", args.iterations, [])
    reptile = measure_ours("reptile_ppo", args.iterations, [])
    # the steady state: second order (derivative-order annealing only delays it)
    mamlpp = measure_ours("mamlpp_ppo", args.iterations, ["first_order_iterations=0"])
    rcfg = load_config(default_config_path("MetaTutor/SkillGraph-v0"), ["algo=reptile_ppo"])
    pcfg = load_config(default_config_path("MetaTutor/SkillGraph-v0"), ["algo=mamlpp_ppo"])
    sb3 = measure_sb3(args.sb3_steps, cfg.env_kwargs)
    result = {
        "command": "python benchmarks/trainer_throughput.py " + " ".join(sys.argv[1:]),
        "env": cfg.env,
        "env_kwargs": cfg.env_kwargs,
        "network": {"hidden_sizes": cfg.hidden_sizes, "activation": cfg.activation},
        "maml_ppo_iteration": {
            **maml,
            "meta_batch_size": cfg.meta_batch_size,
            "rollouts_per_task": cfg.rollouts_per_task,
            "inner_steps": cfg.inner_steps,
            "outer_epochs": cfg.outer_epochs,
            "first_order": getattr(cfg, "first_order", False),
        },
        "pooled_ppo": {**ppo, "outer_epochs": cfg.outer_epochs, "n_minibatches": cfg.n_minibatches},
        "reptile_ppo_iteration": {
            **reptile,
            "meta_batch_size": rcfg.meta_batch_size,
            "inner_steps": rcfg.inner_steps,
            "inner_epochs": rcfg.inner_epochs,
            "outer_update": rcfg.outer_update,
        },
        "mamlpp_ppo_iteration": {
            **mamlpp,
            "meta_batch_size": pcfg.meta_batch_size,
            "inner_steps": pcfg.inner_steps,
            "lslr": pcfg.lslr,
            "multi_step_loss": pcfg.multi_step_loss,
            "first_order": False,
        },
        "sb3_ppo": sb3,
        "speedup_maml_vs_sb3": maml["env_steps_per_s"] / sb3["env_steps_per_s"],
        "speedup_ppo_vs_sb3": ppo["env_steps_per_s"] / sb3["env_steps_per_s"],
        "speedup_reptile_vs_maml": reptile["env_steps_per_s"] / maml["env_steps_per_s"],
        "speedup_mamlpp_vs_maml": mamlpp["env_steps_per_s"] / maml["env_steps_per_s"],
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            # other processes on the machine slow all three alike; the ratios are what count
            "load_average_1min_at_end": os.getloadavg()[0],
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
