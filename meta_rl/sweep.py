"""Seed × hyper-parameter sweeps as Ray Tune trials (``meta-tutor sweep``).

A sweep file names a base train config, overrides for every trial (``set``), a ``grid``
of values and the ``seeds``; every grid combination × seed is one trial, trained into an
ordinary run directory ``out/<setting>,seed=<s>`` by :class:`~meta_rl.trainer.Trainer`
with the local sampler (Ray only schedules the trials). Every trial's config is checked
before anything is launched. A trial whose run directory already holds a checkpoint is
resumed, so re-running a sweep continues it and finished trials cost nothing.

The summary is computed from the run directories' ``metrics.csv`` (so it can be rebuilt
at any time): per trial the chosen validation metric of its last validation row (and its
best), per setting the mean over seeds with a 95 % Student-t interval over seeds.

Ray is optional (``pip install 'meta-tutor[ray]'``) and imported only to run trials.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meta_rl.config import TrainConfig, default_config_path, load_config, merge, read_yaml_mapping
from meta_rl.envspec import EnvSpec
from meta_rl.runlock import RunLock

INSTALL_HINT = "meta-tutor sweep needs Ray: pip install 'meta-tutor[ray]'"
DEFAULT_ENV = "MetaTutor/SkillGraph-v0"
#: keys of a sweep file: required, then optional with their defaults
REQUIRED = ("out", "seeds")
OPTIONAL: dict[str, Any] = {
    "env": None,
    "config": None,
    "set": {},
    "grid": {},
    "cpus_per_trial": 1,
    "metric": "post",
}
METRICS = ("post", "pre")
#: config keys that are paths: made absolute, since Ray Tune runs trials in other directories
PATH_KEYS = ("population", "init_from")


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: a grid setting with one seed."""

    name: str  # run directory name, e.g. "inner_lr=0.3,seed=0"
    setting: str  # the grid values, e.g. "inner_lr=0.3" ("base" without a grid)
    seed: int
    run_dir: Path  # absolute
    config: TrainConfig

    @property
    def metric_column(self) -> str:
        return f"val_return_k{self.config.val_adapt_steps}"


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file: every trial's config already validated."""

    path: Path
    out: Path  # absolute
    metric: str  # "post" or "pre"
    cpus_per_trial: float
    trials: tuple[Trial, ...]


