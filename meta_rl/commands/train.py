"""``meta-tutor train``: meta-train (or pool-train) a tutor into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Train a tutor (MAML-PPO or pooled PPO) and write checkpoints and metrics to a run directory."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default=None, help="env id (default: the config's, else MetaTutor/SkillGraph-v0)")
    p.add_argument(
        "--config",
        default=None,
        help="YAML config (default: configs/<family>.yaml of the env if present, else built-in defaults)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set inner_lr=0.5 --set env_kwargs.n_skills=4",
    )
    p.add_argument(
        "--out", default=None, help="run directory (required; must not hold a run, unless --resume)"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides the config)")
    p.add_argument(
        "--population",
        default=None,
        help="train on a calibrated population (the --out file of meta-tutor calibrate) instead of the env's",
    )
    p.add_argument(
        "--sampler",
        choices=("local", "ray"),
        default=None,
        help="where rollouts run: local (default; fastest on one machine) or ray (needs meta-tutor[ray])",
    )
    p.add_argument(
        "--num-workers", type=int, default=None, help="Ray rollout actors with --sampler ray (default 2)"
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster for --sampler ray, e.g. auto or ray://HEAD:10001 (default: a local instance)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-keys", action="store_true", help="print every config key with its help and exit")
    p.add_argument(
        "--check",
        action="store_true",
        help="only check the config, the env arguments and the memory estimate, print a summary and "
        "exit (nothing is written)",
    )


def run(args: argparse.Namespace) -> int:
    from meta_rl.config import ALGORITHMS, default_config_path, field_help, load_config
    from meta_rl.trainer import Trainer, TrainingDiverged

    if args.list_keys:
        for algo, cls in ALGORITHMS.items():
            print(f"[algo: {algo}]")
            for k, h in field_help(cls).items():
                print(f"  {k}: {h}")
        return 0
    if args.out is None:
        raise ValueError("--out RUN_DIR is required")
    population_env, population_kwargs = _population_settings(args)
    if args.env is None and population_env is not None:
        args.env = population_env
    config_path = args.config
    if args.resume and config_path is None:
        config_path = Path(args.out) / "config.yaml"
    if config_path is None and args.env is not None:
        config_path = default_config_path(args.env)
    if config_path is None and args.env is None:
        config_path = default_config_path("MetaTutor/SkillGraph-v0")
    fields = {}
    if args.env is not None:
        fields["env"] = args.env
    if args.seed is not None:
        fields["seed"] = args.seed
    for key in ("sampler", "num_workers", "ray_address"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    if args.population is not None:
        # absolute, so the run (and its evaluation) finds it from any working directory
        fields["population"] = str(Path(args.population).resolve())
        if population_kwargs:
            # the env kwargs the population was fitted for (n_items, horizon, …) override the
            # config's; other keys may still be --set, a conflicting one is an error below
            fields["env_kwargs"] = population_kwargs
    cfg = load_config(config_path, args.overrides, **fields)
    if args.population is not None:
        from envs.calibration.population import check_population_settings

        check_population_settings(args.population, cfg.env, cfg.env_kwargs, "the training config")
    if args.check:
        return _check(cfg, args.out)
    trainer = Trainer(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    try:
        row = trainer.train()
    except TrainingDiverged as e:
        print(f"meta-tutor train: {e}")
        return 3
    finally:
        trainer.close()
    best = trainer.best_val
    # a resumed run that was finished already trains no iteration: no last row to report
    last = f"last post-adaptation return {row['return_post']:.4f}; " if "return_post" in row else ""
    print(
        f"{'done' if row else 'already done'}: {trainer.iteration} iterations, {trainer.env_steps} env "
        f"steps; {last}best validation return {best:.4f}; run directory {args.out}"
    )
    return 0


def _population_settings(args: argparse.Namespace) -> tuple[str | None, dict]:
    """Env id and env kwargs stored with ``--population`` (issue 17: never retype them)."""
    if args.population is None or args.resume:
        return None, {}
    from envs.calibration.population import population_settings

    env_id, kwargs = population_settings(args.population)
    if env_id is not None and args.env is not None and args.env != env_id:
        raise ValueError(f"--population {args.population} is for {env_id}, not --env {args.env}")
    return env_id, kwargs


def _check(cfg: object, out: str) -> int:
    """``--check``: everything ``Trainer`` checks before its first write, without writing."""
    from meta_rl.envspec import EnvSpec
    from meta_rl.resources import check_memory, format_bytes, param_count, training_memory
    from meta_rl.trainer import policy_spec

    env = EnvSpec(cfg.env, cfg.env_kwargs, cfg.privileged)
    spec = policy_spec(cfg, env)
    estimate = training_memory(cfg, spec, env)
    check_memory(estimate)
    print(
        f"config OK: {cfg.algo} on {cfg.env} {dict(cfg.env_kwargs)}, {param_count(spec)} policy parameters, "
        f"{cfg.n_iterations} iterations, about {format_bytes(estimate.total)} of memory; run directory {out}"
    )
    return 0
