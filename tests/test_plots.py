"""The adaptation-curve plot: the legend stays off the data, and every method has its own colour."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgba

from meta_rl.evaluation.plots import adaptation_figure, plot_adaptation

KINDS = ["adaptive"] * 5 + ["heuristic"] * 4 + ["oracle", "oracle", "omniscient"]


def results(n_methods: int = 12, k: int = 3) -> dict:
    rng = np.random.default_rng(0)
    methods = {}
    for i in range(n_methods):
        mean = (rng.uniform(0.5, 3.5) + 0.1 * np.arange(k + 1)).tolist()
        methods[f"m{i}"] = {
            "kind": KINDS[i % len(KINDS)],
            "mean": mean,
            "ci_low": [x - 0.1 for x in mean],
            "ci_high": [x + 0.1 for x in mean],
        }
    return {
        "adapt_steps": k,
        "env_id": "MetaTutor/SkillGraph-v0",
        "split": "test",
        "n_profiles": 80,
        "methods": methods,
    }


def test_legend_is_outside_the_axes_and_ordered_by_final_return() -> None:
    res = results()
    fig = adaptation_figure(res)
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend()
        renderer = fig.canvas.get_renderer()
        assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
        order = [t.get_text().split(" ")[0] for t in legend.get_texts()]
        final = {name: m["mean"][-1] for name, m in res["methods"].items()}
        assert order == sorted(final, key=lambda n: -final[n])
        colors = {to_rgba(line.get_color()) for line in ax.get_lines()}
        assert len(colors) == len(res["methods"])  # Matplotlib's default cycle repeats after 10
    finally:
        plt.close(fig)


def test_plot_file_keeps_the_legend(tmp_path) -> None:
    path = tmp_path / "curve.png"
    plot_adaptation(results(3), path)
    # saved with the legend inside the image: wider than the axes-only default (7 x 4.5 in at 120 dpi)
    width = plt.imread(path).shape[1]
    assert width > 7 * 120
