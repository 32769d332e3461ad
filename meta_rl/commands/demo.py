"""``meta-tutor demo``: the built-in default job, end to end.

Meta-trains MAML-PPO on the default env with its default config, trains the
baselines with the same budget, evaluates MAML-PPO against them on held-out ``test``
students and prints the summary table and where the plots are. Re-running with the
same ``--out`` resumes an interrupted training and reuses cached baselines.

The demo's methods are ``evaluate``'s defaults but the other meta-learners (Reptile-PPO,
MAML++-PPO): they add about a fifth of the demo's CPU time, which on 2 cores would push
the main command past five minutes. ``--methods default`` includes them; so does
``meta-tutor evaluate`` on the demo's run afterwards, which reuses every cached baseline.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

HELP = "Run the default job: meta-train, train baselines, evaluate on held-out students, report."

#: a smoke-test sized run (seconds), for trying the pipeline and for the test suite
QUICK = [
    "n_iterations=3",
    "meta_batch_size=4",
    "rollouts_per_task=4",
    "eval_every=3",
    "val_tasks=4",
    "val_episodes=2",
]


#: evaluate's default methods that the demo leaves out (module docstring)
LEFT_OUT = ("reptile_ppo", "mamlpp_ppo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env", default="MetaTutor/SkillGraph-v0", help="env id (default: MetaTutor/SkillGraph-v0)"
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    p.add_argument("--n", type=int, default=80, help="held-out test students (default: 80)")
    p.add_argument("--quick", action="store_true", help="a tiny smoke-test run (seconds, not meaningful)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="NAME",
        help="methods to evaluate, as for meta-tutor evaluate ('default': all of evaluate's defaults); "
        f"default: evaluate's defaults but {' and '.join(LEFT_OUT)}",
    )


def run(args: argparse.Namespace) -> int:
    from meta_rl.config import default_config_path, load_config
    from meta_rl.evaluation.registry import default_methods
    from meta_rl.evaluation.runner import EvaluationSettings, run_evaluation, select_methods
    from meta_rl.trainer import Trainer

    out = Path(args.out)
    train_dir, eval_dir = out / "train", out / "eval"
    overrides = QUICK if args.quick else []
    config = default_config_path(args.env)
    resume = (train_dir / "checkpoint.pt").is_file()
    cfg = load_config(
        train_dir / "config.yaml" if resume else config, overrides, env=args.env, seed=args.seed
    )
    t0 = time.time()
    n = 8 if args.quick else args.n
    methods = args.methods or [m for m in default_methods(cfg.env, cfg.env_kwargs) if m not in LEFT_OUT]
    select_methods(cfg.env, cfg.env_kwargs, methods)  # a bad --methods fails before any training
    settings = EvaluationSettings(
        split="test",
        n_profiles=n,
        adapt_steps=3,
        eval_episodes=2 if args.quick else 10,
        val_profiles=2 if args.quick else 20,
        methods=methods,
        command=args.command_line,
    )
    print(
        f"meta-training {cfg.algo} on {cfg.env} ({cfg.n_iterations} iterations) -> {train_dir}; "
        f"baselines with its budget; evaluation on {n} held-out test students -> {eval_dir}"
    )
    trainer = Trainer(cfg, train_dir, resume=resume, progress=sys.stderr.isatty())
    try:
        # the run trains in this process while the baselines that need only its config train
        # on the second core; the rest (SB3, every curve) follows as soon as it can start
        paths = run_evaluation([train_dir], settings, eval_dir, trainer=trainer)
    finally:
        trainer.close()
    print()
    print(paths["summary"].read_text())
    print(f"total time {time.time() - t0:.0f} s")
    for name, path in paths.items():
        print(f"{name}: {path}")
    if args.methods is None and not args.quick:
        q = shlex.quote
        print(
            "the other meta-learners on the same students (trains only theirs; every curve is "
            f"measured again): meta-tutor evaluate --checkpoint {q(str(train_dir))} --n {n} "
            f"--out {q(str(out / 'eval_all'))}"
        )
    return 0
