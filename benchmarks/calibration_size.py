"""Calibration at the size of ASSISTments 2009: time and peak memory of ``meta-tutor calibrate``.

Simulates a knowledge-tracing log shaped like the ASSISTments 2009-2010 skill-builder
release (≈ 400 k answers, ≈ 3 k students, ≈ 120 skills): skill popularity ∝ 1/rank
(Zipf), answers per student log-normal (heavy tail), each student working in runs on one
skill at a time (problem sets), every (student, skill) sequence a BKT chain with its own
parameters. Then runs ``meta-tutor calibrate --env MetaTutor/SkillGraph-v0 --top-skills K``
as a subprocess for each ``K`` and records its wall time and peak resident memory
(``ru_maxrss`` of the child). The target of issue 17: under 2 minutes and 2 GB on 2 cores.
The machine is shared with other jobs, so the wall times are upper bounds::

    python benchmarks/calibration_size.py --top-skills 4 10 --out benchmarks/results/calibration_size.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def simulate(n_students: int, n_answers: int, n_skills: int, seed: int) -> dict[str, np.ndarray]:
    """Rows (student, skill, correct, order) of an ASSISTments-shaped BKT log."""
    rng = np.random.default_rng(seed)
    per_student = rng.lognormal(0.0, 1.0, n_students)
    per_student = np.maximum(1, np.round(per_student / per_student.sum() * n_answers)).astype(np.int64)
    popularity = 1.0 / np.arange(1, n_skills + 1)
    popularity /= popularity.sum()
    student = np.repeat(np.arange(n_students), per_student)
    order = np.arange(len(student)) - np.repeat(np.cumsum(per_student) - per_student, per_student)
    # runs of ~8 answers on one skill: a new skill where a run starts
    new_run = (order == 0) | (rng.random(len(student)) < 1.0 / 8.0)
    run_skill = rng.choice(n_skills, size=int(new_run.sum()), p=popularity)
    skill = run_skill[np.cumsum(new_run) - 1]
    # BKT chain of each (student, skill): position of each answer in its chain
    key = student * n_skills + skill
    sort = np.argsort(key, kind="stable")
    _, start, count = np.unique(key[sort], return_index=True, return_counts=True)
    pos = np.empty(len(key), dtype=np.int64)
    pos[sort] = np.arange(len(key)) - np.repeat(start, count)
    chain = np.empty(len(key), dtype=np.int64)
    chain[sort] = np.repeat(np.arange(len(count)), count)
    n_chain = len(count)
    prior, learn = rng.uniform(0.1, 0.5, n_chain), rng.uniform(0.05, 0.3, n_chain)
    forget, slip, guess = (
        rng.uniform(0.0, 0.05, n_chain),
        rng.uniform(0.05, 0.2, n_chain),
        rng.uniform(0.1, 0.3, n_chain),
    )
    known = rng.random(n_chain) < prior
    correct = np.empty(len(key), dtype=np.int8)
    for j in range(int(pos.max()) + 1):  # simulation only: one step per chain position
        rows = np.flatnonzero(pos == j)
        c = chain[rows]
        u = rng.random((2, len(rows)))
        correct[rows] = np.where(known[c], u[0] >= slip[c], u[0] < guess[c])
        known[c] = np.where(known[c], u[1] >= forget[c], u[1] < learn[c])
    return {"student": student, "skill": skill, "correct": correct, "order": order}


def write_log(path: Path, rows: dict[str, np.ndarray]) -> None:
    with path.open("w") as fh:
        fh.write("user_id,skill_name,correct,order_id\n")
        fh.writelines(
            f"u{s},skill{k:03d},{c},{o}\n"
            for s, k, c, o in zip(
                rows["student"].tolist(),
                rows["skill"].tolist(),
                rows["correct"].tolist(),
                rows["order"].tolist(),
            )
        )


def run_calibrate(log: Path, out: Path, k: int) -> dict:
    cmd = [sys.executable, "-m", "meta_rl.cli", "calibrate", "--env", "MetaTutor/SkillGraph-v0",
           "--log", str(log), "--out", str(out), "--top-skills", str(k),
           "--force", "--no-progress"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    meta = json.loads(out.with_name(out.stem + ".meta.json").read_text()) if proc.returncode == 0 else {}
    return {
        "top_skills": k,
        "command": "meta-tutor calibrate --env MetaTutor/SkillGraph-v0 --log LOG --out POP --top-skills "
        f"{k} --no-progress",
        "returncode": proc.returncode,
        "wall_s": round(wall, 1),
        # ru_maxrss of children is the largest child so far: runs go in increasing K order
        "peak_rss_mb": round(max(peak_kib, before) / 1024, 1),
        "n_responses": meta.get("n_responses"),
        "n_students": meta.get("n_students"),
        "held_out": meta.get("held_out"),
        "stderr_tail": proc.stderr[-400:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--students", type=int, default=3000)
    ap.add_argument("--answers", type=int, default=400_000)
    ap.add_argument("--skills", type=int, default=120)
    ap.add_argument("--top-skills", type=int, nargs="+", default=[4, 10])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = simulate(args.students, args.answers, args.skills, args.seed)
    result = {
        "benchmark": "calibration_size",
        "command": "python benchmarks/calibration_size.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs (wall times are "
        "upper bounds)",
        "log": {"answers": len(rows["student"]), "students": args.students, "skills": args.skills},
        "target": "under 120 s and 2048 MB",
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "assistments_sized.csv"
        write_log(log, rows)
        for k in sorted(args.top_skills):
            result["runs"].append(run_calibrate(log, Path(d) / "pop.json", k))
            print(json.dumps(result["runs"][-1]), flush=True)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
