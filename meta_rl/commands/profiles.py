"""``meta-tutor profiles``: sample student profiles of a split and save them as JSON."""

from __future__ import annotations

import argparse

HELP = "Sample student profiles (tasks) of a split and write them to a JSON file."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env",
        default=None,
        help="env id, e.g. MetaTutor/SkillGraph-v0 (required unless --like gives it)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--like",
        default=None,
        metavar="RUN",
        help="take the env id and env kwargs from a trained tutor (run directory, checkpoint or "
        "export), so the profiles fit it (e.g. for meta-tutor evaluate --profiles)",
    )
    src.add_argument(
        "--env-kwargs",
        default="{}",
        help="env keyword arguments as JSON, e.g. '{\"n_skills\": 8}' (default: the env's registered "
        "defaults, which are its shipped config's)",
    )
    p.add_argument("--split", default="test", help="train, val, test or ood (default: test)")
    p.add_argument("--n", type=int, default=50, help="number of profiles (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", required=True, help="output JSON file")


def run(args: argparse.Namespace) -> int:
    import envs
    from meta_rl.commands.simulate_log import parse_env_kwargs

    if args.env is None and args.like is None:
        raise ValueError("give --env ENV_ID or --like RUN")
    kwargs = {} if args.like is not None else parse_env_kwargs(args.env_kwargs)
    if args.like is not None:
        env_id, used = envs.trained_env(args.like)
        if args.env is not None and args.env != env_id:
            raise ValueError(f"--like {args.like} was trained on {env_id}, not --env {args.env}")
    else:
        env_id, used = args.env, kwargs
        envs.family(env_id)  # a clear error for an unknown id
    profiles = envs.sample_profiles(env_id, args.n, split=args.split, seed=args.seed, **used)
    envs.save_profiles(args.out, env_id, profiles)
    shown = f" with env kwargs {used}" if used else ""
    print(f"wrote {len(profiles)} {args.split} profiles of {env_id}{shown} to {args.out}")
    return 0