def _nested(d: Mapping[str, Any]) -> dict[str, Any]:
    """``{"env_kwargs.n_skills": 4}`` → ``{"env_kwargs": {"n_skills": 4}}`` (like ``--set``)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        top, dot, sub = str(key).partition(".")
        out = merge(out, {top: {sub: value}} if dot else {top: value})
    return out


def _label(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"{key}={text}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)


def load_sweep(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Sweep:
    """Read and check a sweep file; ``out`` overrides its ``out``. Relative paths are
    relative to the current directory. Raises ValueError naming the first problem."""
    p = Path(path)
    raw = read_yaml_mapping(p, "sweep")
    valid = [*REQUIRED, *OPTIONAL]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ValueError(f"{p}: unknown sweep key(s) {unknown}; valid keys: {', '.join(valid)}")
    s = {**OPTIONAL, **{k: v for k, v in raw.items() if v is not None or k not in OPTIONAL}}
    if out is not None:
        s["out"] = str(out)
    for key in REQUIRED:
        if s.get(key) is None:
            raise ValueError(f"{p}: {key!r} is required")
    if not isinstance(s["out"], str) or not s["out"]:
        raise ValueError(f"{p}: 'out' must be a directory path, got {s['out']!r}")
    seeds = s["seeds"]
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"{p}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    ints = all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)
    if not ints or len(set(seeds)) != len(seeds):
        raise ValueError(f"{p}: 'seeds' must be distinct integers, got {seeds!r}")
    for key in ("set", "grid"):
        if not isinstance(s[key], dict):
            raise ValueError(f"{p}: {key!r} must be a mapping of config keys, got {s[key]!r}")
        if any(str(k).partition(".")[0] == "seed" for k in s[key]):
            raise ValueError(f"{p}: give seeds with 'seeds', not in {key!r}")
    for key, values in s["grid"].items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{p}: grid key {key!r} needs a non-empty list of values, got {values!r}")
        if len({_label(key, v) for v in values}) != len(values):
            raise ValueError(f"{p}: grid key {key!r} has repeated values {values!r}")
    if s["metric"] not in METRICS:
        raise ValueError(f"{p}: 'metric' must be one of {list(METRICS)}, got {s['metric']!r}")
    cpus = s["cpus_per_trial"]
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0:
        raise ValueError(f"{p}: 'cpus_per_trial' must be a positive number, got {cpus!r}")

    base = Path(s["config"]) if s["config"] else default_config_path(s["env"] or DEFAULT_ENV)
    common = _nested(s["set"])
    if s["env"]:
        common = merge({"env": s["env"]}, common)
    out_dir = Path(s["out"]).resolve()
    keys = list(s["grid"])
    combos: list[list[tuple[str, Any]]] = [[]]
    for key in keys:
        combos = [[*c, (key, v)] for c in combos for v in s["grid"][key]]
    trials: list[Trial] = []
    for combo in combos:
        setting = ",".join(_label(k, v) for k, v in combo) or "base"
        for seed in seeds:
            name = _safe(",".join([*(_label(k, v) for k, v in combo), f"seed={seed}"]))
            fields = merge(merge(common, _nested(dict(combo))), {"seed": seed})
            try:
                cfg = load_config(base, (), **fields)
                EnvSpec(cfg.env, cfg.env_kwargs).probe  # noqa: B018 - builds the env: checks env_kwargs
            except (ValueError, TypeError) as e:
                raise ValueError(f"{p}: trial {name}: {e}") from e
            if cfg.sampler != "local":
                raise ValueError(
                    f"{p}: trial {name}: trials must use the local sampler (Ray runs the trials), "
                    f"the config has sampler: {cfg.sampler}"
                )
            for key in PATH_KEYS:
                value = getattr(cfg, key, "")
                if value and not Path(value).is_absolute():
                    setattr(cfg, key, str(Path(value).resolve()))
            trials.append(Trial(name, setting, seed, out_dir / name, cfg))
    if len({t.name for t in trials}) != len(trials):
        raise ValueError(f"{p}: two trials get the same run directory name; use distinct grid values")
    return Sweep(p, out_dir, s["metric"], float(cpus), tuple(trials))


def _import_ray() -> Any:
    try:
        import ray
        from ray import tune
    except ImportError as e:
        raise ValueError(INSTALL_HINT) from e
    return ray, tune


def _numeric(row: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in row.items():
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                continue
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = v
    return out


def _run_trial(params: dict[str, Any], trials: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Ray Tune function trainable: train one trial's run directory, reporting every iteration."""
    from ray import tune

    from meta_rl.config import make_config
    from meta_rl.trainer import Trainer

    run_dir, config = trials[params["trial"]]
    out = Path(run_dir)
    cfg = make_config(config)
    metrics = out / "metrics.csv"
    trainer = Trainer(cfg, out, resume=(out / "checkpoint.pt").exists(), progress=False)
    try:
        if trainer.iteration >= cfg.n_iterations:  # finished before: report its last row
            rows = _read_rows(metrics)
            tune.report(_numeric(rows[-1]) if rows else {"iteration": trainer.iteration - 1})
        while trainer.iteration < cfg.n_iterations:
            tune.report(_numeric(trainer.train(max_iterations=1)))
    finally:
        trainer.close()


def run_sweep(
    sweep: Sweep, ray_address: str | None = None, max_concurrent: int | None = None, verbose: int = 0
) -> list[tuple[str, str]]:
    """Run every trial on Ray Tune; returns the failed trials as ``(name, error)``.

    Uses an already initialised Ray, else connects to ``ray_address``, else starts a local
    instance (and shuts down what it started).
    """
    ray, tune = _import_ray()
    # one sweep at a time per directory (each trial also locks its own run directory)
    lock = RunLock(sweep.out, "sweep")
    started = not ray.is_initialized()
    if started:
        ray.init(address=ray_address or None, include_dashboard=False, log_to_driver=verbose > 0)
    try:
        specs = {t.name: (str(t.run_dir), t.config.to_dict()) for t in sweep.trials}
        trainable = tune.with_resources(
            tune.with_parameters(_run_trial, trials=specs), {"cpu": sweep.cpus_per_trial}
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search([t.name for t in sweep.trials])},
            # reused actors skip a new worker process (and torch import) per trial
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(sweep.out / "_tune"), name="sweep", verbose=verbose),
        )
        quiet = logging.getLogger("ray.tune")
        level = quiet.level
        if verbose == 0:
            quiet.setLevel(logging.WARNING)
        try:
            results = tuner.fit()
        finally:
            quiet.setLevel(level)
        failed = []
        for r in results:
            if r.error is not None:
                first = str(r.error).strip().splitlines()
                failed.append((str(r.config.get("trial", "?")), first[-1] if first else repr(r.error)))
        return sorted(failed)
    finally:
        if started:
            ray.shutdown()
        lock.release()


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean over seeds; NaN with fewer than two values."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return math.nan, math.nan
    m, half = float(x.mean()), 0.0
    if np.ptp(x) > 0:
        half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m - half, m + half


