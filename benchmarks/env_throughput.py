"""Student-steps per second: native vector env vs Gymnasium's SyncVectorEnv, side by side.

Timings on shared 2-core machines are noisy, so both front ends are measured in the
same process, interleaved over several repeats, and the report gives the median of
each plus their ratio. Prints JSON (one object) and optionally writes it to a file::

    python benchmarks/env_throughput.py --students 4096 --out benchmarks/results/env_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

# measure one core, as the targets are stated per core
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np

import envs


def _timed_random_steps(venv: gym.vector.VectorEnv, n: int, steps: int, seed: int) -> float:
    """Student-steps per second of ``steps`` uniformly random steps (reset not timed)."""
    venv.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, venv.single_action_space.n, size=(steps, n))
    t0 = time.perf_counter()
    for a in actions:
        venv.step(a)
    return n * steps / (time.perf_counter() - t0)


def native_rate(env_id: str, n: int, steps: int, seed: int) -> float:
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    venv.unwrapped.set_tasks(envs.sample_profiles(env_id, n, "train", seed))
    return _timed_random_steps(venv, n, steps, seed)


def sync_rate(env_id: str, n: int, steps: int, seed: int) -> float:
    profs = envs.sample_profiles(env_id, n, "train", seed)

    def maker(p: dict):
        def make():
            env = gym.make(env_id)
            env.unwrapped.set_task(p)
            return env

        return make

    venv = gym.vector.SyncVectorEnv([maker(p) for p in profs])
    return _timed_random_steps(venv, n, steps, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="*", default=list(envs.ENV_IDS), help="env ids (default: all)")
    ap.add_argument("--students", type=int, default=4096, help="students in the native vector env")
    ap.add_argument("--sync-students", type=int, default=64, help="sub-envs of the SyncVectorEnv")
    ap.add_argument("--steps", type=int, default=200, help="steps per timing")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    results = {}
    for env_id in args.envs:
        native, sync = [], []
        for r in range(args.repeats):
            native.append(native_rate(env_id, args.students, args.steps, r))
            sync.append(sync_rate(env_id, args.sync_students, max(20, args.steps // 4), r))
        nat, syn = statistics.median(native), statistics.median(sync)
        results[env_id] = {
            "native_student_steps_per_s": round(nat),
            "sync_vector_env_student_steps_per_s": round(syn),
            "ratio_native_over_sync": round(nat / syn, 1),
            "native_runs": [round(x) for x in native],
            "sync_runs": [round(x) for x in sync],
        }
    report = {
        "benchmark": "env_throughput",
        "students_native": args.students,
        "students_sync": args.sync_students,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": 1,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # other processes share the cores: absolute rates fall with load, the ratio much less
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
