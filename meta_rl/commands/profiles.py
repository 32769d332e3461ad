"""``meta-tutor profiles``: sample student profiles of a split and save them as JSON."""

from __future__ import annotations

import argparse

HELP = "Sample student profiles (tasks) of a split and write them to a JSON file."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="env id, e.g. MetaTutor/SkillGraph-v0")
    p.add_argument("--split", default="test", help="train, val, test or ood (default: test)")
    p.add_argument("--n", type=int, default=50, help="number of profiles (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", required=True, help="output JSON file")


def run(args: argparse.Namespace) -> int:
    import envs

    profiles = envs.sample_profiles(args.env, args.n, split=args.split, seed=args.seed)
    envs.save_profiles(args.out, args.env, profiles)
    print(f"wrote {len(profiles)} {args.split} profiles of {args.env} to {args.out}")
    return 0
