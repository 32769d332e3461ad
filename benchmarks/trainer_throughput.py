#!/usr/bin/env python
"""Env-steps per second of training: MAML-PPO, Reptile-PPO, MAML++-PPO, pooled PPO and SB3 PPO.

All train the same env (the default ``configs/skill_graph.yaml`` env settings; each of
our algorithms with its shipped section of that file, MAML++ timed at second order)
with the same network (MLP 64-64 tanh, categorical head), one torch thread each,
and count *every* env step including the time spent on updates. SB3 runs its
standard ``PPO("MlpPolicy")`` on a ``DummyVecEnv`` of the single-student env.
Each rate is given per wall second and per CPU second of the process
(``time.process_time``; on a shared machine the CPU rate is the steadier one).

The ``roofline`` entry sets one MAML-PPO iteration against the floating-point work it
does: the matrix-multiply FLOPs of every forward, backward and second-order pass of the
iteration (rollouts, inner step, outer epochs; counted by
``torch.utils.flop_counter.FlopCounterMode`` from the shapes of the matmuls actually
dispatched), the machine's single-thread float32 peak (best of a few large matmuls),
the fraction of that peak the iteration reaches, and where its time goes: the phases
of the iteration, and within the outer update the share of matmuls, of the other
(element-wise, reduction) kernels and of everything between kernels (Python, autograd
engine, dispatch), from ``torch.profiler``; ``roofline_pooled_ppo`` the same for pooled
PPO. ``target_budget`` (``target_budget_pooled_ppo``) sets the 20× (25×) target
against those phases: the CPU time an iteration may take, what the phases outside the
outer epochs already take, and what is left for the outer epochs next to what their
matmuls alone take now. ``--variants`` times other MAML-PPO settings beside the shipped
ones (e.g. first-order, fewer outer epochs: what the target would cost in the algorithm).

    python benchmarks/trainer_throughput.py [--out benchmarks/results/trainer_throughput.json]
        [--variants first_order=true outer_epochs=2 first_order=true,outer_epochs=2]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_report  # noqa: E402


def measure_ours(algo: str, iterations: int, overrides: list[str]) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp())
    try:
        trainer = trainer_for(algo, tmp, overrides)
        trainer.train(1)  # warm-up (allocations, first vector env)
        steps0, t0, c0 = trainer.env_steps, time.perf_counter(), time.process_time()
        trainer.train(iterations)
        dt, ct = time.perf_counter() - t0, time.process_time() - c0
        steps = trainer.env_steps - steps0
        trainer.close()
    finally:
        shutil.rmtree(tmp)
    return {
        "env_steps": steps,
        "seconds": dt,
        "env_steps_per_s": steps / dt,
        "cpu_seconds": ct,
        "env_steps_per_cpu_s": steps / ct,
        "iterations": iterations,
    }


def trainer_for(algo: str, tmp: Path, overrides: Sequence[str] = ()) -> Any:
    """A MetaTutor/SkillGraph-v0 trainer with the shipped config, one thread, no validation."""
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
    return Trainer(cfg, tmp / "run", progress=False)


def peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Single-thread float32 matmul peak: the best of ``repeats`` ``n × n`` products, per
    CPU second (``time.process_time``, so that other processes on the machine count less)."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        t0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - t0)
    return 2 * n**3 / best / 1e9


#: where one iteration's time is measured (module, attribute, phase); the first
#: matching phase on the stack owns the time (nested phases are subtracted)
PHASES = (
    ("envs.core", "StudentVectorEnv.step", "env step"),
    ("envs.core", "StudentVectorEnv.reset", "env reset"),
    ("meta_rl.sampler", "Sampler.collect", "rollout policy and buffers"),
    ("meta_rl.algorithms.maml_ppo", "rollout_step_data", "advantages (baseline fit, GAE)"),
    ("meta_rl.algorithms.base", "rollout_step_data", "advantages (baseline fit, GAE)"),  # pooled PPO
    ("meta_rl.algorithms.maml_ppo", "inner_step", "inner step on the rollouts"),
    ("meta_rl.algorithms.maml_ppo", "adaptation_kl", "adaptation KL (log column)"),
    ("meta_rl.algorithms.base", "Algorithm.optimise", "outer PPO epochs"),
    ("meta_rl.rundir", "RunDirectory.save_state", "checkpoint"),
    ("meta_rl.rundir", "RunDirectory.append_metrics", "metrics.csv"),
)


def phase_times(trainer: Any, iterations: int) -> dict[str, float]:
    """CPU seconds per iteration of each :data:`PHASES` entry (exclusive of nested phases)."""
    import importlib

    totals = {name: 0.0 for _, _, name in PHASES}
    stack: list[list[float]] = []  # per open phase: [start, time spent in nested phases]
    patched = []

    def wrap(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack.append([time.process_time(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                start, nested = stack.pop()
                spent = time.process_time() - start
                totals[name] += spent - nested
                if stack:
                    stack[-1][1] += spent

        return timed

    for module, attr, name in PHASES:
        owner = importlib.import_module(module)
        *path, leaf = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        patched.append((owner, leaf, getattr(owner, leaf)))
        setattr(owner, leaf, wrap(getattr(owner, leaf), name))
    try:
        t0 = time.process_time()
        trainer.train(iterations)
        total = time.process_time() - t0
    finally:
        for owner, leaf, fn in patched:
            setattr(owner, leaf, fn)
    out = {k: v / iterations for k, v in totals.items()}
    out["rest (profiles, loop, logging)"] = total / iterations - sum(out.values())
    return out


def outer_update_shares(trainer: Any) -> dict[str, float]:
    """Shares of the outer update's time (one iteration under ``torch.profiler``): matmul
    kernels, other kernels, and the time between kernels (Python, autograd, dispatch)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from meta_rl.algorithms.base import Algorithm

    optimise = Algorithm.optimise

    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        with record_function("outer_update"):
            return optimise(self, *args, **kwargs)

    Algorithm.optimise = traced
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train(1)
    finally:
        Algorithm.optimise = optimise
    events = prof.events()
    outer = [e for e in events if e.name == "outer_update"]
    total = sum(e.cpu_time_total for e in outer)
    per_op: dict[str, float] = {}
    n_ops = 0
    for e in events:
        if not e.name.startswith("aten::") or not _inside(e, outer):
            continue
        n_ops += 1
        per_op[e.name] = per_op.get(e.name, 0.0) + e.self_cpu_time_total
    matmul = sum(v for k, v in per_op.items() if k in MATMULS)
    other = sum(v for k, v in per_op.items() if k not in MATMULS)
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:8]
    return {
        "profiled_seconds": total / 1e6,
        "aten_calls": n_ops,
        "matmul_kernels": matmul / total,
        "other_kernels": other / total,
        "between_kernels": 1.0 - (matmul + other) / total,
        "top_ops_share": {k: v / total for k, v in top},
    }


