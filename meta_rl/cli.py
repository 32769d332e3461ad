"""The ``meta-tutor`` command line.

Each subcommand lives in its own module under ``meta_rl.commands`` and defines
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. This file
only dispatches, so adding a command never touches the others.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence

#: subcommand name -> module; a module that is not present is simply not offered
COMMANDS: dict[str, str] = {
    "demo": "meta_rl.commands.demo",
    "train": "meta_rl.commands.train",
    "evaluate": "meta_rl.commands.evaluate",
    "export": "meta_rl.commands.export",
    "profiles": "meta_rl.commands.profiles",
    "calibrate": "meta_rl.commands.calibrate",
    "simulate-log": "meta_rl.commands.simulate_log",
    "sweep": "meta_rl.commands.sweep",
    "identify": "meta_rl.commands.identify",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meta-tutor",
        description="Meta-reinforcement learning for tutoring: student simulators and MAML-PPO.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def one_line(message: str) -> str:
    """``message`` on one line: newlines and other control characters (often echoed from
    the user's own input, e.g. a ``--set`` value) are shown escaped, as in ``repr``."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


@contextlib.contextmanager
def _one_line_warnings(prefix: str) -> Iterator[None]:
    """Show warnings as ``PREFIX: warning: message`` (not Python's file:line + source line)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prefix}: warning: {one_line(str(message))}", file=sys.stderr if file is None else file)

    saved = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = saved


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the command unwinds: training closes its run
    directory, the evaluation stops its worker processes (Python's default for SIGTERM ends
    the process on the spot, leaving them running)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    # the command line as a user would type it, recorded in reports so results can be regenerated
    args.command_line = "meta-tutor " + " ".join(shlex.quote(a) for a in argv)
    try:
        with _sigterm_unwinds(), _one_line_warnings(f"meta-tutor {args.command}"):
            return int(args._run(args) or 0)
    except KeyboardInterrupt as e:
        # what is done stays: checkpoints are atomic and cached baselines are reused
        how = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
        again = "--resume continues the run" if args.command == "train" else "the same command continues"
        print(f"meta-tutor {args.command}: stopped by {how}; {again}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        # user errors: one clear line, no traceback (META_TUTOR_DEBUG=1 shows it, for bug reports)
        if os.environ.get("META_TUTOR_DEBUG"):
            raise
        print(f"meta-tutor {args.command}: error: {one_line(str(e))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
