"""Turn adaptation curves into ``results.json``, ``summary.md`` and plots.

Schema of ``results.json``::

    {"env_id", "split", "n_profiles", "adapt_steps", "rollouts_per_step", "eval_episodes",
     "seeds", "command", "reference", "random_method", "oracle_method",
     "methods": {NAME: {"kind", "mean": [K+1], "ci_low": [K+1], "ci_high": [K+1],
                        "per_profile": [[K+1] × n],
                        "fraction_of_oracle": [K+1], "gap_closed": [K+1],
                        "metrics": {METRIC: {"mean": [K+1], "ci_low": [K+1], "ci_high": [K+1]}},
                        "subgroups": {GROUP: {"n", "mean", "ci_low", "ci_high",
                                              "metrics": {METRIC: {...}}}}}},
     "paired": {"A - B": {"mean": [K+1], "ci_low": [K+1], "ci_high": [K+1]}}}

``fraction_of_oracle`` is ``method / oracle`` of the mean returns; ``gap_closed`` is
``(method − random) / (oracle − random)``, the share of the random-to-oracle gap. Both use
ONE reference oracle, ``oracle_method``: by default the strongest method of kind
``"oracle"`` (largest mean return at the last step; e.g. the privileged PPO ``oracle`` or
a privileged ``planner``), ``null`` (and no fractions) when no oracle was evaluated.
Methods of kind ``"omniscient"`` (they also see hidden state that no tutor could infer
from the observations even knowing the profile) are reported, with their fractions, but are never the default
reference.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.profiles import SPLITS
from meta_rl.evaluation.plots import plot_adaptation
from meta_rl.evaluation.stats import Interval, mean_ci, paired_difference_ci

KINDS = ("adaptive", "heuristic", "oracle", "omniscient")


@dataclass
class MethodCurve:
    """Per-student results of one method: ``returns[i, k]`` after ``k`` adaptation steps."""

    name: str
    kind: str
    returns: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        self.returns = np.asarray(self.returns, dtype=np.float64)
        if self.returns.ndim != 2:
            raise ValueError(
                f"{self.name}: returns must be (n_profiles, steps + 1), got {self.returns.shape}"
            )


def _curve(values: np.ndarray, seed: int) -> dict[str, list[float]]:
    cis: list[Interval] = [mean_ci(values[:, k], seed=seed + k) for k in range(values.shape[1])]
    return {
        "mean": [c.mean for c in cis],
        "ci_low": [c.low for c in cis],
        "ci_high": [c.high for c in cis],
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _clean(obj: Any) -> Any:
    """JSON has no NaN: write ``null`` instead."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def build_results(
    curves: Sequence[MethodCurve],
    *,
    env_id: str,
    split: str,
    adapt_steps: int,
    rollouts_per_step: int,
    eval_episodes: int,
    seeds: Sequence[int],
    command: str,
    subgroups: Mapping[str, np.ndarray] | None = None,
    reference: str = "maml_ppo",
    random_method: str = "random",
    oracle_method: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything the report shows, as a JSON-ready dict (schema in the module docstring).

    ``oracle_method``: the reference of ``fraction_of_oracle`` and ``gap_closed``; ``None``
    picks the strongest method of kind ``"oracle"`` (see :func:`strongest_oracle`).
    """
    by_name = {c.name: c for c in curves}
    n = {c.returns.shape[0] for c in curves}
    if len(n) != 1:
        raise ValueError(f"every method must be evaluated on the same students, got sizes {sorted(n)}")
    n_profiles = n.pop()
    steps = adapt_steps + 1
    for c in curves:
        if c.returns.shape[1] != steps:
            raise ValueError(
                f"{c.name}: expected {steps} columns (steps 0..{adapt_steps}), got {c.returns.shape[1]}"
            )

    def curve_of(name: str) -> np.ndarray | None:
        return by_name[name].returns.mean(axis=0) if name in by_name else None

    if oracle_method is None:
        oracle_method = strongest_oracle(curves)
    oracle = curve_of(oracle_method) if oracle_method is not None else None
    random = curve_of(random_method)
    methods: dict[str, Any] = {}
    for c in curves:
        entry: dict[str, Any] = {"kind": c.kind, **_curve(c.returns, seed), "per_profile": c.returns.tolist()}
        mean = c.returns.mean(axis=0)
        if oracle is not None:
            entry["fraction_of_oracle"] = (mean / np.where(oracle == 0, np.nan, oracle)).tolist()
            if random is not None:
                gap = oracle - random
                entry["gap_closed"] = ((mean - random) / np.where(gap == 0, np.nan, gap)).tolist()
        entry["metrics"] = {k: _curve(np.asarray(v, dtype=np.float64), seed) for k, v in c.metrics.items()}
        groups: dict[str, Any] = {}
        for g, mask in (subgroups or {}).items():
            mask = np.asarray(mask, dtype=bool)
            groups[g] = {
                "n": int(mask.sum()),
                **_curve(c.returns[mask], seed),
                "metrics": {k: _curve(np.asarray(v)[mask], seed) for k, v in c.metrics.items()},
            }
        entry["subgroups"] = groups
        methods[c.name] = entry

    paired: dict[str, Any] = {}
    if reference in by_name:
        ref = by_name[reference].returns
        for c in curves:
            if c.name == reference:
                continue
            cis = [paired_difference_ci(ref[:, k], c.returns[:, k], seed=seed + k) for k in range(steps)]
            paired[f"{reference} - {c.name}"] = {
                "mean": [x.mean for x in cis],
                "ci_low": [x.low for x in cis],
                "ci_high": [x.high for x in cis],
            }
    return _clean(
        {
            "env_id": env_id,
            "split": split,
            "n_profiles": n_profiles,
            "adapt_steps": adapt_steps,
            "rollouts_per_step": rollouts_per_step,
            "eval_episodes": eval_episodes,
            "seeds": list(seeds),
            "command": command,
            "reference": reference,
            "random_method": random_method,
            "oracle_method": oracle_method,
            "methods": methods,
            "paired": paired,
        }
    )


def strongest_oracle(curves: Sequence[MethodCurve]) -> str | None:
    """Name of the method of kind ``"oracle"`` with the largest mean return at the last step
    (the first of them on a tie; ``None`` if there is none)."""
    oracles = [c for c in curves if c.kind == "oracle"]
    if not oracles:
        return None
    last = [float(np.mean(c.returns[:, -1])) for c in oracles]
    return oracles[int(np.argmax([x if math.isfinite(x) else -math.inf for x in last]))].name


def _or_minus_inf(x: float | None) -> float:
    return -math.inf if x is None else x


def _fmt(mean: float | None, lo: float | None, hi: float | None) -> str:
    if mean is None:
        return "–"
    if lo is None or hi is None:
        return f"{mean:.2f}"
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


def summary_markdown(results: Mapping[str, Any]) -> str:
    """A human-readable summary: return per step, gaps to the oracle, paired differences, metrics."""
    k_max = results["adapt_steps"]
    steps = list(range(k_max + 1))
    lines = [
        f"# {results['env_id']} — "
        + (f"{results['split']} split" if results["split"] in SPLITS else str(results["split"])),
        "",
        f"{results['n_profiles']} held-out students; "
        f"{results['rollouts_per_step']} episodes per adaptation step; "
        f"returns measured on {results['eval_episodes']} fresh episodes per student and step; "
        f"training seeds {results['seeds']}. Mean return [95 % bootstrap CI over students].",
        "",
        f"Regenerate with: `{results['command']}`",
        "",
        _oracle_sentence(results),
        "",
        "| method | kind | "
        + " | ".join(f"k = {k}" for k in steps)
        + f" | of oracle (k = {k_max}) | gap closed |",
        "|---|---|" + "---|" * len(steps) + "---|---|",
    ]
    order = sorted(results["methods"].items(), key=lambda kv: -_or_minus_inf(kv[1]["mean"][-1]))
    for name, m in order:
        cells = [_fmt(m["mean"][k], m["ci_low"][k], m["ci_high"][k]) for k in steps]
        frac = m.get("fraction_of_oracle", [None])[-1]
        gap = m.get("gap_closed", [None])[-1]
        lines.append(
            f"| {name} | {m['kind']} | "
            + " | ".join(cells)
            + f" | {'–' if frac is None else f'{frac:.2f}'} | {'–' if gap is None else f'{gap:.2f}'} |"
        )
    if results["paired"]:
        lines += [
            "",
            "## Paired differences (same students)",
            "",
            "| difference | " + " | ".join(f"k = {k}" for k in steps) + " |",
            "|---|" + "---|" * len(steps),
        ]
        for name, d in results["paired"].items():
            lines.append(
                f"| {name} | "
                + " | ".join(_fmt(d["mean"][k], d["ci_low"][k], d["ci_high"][k]) for k in steps)
                + " |"
            )
    metric_names = sorted({k for m in results["methods"].values() for k in m["metrics"]})
    lines += _last_step_table(f"Education metrics after k = {k_max} steps", order, metric_names, "metrics")
    groups = sorted({g for m in results["methods"].values() for g in m["subgroups"]})
    lines += _last_step_table(f"Subgroups (return after k = {k_max} steps)", order, groups, "subgroups")
    return "\n".join(lines) + "\n"


def _oracle_sentence(results: Mapping[str, Any]) -> str:
    """Which oracle the fractions and gaps refer to (``oracle_method`` of ``results``)."""
    name = results.get("oracle_method")
    oracle = results["methods"].get(name) if name is not None else None
    omniscient = sorted(n for n, m in results["methods"].items() if m["kind"] == "omniscient" and n != name)
    apart = (
        f" {', '.join(f'`{n}`' for n in omniscient)} (kind omniscient) "
        f"{'sees' if len(omniscient) == 1 else 'see'} hidden state that no tutor could infer from "
        "the observations even knowing the profile: shown, never the default reference."
        if omniscient
        else ""
    )
    if oracle is None:
        return "No oracle was evaluated: no fraction of the oracle or gap closed." + apart
    k_max = results["adapt_steps"]
    others = sorted(n for n, m in results["methods"].items() if m["kind"] == "oracle" and n != name)
    also = f"; other oracles: {', '.join(f'`{n}`' for n in others)}" if others else ""
    strongest = ", the strongest oracle" if oracle["kind"] == "oracle" else ""
    return (
        f"Fraction of the oracle and gap closed (from `{results['random_method']}` to the oracle) "
        f"are relative to `{name}` (kind {oracle['kind']}, mean return "
        f"{_fmt(oracle['mean'][-1], None, None)} at k = {k_max}{strongest}{also})." + apart
    )


def _last_step_table(title: str, order: list, columns: list[str], key: str) -> list[str]:
    """Rows ``method | value [CI] …`` at the last adaptation step, one column per entry of ``m[key]``."""
    if not columns:
        return []
    lines = [
        "",
        f"## {title}",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, m in order:
        cells = []
        for col in columns:
            c = m[key].get(col)
            cells.append("–" if c is None else _fmt(c["mean"][-1], c["ci_low"][-1], c["ci_high"][-1]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``summary.md`` and ``adaptation_curve.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out / "results.json",
        "summary": out / "summary.md",
        "plot": out / "adaptation_curve.png",
    }
    paths["results"].write_text(json.dumps(results, indent=1))
    paths["summary"].write_text(summary_markdown(results))
    plot_adaptation(results, paths["plot"])
    return paths
