"""BKT on long sequences: the parallel-scan E-step against the time loop it replaced, side by side.

One student answering one skill ``n`` times (the worst case of the old E-step: a Python
loop over ``n`` answers per pass), answers simulated from a BKT chain. For each ``n``:

* one E-step (forward-backward) by the loop and by the scan, interleaved over repeats
  (median seconds, ratio), and the largest difference of their log-likelihoods;
* with ``--full-fit N``: the whole pooled fit (8 EM starts) both ways at ``n = N``, its
  log-likelihoods and seconds;
* with ``--calibrate N``: ``meta-tutor calibrate`` end to end on a one-student log of
  ``N`` answers (scan only), wall seconds.

Timings on shared 2-core machines are noisy; compare the ratios, measured in one run::

    python benchmarks/bkt_long_sequences.py --sizes 1000 10000 100000 --full-fit 10000 \\
        --calibrate 1000000 --out benchmarks/results/bkt_long_sequences.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.calibration import bkt

TRUE = {"prior": 0.2, "learn": 0.02, "forget": 0.01, "slip": 0.1, "guess": 0.25}


def simulate(n: int, seed: int = 0) -> np.ndarray:
    """Answers of one BKT chain with the ``TRUE`` parameters."""
    rng = np.random.default_rng(seed)
    u = rng.random((3, n))
    known = u[0, 0] < TRUE["prior"]
    y = np.empty(n, dtype=np.int8)
    for j in range(n):
        y[j] = u[1, j] >= TRUE["slip"] if known else u[1, j] < TRUE["guess"]
        known = u[2, j] >= TRUE["forget"] if known else u[2, j] < TRUE["learn"]
    return y


def one_student(n: int) -> bkt.Sequences:
    return bkt.Sequences.from_answers([simulate(n)], np.array([0]), np.array([0]), 1, 1)


def time_e_step(n: int, repeats: int) -> dict:
    seqs = one_student(n)
    p = bkt.BKTParams(*(np.array([v]) for v in bkt.START.values()))
    times: dict[str, list[float]] = {"loop": [], "scan": []}
    ll = {}
    for _ in range(repeats):
        for method in ("loop", "scan"):
            t0 = time.perf_counter()
            ll[method] = float(bkt._expected_stats(seqs, p, method).loglik.sum())
            times[method].append(time.perf_counter() - t0)
    med = {m: statistics.median(t) for m, t in times.items()}
    return {
        "n_answers": n,
        "loop_s": med["loop"],
        "scan_s": med["scan"],
        "speedup": med["loop"] / med["scan"],
        "loglik_loop": ll["loop"],
        "loglik_scan": ll["scan"],
        "abs_diff": abs(ll["loop"] - ll["scan"]),
    }


def full_fit(n: int) -> dict:
    seqs = one_student(n)
    out = {"n_answers": n}
    for method in ("loop", "scan"):
        t0 = time.perf_counter()
        fit = bkt.fit_pooled(seqs, method=method)
        out[f"{method}_s"] = time.perf_counter() - t0
        out[f"{method}_loglik"] = fit.loglik
        out[f"{method}_em_steps"] = fit.n_iter
        out[f"{method}_params"] = {k: float(getattr(fit, k)[0]) for k in bkt.PARAMS}
    out["speedup"] = out["loop_s"] / out["scan_s"]
    out["loglik_abs_diff"] = abs(out["loop_loglik"] - out["scan_loglik"])
    return out


def calibrate_once(n: int) -> dict:
    y = simulate(n)
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "one_student.csv"
        with log.open("w") as fh:
            fh.write("user_id,skill_name,correct,order_id\n")
            fh.writelines(f"u,s,{v},{j}\n" for j, v in enumerate(y.tolist()))
        cmd = [sys.executable, "-m", "meta_rl.cli", "calibrate", "--env", "MetaTutor/SkillGraph-v0",
               "--log", str(log), "--out", str(Path(d) / "pop.json"), "--test-fraction", "0",
               "--no-progress"]  # fmt: skip
        t0 = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        seconds = time.perf_counter() - t0
        meta = json.loads((Path(d) / "pop.meta.json").read_text()) if run.returncode == 0 else {}
    return {
        "n_answers": n,
        "command": " ".join(cmd[1:3] + cmd[3:]),
        "returncode": run.returncode,
        "wall_s": seconds,
        "pooled_bkt": meta.get("pooled_bkt"),
        "stderr_tail": run.stderr[-500:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full-fit", type=int, default=None, help="also time the whole pooled fit at this n")
    ap.add_argument("--calibrate", type=int, default=None, help="time calibrate on 1 student, n answers")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    result = {
        "benchmark": "bkt_long_sequences",
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared "
        "with other jobs: compare ratios only",
        "true_params": TRUE,
        "e_step": [time_e_step(n, args.repeats) for n in args.sizes],
    }
    print(json.dumps(result["e_step"], indent=1), flush=True)
    if args.full_fit:
        result["full_pooled_fit"] = full_fit(args.full_fit)
        print(json.dumps(result["full_pooled_fit"], indent=1), flush=True)
    if args.calibrate:
        result["calibrate"] = calibrate_once(args.calibrate)
        print(json.dumps(result["calibrate"], indent=1), flush=True)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
