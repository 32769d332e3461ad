"""SIGTERM stops a command cleanly: exit 143, one line, no worker process left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_sigterm_stops_the_demo_and_its_workers(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "meta_rl.cli", "demo", "--quick", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until the baselines' worker process is running next to the training
    deadline, workers = time.monotonic() + 120, []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
        if workers and (out / "train" / "config.yaml").is_file():
            break
        time.sleep(0.05)
    assert workers, "the demo never started a worker process"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "meta-tutor demo: stopped by SIGTERM; the same command continues" in err
    assert "Traceback" not in err
    time.sleep(1.0)
    assert not [w for w in workers if _alive(w)], "a worker process outlived the demo"


def test_sigterm_handler_is_restored_after_main(tmp_path, capsys):
    from meta_rl.cli import main

    before = signal.getsignal(signal.SIGTERM)
    # runs (and fails with a one-line error) under the command's SIGTERM handler
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no meta-training run here" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
