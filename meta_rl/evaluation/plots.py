"""Plots: adaptation curves of an evaluation, learning curves of training runs."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: line style per method kind (learned adaptive methods are solid, with markers)
KIND_STYLE = {"heuristic": "--", "oracle": ":", "omniscient": "-."}


def _colors(n: int) -> list[Any]:
    """``n`` colours without repeats up to 20: tab10, then ten other strong colours
    (Matplotlib's default cycle repeats after 10, and an evaluation can have 12 methods)."""
    import matplotlib.pyplot as plt

    more = [
        "black",
        "darkgoldenrod",
        "navy",
        "limegreen",
        "teal",
        "crimson",
        "indigo",
        "peru",
        "olive",
        "slategray",
    ]
    order = list(plt.get_cmap("tab10").colors) + more
    return [order[i % len(order)] for i in range(n)]


def plot_adaptation(results: Mapping[str, Any], path: str | Path) -> None:
    """Write :func:`adaptation_figure` of ``results`` (``results.json``'s dict) to ``path``."""
    import matplotlib.pyplot as plt

    fig = adaptation_figure(results)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def adaptation_figure(results: Mapping[str, Any]) -> Any:
    """Return vs adaptation step per method, with CI bands; heuristics dashed, oracles dotted.

    The legend sits to the right of the axes, outside the data (inside, with a dozen
    methods, it covered the oracles' flat lines), and lists the methods from the highest
    to the lowest return after the last step, the order in which the lines end. Returns
    the Matplotlib figure (Agg backend); the caller closes it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(results["adapt_steps"] + 1)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    methods = list(results["methods"].items())
    handles = []
    for (name, m), color in zip(methods, _colors(len(methods))):
        mean = np.array(m["mean"], dtype=float)
        lo = np.array([np.nan if x is None else x for x in m["ci_low"]], dtype=float)
        hi = np.array([np.nan if x is None else x for x in m["ci_high"]], dtype=float)
        style = KIND_STYLE.get(m["kind"], "-")
        label = name if m["kind"] in ("adaptive", name) else f"{name} ({m['kind']})"
        marker = "o" if m["kind"] == "adaptive" else None
        (line,) = ax.plot(steps, mean, style, color=color, marker=marker, label=label)
        ax.fill_between(steps, lo, hi, color=color, alpha=0.15)
        handles.append((mean[-1], line))
    ax.set_xlabel("adaptation steps with the student")
    ax.set_ylabel("mean return per episode")
    ax.set_xticks(steps)
    ax.set_title(f"{results['env_id']} — {results['split']} students (n = {results['n_profiles']})")
    ax.grid(alpha=0.3)
    ordered = [h for _, h in sorted(handles, key=lambda t: -t[0] if np.isfinite(t[0]) else np.inf)]
    ax.legend(
        handles=ordered,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        title="method (best last)",
        title_fontsize=8,
    )
    fig.tight_layout()
    return fig


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
