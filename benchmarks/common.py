"""What the benchmark scripts share: the machine a result was measured on, and writing it."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """Python, processor, CPU count and the 1-minute load average at the end of a measurement
    (other processes slow every measured thing alike; the ratios are what count)."""
    return {
        "python": platform.python_version(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min_at_end": os.getloadavg()[0],
    }


def write_report(result: dict[str, Any], out: str | Path | None) -> None:
    """Print ``result`` as JSON and write it to ``out`` (when given), creating its folder."""
    text = json.dumps(result, indent=1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    print(text)