MATMULS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")


def _inside(e: Any, spans: Sequence[Any]) -> bool:
    start = e.time_range.start
    return any(s.time_range.start <= start <= s.time_range.end for s in spans)


def roofline(iterations: int, timed: dict[str, float], algo: str = "maml_ppo") -> dict[str, object]:
    """One iteration of ``algo`` (``timed``: its timed run) against its matmul FLOPs and the
    single-thread peak; where its time goes."""
    from torch.utils.flop_counter import FlopCounterMode

    tmp = Path(tempfile.mkdtemp())
    try:
        trainer = trainer_for(algo, tmp)
        trainer.train(1)  # warm-up
        with FlopCounterMode(display=False) as counter:
            trainer.train(1)
        flops = counter.get_total_flops()
        by_op = {str(k).split(".")[-1]: v for k, v in counter.get_flop_counts()["Global"].items()}
        phases = phase_times(trainer, iterations)
        shares = outer_update_shares(trainer)
        trainer.close()
    finally:
        shutil.rmtree(tmp)
    peak = peak_gflops()
    at_peak = flops / (peak * 1e9)
    cpu = timed["cpu_seconds"] / timed["iterations"]
    wall = timed["seconds"] / timed["iterations"]
    return {
        "matmul_gflop_per_iteration": flops / 1e9,
        "matmul_gflop_by_op": {k: v / 1e9 for k, v in by_op.items()},
        "peak_gflops_fp32_one_thread": peak,
        "seconds_at_peak": at_peak,
        "cpu_seconds_per_iteration": cpu,
        "fraction_of_peak": at_peak / cpu,
        "achieved_gflops": flops / 1e9 / cpu,
        "wall_seconds_per_iteration": wall,
        "fraction_of_peak_wall": at_peak / wall,
        "phase_cpu_seconds_per_iteration": phases,
        "outer_update": shares,
    }


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
    t0, c0 = time.perf_counter(), time.process_time()
    model.learn(total_steps, reset_num_timesteps=False)
    dt, ct = time.perf_counter() - t0, time.process_time() - c0
    return {
        "env_steps": total_steps,
        "seconds": dt,
        "env_steps_per_s": total_steps / dt,
        "cpu_seconds": ct,
        "env_steps_per_cpu_s": total_steps / ct,
        "n_envs": 8,
    }


