"""The evaluation protocol: every method adapts to the same held-out students.

For each held-out profile, starting from each method's initial policy, ``K``
adaptation steps are run (each: ``rollouts_per_step`` episodes with that student,
then the method's update) and after each step the policy's mean return is measured
on ``eval_episodes`` fresh episodes with the same student (step 0 = unadapted).

The methods are objects in one registry (:mod:`meta_rl.evaluation.registry`; what a method
is: :mod:`meta_rl.evaluation.methods`). The built-in ones:

* ``maml_ppo`` — the meta-learned initialisation with its own inner update;
* ``pooled_ppo`` — our PPO on the pooled ``train`` population, same env-step budget
  and network, adapted with the same inner update (step size chosen on ``val``
  students from ``LR_GRID``, followed outwards when the best is at its edge, plus
  (shared, per-item) pairs when the run gives per-item logit offsets their own step:
  ``item_bias_lr``; see :mod:`meta_rl.evaluation.step_sizes`);
* ``scratch_ppo`` — a randomly initialised policy, same update (step size chosen on ``val``
  the same way);
* ``sb3_ppo`` — stable-baselines3 PPO on the pooled population with the same budget,
  fine-tuned per student with SB3 on the same rollouts per step (learning rate chosen on
  ``val`` from ``SB3_LR_GRID``, edges followed outwards likewise);
* ``recurrent_ppo`` (only when asked for: ``--methods``) — sb3-contrib's ``RecurrentPPO``
  (LSTM policy) on the pooled population with the same budget, fine-tuned per student like
  ``sb3_ppo``: the context-based (RL²-style) alternative, which infers the student from the
  current episode's answers; needs ``pip install 'meta-tutor[contrib]'``;
* ``oracle`` — our PPO trained with the true profile appended to its observation
  (privileged information no real tutor has): an upper bound, not adapted;
* every tutor of the env (``envs.tutors``; they do not learn: the same numbers at every
  step): the heuristics, and the privileged ones (``planner``, ``belief_planner``), which
  plan with the true profile: kind ``"oracle"`` like ``oracle``, or ``"omniscient"`` for
  those that also read hidden state the profile and the answers do not determine
  (SkillGraph's ``planner`` sees the sampled mastery; ``belief_planner`` infers it).

The report's fraction of the oracle and gap closed use one reference: the strongest
method of kind ``"oracle"`` (``oracle_method`` in ``results.json``) – a tutor that knows
who the student is, not one that also sees what no tutor can observe.

Baselines are trained once per meta-training run (same seed) and cached in
``RUN_DIR/baselines/`` (:mod:`meta_rl.evaluation.baselines`). With several runs (training
seeds) each student's numbers are averaged over the runs before intervals are taken over
students; ``per_seed`` keeps each run's mean curve. The subgroup tables split students by
their learning speed as the family's profile distribution defines it
(:meth:`envs.ProfileDistribution.learning_speed`).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import envs
from meta_rl.checkpoint import load_checkpoint, load_policy
from meta_rl.evaluation.baselines import run_population
from meta_rl.evaluation.heuristics import tutor_error
from meta_rl.evaluation.methods import Curve, EvalContext, Method, Run
from meta_rl.evaluation.parallel import Job, run_jobs
from meta_rl.evaluation.registry import (
    available_methods,
    default_methods,
    expand_methods,
    method_kind,
    methods_for,
)
from meta_rl.evaluation.report import MethodCurve, build_results, write_report
from meta_rl.evaluation.settings import EvaluationSettings
from meta_rl.resources import check_memory, evaluation_memory
from meta_rl.trainer import Trainer

#: what a job computes on a run (see :func:`_timed_on_run`)
T = TypeVar("T")

__all__ = [
    "EvaluationSettings",
    "available_methods",
    "default_methods",
    "evaluate",
    "expand_methods",
    "method_kind",
    "run_dir",
    "run_evaluation",
    "tutor_error",
]


def run_dir(path: str | Path) -> Path:
    """The run directory of ``path`` (a run directory or a checkpoint file in one); a clear
    error when it holds no meta-training run."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not (p / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{path}: no meta-training run here (expected {p / 'checkpoint.pt'})")
    return p


