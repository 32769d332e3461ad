"""``meta-tutor evaluate``: adaptation curves of every method on held-out students."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Evaluate a meta-trained tutor against baselines on held-out students (tables, JSON, plots)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        nargs="+",
        required=True,
        metavar="RUN",
        help="run directories (or a file inside one); each run's best.pt (chosen on val students) is "
        "evaluated; several runs (training seeds) are pooled",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--split", default="test", help="held-out split: test or ood (default: test)")
    src.add_argument(
        "--profiles",
        default=None,
        help="profile file (envs.save_profiles format) instead of a split; its profiles must fit the "
        "run's env (make them with meta-tutor profiles --like RUN)",
    )
    p.add_argument(
        "--n",
        type=int,
        default=80,
        help="number of held-out students (default: 80; with --profiles every student of the file is used)",
    )
    p.add_argument("--profile-seed", type=int, default=0, help="seed of the held-out students (default: 0)")
    p.add_argument("--adapt-steps", type=int, default=3, help="adaptation steps K (default: 3)")
    p.add_argument(
        "--rollouts-per-step",
        type=int,
        default=None,
        help="episodes per adaptation step (default: the run's)",
    )
    p.add_argument(
        "--eval-episodes", type=int, default=10, help="fresh episodes per student and step (default: 10)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes (default: 0)")
    p.add_argument(
        "--val-profiles",
        type=int,
        default=20,
        help="val-split students used to choose the fine-tuning step size of the baselines (default: 20)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help=(
            "cores to use: this process plus WORKERS - 1 worker processes, each training a "
            "missing baseline or measuring a method's curve (default: 2)"
        ),
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods to evaluate (default: all but the optional recurrent_ppo; the word "
        "'default' stands for those, e.g. --methods default recurrent_ppo)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--check",
        action="store_true",
        help="only check the runs, the students (--profiles) and the memory estimate, then exit "
        "(no baseline is trained, nothing is written)",
    )


def run(args: argparse.Namespace) -> int:
    from meta_rl.evaluation.runner import EvaluationSettings, run_dir, run_evaluation

    if args.split not in ("test", "ood", "val") and args.profiles is None:
        raise ValueError(f"--split must be test or ood (or val), got {args.split!r}")
    for name in ("seed", "profile_seed"):
        if not 0 <= getattr(args, name) < 2**32:
            raise ValueError(
                f"--{name.replace('_', '-')} must be an integer in [0, 2**32), got {getattr(args, name)}"
            )
    for name in ("n", "adapt_steps", "eval_episodes", "val_profiles", "workers"):
        if getattr(args, name) < (0 if name == "adapt_steps" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    runs = [run_dir(c) for c in args.checkpoint]  # a missing run is named before anything reads it
    n = args.n
    if args.profiles is not None:
        _check_profiles_fit_runs(args.profiles, runs)
        n = check_profile_file(args.checkpoint[0], args.profiles)
    _check_memory(args, runs[0], n)
    if args.check:
        return _check(args, runs, n)
    settings = EvaluationSettings(
        split=args.split,
        n_profiles=args.n,
        profile_seed=args.profile_seed,
        profiles_file=args.profiles,
        adapt_steps=args.adapt_steps,
        rollouts_per_step=args.rollouts_per_step,
        eval_episodes=args.eval_episodes,
        seed=args.seed,
        methods=args.methods,
        val_profiles=args.val_profiles,
        workers=args.workers,
        command=args.command_line,
    )
    paths = run_evaluation(args.checkpoint, settings, args.out)
    print(paths["summary"].read_text())
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def check_profile_file(run: str, path: str) -> int:
    """Refuse, before anything is trained or evaluated, a profile file whose students do not
    fit the run's env; the error names the env kwargs they must have and the ``--like`` fix.
    Returns the number of students in the file."""
    import envs

    env_id, env_kwargs = envs.trained_env(run)
    file_env, profiles = envs.load_profiles(path)
    envs.check_profiles_fit(env_id, env_kwargs, profiles, profiles_env_id=file_env, source=path, run=run)
    return len(profiles)


def _check_profiles_fit_runs(profiles: str, runs: list[Path]) -> None:
    """A calibrated population's file must be evaluated with the env kwargs it was fitted for."""
    from envs.calibration.population import check_population_settings
    from meta_rl.config import read_yaml_mapping

    for run in runs:
        if (run / "config.yaml").is_file():
            cfg = read_yaml_mapping(run / "config.yaml")
            check_population_settings(
                profiles, cfg.get("env", ""), cfg.get("env_kwargs") or {}, f"the run {run}"
            )


def _check_memory(args: argparse.Namespace, run: Path, n: int) -> None:
    """Refuse an evaluation of ``n`` students that cannot fit in memory before training any
    baseline (:mod:`meta_rl.resources`; ``META_TUTOR_NO_MEMORY_CHECK=1`` skips)."""
    from meta_rl.checkpoint import load_policy
    from meta_rl.resources import check_memory, evaluation_memory

    policy = load_policy(run)
    rollouts = args.rollouts_per_step or policy.rollouts_per_step
    estimate = evaluation_memory(policy.spec, policy.env, n, args.adapt_steps, rollouts, args.eval_episodes)
    check_memory(estimate)


def _check(args: argparse.Namespace, runs: list[Path], n: int) -> int:
    """``--check``: load every run's tutor (the students were checked already); fail as the
    evaluation would."""
    from meta_rl.checkpoint import load_policy

    policies = [load_policy(r) for r in runs]
    env = policies[0].env
    for c, p in zip(args.checkpoint, policies):
        if (p.env.env_id, dict(p.env.env_kwargs)) != (env.env_id, dict(env.env_kwargs)):
            raise ValueError(
                f"{c}: trained on {p.env.env_id} {p.env.env_kwargs}, not {env.env_id} {env.env_kwargs}"
            )
    print(f"check passed: {len(policies)} run(s) on {env.env_id} {dict(env.env_kwargs)}, {n} students")
    return 0