def target_budget(timed: dict, sb3: dict, roof: dict, speedup: float) -> dict[str, float]:
    """What a ``speedup`` × SB3 target (per CPU second) leaves an iteration (``timed``: its
    timed run, ``roof``: its :func:`roofline`): its CPU seconds, those of every phase but the
    outer PPO epochs (as measured), the rest for the outer epochs, against what the outer
    epochs take now and (an estimate: the profiled matmul share of the outer update times
    their CPU seconds) their matmul kernels alone."""
    phases = roof["phase_cpu_seconds_per_iteration"]
    steps = timed["env_steps"] / timed["iterations"]
    per_iteration = steps / (speedup * sb3["env_steps_per_cpu_s"])
    outer = phases["outer PPO epochs"]
    rest = sum(phases.values()) - outer
    return {
        "speedup": speedup,
        "env_steps_per_iteration": steps,
        "cpu_seconds_per_iteration_at_target": per_iteration,
        "cpu_seconds_outside_the_outer_epochs": rest,
        "cpu_seconds_left_for_the_outer_epochs": per_iteration - rest,
        "outer_epochs_cpu_seconds_now": outer,
        "outer_epochs_matmul_kernels_cpu_seconds_estimate": roof["outer_update"]["matmul_kernels"] * outer,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/trainer_throughput.json"))
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations of our trainers")
    parser.add_argument("--sb3-steps", type=int, default=16384, help="timed env steps of SB3 PPO")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="MAML-PPO settings to time besides the shipped ones, each against SB3 per CPU second "
        "(e.g. first_order=true outer_epochs=2 first_order=true,outer_epochs=2)",
    )
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
    variants = {v: measure_ours("maml_ppo", args.iterations, v.split(",")) for v in args.variants}
    sb3 = measure_sb3(args.sb3_steps, cfg.env_kwargs)
    roof = roofline(args.iterations, maml)
    roof_ppo = roofline(args.iterations, ppo, "ppo")
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
        "speedup_maml_vs_sb3_cpu": maml["env_steps_per_cpu_s"] / sb3["env_steps_per_cpu_s"],
        "speedup_ppo_vs_sb3_cpu": ppo["env_steps_per_cpu_s"] / sb3["env_steps_per_cpu_s"],
        "speedup_reptile_vs_maml": reptile["env_steps_per_s"] / maml["env_steps_per_s"],
        "speedup_mamlpp_vs_maml": mamlpp["env_steps_per_s"] / maml["env_steps_per_s"],
        "roofline": roof,
        "target_budget": target_budget(maml, sb3, roof, 20.0),
        "roofline_pooled_ppo": roof_ppo,
        "target_budget_pooled_ppo": target_budget(ppo, sb3, roof_ppo, 25.0),
        "maml_ppo_variants": {
            v: {**r, "speedup_vs_sb3_cpu": r["env_steps_per_cpu_s"] / sb3["env_steps_per_cpu_s"]}
            for v, r in variants.items()
        },
        "machine": machine(),
    }
    write_report(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