def summarize(sweep: Sweep) -> dict[str, Any]:
    """Per trial and per setting results, read from the run directories' metrics.csv."""
    trials, by_setting = [], {}
    for t in sweep.trials:
        column = t.metric_column if sweep.metric == "post" else "val_return_k0"
        path = t.run_dir / "metrics.csv"
        rows = _read_rows(path) if path.exists() else []
        val = [r for r in rows if r.get(column, "") != ""]
        rec = {
            "name": t.name,
            "setting": t.setting,
            "seed": t.seed,
            "run_dir": str(t.run_dir),
            "iterations": len(rows),
            "n_iterations": t.config.n_iterations,
            "complete": len(rows) >= t.config.n_iterations,
            "column": column,
            "last_val_iteration": int(val[-1]["iteration"]) if val else None,
            "value": float(val[-1][column]) if val else math.nan,
            "best": max(float(r[column]) for r in val) if val else math.nan,
        }
        trials.append(rec)
        by_setting.setdefault(t.setting, []).append(rec)
    settings = []
    for name, recs in by_setting.items():
        done = [r for r in recs if math.isfinite(r["value"])]
        values = [r["value"] for r in done]
        low, high = t_interval(values)
        settings.append({
            "setting": name,
            "n": len(values),
            "n_planned": len(recs),
            "mean": float(np.mean(values)) if values else math.nan,
            "ci_low": low,
            "ci_high": high,
            "best_mean": float(np.mean([r["best"] for r in done])) if done else math.nan,
            "values": {str(r["seed"]): r["value"] for r in done},
        })  # fmt: skip
    settings.sort(key=lambda s: (not math.isfinite(s["mean"]), -s["mean"] if math.isfinite(s["mean"]) else 0))
    which = "post-adaptation" if sweep.metric == "post" else "pre-adaptation"
    columns = ", ".join(sorted({r["column"] for r in trials}))
    return {
        "metric": sweep.metric,
        "description": f"{which} validation return ({columns} of metrics.csv) at each run's last "
        "validation; per setting the mean over seeds with a 95 % Student-t CI over seeds",
        "settings": settings,
        "trials": trials,
    }


def _fmt(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "n/a"


def summary_markdown(summary: Mapping[str, Any], command: str) -> str:
    """The settings as a Markdown table, best mean first."""
    lines = [
        f"Metric: {summary['description']}.",
        "",
        "| setting | n seeds | mean | 95 % CI | mean of best | values by seed |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary["settings"]:
        ci = "n/a" if not math.isfinite(s["ci_low"]) else f"[{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]"
        n = f"{s['n']}" if s["n"] == s["n_planned"] else f"{s['n']} of {s['n_planned']}"
        vals = ", ".join(f"{k}: {_fmt(v)}" for k, v in s["values"].items()) or "-"
        lines.append(f"| {s['setting']} | {n} | {_fmt(s['mean'])} | {ci} | {_fmt(s['best_mean'])} | {vals} |")
    incomplete = [t["name"] for t in summary["trials"] if not t["complete"]]
    if incomplete:
        lines += ["", f"Incomplete runs: {', '.join(incomplete)}."]
    lines += ["", f"Regenerate: `{command}`"]
    return "\n".join(lines) + "\n"


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def write_summary(sweep: Sweep, command: str) -> tuple[dict[str, Any], str]:
    """Write ``out/summary.json`` and ``out/summary.md``; returns the summary and the table."""
    summary = {**summarize(sweep), "command": command}
    table = summary_markdown(summary, command)
    sweep.out.mkdir(parents=True, exist_ok=True)
    (sweep.out / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    (sweep.out / "summary.md").write_text(table)
    return summary, table
