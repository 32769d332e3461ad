#!/usr/bin/env python
"""Rollout throughput: the local sampler vs the Ray sampler with 1 and 2 workers.

One *collection* is what a MAML iteration does ``inner_steps + 1`` times: ``T`` tasks ×
``E`` episodes with per-task parameters (the default ``configs/skill_graph.yaml``
policy, 64-64 tanh). Each sampler collects the same batch with the same seed; the
median wall time of ``--repeats`` collections (after a warm-up that builds the vector
envs) gives env-steps per second, and the Ray overhead per collection is the Ray
1-worker time minus the local time (shipping parameters and trajectories, task
scheduling). Two workloads: the default meta-batch (20 tasks × 20 episodes) and a
large one (160 tasks × 20 episodes) of the costlier SpacedRepetition student model.

Needs ``pip install 'meta-tutor[ray]'``. Ray starts locally with 2 CPUs. Run it on an
otherwise idle machine (the JSON records the load average).

    python benchmarks/sampler_throughput.py [--out benchmarks/results/sampler_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKLOADS = {
    "skill_graph_default_meta_batch": {
        "env_id": "MetaTutor/SkillGraph-v0",
        "env_kwargs": {"n_skills": 4, "n_content": 3, "horizon": 30, "prerequisites": "chain"},
        "tasks": 20,
        "episodes": 20,
    },
    "spaced_repetition_large_meta_batch": {
        "env_id": "MetaTutor/SpacedRepetition-v0",
        "env_kwargs": {},
        "tasks": 160,
        "episodes": 20,
    },
}


def time_collect(sampler, params, profiles, episodes: int, repeats: int) -> tuple[float, int]:
    sampler.collect(params, profiles, episodes, seed=0)  # warm-up: builds the vector env
    times, steps = [], 0
    for r in range(repeats):
        t0 = time.perf_counter()
        roll = sampler.collect(params, profiles, episodes, seed=4096 * (r + 1))
        times.append(time.perf_counter() - t0)
        steps = roll.env_steps
    return statistics.median(times), steps


def measure(workload: dict, repeats: int) -> dict:
    import torch

    from meta_rl.envspec import EnvSpec
    from meta_rl.policy import PolicySpec, init_params
    from meta_rl.ray_sampler import RaySampler
    from meta_rl.sampler import Sampler

    env = EnvSpec(workload["env_id"], workload["env_kwargs"])
    spec = PolicySpec(env.obs_dim, env.action_nvec, (64, 64))
    n_t = workload["tasks"]
    profiles = env.distribution().sample(n_t, "train", seed=0)
    per_task = [init_params(spec, torch.Generator().manual_seed(i)) for i in range(n_t)]
    params = {k: torch.stack([p[k] for p in per_task]) for k in per_task[0]}

    out: dict = {**workload}
    t_local, steps = time_collect(Sampler(env, spec), params, profiles, workload["episodes"], repeats)
    out["env_steps_per_collection"] = steps
    out["local"] = {"seconds": t_local, "env_steps_per_s": steps / t_local}
    for n in (1, 2):
        rs = RaySampler(env, spec, num_workers=n)
        try:
            t, _ = time_collect(rs, params, profiles, workload["episodes"], repeats)
        finally:
            rs.close()
        out[f"ray_{n}_workers"] = {
            "seconds": t,
            "env_steps_per_s": steps / t,
            "speedup_vs_local": t_local / t,
        }
    out["ray_overhead_s_per_collection"] = out["ray_1_workers"]["seconds"] - t_local
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed collections per sampler (median)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()

    import ray
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = {name: measure(w, args.repeats) for name, w in WORKLOADS.items()}
    finally:
        ray.shutdown()
    report = {
        "benchmark": "sampler_throughput",
        "what": "one collection of T tasks x E episodes; median wall time; env steps per second",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "ray": ray.__version__,
            "torch": torch.__version__,
            "load_average_before": load_before,
        },
        "repeats": args.repeats,
        "workloads": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
