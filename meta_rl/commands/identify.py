"""``meta-tutor identify``: who is this student? Decoded profile and nearest training students."""

from __future__ import annotations

import argparse
import json

from meta_rl.commands.log_options import add_log_reading, skill_names

HELP = (
    "Identify students from a response log with an encoder tutor (algo encoder_ppo): decoded "
    "profile with uncertainty, nearest training students."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN",
        help="encoder_ppo run directory, checkpoint file or export directory",
    )
    p.add_argument(
        "--log",
        required=True,
        help="response log in the format meta-tutor calibrate reads for the tutor's env: CSV "
        "user_id,skill_name,correct,order_id or the three-line format (SkillGraph-v0: every answer a "
        "quiz), the same CSV with an item_id column (ZPD-v0), CSV user_id,item_id,timestamp,correct or "
        "an Anki/fsrs log (SpacedRepetition-v0, SpacedRepetitionGoals-v0); see docs/encoder.md",
    )
    add_log_reading(p)
    p.add_argument("--neighbours", type=int, default=3, help="nearest training students to list (default: 3)")
    p.add_argument(
        "--reference",
        type=int,
        default=200,
        help="simulated training students to compare with (default: 200)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the reference students (default: 0)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    from meta_rl.checkpoint import atomic_write, load_policy
    from meta_rl.encoder_tutor import EncoderTutor
    from meta_rl.identify import identify, reference_bank
    from meta_rl.log_sessions import converter, load_log, mapping_note, sessions_from_log

    if args.neighbours < 0 or args.reference < 1:
        raise ValueError("--neighbours must be >= 0 and --reference >= 1")
    policy = load_policy(args.checkpoint)
    if not isinstance(policy, EncoderTutor):
        raise ValueError(
            f"{args.checkpoint} is a {policy.algo} tutor; identify needs an encoder tutor "
            "(train one with --set algo=encoder_ppo)"
        )
    log = load_log(policy.env, args.log, args.format, args.time_unit, skill_names(args), args.top_skills)
    histories = sessions_from_log(policy.env, log)
    print(f"{policy.env.env_id} from {args.log}: {converter(policy.env.env_id).caveat}")
    if note := mapping_note(policy.env, log):
        print(f"note: {note}")
    bank = (
        reference_bank(policy, args.reference, policy.rollouts_per_step, args.seed)
        if args.neighbours
        else None
    )
    results = []
    for i, sessions in enumerate(histories):
        res = identify(policy, sessions, bank, args.neighbours)
        print(f"student {i} ({len(sessions)} session(s) from the log) " + res.text())
        results.append(res.to_dict())
    if args.json:
        text = json.dumps({"log": str(args.log), "students": results}, indent=1)
        atomic_write(args.json, lambda p: p.write_text(text))
        print(f"wrote {args.json}")
    return 0
