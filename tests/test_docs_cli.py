"""Every ``meta-tutor …`` command line in README.md and docs/*.md parses with the real CLI.

Command lines are taken from fenced code blocks (backslash continuations joined, ``&&`` /
``;`` chains split, ``# comments`` and comment lines dropped) and from inline code spans in the prose (which
may wrap over lines). Optional parts written ``[--flag VALUE]`` are parsed as if given,
``...`` / ``…`` placeholders are dropped. A span that is only ``meta-tutor SUBCOMMAND``
names the command rather than showing a command line: then only the name is checked
(and ``meta-tutor …`` alone names the program).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from meta_rl.cli import COMMANDS as SUBCOMMANDS
from meta_rl.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: a command line starts at ``meta-tutor`` (or ``.venv/bin/meta-tutor``) followed by a word
START = re.compile(r"(?:^|(?<=\s))(?:\S*/)?meta-tutor(?=\s)")
PLACEHOLDERS = {"...", "…"}
#: command lines that may not parse, each with the reason (keep it small; empty: every line parses)
ALLOWED: dict[str, str] = {}


def _commands_in_shell(line: str) -> list[str]:
    out = []
    for part in re.split(r"&&|;|\|\|", line):
        m = START.search(part)
        if m:
            out.append(part[m.start() :].strip())
    return out


def extract(path: Path) -> list[tuple[str, str]]:
    """``(where, command line)`` for every meta-tutor command line of a Markdown file."""
    found: list[tuple[str, str]] = []
    prose: list[tuple[int, str]] = []
    lines = path.read_text().splitlines()
    in_code, i = False, 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_code = not in_code
            i += 1
            continue
        if not in_code:
            prose.append((i + 1, line))
            i += 1
            continue
        start = i + 1
        if line.lstrip().startswith("#"):  # a shell comment
            i += 1
            continue
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        for cmd in _commands_in_shell(line):
            found.append((f"{path.name}:{start}", cmd))
        i += 1
    # inline code spans may wrap: join each paragraph of prose before looking for them
    paragraph: list[tuple[int, str]] = []
    for number, text in [*prose, (0, "")]:
        if text.strip():
            paragraph.append((number, text))
            continue
        if paragraph:
            joined = " ".join(t.strip() for _, t in paragraph)
            for span in re.findall(r"`([^`]+)`", joined):
                if START.match(span.strip()):
                    found.append((f"{path.name}:{paragraph[0][0]}", span.strip()))
        paragraph = []
    return found


def argv_of(command: str) -> list[str]:
    tokens = shlex.split(command, comments=True)[1:]  # drop the program name
    argv = []
    for t in tokens:
        t = t.strip("[]")  # an optional part: parse it as if given
        if t and t not in PLACEHOLDERS:
            argv.append(t)
    return argv


COMMANDS = [c for doc in DOCS for c in extract(doc)]


def test_the_extractor_finds_the_documented_commands() -> None:
    """The test below is only as good as the extraction: it must see the known lines."""
    texts = [c for _, c in COMMANDS]
    assert len(COMMANDS) >= 25, COMMANDS
    assert "meta-tutor export --checkpoint runs/sg --out tutor/   # safetensors + JSON, no pickle" in texts
    # the main command, after `&&`
    assert any(c.startswith("meta-tutor demo") and w.startswith("README.md:") for w, c in COMMANDS)
    wrapped = [c for c in texts if "n_iterations=70" in c]  # an inline span over three lines
    assert wrapped and "item_bias=true" in wrapped[0]
    assert any("--env-kwargs" in c and "population.json" in c for c in texts)  # a continued line
    assert argv_of("meta-tutor train --out r [--config F.yaml] [--set k=v ...]") == [
        "train", "--out", "r", "--config", "F.yaml", "--set", "k=v",
    ]  # fmt: skip


@pytest.mark.parametrize("where,command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where: str, command: str) -> None:
    if command in ALLOWED:
        pytest.skip(ALLOWED[command])
    parser = build_parser()
    argv = argv_of(command)
    if not argv:
        return  # `meta-tutor …` in prose names the program
    assert argv[0] in SUBCOMMANDS, f"{where}: unknown subcommand in {command!r}"
    if len(argv) == 1:
        # `meta-tutor evaluate` in prose names the command; its required arguments are elsewhere
        return
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as e:
            pytest.fail(f"{where}: {command!r} does not parse: {err.getvalue().strip()} (exit {e.code})")
