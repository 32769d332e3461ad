#!/usr/bin/env python
"""MAML++ ablation and Reptile's outer updates on MetaTutor/SkillGraph-v0, scored on val students.

Every variant trains with the shipped ``meta_rl/configs/skill_graph.yaml`` (150
iterations), validated on its 40 fixed ``val`` students with 3 adaptation steps
(``val_adapt_steps=3``, every 50 iterations). The score is the last validation row
(iteration 150) of ``metrics.csv``: ``val_return_k0 … k3``. MAML++ variants run with
``inner_steps=2`` (so the multi-step loss has two steps) and ``meta_batch_size=13``
(13 · 20 · 3 = 780 episodes per iteration, MAML-PPO's 20 · 20 · 2 = 800 within 2.5 %);
Reptile does ``inner_steps=2`` rounds with the full meta-batch (800 episodes).

    python benchmarks/ablation_mamlpp.py --seeds 0 1 2 --jobs 2 \\
        --runs runs/ablation_mamlpp --out benchmarks/results/ablation_mamlpp.json

Finished runs are reused (a killed one resumes), so the command can be repeated to add
seeds. Writes the raw numbers (JSON) and prints the Markdown table of docs/algorithms.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMON = ["val_adapt_steps=3", "eval_every=50", "tensorboard=false"]
#: every MAML++ component on (LSLR rates), spelled out so the runs do not depend on defaults
MAMLPP = ["algo=mamlpp_ppo", "inner_steps=2", "meta_batch_size=13", "meta_sgd=false", "lslr=true"]
MAMLPP += ["multi_step_loss=true", "msl_anneal_iterations=50", "first_order_iterations=50"]
MAMLPP += ["cosine_outer_lr=true", "outer_lr_min=0.0"]
#: Reptile's first shipped settings, spelled out: the shipped section has moved on (one epoch
#: per round, Adam 0.003, time_mean baseline: docs/algorithms.md, "Reptile diagnosis"), and
#: these rows measure the settings they were committed with
REPTILE_FIRST = ["algo=reptile_ppo", "inner_epochs=2", "baseline=linear", "outer_lr=0.001"]
#: variant name -> --set overrides on top of the shipped SkillGraph config
VARIANTS: dict[str, list[str]] = {
    "maml_ppo (shipped, Meta-SGD, K=1)": [],
    "reptile_ppo interpolate": [*REPTILE_FIRST, "inner_steps=2", "outer_update=interpolate"],
    "reptile_ppo adam": [*REPTILE_FIRST, "inner_steps=2", "outer_update=adam"],
    "reptile_ppo adam, outer_lr 0.01": [
        *REPTILE_FIRST,
        "inner_steps=2",
        "outer_update=adam",
        "outer_lr=0.01",
    ],
    "reptile_ppo interpolate, epsilon 1, 4 epochs": [
        *REPTILE_FIRST,
        "inner_steps=2",
        "outer_update=interpolate",
        "meta_step_size=1.0",
        "inner_epochs=4",
    ],
    "reptile_ppo interpolate, epsilon 1, 4 epochs, inner_lr 2": [
        *REPTILE_FIRST,
        "inner_steps=2",
        "outer_update=interpolate",
        "meta_step_size=1.0",
        "inner_epochs=4",
        "inner_lr=2.0",
    ],
    "reptile_ppo adam, outer_lr 0.003": [
        *REPTILE_FIRST,
        "inner_steps=2",
        "outer_update=adam",
        "outer_lr=0.003",
    ],
    "mamlpp_ppo full": MAMLPP,
    "- multi-step loss": [*MAMLPP, "multi_step_loss=false"],
    "- LSLR (scalar step)": [*MAMLPP, "lslr=false"],
    "- LSLR + Meta-SGD": [*MAMLPP, "lslr=false", "meta_sgd=true"],
    "- derivative-order annealing": [*MAMLPP, "first_order_iterations=0"],
    "- cosine outer lr": [*MAMLPP, "cosine_outer_lr=false"],
    # the defaults chosen from the rows above: Meta-SGD rates, no cosine schedule
    "mamlpp_ppo defaults (Meta-SGD, no cosine)": [
        *MAMLPP,
        "lslr=false",
        "meta_sgd=true",
        "cosine_outer_lr=false",
    ],
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def train(runs: Path, name: str, seed: int) -> Path:
    out = runs / f"{slug(name)}_seed{seed}"
    cmd = [sys.executable, "-m", "meta_rl.cli", "train", "--no-progress", "--env", "MetaTutor/SkillGraph-v0"]
    cmd += ["--out", str(out), "--seed", str(seed)]
    for s in [*COMMON, *VARIANTS[name]]:
        cmd += ["--set", s]
    if _finished(out):
        return out
    if (out / "checkpoint.pt").is_file():
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, check=True)
    return out


def _finished(run: Path) -> bool:
    rows = list(csv.DictReader(open(run / "metrics.csv"))) if (run / "metrics.csv").is_file() else []
    return bool(rows) and int(rows[-1]["iteration"]) == 149


def _validated(run: Path) -> bool:
    rows = list(csv.DictReader(open(run / "metrics.csv"))) if (run / "metrics.csv").is_file() else []
    return any(r.get("val_return_k0") for r in rows)


def score(run: Path) -> dict[str, float]:
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("val_return_k0")]
    last = rows[-1]
    out = {f"k{k}": float(last[f"val_return_k{k}"]) for k in range(4)}
    out["iteration"] = int(last["iteration"]) + 1
    out["env_steps"] = int(last["env_steps"])
    out["wall_time_s"] = float(last["wall_time_s"])
    return out


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| variant | seeds | iterations | val k=0 | val k=1 | val k=2 | val k=3 | env steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, per_seed in results.items():
        if not per_seed:
            continue
        n = len(per_seed)
        mean = {k: sum(s[k] for s in per_seed.values()) / n for k in ("k0", "k1", "k2", "k3", "env_steps")}
        cells = " | ".join(f"{mean[k]:.3f}" for k in ("k0", "k1", "k2", "k3"))
        its = ",".join(str(s["iteration"]) for s in per_seed.values())
        seeds = ",".join(sorted(per_seed))
        lines.append(f"| {name} | {seeds} | {its} | {cells} | {mean['env_steps'] / 1e6:.2f} M |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runs", default="runs/ablation_mamlpp")
    p.add_argument("--out", default="benchmarks/results/ablation_mamlpp.json")
    p.add_argument("--variants", nargs="*", default=None, help="subset of variant names (default: all)")
    p.add_argument("--collect-only", action="store_true", help="only score the finished runs (train nothing)")
    p.add_argument(
        "--include-unfinished",
        action="store_true",
        help="with --collect-only, also score runs stopped before their last iteration (their last "
        "validation; the iterations column says how far they got)",
    )
    args = p.parse_args()
    runs = Path(args.runs).resolve()
    names = args.variants or list(VARIANTS)
    jobs = [(n, s) for s in args.seeds for n in names]  # seed-major: partial results cover all variants
    results: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
    if args.collect_only:  # finished runs (a stopped one only when asked: its mean is not comparable)
        done = _validated if args.include_unfinished else _finished
        jobs = [(n, s) for n, s in jobs if done(runs / f"{slug(n)}_seed{s}")]
    work = (lambda r, n, s: r / f"{slug(n)}_seed{s}") if args.collect_only else train
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(work, runs, n, s): (n, s) for n, s in jobs}
        for fut, (n, s) in futures.items():
            try:
                results[n][str(s)] = score(fut.result())
            except Exception as e:  # one failed run must not lose the others' numbers
                print(f"{n} seed {s} failed: {e}", file=sys.stderr)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            payload = {
                "command": "python benchmarks/ablation_mamlpp.py " + " ".join(sys.argv[1:]),
                "regenerate": "python benchmarks/ablation_mamlpp.py --seeds "
                + " ".join(str(x) for x in args.seeds)
                + " --jobs 2",
                "env": "MetaTutor/SkillGraph-v0",
                "config": "meta_rl/configs/skill_graph.yaml",
                "common_overrides": COMMON,
                "variants": {k: VARIANTS[k] for k in names},
                "score": "last validation row: mean return on the 40 val students after k adaptation steps",
                "results": results,
            }
            Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