def _load_profiles(
    s: EvaluationSettings, env_id: str, env_kwargs: Mapping[str, Any], population: Any = None
) -> list[dict]:
    """The held-out students: a profile file, else the split of the run's population."""
    if s.profiles_file:
        file_env, profs = envs.load_profiles(s.profiles_file)
        if file_env != env_id:
            raise ValueError(
                f"{s.profiles_file}: profiles are for {file_env}, the checkpoint is for {env_id}"
            )
        probe = envs.family(env_id).load("dynamics")(1, **dict(env_kwargs))
        for i, p in enumerate(profs):
            try:
                probe.coerce_profile(p)
            except ValueError as e:
                raise ValueError(f"{s.profiles_file}: profile {i}: {e}") from e
        return profs
    if population is not None:
        if s.split != "test":
            raise ValueError(
                f"the run was trained on a calibrated population, which has no {s.split!r} split: "
                "evaluate on its held-out students (--split test) or give --profiles"
            )
        # every held-out student of the calibrated population, each once
        return [p.to_dict() for p in population.held_out()]
    return envs.sample_profiles(env_id, s.n_profiles, split=s.split, seed=s.profile_seed, **dict(env_kwargs))


def select_methods(env_id: str, env_kwargs: Mapping[str, Any], names: Sequence[str] | None) -> list[Method]:
    """The methods of ``--methods`` (``None``: the defaults), checked before anything is trained:
    an unknown name or a method that cannot run on this env configuration is a ``ValueError``."""
    available = methods_for(env_id)
    defaults = default_methods(env_id, env_kwargs)  # only methods that can run here
    chosen = expand_methods(names, defaults)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available for {env_id}: {list(available)}")
    for name in (m for m in chosen if m not in defaults):
        # before any baseline is trained: a method that cannot run would otherwise fail at the end
        error = available[name].cannot_run(env_id, env_kwargs)
        if error is not None:
            raise ValueError(f"method {name} cannot run on {env_id} {env_kwargs}: {error}")
    return [available[name] for name in chosen]


