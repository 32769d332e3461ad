"""Learning curves of training runs, from their ``metrics.csv``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _read(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows yet")
    out = {}
    for key in rows[0]:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[key]))
            except (TypeError, ValueError):
                vals.append(np.nan)
        out[key] = np.asarray(vals)
    return out


def plot_learning_curve(metrics_csvs: Sequence[Path], path: str | Path, title: str = "") -> None:
    """Training return before/after adaptation and validation return vs env steps, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, csv_path in enumerate(metrics_csvs):
        m = _read(Path(csv_path))
        x = m["env_steps"] / 1e6
        tag = f"run {i}" if len(metrics_csvs) > 1 else ""
        (pre,) = ax.plot(x, m["return_pre"], alpha=0.5, label=f"{tag} train, before adaptation".strip())
        ax.plot(x, m["return_post"], color=pre.get_color(), label=f"{tag} train, after adaptation".strip())
        val_cols = sorted(k for k in m if k.startswith("val_return_k"))
        if val_cols:
            last = val_cols[-1]
            ok = np.isfinite(m[last])
            steps = last.removeprefix("val_return_k")
            label = f"{tag} val students, after {steps} step(s)".strip()
            ax.plot(x[ok], m[last][ok], "o--", color=pre.get_color(), ms=4, label=label)
    ax.set_xlabel("env steps (millions)")
    ax.set_ylabel("mean return per episode")
    ax.set_title(title or "training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
