"""``meta-tutor export``: write a trained tutor as safetensors + JSON (pickle-free)."""

from __future__ import annotations

import argparse

HELP = "Export a trained tutor (checkpoint or run directory) to policy.safetensors + policy.json."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file, or run directory (uses best.pt, else checkpoint.pt)")
    p.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from meta_rl.checkpoint import export_policy, load_policy

    policy = load_policy(args.checkpoint)
    out = export_policy(policy, args.out)
    print(f"exported {policy.algo} tutor for {policy.env.env_id} to {out}/policy.safetensors and policy.json")
    return 0