def evaluate(
    checkpoints: Sequence[str | Path], s: EvaluationSettings, *, trainer: Trainer | None = None
) -> dict[str, Any]:
    """Run the protocol for every run in ``checkpoints`` and return ``results.json``'s dict.

    ``trainer``: the single run of ``checkpoints`` is still to be trained by it. It then
    trains in this process as the evaluation's first job, while the baselines that need only
    its config (:meth:`Method.can_train_before_run`) train on the other workers; everything
    else waits for it. The results equal those of training first and evaluating after.
    """
    # these networks are tiny: one thread is fastest, and more threads thrash on a shared 2-core machine
    torch.set_num_threads(1)
    if trainer is not None:
        if len(checkpoints) != 1 or Path(checkpoints[0]).resolve() != trainer.out.resolve():
            raise ValueError(f"with a trainer, evaluate exactly its run {trainer.out}")
        paths, configs = [trainer.out], [trainer.cfg.to_dict()]
        env, spec = trainer.env, trainer.spec
    else:
        paths = [run_dir(c) for c in checkpoints]
        if not paths:
            raise ValueError("need at least one checkpoint or run directory")
        runs = [load_run(r) for r in paths]
        env, spec = runs[0].policy.env, runs[0].policy.spec
        for r in runs:
            if r.policy.env.env_id != env.env_id or dict(r.policy.env.env_kwargs) != dict(env.env_kwargs):
                raise ValueError(
                    f"{r.path}: trained on {r.policy.env.env_id} {r.policy.env.env_kwargs}, "
                    f"not {env.env_id} {env.env_kwargs}"
                )
        configs = [dict(r.config) for r in runs]
    env_id, env_kwargs = env.env_id, dict(env.env_kwargs)
    methods = select_methods(env_id, env_kwargs, s.methods)
    population = run_population(configs[0], env_id, env_kwargs)
    ctx = EvalContext(
        env_id=env_id,
        env_kwargs=env_kwargs,
        profiles=_load_profiles(s, env_id, env_kwargs, population),
        val=_val_profiles(configs[0], env_id, env_kwargs, s),
        rollouts=int(s.rollouts_per_step or configs[0]["rollouts_per_task"]),
        settings=s,
    )
    # refuse what cannot fit before any baseline is trained (the CLI checks earlier; this
    # protects run_evaluation's Python callers); META_TUTOR_NO_MEMORY_CHECK=1 skips
    check_memory(
        evaluation_memory(spec, env, len(ctx.profiles), s.adapt_steps, ctx.rollouts, s.eval_episodes)
    )
    learned = [m for m in methods if m.needs_run]
    jobs, curve_jobs = _jobs(learned, paths, configs, ctx, trainer, s.workers)
    timeline: list[dict[str, Any]] = []
    outputs = run_jobs(jobs, s.workers, timeline)
    per_run: dict[str, list[Curve]] = {}
    info: dict[str, Any] = {"runs": [str(r) for r in paths], "env_steps": {}, "inner_lr": {}, "seconds": {}}
    # where the time went: one record per job (label, slot, start/end seconds, CPU seconds)
    info["jobs"] = timeline
    if timeline:
        wall = max(t["end_s"] for t in timeline)
        cpu = sum(t["cpu_s"] for t in timeline)
        slots = min(max(1, s.workers), len(timeline))
        busy = cpu / max(wall * slots, 1e-9)
        s.log(f"{len(timeline)} jobs on {slots} core(s): {wall:.0f} s, {cpu:.0f} CPU s ({busy:.0%} busy)")

    def record(m: Method, c: Curve, seconds: float) -> None:
        per_run.setdefault(m.name, []).append(c)
        for key, value in (("env_steps", c.env_steps), ("inner_lr", c.step_size)):
            if value is not None:
                info[key].setdefault(m.name, []).append(value)
        info["seconds"][m.name] = info["seconds"].get(m.name, 0.0) + seconds

    by_job = {key: _merged([outputs[i] for i in at]) for key, at in curve_jobs.items()}
    for path in paths:
        for m in learned:
            c, seconds = by_job[m, path]
            record(m, c, seconds)
            s.log(f"{path.name}: {m.name:<14} return by step {np.round(c.returns.mean(0), 3).tolist()}")
    for m in (m for m in methods if not m.needs_run):
        t0 = time.time()
        c = m.curve(ctx, None)
        record(m, c, time.time() - t0)
        label = "heuristic" if m.kind(env_id) == "heuristic" else "privileged"
        s.log(f"{label} {m.name:<22} return {c.returns[:, 0].mean():.3f}")
    results = build_results(
        [_mean_over_runs(m.name, m.kind(env_id), per_run[m.name]) for m in methods],
        env_id=env_id,
        split=(
            f"students of {s.profiles_file}"
            if s.profiles_file
            else f"held-out students of {configs[0].get('population', '')}"
            if population is not None
            else s.split
        ),
        adapt_steps=s.adapt_steps,
        rollouts_per_step=ctx.rollouts,
        eval_episodes=s.eval_episodes,
        seeds=[int(c["seed"]) for c in configs],
        command=s.command,
        subgroups=speed_quartiles(env_id, ctx.profiles),
        seed=s.seed,
    )
    results["per_seed"] = {
        name: [c.returns.mean(axis=0).tolist() for c in curves] for name, curves in per_run.items()
    }
    results["details"] = info
    results["profiles_file" if s.profiles_file else "profile_seed"] = s.profiles_file or s.profile_seed
    return results


def _curve_order(learned: Sequence[Method], paths: Sequence[Path]) -> list[tuple[Method, Path]]:
    """The curve jobs, most expensive first (longest-processing-time-first scheduling)."""
    return sorted(((m, p) for p in paths for m in learned), key=lambda mp: -mp[0].cost())


