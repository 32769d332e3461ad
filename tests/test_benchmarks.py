"""The benchmark scripts keep working as the package changes.

The benchmarks are not run by the suite (their figures need an idle machine), but the
parts that hook into the package must follow it: ``trainer_throughput.py`` times an
iteration's phases by wrapping functions it names, and a renamed function broke it once
(``MAMLPPO.adapt_kl`` became ``adaptation_kl``). Every script must also start.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_TRAIN

ROOT = Path(__file__).resolve().parent.parent
#: the runnable scripts (``common.py`` is their shared module)
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text())


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _phase_times(algo: str, tmp_path: Path) -> tuple[list[str], dict[str, float]]:
    """The benchmark's phase names and its phase times of two tiny iterations of ``algo``."""
    bench = _load("trainer_throughput")
    # tiny sizes; the benchmark's own settings otherwise (no validation, no iteration limit)
    tiny = [o for o in TINY_TRAIN if not o.startswith(("eval_every=", "n_iterations="))]
    trainer = bench.trainer_for(algo, tmp_path, tiny)
    try:
        trainer.train(1)
        return [name for _, _, name in bench.PHASES], bench.phase_times(trainer, 2)
    finally:
        trainer.close()


def test_every_phase_of_the_trainer_benchmark_is_timed(tmp_path: Path) -> None:
    names, times = _phase_times("maml_ppo", tmp_path)
    assert set(names) <= set(times)
    # every phase of an iteration is hit
    for name in names:
        assert times[name] > 0, f"phase {name!r} was never timed: does its hook still name a called function?"


def test_the_phases_of_a_pooled_ppo_iteration_are_timed(tmp_path: Path) -> None:
    _, times = _phase_times("ppo", tmp_path)
    hit = ("env step", "rollout policy and buffers", "advantages (baseline fit, GAE)", "outer PPO epochs")
    for name in hit:
        assert times[name] > 0, name
    assert times["inner step on the rollouts"] == 0  # pooled PPO takes no inner step


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_every_benchmark_script_starts(script: Path) -> None:
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()
