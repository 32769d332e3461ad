#!/usr/bin/env python
"""Wall time and peak memory of a command with all its child processes (Linux).

``/usr/bin/time``'s "maximum resident set size" is that of the largest *single* process;
a command that trains baselines in worker processes (``meta-tutor demo``) holds several at
once. This samples the whole process tree every ``--interval`` seconds and reports the peak
of the **sum** over the tree of the resident set size (RSS: shared library pages counted in
every process that maps them, an upper bound) and of the proportional set size (PSS, from
``/proc/PID/smaps_rollup``: shared pages split between the processes that share them, the
honest total), plus the largest single process RSS for comparison with ``time -v``.

    python benchmarks/measure_command.py [--out FILE.json] [--interval 0.2] -- COMMAND [ARGS ...]

The command's own output goes to this script's stdout; the JSON goes to stdout at the end
(and to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _tree(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(_children(pid))
    return out


def _kib(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--interval", type=float, default=0.2, help="sampling interval in seconds (default 0.2)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    a = p.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        p.error("give the command to measure after --")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = {"rss_sum_kib": 0, "pss_sum_kib": 0, "rss_max_process_kib": 0, "processes_max": 0}
    while proc.poll() is None:
        pids = _tree(proc.pid)
        rss = [_kib(f"/proc/{q}/status", "VmRSS") for q in pids]
        pss = sum(_kib(f"/proc/{q}/smaps_rollup", "Pss") for q in pids)
        peak["rss_sum_kib"] = max(peak["rss_sum_kib"], sum(rss))
        peak["pss_sum_kib"] = max(peak["pss_sum_kib"], pss)
        peak["rss_max_process_kib"] = max([peak["rss_max_process_kib"], *rss])
        peak["processes_max"] = max(peak["processes_max"], sum(1 for r in rss if r > 0))
        time.sleep(a.interval)
    wall = time.perf_counter() - t0
    out = {
        "benchmark": "measure_command",
        "measured": shlex.join(cmd),
        "returncode": proc.returncode,
        "wall_seconds": round(wall, 1),
        "peak_rss_sum_gb": round(peak["rss_sum_kib"] / 2**20, 3),
        "peak_pss_sum_gb": round(peak["pss_sum_kib"] / 2**20, 3),
        "peak_rss_largest_process_gb": round(peak["rss_max_process_kib"] / 2**20, 3),
        "processes_at_once_max": peak["processes_max"],
        "interval_s": a.interval,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0],
        },
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
