"""A training run's directory: resolved config, metrics, TensorBoard, checkpoints, resume.

Layout: ``config.yaml`` (resolved), ``checkpoint.pt`` (latest, written every
iteration), ``best.pt`` (written before ``checkpoint.pt`` of the same iteration, so a
kill between the two is repaired by the resumed run), ``metrics.csv`` (one row per
iteration) and ``tb/`` (TensorBoard). Every write of a checkpoint is atomic
(:func:`meta_rl.checkpoint.save_checkpoint`).

:meth:`RunDirectory.open` is the one place a run directory is taken for writing (a new
run, or a resumed one): anything that must guard the directory (e.g. a lock against a
second writer) wraps that method.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meta_rl.checkpoint import load_checkpoint, save_checkpoint
from meta_rl.config import TrainConfig, make_config, save_config
from meta_rl.runlock import RunLock


class RunDirectory:
    """The files of one run in ``path`` with metrics columns ``columns``."""

    def __init__(
        self, path: str | os.PathLike[str], columns: Sequence[str], tensorboard: bool = True
    ) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.tensorboard = tensorboard
        self._writer: Any = None
        self._purge_step: int | None = None
        self._lock: RunLock | None = None

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    def open(self, config: TrainConfig, resume: bool) -> dict[str, Any] | None:
        """Take the directory for writing: start a new run (``None``), or resume one and
        return its last checkpoint (metrics rows written after it are dropped).

        A new run refuses a directory that holds a run already; a resumed run refuses
        a checkpoint written with another config (``n_iterations`` may differ). The
        directory's lock (:mod:`meta_rl.runlock`) is taken first and held until
        :meth:`close`: a second writer fails at once, naming this process.
        """
        if self._lock is None:
            self._lock = RunLock(self.path, "training", create=not resume)
        if resume:
            state = self._read_resume_state(config)
            self._truncate_metrics(int(state["iteration"]))
            self._purge_step = int(state["iteration"])
            return state
        self._start(config)
        return None

    def _start(self, config: TrainConfig) -> None:
        metrics = self.metrics_path
        # a metrics.csv holding only its header, without a checkpoint, is a start killed during
        # its first iteration: nothing was trained or recorded, so starting again loses nothing
        started = metrics.exists() and len(metrics.read_text().splitlines()) > 1
        if (self.path / "checkpoint.pt").exists() or started:
            raise FileExistsError(f"{self.path} already holds a run; use --resume or another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        save_config(config, self.path / "config.yaml")
        with open(metrics, "w", newline="") as f:
            csv.writer(f).writerow(self.columns)

    def _read_resume_state(self, config: TrainConfig) -> dict[str, Any]:
        path = self.path / "checkpoint.pt"
        state = load_checkpoint(path, resume=True)
        saved = make_config(state["config"]).to_dict()
        mine = config.to_dict()
        diff = sorted(k for k in saved if k != "n_iterations" and saved[k] != mine.get(k))
        if diff:
            raise ValueError(f"{path}: cannot resume with a different config (changed keys: {diff})")
        return state

    def _truncate_metrics(self, iteration: int) -> None:
        """Drop metrics rows written after the checkpoint (a kill between row and checkpoint)."""
        path = self.metrics_path
        rows = list(csv.reader(open(path, newline=""))) if path.exists() else []
        if not rows or rows[0] != self.columns:
            raise ValueError(f"{path} is missing or has other columns; cannot resume")
        keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) < iteration]
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(keep)

    def append_metrics(self, row: Mapping[str, Any]) -> None:
        with open(self.metrics_path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.columns])

    def save_state(self, state: Mapping[str, Any], best: bool) -> None:
        """Write ``best.pt`` (if ``best``) and then ``checkpoint.pt``.

        best.pt first: a kill between the two writes leaves checkpoint.pt at the previous
        iteration, so the resumed run repeats this iteration (deterministically) and writes
        best.pt again. The other order would resume with best_val already at the new score
        and never rewrite the stale best.pt unless a later validation beat it.
        """
        if best:
            save_checkpoint(self.path / "best.pt", state)
        save_checkpoint(self.path / "checkpoint.pt", state)

    def writer(self) -> Any:
        """One TensorBoard event writer per run directory object (``None`` if disabled)."""
        if not self.tensorboard:
            return None
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path / "tb"), purge_step=self._purge_step)
        return self._writer

    def close(self) -> None:
        """Close the TensorBoard writer and release the directory's lock."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


__all__ = ["RunDirectory"]
