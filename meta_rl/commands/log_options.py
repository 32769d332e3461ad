"""The options that say how a response log is read, shared by ``calibrate`` and ``identify``."""

from __future__ import annotations

import argparse


def skill_names(args: argparse.Namespace) -> list[str] | None:
    """The names of ``--skills`` (``None`` when not given); an empty name is an error."""
    if args.skills is None:
        return None
    names = [n.strip() for n in args.skills.split(",")]
    if not all(names):
        raise ValueError(f"--skills has an empty name: {args.skills!r}")
    return names


def add_log_reading(p: argparse.ArgumentParser, *, format_dest: str = "format") -> None:
    """``--format``, ``--skills``, ``--top-skills`` and ``--time-unit`` (the log's format, which
    of its skills / items to keep, the unit of numeric review timestamps)."""
    p.add_argument(
        "--format",
        dest=format_dest,
        default="auto",
        choices=["auto", "csv", "seq3", "anki"],
        help="log format (default: auto, from the first line)",
    )
    p.add_argument(
        "--skills",
        default=None,
        help="keep only these skills/items, comma-separated names (the log's others are dropped)",
    )
    p.add_argument("--top-skills", type=int, default=None, help="keep only the K most-answered skills/items")
    p.add_argument(
        "--time-unit",
        default="s",
        choices=["s", "ms", "days"],
        help="review logs (SpacedRepetition): unit of numeric timestamps (default: s)",
    )
