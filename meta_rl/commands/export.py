"""``meta-tutor export``: write a trained tutor as safetensors + JSON (pickle-free)."""

from __future__ import annotations

import argparse
import sys

HELP = "Export a trained tutor (checkpoint or run directory) to policy.safetensors + policy.json."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="RUN",
        help="run directory (uses best.pt, else checkpoint.pt) or checkpoint file, as for evaluate",
    )
    # the pre-0.x form `meta-tutor export RUN --out DIR`: still accepted (it cannot be mistaken
    # for anything else), with a deprecation note
    p.add_argument("legacy_checkpoint", nargs="?", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from meta_rl.checkpoint import export_policy, load_policy

    if args.checkpoint is not None and args.legacy_checkpoint is not None:
        raise ValueError("give the run once, as --checkpoint RUN")
    if args.checkpoint is None and args.legacy_checkpoint is None:
        raise ValueError("--checkpoint RUN is required")
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = args.legacy_checkpoint
        print(
            "meta-tutor export: note: the positional RUN is deprecated; use --checkpoint RUN "
            "(as meta-tutor evaluate does)",
            file=sys.stderr,
        )
    policy = load_policy(checkpoint)
    out = export_policy(policy, args.out)
    print(f"exported {policy.algo} tutor for {policy.env.env_id} to {out}/policy.safetensors and policy.json")
    return 0
