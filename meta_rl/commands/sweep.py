"""``meta-tutor sweep``: seeds × hyper-parameter settings as Ray Tune trials, with a summary table."""

from __future__ import annotations

import argparse
import shlex

HELP = "Run seeds x hyper-parameter settings as Ray Tune trials (one run directory each) and summarise them."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        required=True,
        help="sweep file (YAML: out, seeds, grid, set, env, config, cpus_per_trial, metric); "
        "example: meta_rl/configs/sweeps/skill_graph_inner_lr.yaml",
    )
    p.add_argument("--out", default=None, help="sweep directory (overrides the file's out)")
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to run the trials on, e.g. auto or ray://HEAD:10001 (default: a local instance)",
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="at most this many trials at once (default: as CPUs allow)",
    )
    p.add_argument(
        "--summary-only",
        action="store_true",
        help="only rebuild summary.json and summary.md from the existing run directories (no Ray needed)",
    )
    p.add_argument("--verbose", action="store_true", help="show Ray Tune's progress and the trials' logs")


def run(args: argparse.Namespace) -> int:
    import sys

    from meta_rl.sweep import load_sweep, run_sweep, write_summary

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ValueError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    sweep = load_sweep(args.config, args.out)
    command = f"meta-tutor sweep --config {shlex.quote(args.config)}"
    if args.out is not None:
        command += f" --out {shlex.quote(args.out)}"
    failed = []
    if not args.summary_only:
        print(f"sweep: {len(sweep.trials)} trials into {sweep.out}")
        failed = run_sweep(sweep, args.ray_address, args.max_concurrent, verbose=1 if args.verbose else 0)
    _, table = write_summary(sweep, command + " --summary-only")
    print(table, end="")
    print(f"wrote {sweep.out / 'summary.md'} and {sweep.out / 'summary.json'}")
    if failed:
        print(f"meta-tutor sweep: {len(failed)} of {len(sweep.trials)} trials failed:", file=sys.stderr)
        for name, error in failed:
            print(f"  {name}: {error}", file=sys.stderr)
        return 1
    return 0
