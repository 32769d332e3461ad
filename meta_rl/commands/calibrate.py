"""``meta-tutor calibrate``: fit a student population to a response log."""

from __future__ import annotations

import argparse
import json

HELP = "Fit a population of student profiles to a response log (BKT / memory model); held-out scores."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="MetaTutor/SkillGraph-v0 or MetaTutor/SpacedRepetition-v0")
    p.add_argument(
        "--log",
        required=True,
        help="CSV log: user_id,skill_name,correct,order_id[,timestamp] (SkillGraph) or "
        "user_id,item_id,timestamp,correct (SpacedRepetition)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="population file (envs.save_profiles format); .test.json and .meta.json are written next to it",
    )
    p.add_argument("--env-kwargs", default="{}", help="env keyword arguments as JSON (must match training)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out students (default: 0.2)")
    p.add_argument(
        "--min-responses", type=int, default=10, help="drop students with fewer responses (default: 10)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the student split (default: 0)")
    p.add_argument(
        "--shrinkage",
        default="{}",
        help="SkillGraph: pseudo-responses of the shrinkage to the population, JSON, e.g. '{\"learn\": 30}'",
    )
    p.add_argument(
        "--content-affinity",
        default="neutral",
        choices=["neutral", "default"],
        help="SkillGraph: affinities all 1, or drawn from the default population (default: neutral)",
    )
    p.add_argument(
        "--steps-per-response",
        type=float,
        default=2.0,
        help="SkillGraph: env steps one logged response stands for (default: 2, a quiz and a lesson)",
    )
    p.add_argument(
        "--time-unit", default="s", choices=["s", "ms", "days"], help="SpacedRepetition: timestamp unit"
    )
    p.add_argument(
        "--no-item-difficulty", action="store_true", help="SpacedRepetition: keep item difficulties at 0"
    )
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def run(args: argparse.Namespace) -> int:
    from envs.calibration import calibrate
    from envs.calibration.population import sibling
    from meta_rl.commands.simulate_log import parse_env_kwargs

    for path in (args.out, sibling(args.out, "test"), sibling(args.out, "meta")):
        if not args.force and __import__("os").path.exists(path):
            raise FileExistsError(f"{path} exists; pass --force to overwrite")
    try:
        shrinkage = json.loads(args.shrinkage)
    except json.JSONDecodeError as e:
        raise ValueError(f"--shrinkage is not valid JSON ({e})") from None
    result = calibrate(
        args.env,
        args.log,
        args.out,
        parse_env_kwargs(args.env_kwargs),
        test_fraction=args.test_fraction,
        min_responses=args.min_responses,
        seed=args.seed,
        shrinkage=shrinkage,
        content_affinity=args.content_affinity,
        steps_per_response=args.steps_per_response,
        time_unit=args.time_unit,
        fit_items=not args.no_item_difficulty,
    )
    n = result["n_students"]
    print(
        f"fitted {n['train']} training and {n['test']} held-out students "
        f"({n['dropped']} dropped: too few responses)"
    )
    if "held_out" in result:
        print("held-out prediction of the held-out students' responses (each from their earlier ones):")
        print(f"  {'model':<24}{'log-loss':>10}{'AUC':>8}")
        for name, s in result["held_out"].items():
            print(f"  {name:<24}{s['log_loss']:>10.4f}{s['auc']:>8.3f}")
    for name, path in result["paths"].items():
        print(f"{name}: {path}")
    return 0