def _jobs(
    learned: Sequence[Method],
    paths: Sequence[Path],
    configs: Sequence[Mapping[str, Any]],
    ctx: EvalContext,
    trainer: Trainer | None,
    workers: int = 1,
) -> tuple[list[Job], dict[tuple[Method, Path], list[int]]]:
    """The evaluation as jobs, and where each (method, run)'s curve jobs are in the list.

    The run's training (with ``trainer``), the missing baselines, then one curve per method
    and run, each after what it needs; the curves come last, in :func:`_curve_order`. On
    several ``workers`` a method with ``CURVE_PARTS > 1`` gets a :meth:`Method.prepare` job
    and that many part jobs after it instead (at most one per student; none without an
    adaptation step), listed prepare job first and merged by :func:`_merged`. A free worker
    takes the first job it can start, so the list order is the priority: the run, the
    baselines that wait for it, then those that can train while it runs
    (:meth:`Method.can_train_before_run`), most expensive first (SB3, whose pre-training,
    step-size search and curve are the longest chain)."""
    jobs = (
        [Job(trainer.train, local=True, label=f"meta-train {_short(trainer.out)}")]
        if trainer is not None
        else []
    )
    first = (0,) if trainer is not None else ()
    config_of = dict(zip(paths, configs))
    missing, seen = [], set()
    for p in paths:
        for m in learned:
            # methods sharing a baseline train it once: the others' curves wait for that job
            if m.needs_training(p) and (m.baseline_name(), p) not in seen:
                seen.add((m.baseline_name(), p))
                missing.append((m, p))
    # while the trainer's run is still to train (not on a rerun of a finished one, whose
    # measured counts are on disk)
    training = trainer is not None and trainer.iteration < trainer.cfg.n_iterations
    before = {(m.name, p): training and m.can_train_before_run(config_of[p]) for m, p in missing}
    missing.sort(key=lambda mp: (before[mp[0].name, mp[1]], -mp[0].cost()))  # stable otherwise
    trained_at: dict[tuple[str, Path], int] = {}
    for m, p in missing:
        trained_at[m.baseline_name(), p] = len(jobs)
        early = before[m.name, p]
        jobs.append(
            Job(
                train_baseline,
                (m, p, ctx.env_id, dict(ctx.env_kwargs), config_of[p] if early else None),
                () if early else first,
                label=f"train {m.name} ({_short(p)})",
            )
        )
    curve_jobs: dict[tuple[Method, Path], list[int]] = {}
    # split curves only where there is a second core to share them and something to split
    split = workers > 1 and ctx.adapt_steps > 0
    for m, p in _curve_order(learned, paths):
        key = (m.baseline_name(), p)
        after = first + ((trained_at[key],) if key in trained_at else ())
        label = f"{m.name} ({_short(p)})"
        parts = min(m.CURVE_PARTS, len(ctx.profiles)) if split else 1
        if parts <= 1:
            curve_jobs[m, p] = [len(jobs)]
            jobs.append(Job(method_curve, (m, p, ctx), after, label=f"curve {label}"))
            continue
        jobs.append(Job(method_prepare, (m, p, ctx), after, label=f"prepare {label}"))
        prepared = (len(jobs) - 1,)
        curve_jobs[m, p] = list(range(len(jobs) - 1, len(jobs) + parts))  # prepare, then the parts
        for j in range(parts):
            part = f"curve {label} part {j + 1}/{parts}"
            jobs.append(Job(method_curve_part, (m, p, ctx, j, parts), prepared, label=part))
    return jobs, curve_jobs


def _short(run: Path) -> str:
    """A run's name in job labels: its folder and its parent's (``zpd/seed0``, ``demo/train``)."""
    return f"{run.parent.name}/{run.name}" if run.parent.name else run.name


def train_baseline(
    m: Method,
    run: Path,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    run_config: Mapping[str, Any] | None = None,
) -> None:
    """One evaluation job: ``m``'s baseline of ``run`` (in this process or a worker); given
    the ``run_config`` of a run that is still training, from that config alone
    (:meth:`Method.train_before_run`)."""
    torch.set_num_threads(1)
    if run_config is None:
        m.train(run, env_id, dict(env_kwargs), print)
    else:
        m.train_before_run(run, run_config, env_id, dict(env_kwargs), print)


def load_run(path: Path) -> Run:
    """A meta-training run as the methods see it: its config and its tutor (``best.pt``)."""
    return Run(path, load_checkpoint(path / "checkpoint.pt")["config"], load_policy(path))


def _timed_on_run(call: Callable[[Run], T], path: Path) -> tuple[T, float]:
    """``call(run)`` on the run at ``path`` (whose baseline an earlier job trained, see
    :func:`_jobs`) and its seconds, the run's loading excluded."""
    # these networks are tiny: one thread is fastest, and more threads thrash on a shared 2-core machine
    torch.set_num_threads(1)
    run = load_run(path)
    t0 = time.time()
    return call(run), time.time() - t0


