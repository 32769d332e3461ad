#!/usr/bin/env python
"""Why Reptile-PPO learns little on MetaTutor/SkillGraph-v0: measured on val students.

Every variant trains with the shipped ``configs/skill_graph.yaml`` (150 iterations,
800 episodes = 24 000 env steps per iteration, 3.6 M env steps) plus its ``--set``
overrides, validated every 25 iterations on the run's 40 fixed ``val`` students with 3
adaptation steps (``val_adapt_steps=3``; never test students). Recorded per run:

* the validation curve (``val_return_k0 … k3`` at iterations 25, 50, …, 150);
* the size of the updates, per iteration: ``‖θ_{t+1} − θ_t‖`` for every algorithm and,
  for Reptile, the pseudo-gradient ``‖θ − φ̄‖`` against the mean per-student
  displacement ``mean_i ‖φ_i − θ‖`` (if the per-student steps were independent noise,
  ``‖θ − φ̄‖ ≈ mean_i ‖φ_i − θ‖ / √N``: their ratio times √N is the "signal" share);
  ``cos(Δθ_t, Δθ_{t−1})`` says whether consecutive outer steps agree;
* the number of optimiser updates of θ within the budget;
* with ``--extras``, the final policy's val return after 3 fine-tuning steps for each
  step size (the evaluation chooses this step on val students) and its val curve when
  it adapts with the linear or the time_mean baseline.

    python benchmarks/reptile_diagnosis.py --seeds 0 1 2 --runs runs/reptile_diagnosis \\
        --out benchmarks/results/reptile_diagnosis.json

Each (variant, seed) result is cached as ``RUNS/<variant>__s<seed>.json``; the command
can be repeated to add seeds or variants (``--variants NAME …``) and ends by writing the
summary JSON (every cached result) and printing the Markdown table of docs/algorithms.md.
One training at a time (about 1 min each on an idle core).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meta_rl.adaptation import adaptation_curve  # noqa: E402
from meta_rl.algorithms import ALGORITHMS  # noqa: E402
from meta_rl.algorithms.reptile_ppo import ReptilePPO  # noqa: E402
from meta_rl.checkpoint import load_policy  # noqa: E402
from meta_rl.config import default_config_path, load_config  # noqa: E402
from meta_rl.envspec import EnvSpec  # noqa: E402
from meta_rl.trainer import Trainer  # noqa: E402

ENV = "MetaTutor/SkillGraph-v0"
COMMON = ["val_adapt_steps=3", "eval_every=25", "tensorboard=false"]
#: Reptile-PPO as first shipped (spelled out, so the variants do not depend on the
#: config's ``algorithms.reptile_ppo`` section, which now holds the chosen defaults)
REPTILE = [
    "algo=reptile_ppo",
    "inner_steps=2",
    "inner_epochs=2",
    "outer_update=interpolate",
    "meta_step_size=0.5",
    "outer_lr=0.001",
]
K2E1_ADAM = [*REPTILE, "inner_epochs=1", "outer_update=adam", "outer_lr=0.003"]
K2E1_ADAM01 = [*REPTILE, "inner_epochs=1", "outer_update=adam", "outer_lr=0.01"]
#: variant name -> --set overrides on top of the shipped SkillGraph config (and its
#: ``algorithms.reptile_ppo`` section for ``algo=reptile_ppo``)
VARIANTS: dict[str, list[str]] = {
    "pooled ppo": ["algo=ppo"],
    "reptile first settings (interpolate eps 0.5, inner_lr 0.5, 2 epochs, K=2)": REPTILE,
    "reptile K=1, 1 epoch, interpolate eps 1, 20 students (half the env steps)": [
        *REPTILE,
        "inner_steps=1",
        "inner_epochs=1",
        "meta_step_size=1.0",
    ],
    "reptile K=1, 1 epoch, adam 0.003, 20 students (half the env steps)": [
        *REPTILE,
        "inner_steps=1",
        "inner_epochs=1",
        "outer_update=adam",
        "outer_lr=0.003",
    ],
    "reptile first settings, baseline value_net": [*REPTILE, "baseline=value_net"],
    # K = 1 round: 40 students keep the 800 episodes per iteration (derived_config does so)
    "reptile K=1, 1 epoch, adam 0.003, 40 students": [
        *REPTILE,
        "inner_steps=1",
        "inner_epochs=1",
        "meta_batch_size=40",
        "outer_update=adam",
        "outer_lr=0.003",
    ],
    "reptile K=2, 1 epoch, adam 0.003": [*REPTILE, "inner_epochs=1", "outer_update=adam", "outer_lr=0.003"],
    "reptile K=1, 2 epochs, adam 0.003, 40 students": [
        *REPTILE,
        "inner_steps=1",
        "meta_batch_size=40",
        "outer_update=adam",
        "outer_lr=0.003",
    ],
    "reptile K=2, 1 epoch, adam 0.01": [*REPTILE, "inner_epochs=1", "outer_update=adam", "outer_lr=0.01"],
    "reptile K=2, 1 epoch, adam 0.001": [*REPTILE, "inner_epochs=1", "outer_update=adam", "outer_lr=0.001"],
    "reptile K=2, 1 epoch, adam 0.003, inner_lr 1": [*K2E1_ADAM, "inner_lr=1.0"],
    "reptile K=2, 1 epoch, adam 0.003, inner_lr 0.25": [*K2E1_ADAM, "inner_lr=0.25"],
    "reptile K=3, 1 epoch, adam 0.003, 13 students": [*K2E1_ADAM, "inner_steps=3", "meta_batch_size=13"],
    "reptile K=2, 1 epoch, interpolate eps 1": [*REPTILE, "inner_epochs=1", "meta_step_size=1.0"],
    "reptile K=2, 1 epoch, adam 0.03": [*REPTILE, "inner_epochs=1", "outer_update=adam", "outer_lr=0.03"],
    "reptile K=2, 2 epochs, adam 0.01": [*REPTILE, "outer_update=adam", "outer_lr=0.01"],
    "reptile K=2, 1 epoch, adam 0.01, advantages not normalised": [
        *K2E1_ADAM01,
        "normalize_advantages=false",
    ],
    "reptile K=2, 1 epoch, adam 0.01, baseline time_mean": [*K2E1_ADAM01, "baseline=time_mean"],
    "reptile K=2, 1 epoch, adam 0.003, baseline time_mean": [*K2E1_ADAM, "baseline=time_mean"],
    "reptile K=1, 1 epoch, adam 0.01, 40 students": [
        *REPTILE,
        "inner_steps=1",
        "inner_epochs=1",
        "meta_batch_size=40",
        "outer_update=adam",
        "outer_lr=0.01",
    ],
}
#: fine-tuning step sizes tried on the final policy with --lr-grid
LR_GRID = (0.25, 0.5, 1.0, 2.0, 4.0)


def flat(params: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.detach().reshape(-1) for v in params.values()])


class Recorder:
    """Per-iteration update norms, recorded by wrapping the algorithm's methods."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self._prev_step: torch.Tensor | None = None

    def wrap(self, cls: type) -> Callable[[], None]:
        """Instrument ``cls`` (and Reptile's outer step); returns the function that undoes it."""
        orig_iter = cls.iteration
        orig_outer = ReptilePPO.outer_step
        rec = self

        def iteration(algo: Any, it: int) -> dict[str, Any]:
            before = flat(algo.theta).clone()
            rec.rows.append({"iteration": it})
            out = orig_iter(algo, it)
            step = flat(algo.theta) - before
            r = rec.rows[-1]
            r["step_norm"] = float(step.norm())
            if rec._prev_step is not None:
                r["cos_prev"] = float(
                    torch.dot(step, rec._prev_step) / (step.norm() * rec._prev_step.norm()).clamp_min(1e-30)
                )
            rec._prev_step = step
            return out

        def outer_step(algo: Any, it: int, phi: dict[str, torch.Tensor]) -> float:
            theta = flat(algo.theta)
            n = next(iter(phi.values())).shape[0]
            per = torch.cat([phi[k].detach().reshape(n, -1) for k in algo.theta], 1) - theta
            r = rec.rows[-1]
            r["student_disp"] = float(per.norm(dim=1).mean())
            r["pseudo_grad"] = float(per.mean(0).norm())
            r["n_students"] = float(n)
            return orig_outer(algo, it, phi)

        cls.iteration = iteration
        ReptilePPO.outer_step = outer_step

        def undo() -> None:
            cls.iteration = orig_iter
            ReptilePPO.outer_step = orig_outer

        return undo


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarise(vals: list[float]) -> float:
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def run_key(env: str, name: str, seed: int) -> str:
    """Cache name of a run: SkillGraph runs unprefixed, other envs prefixed by their id."""
    prefix = "" if env == ENV else slug(env) + "__"
    return f"{prefix}{slug(name)}__s{seed}"


