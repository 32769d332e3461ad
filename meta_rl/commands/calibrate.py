"""``meta-tutor calibrate``: fit a student population to a response log."""

from __future__ import annotations

import argparse
import json

from meta_rl.commands.log_options import add_log_reading, skill_names

HELP = "Fit a population of student profiles to a response log (BKT / memory model); held-out scores."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env",
        required=True,
        help="MetaTutor/SkillGraph-v0, MetaTutor/SpacedRepetition-v0 or MetaTutor/ZPD-v0",
    )
    p.add_argument(
        "--log",
        required=True,
        help="log file: CSV user_id,skill_name,correct,order_id (SkillGraph), the three-line sequence "
        "format, CSV user_id,item_id,timestamp,correct or an Anki/fsrs log card_id,review_rating,"
        "review_time (SpacedRepetition); see docs/calibration.md",
    )
    add_log_reading(p, format_dest="log_format")
    p.add_argument(
        "--deck-size",
        type=int,
        default=None,
        help="SpacedRepetition: cut each learner's items (in order of first review) into decks of N "
        "items, each deck one student of the population (n_items = N)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="population file (envs.save_profiles format); .test.json and .meta.json are written next to it",
    )
    p.add_argument(
        "--env-kwargs",
        default="{}",
        help="env keyword arguments as JSON for what a log cannot tell (horizon, prerequisites, …); "
        "n_skills/n_items come from the log. They are stored with the population, and train "
        "--population picks them up",
    )
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
        "--no-item-difficulty", action="store_true", help="SpacedRepetition: keep item difficulties at 0"
    )
    p.add_argument(
        "--min-gap-days",
        type=float,
        default=0.0,
        help="SpacedRepetition: fit and score only reviews at least this many days after the item's "
        "previous review (1: leave out same-day learning steps, as the srs-benchmark does; default 0: all)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none either when not a TTY)")


def run(args: argparse.Namespace) -> int:
    import sys

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
        log_format=args.log_format,
        skills=skill_names(args),
        top_skills=args.top_skills,
        deck_size=args.deck_size,
        progress=not args.no_progress and sys.stderr.isatty(),
        test_fraction=args.test_fraction,
        min_responses=args.min_responses,
        seed=args.seed,
        shrinkage=shrinkage,
        content_affinity=args.content_affinity,
        steps_per_response=args.steps_per_response,
        time_unit=args.time_unit,
        fit_items=not args.no_item_difficulty,
        min_gap_days=args.min_gap_days,
    )
    for dim, value in result["inferred_from_log"].items():
        print(f"{dim}={value}: inferred from the log (stored with the population)")
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