def method_curve(m: Method, path: Path, ctx: EvalContext) -> tuple[Curve, float]:
    """One evaluation job (in this process or a worker): ``m``'s curve on run ``path`` and
    its seconds."""
    return _timed_on_run(lambda run: m.curve(ctx, run), path)


def method_prepare(m: Method, path: Path, ctx: EvalContext) -> tuple[None, float]:
    """One evaluation job: what every part of ``m``'s split curve on ``path`` needs first
    (:meth:`Method.prepare`), and its seconds."""
    return _timed_on_run(lambda run: m.prepare(ctx, run), path)


def method_curve_part(m: Method, path: Path, ctx: EvalContext, part: int, parts: int) -> tuple[Curve, float]:
    """One evaluation job: part ``part`` of ``parts`` of ``m``'s curve on ``path``
    (:meth:`Method.curve_part`, after :func:`method_prepare`) and its seconds."""
    return _timed_on_run(lambda run: m.curve_part(ctx, run, part, parts), path)


def _merged(outputs: Sequence[tuple[Curve | None, float]]) -> tuple[Curve, float]:
    """A curve and its seconds from its one job, or from its prepare job and its parts'
    (merged; the seconds of all, as one job's would include its step-size search)."""
    curves = [c for c, _ in outputs if c is not None]
    merged = curves[0] if len(curves) == 1 else Curve.merge_parts(curves)
    return merged, sum(t for _, t in outputs)


def _mean_over_runs(name: str, kind: str, curves: Sequence[Curve]) -> MethodCurve:
    """Each student's returns and metrics averaged over the runs (training seeds)."""
    returns = np.mean([c.returns for c in curves], axis=0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every run stays NaN
        metrics = {m: np.nanmean([c.metrics[m] for c in curves], axis=0) for m in curves[0].metrics}
    return MethodCurve(name, kind, returns, metrics)


def speed_quartiles(env_id: str, profiles: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The slowest and fastest quartile of the students by learning speed, as the family's
    profile distribution defines it (:meth:`envs.ProfileDistribution.learning_speed`);
    none when it defines none or with fewer than 8 students."""
    speeds = [envs.family(env_id).load("distribution").learning_speed(p) for p in profiles]
    if len(profiles) < 8 or any(v is None for v in speeds):
        return {}
    speed = np.array(speeds)
    lo, hi = np.quantile(speed, [0.25, 0.75])
    return {"slowest quartile": speed <= lo, "fastest quartile": speed >= hi}


def _val_profiles(
    config: Mapping[str, Any], env_id: str, env_kwargs: dict, s: EvaluationSettings
) -> list[dict]:
    """Students for choosing fine-tuning step sizes: the val split of the run's population."""
    dist = run_population(config, env_id, env_kwargs)
    if dist is not None:
        return [p.to_dict() for p in dist.sample(s.val_profiles, "val", seed=s.profile_seed + 1)]
    return envs.sample_profiles(env_id, s.val_profiles, split="val", seed=s.profile_seed + 1, **env_kwargs)


def run_evaluation(
    checkpoints: Sequence[str | Path],
    s: EvaluationSettings,
    out_dir: str | Path,
    *,
    trainer: Trainer | None = None,
) -> dict[str, Path]:
    """Evaluate (``trainer``: see :func:`evaluate`) and write ``results.json``, ``summary.md``,
    ``adaptation_curve.png`` and ``learning_curve.png`` (from the first run's ``metrics.csv``)
    into ``out_dir``."""
    results = evaluate(checkpoints, s, trainer=trainer)
    paths = write_report(results, out_dir)
    from meta_rl.evaluation.plots import plot_learning_curve

    first = run_dir(checkpoints[0])
    paths["learning_curve"] = Path(out_dir) / "learning_curve.png"
    plot_learning_curve(
        [run_dir(c) / "metrics.csv" for c in checkpoints], paths["learning_curve"], title=str(first)
    )
    json.loads(paths["results"].read_text())  # the file we promise is valid JSON
    return paths