def run_one(name: str, seed: int, runs: Path, env: str = ENV) -> dict[str, Any]:
    overrides = VARIANTS[name] + COMMON
    cfg = load_config(default_config_path(env), overrides, seed=seed)
    run_dir = runs / run_key(env, name, seed)
    if run_dir.exists():  # an unfinished run from a killed invocation: start again
        shutil.rmtree(run_dir)
    rec = Recorder()
    undo = rec.wrap(ALGORITHMS[cfg.algo])
    t0 = time.time()
    try:
        trainer = Trainer(cfg, run_dir, progress=False)
        trainer.train()
    finally:
        undo()
    wall = time.time() - t0
    rows = read_metrics(run_dir / "metrics.csv")
    val = [r for r in rows if r.get("val_return_k0")]
    curve = {int(r["iteration"]) + 1: [round(float(r[f"val_return_k{k}"]), 4) for k in range(4)] for r in val}
    last = val[-1]
    it_rows = rec.rows
    first, tail = it_rows[:25], it_rows[-25:]

    def mean_of(key: str, part: list[dict[str, float]]) -> float:
        return round(summarise([r.get(key, float("nan")) for r in part]), 6)

    norms = {
        f"{key}_{where}": mean_of(key, part)
        for key in ("step_norm", "pseudo_grad", "student_disp", "cos_prev")
        for where, part in (("first25", first), ("last25", tail))
    }
    if "student_disp" in it_rows[0]:
        n = it_rows[0]["n_students"]
        norms["signal_share_last25"] = round(
            summarise([r["pseudo_grad"] / r["student_disp"] * math.sqrt(n) for r in tail]), 4
        )
    result: dict[str, Any] = {
        "variant": name,
        "env": env,
        "seed": seed,
        "overrides": VARIANTS[name],
        "algo": cfg.algo,
        "iterations": len(rows),
        "env_steps": int(float(rows[-1]["env_steps"])),
        "val_final": [round(float(last[f"val_return_k{k}"]), 4) for k in range(4)],
        "val_best_k0": round(max(float(r["val_return_k0"]) for r in val), 4),
        "val_curve": curve,
        "train_return_pre_last25": round(summarise([float(r["return_pre"]) for r in rows[-25:]]), 4),
        "entropy_first": round(float(rows[0]["entropy"]), 4),
        "entropy_last": round(float(rows[-1]["entropy"]), 4),
        "norms": norms,
        "wall_s": round(wall, 1),
    }
    if cfg.algo == "reptile_ppo":
        result["theta_updates"] = len(rows)
    else:
        result["theta_updates"] = int(sum(float(r["epochs"]) for r in rows) * cfg.n_minibatches)
    return result


