"""One writer per run directory: the lock API, two trainings at once, a killed holder."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY_TRAIN

from meta_rl.cli import main
from meta_rl.config import load_config, save_config
from meta_rl.runlock import LOCK_NAME, RunDirectoryLocked, RunLock, run_lock
from meta_rl.trainer import WALL_COLUMNS, Trainer

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "meta_rl.cli", "train", "--no-progress"]


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """The built-in defaults with TINY_TRAIN, 2 iterations (the shipped config trains longer)."""
    path = tmp_path / "tiny.yaml"
    save_config(load_config(None, [*TINY_TRAIN, "n_iterations=2"]), path)
    return path


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(f)]


def _assert_same_run(a: Path, b: Path) -> None:
    ra, rb = _rows(a), _rows(b)
    diff = [(i, {k: (x[k], y.get(k)) for k in x if x[k] != y.get(k)}) for i, (x, y) in enumerate(zip(ra, rb))]
    assert len(ra) == len(rb) and not any(d for _, d in diff), (len(ra), len(rb), diff)


def _holder(run: Path) -> subprocess.Popen:
    """Another process that takes the lock of ``run`` and holds it until killed."""
    code = (
        "import sys, time\n"
        "from meta_rl.runlock import RunLock\n"
        f"lock = RunLock({str(run)!r}, 'test holder')\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _solo(tmp_path: Path, name: str, *sets: str) -> Path:
    """A run alone, as ``meta-tutor train --config tiny.yaml`` makes it."""
    argv = [*TRAIN[3:], "--config", str(tmp_path / "tiny.yaml"), *(x for s in sets for x in ("--set", s))]
    assert main([*argv, "--out", str(tmp_path / name)]) == 0
    return tmp_path / name


def test_lock_is_exclusive_across_processes_and_reentrant_within_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with run_lock(run, "first") as lock:
        assert (run / LOCK_NAME).is_file() and lock.run_dir == run
        with run_lock(run, "nested"):  # the same process: re-entrant
            pass
        code = f"from meta_rl.runlock import RunLock\nRunLock({str(run)!r}, 'second')\n"
        other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert other.returncode != 0
        assert f"is in use by another process (first by pid {os.getpid()} on" in other.stderr
    # released: another process gets it now
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RunLock(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


def test_named_locks_are_independent_and_timeout_waits_for_the_holder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = (
        "import sys, time\n"
        "from meta_rl.runlock import run_lock\n"
        f"with run_lock({str(run)!r}, 'cache update', name='.cache.lock'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(float(sys.argv[1]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, "1.0"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    t0 = time.monotonic()
    with run_lock(run, "training"):  # another lock file of the same directory: independent
        pass
    with pytest.raises(RunDirectoryLocked, match=f"cache update by pid {proc.pid}"):
        RunLock(run, "evaluation", name=".cache.lock")  # fails at once by default
    with run_lock(run, "evaluation", name=".cache.lock", timeout=60) as lock:  # waits for the holder
        assert time.monotonic() - t0 > 0.5 and lock.path == run / ".cache.lock"  # held for 1 s
    proc.wait()


def test_killed_holder_does_not_block_and_a_held_run_fails_at_once(
    tmp_path: Path, tiny_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = _solo(tmp_path, "full", "n_iterations=3")  # in one go
    run = _solo(tmp_path, "run")  # 2 iterations, then resumed to 3
    proc = _holder(run)
    try:
        with pytest.raises(RunDirectoryLocked, match=f"test holder by pid {proc.pid} on "):
            Trainer(load_config(run / "config.yaml"), run, resume=True, progress=False)  # Python API
        argv = ["train", "--resume", "--out", str(run), "--no-progress", "--set", "n_iterations=3"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"pid {proc.pid}" in err and "in use by another process" in err
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up runs: only the kernel releases the lock
        proc.wait()
    assert main(argv) == 0
    _assert_same_run(run, full)


#: ``meta-tutor ARGS`` in a process that has done its imports and waits for the file GO, so
#: that two of them enter the CLI within milliseconds (without the lock, both pass the
#: "no run here yet" check and write interleaved rows, as issue 19 observed)
STARTER = """
import os, sys, time
from meta_rl.cli import main
import meta_rl.trainer
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.002)
sys.exit(main(sys.argv[2:]))
"""


def test_two_trainings_on_one_directory_at_once(tmp_path: Path, tiny_config: Path) -> None:
    """Exactly one runs; the other fails with one line; the directory is a single run's."""
    out, go = tmp_path / "shared", tmp_path / "go"
    argv = [
        sys.executable,
        "-c",
        STARTER,
        str(go),
        *TRAIN[3:],
        "--config",
        str(tiny_config),
        "--out",
        str(out),
    ]
    procs = [
        subprocess.Popen(
            [*argv, "--seed", str(seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    winner = [0, 1][[r[0] for r in results].index(0)]
    loser_err = next(err for code, _, err in results if code == 2)
    assert loser_err.count("\n") == 1 and "Traceback" not in loser_err
    # the loser was stopped by the lock (it started while the winner trained) or, had it been
    # scheduled after the winner's end, by the finished run: never by writing into it
    assert "in use by another process" in loser_err or "already holds a run" in loser_err
    solo = _solo(tmp_path, "solo", f"seed={winner}")
    _assert_same_run(out, solo)
    assert load_config(out / "config.yaml") == load_config(solo / "config.yaml")


@pytest.mark.slow
def test_two_resumes_of_one_run_at_once(tmp_path: Path, tiny_config: Path) -> None:
    """One continues, the other is refused; the result is the uninterrupted run's."""
    out = _solo(tmp_path, "run")
    more = ["--resume", "--set", "n_iterations=3"]  # (--resume reads the run's own config.yaml)
    procs = [
        subprocess.Popen([*TRAIN, "--out", str(out), *more], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) in ([0, 0], [0, 2]), results
    # both 0 only if one started after the other finished (then it had nothing left to do)
    assert all("Traceback" not in err for _, err in results)
    _assert_same_run(out, _solo(tmp_path, "full", "n_iterations=3"))
