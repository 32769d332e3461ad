"""Student-steps per second: native vector env vs Gymnasium's SyncVectorEnv, side by side.

Timings on shared 2-core machines are noisy, so both front ends are measured in the
same process, interleaved over several repeats, and the report gives the median of
each plus their ratio. Each env is measured at its registered defaults (the setting its
shipped config trains on); SkillGraph-v0 also at its former defaults (8 skills in the
level graph, horizon 50), the setting of the earlier figures and of the speed target.
Prints JSON (one object) and optionally writes it to a file::

    python benchmarks/env_throughput.py --out benchmarks/results/env_throughput.json

``--baseline DIR`` (a checkout of an older version, e.g. a ``git worktree``) also
measures the native envs of that version, alternating with this one repeat by repeat
(each measurement in a fresh process, with only that checkout on the path), and reports
the speed-up: the fair way to compare versions on a machine whose load changes. Rates
per second of CPU time (``*_cpu_*``) are reported too: time-sharing with other processes
inflates them much less than wall-clock rates (``meets_target`` tests the wall-clock rate,
``meets_target_per_cpu_s`` the rate per CPU second). The native envs measured are those of the
checkout this script is in (its root comes first on ``sys.path``), whatever copy is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# measure one core, as the targets are stated per core
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np

#: (label, env id, env kwargs): explicit kwargs, so an older version with other defaults
#: measures the same setting
CASES: list[tuple[str, str, dict]] = [
    (
        "MetaTutor/SkillGraph-v0",
        "MetaTutor/SkillGraph-v0",
        {"n_skills": 4, "n_content": 3, "horizon": 30, "prerequisites": "chain"},
    ),
    (
        "MetaTutor/SkillGraph-v0 (8 skills)",
        "MetaTutor/SkillGraph-v0",
        {"n_skills": 8, "n_content": 3, "horizon": 50, "prerequisites": "default"},
    ),
    ("MetaTutor/SpacedRepetition-v0", "MetaTutor/SpacedRepetition-v0", {}),
    ("MetaTutor/SpacedRepetitionGoals-v0", "MetaTutor/SpacedRepetitionGoals-v0", {}),
    ("MetaTutor/ZPD-v0", "MetaTutor/ZPD-v0", {}),
]
#: native student-steps/s targets (4096 students, one thread; issue 18), and >= 200x SyncVectorEnv
TARGETS = {
    "MetaTutor/SkillGraph-v0 (8 skills)": 6e6,
    "MetaTutor/SpacedRepetition-v0": 2e6,
    "MetaTutor/ZPD-v0": 3e6,
}
MIN_RATIO = 200.0


def _timed_random_steps(
    venv: gym.vector.VectorEnv, n: int, steps: int, seed: int, cpu: bool = False
) -> float:
    """Student-steps per second of ``steps`` uniformly random steps (reset not timed): per
    second of wall-clock time, or with ``cpu`` per second of this process's CPU time (which
    time-sharing with other processes inflates much less)."""
    clock = time.process_time if cpu else time.perf_counter
    venv.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, venv.single_action_space.n, size=(steps, n))
    t0 = clock()
    for a in actions:
        venv.step(a)
    return n * steps / (clock() - t0)


def native_rate(env_id: str, kwargs: dict, n: int, steps: int, seed: int, cpu: bool = False) -> float:
    import envs

    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    venv.unwrapped.set_tasks(envs.sample_profiles(env_id, n, "train", seed, **kwargs))
    return _timed_random_steps(venv, n, steps, seed, cpu)


def sync_rate(env_id: str, kwargs: dict, n: int, steps: int, seed: int) -> float:
    import envs

    profs = envs.sample_profiles(env_id, n, "train", seed, **kwargs)

    def maker(p: dict):
        def make():
            env = gym.make(env_id, **kwargs)
            env.unwrapped.set_task(p)
            return env

        return make

    venv = gym.vector.SyncVectorEnv([maker(p) for p in profs])
    return _timed_random_steps(venv, n, steps, seed)


def native_rate_in(
    tree: Path, env_id: str, kwargs: dict, n: int, steps: int, seed: int
) -> tuple[float, float]:
    """``(wall, cpu)`` rates of :func:`native_rate` for the code in checkout ``tree``, in a
    fresh process."""
    cmd = [sys.executable, __file__, "--worker", json.dumps([env_id, kwargs, n, steps, seed])]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="*", default=None, help="case labels (default: all)")
    ap.add_argument("--students", type=int, default=4096, help="students in the native vector env")
    ap.add_argument("--sync-students", type=int, default=64, help="sub-envs of the SyncVectorEnv")
    ap.add_argument("--steps", type=int, default=200, help="steps per timing")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline", type=Path, default=None, help="checkout of an older version to compare")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        print(native_rate(*job), native_rate(*job, cpu=True))
        return

    here = Path(__file__).resolve().parent.parent
    # measure this checkout's envs, not whichever copy is installed (workers get theirs from
    # PYTHONPATH); then "this version" below means the code next to this script
    sys.path.insert(0, str(here))
    import envs

    if Path(envs.__file__).resolve().parent.parent != here:
        raise SystemExit(f"envs imported from {envs.__file__}, not from {here}")
    results = {}
    for label, env_id, kwargs in CASES:
        if args.envs and label not in args.envs:
            continue
        native, sync, base, mine = [], [], [], []
        for r in range(args.repeats):
            native.append(native_rate(env_id, kwargs, args.students, args.steps, r))
            sync.append(sync_rate(env_id, kwargs, args.sync_students, max(20, args.steps // 4), r))
            if args.baseline is not None:
                base.append(native_rate_in(args.baseline, env_id, kwargs, args.students, args.steps, r))
                mine.append(native_rate_in(here, env_id, kwargs, args.students, args.steps, r))
        nat_cpu = statistics.median(
            native_rate(env_id, kwargs, args.students, args.steps, r, cpu=True) for r in range(args.repeats)
        )
        nat, syn = statistics.median(native), statistics.median(sync)
        row = {
            "env_id": env_id,
            "env_kwargs": kwargs,
            "native_student_steps_per_s": round(nat),
            "native_student_steps_per_cpu_s": round(nat_cpu),
            "sync_vector_env_student_steps_per_s": round(syn),
            "ratio_native_over_sync": round(nat / syn, 1),
            "native_runs": [round(x) for x in native],
            "sync_runs": [round(x) for x in sync],
        }
        if label in TARGETS:
            row["target_native_student_steps_per_s"] = TARGETS[label]
            row["meets_target"] = bool(nat >= TARGETS[label] and nat / syn >= MIN_RATIO)
            # the same test on the rate per CPU second, which load from other processes inflates less
            row["meets_target_per_cpu_s"] = bool(nat_cpu >= TARGETS[label] and nat / syn >= MIN_RATIO)
        if base:
            row["side_by_side"] = {
                "baseline_runs": [round(w) for w, _ in base],
                "this_version_runs": [round(w) for w, _ in mine],
                "speedup_median_of_pairs": round(
                    statistics.median(m[0] / b[0] for m, b in zip(mine, base)), 3
                ),
                "baseline_cpu_runs": [round(c) for _, c in base],
                "this_version_cpu_runs": [round(c) for _, c in mine],
                "cpu_speedup_median_of_pairs": round(
                    statistics.median(m[1] / b[1] for m, b in zip(mine, base)), 3
                ),
            }
        results[label] = row
    report = {
        "benchmark": "env_throughput",
        "command": "python " + " ".join([os.path.relpath(__file__, here), *sys.argv[1:]]),
        "students_native": args.students,
        "students_sync": args.sync_students,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": 1,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # other processes share the cores: absolute rates fall with load, the ratios much less
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