def final_policy_extras(run_dir: Path) -> dict[str, Any]:
    """The run's final policy (``checkpoint.pt``, iteration 150) on its val students:
    the return after 3 fine-tuning steps for each step size of ``LR_GRID`` (the
    evaluation picks the best on val), and the curve k = 0..3 when it adapts with the
    linear or the time_mean baseline (same seed: which baseline matters at test time)."""
    cfg = load_config(run_dir / "config.yaml")
    pol = load_policy(run_dir / "checkpoint.pt")
    val = (
        EnvSpec(cfg.env, cfg.env_kwargs, cfg.privileged)
        .distribution()
        .sample(cfg.val_tasks, "val", seed=cfg.val_seed)
    )
    n, eps = cfg.rollouts_per_task, cfg.val_episodes
    by_lr = {
        str(lr): round(
            float(adaptation_curve(pol, val, 3, n, eps, seed=cfg.val_seed + 1, lr=lr).returns[:, -1].mean()),
            4,
        )
        for lr in LR_GRID
    }
    by_baseline = {}
    for b in ("linear", "time_mean"):
        p = replace(pol, advantage=replace(pol.advantage, baseline=b))
        curve = adaptation_curve(p, val, 3, n, eps, seed=cfg.val_seed).mean_returns()
        by_baseline[b] = [round(float(x), 4) for x in curve]
    return {"val_k3_by_lr": by_lr, "val_curve_by_adapt_baseline": by_baseline}


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table of docs/algorithms.md: mean over seeds of the last validation."""
    head = "| variant | seeds | val k=0 | val k=1 | val k=2 | val k=3 | k=3 per seed "
    head += "| ‖Δθ‖/iteration | entropy | env steps |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    by: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault((r["env"], r["variant"]), []).append(r)
    for env, name in sorted(by, key=lambda k: (k[0] != ENV, k[0], list(VARIANTS).index(k[1]))):
        rs = sorted(by[(env, name)], key=lambda r: r["seed"])
        if env != ENV:
            name = f"{env.split('/')[-1]}: {name}"
        m = np.mean([r["val_final"] for r in rs], 0)
        step = np.mean([r["norms"]["step_norm_last25"] for r in rs])
        ent = np.mean([r["entropy_last"] for r in rs])
        seeds = ",".join(str(r["seed"]) for r in rs)
        vals = " | ".join(f"{x:.3f}" for x in m)
        per = " ".join(f"{r['val_final'][3]:.2f}" for r in rs)
        steps = rs[0]["env_steps"] / 1e6
        lines.append(f"| {name} | {seeds} | {vals} | {per} | {step:.3f} | {ent:.2f} | {steps:.1f} M |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--env", default=ENV, help="env id; its shipped config is the base (default: %(default)s)"
    )
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help="variant names (default: all)")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "reptile_diagnosis")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reptile_diagnosis.json")
    ap.add_argument(
        "--extras",
        action="store_true",
        help="also adapt each final policy with several step sizes and both baselines (final_policy_extras)",
    )
    ap.add_argument("--collect-only", action="store_true", help="only summarise the cached results")
    args = ap.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; valid: {list(VARIANTS)}")
    args.runs.mkdir(parents=True, exist_ok=True)
    if not args.collect_only:
        for name in args.variants:
            for seed in args.seeds:
                cache = args.runs / f"{run_key(args.env, name, seed)}.json"
                if not cache.exists():
                    res = run_one(name, seed, args.runs, args.env)
                    cache.write_text(json.dumps(res, indent=1))
                    print(f"{name} s{seed}: val k0..3 {res['val_final']} ({res['wall_s']} s)", flush=True)
                res = json.loads(cache.read_text())
                if args.extras and "extras" not in res:
                    res["extras"] = final_policy_extras(args.runs / run_key(args.env, name, seed))
                    cache.write_text(json.dumps(res, indent=1))
                    print(f"{name} s{seed}: {res['extras']}", flush=True)
    results = [json.loads(p.read_text()) for p in sorted(args.runs.glob("*__s*.json"))]
    results = [r for r in results if r["variant"] in VARIANTS]
    for r in results:
        r.setdefault("env", ENV)
    out = {
        "command": "python benchmarks/reptile_diagnosis.py " + " ".join(sys.argv[1:]),
        "regenerate": "the commands of docs/algorithms.md, section 'Reptile diagnosis'",
        "configs": "the env's shipped configs/<family>.yaml (SkillGraph-v0: configs/skill_graph.yaml)",
        "common_overrides": COMMON,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(args.out)
    print(table(results))


if __name__ == "__main__":
    main()
