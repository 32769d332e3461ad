"""The evaluation protocol: every method adapts to the same held-out students.

For each held-out profile, starting from each method's initial policy, ``K``
adaptation steps are run (each: ``rollouts_per_step`` episodes with that student,
then the method's update) and after each step the policy's mean return is measured
on ``eval_episodes`` fresh episodes with the same student (step 0 = unadapted).

Methods (``METHODS``):

* ``maml_ppo`` — the meta-learned initialisation with its own inner update;
* ``pooled_ppo`` — our PPO on the pooled ``train`` population, same env-step budget
  and network, adapted with the same inner update (step size chosen on ``val``
  students from ``LR_GRID``, followed outwards when the best is at its edge, plus
  (shared, per-item) pairs when the run gives per-item logit offsets their own step:
  ``item_bias_lr``);
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
``RUN_DIR/baselines/``. With several runs (training seeds) each student's numbers are
averaged over the runs before intervals are taken over students; ``per_seed`` keeps
each run's mean curve.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
from envs.tutors import make_tutor, omniscient_tutor_names, privileged_tutor_names, tutor_names
from meta_rl.adaptation import adaptation_curve
from meta_rl.checkpoint import load_checkpoint, load_policy
from meta_rl.evaluation import heuristics, sb3_baseline, step_sizes
from meta_rl.evaluation.baselines import (
    SB3_METHODS,
    prepare_baselines,
    run_population,
    train_our_baseline,
    train_sb3,
)
from meta_rl.evaluation.report import MethodCurve, build_results, write_report
from meta_rl.evaluation.settings import EvaluationSettings
from meta_rl.policy import init_params
from meta_rl.tutor import TutorPolicy

LEARNED = ("maml_ppo", "pooled_ppo", "scratch_ppo", "sb3_ppo", "oracle")
#: learned methods evaluated only when asked for (``--methods``): slow or optional dependencies
OPTIONAL_LEARNED = ("recurrent_ppo",)
ALL_LEARNED = (*LEARNED, *OPTIONAL_LEARNED)


def available_methods(env_id: str) -> list[str]:
    return [*LEARNED, *OPTIONAL_LEARNED, *tutor_names(env_id)]


def tutor_error(env_id: str, env_kwargs: Mapping[str, Any], name: str) -> str | None:
    """Why tutor ``name`` cannot run on this env configuration (e.g. ``belief_planner`` on
    more skills than its exact filter enumerates), or ``None`` if it can."""
    probe = envs.family(env_id).load("vector_env")(num_envs=1, **dict(env_kwargs))
    try:
        make_tutor(name, probe)
    except ValueError as e:
        return str(e)
    return None


def default_methods(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> list[str]:
    """What ``evaluate`` runs without ``--methods``: every method but the optional ones, and
    (given ``env_kwargs``) but the tutors that cannot run on that configuration."""
    tutors = tutor_names(env_id)
    if env_kwargs is not None:
        tutors = [t for t in tutors if tutor_error(env_id, env_kwargs, t) is None]
    return [*LEARNED, *tutors]


def expand_methods(methods: Sequence[str] | None, defaults: Sequence[str]) -> list[str]:
    """``None`` → ``defaults`` (:func:`default_methods`); the word ``default`` in a list stands
    for them too (``--methods default recurrent_ppo``). Order kept, duplicates dropped."""
    names = ["default"] if not methods else list(methods)
    out: list[str] = []
    for name in names:
        for m in defaults if name == "default" else [name]:
            if m not in out:
                out.append(m)
    return out


def method_kind(env_id: str, name: str) -> str:
    """``"oracle"`` (knows the true profile: the PPO oracle, privileged tutors such as
    ``planner``), ``"omniscient"`` (privileged tutors that also read hidden state the profile
    does not determine, e.g. SkillGraph's ``planner``), ``"adaptive"`` (the other learned
    methods) or ``"heuristic"``."""
    if name == "oracle":
        return "oracle"
    if name not in ALL_LEARNED and name in privileged_tutor_names(env_id):
        return "omniscient" if name in omniscient_tutor_names(env_id) else "oracle"
    return "adaptive" if name in ALL_LEARNED else "heuristic"


def _run_dir(path: str | Path) -> Path:
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


def _scratch(policy: TutorPolicy, seed: int) -> TutorPolicy:
    gen = torch.Generator().manual_seed(seed)
    return policy.with_params(init_params(policy.spec, gen))


def evaluate(checkpoints: Sequence[str | Path], s: EvaluationSettings) -> dict[str, Any]:
    """Run the protocol for every run in ``checkpoints`` and return ``results.json``'s dict."""
    # these networks are tiny: one thread is fastest, and more threads thrash on a shared 2-core machine
    torch.set_num_threads(1)
    runs = [_run_dir(c) for c in checkpoints]
    if not runs:
        raise ValueError("need at least one checkpoint or run directory")
    maml_policies = [load_policy(r) for r in runs]
    env = maml_policies[0].env
    for r, p in zip(runs, maml_policies):
        if p.env.env_id != env.env_id or dict(p.env.env_kwargs) != dict(env.env_kwargs):
            raise ValueError(
                f"{r}: trained on {p.env.env_id} {p.env.env_kwargs}, not {env.env_id} {env.env_kwargs}"
            )
    env_id, env_kwargs = env.env_id, dict(env.env_kwargs)
    defaults = default_methods(env_id, env_kwargs)  # only tutors that can run here
    methods = expand_methods(s.methods, defaults)
    unknown = sorted(set(methods) - set(available_methods(env_id)))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available for {env_id}: {available_methods(env_id)}")
    for name in (m for m in methods if m not in ALL_LEARNED and m not in defaults):
        # before any baseline is trained: a tutor that cannot run would otherwise fail at the end
        error = tutor_error(env_id, env_kwargs, name)
        if error is not None:
            raise ValueError(f"method {name} cannot run on {env_id} {env_kwargs}: {error}")
    population_path = load_checkpoint(runs[0] / "checkpoint.pt")["config"].get("population", "")
    population = run_population(load_checkpoint(runs[0] / "checkpoint.pt")["config"], env_id, env_kwargs)
    profiles = _load_profiles(s, env_id, env_kwargs, population)
    rollouts = int(s.rollouts_per_step or maml_policies[0].rollouts_per_step)
    val = _val_profiles(runs[0], env_id, env_kwargs, s)
    prepare_baselines(runs, methods, env_id, env_kwargs, s.workers)
    n, k = len(profiles), s.adapt_steps
    per_run: dict[str, list[np.ndarray]] = {}
    per_run_metrics: dict[str, list[dict[str, np.ndarray]]] = {}
    info: dict[str, Any] = {"runs": [str(r) for r in runs], "env_steps": {}, "inner_lr": {}, "seconds": {}}

    def add(name: str, returns: np.ndarray, metrics: Mapping[str, np.ndarray]) -> None:
        per_run.setdefault(name, []).append(np.asarray(returns, dtype=np.float64))
        per_run_metrics.setdefault(name, []).append(
            {m: np.asarray(v, dtype=np.float64) for m, v in metrics.items()}
        )

    for run, maml in zip(runs, maml_policies):
        run_config = load_checkpoint(run / "checkpoint.pt")["config"]
        seed = int(run_config["seed"])
        for name in (m for m in methods if m in ALL_LEARNED):
            t0 = time.time()
            if name in SB3_METHODS:
                model, budget = train_sb3(run, env_id, env_kwargs, s.log, name)
                lr = step_sizes.cached_step(
                    run, name, [run / "baselines" / f"{name}.zip"], (env_id, env_kwargs),
                    step_sizes.SB3_LR_GRID, val, s, rollouts,
                    partial(step_sizes.choose_sb3_lr, model, env_id, env_kwargs, val, s, rollouts),
                )  # fmt: skip
                ret, met = sb3_baseline.adaptation_curve(
                    model,
                    env_id,
                    env_kwargs,
                    profiles,
                    k,
                    rollouts,
                    s.eval_episodes,
                    s.seed,
                    learning_rate=lr,
                )
                info["env_steps"].setdefault(name, []).append(budget)
                info["inner_lr"].setdefault(name, []).append(lr)
            else:
                recorded: Any = None
                if name == "maml_ppo":
                    pol, lr = maml, None
                elif name == "oracle":
                    pol, lr = train_our_baseline(run, "oracle", s.log, privileged=True), None
                else:
                    pol = (
                        train_our_baseline(run, "pooled_ppo", s.log)
                        if name == "pooled_ppo"
                        else _scratch(maml, seed + 12345)
                    )
                    grid = step_sizes.fine_tuning_grid(run_config)
                    # load_policy reads best.pt, else checkpoint.pt: hash both. Scratch starts
                    # from the run's architecture: the run's checkpoint stands for it.
                    policy_dir = run / "baselines" / name if name == "pooled_ppo" else run
                    step = step_sizes.cached_step(
                        run, name, [policy_dir / "best.pt", policy_dir / "checkpoint.pt"],
                        (env_id, env_kwargs), grid, val, s, rollouts,
                        partial(step_sizes.choose_lr, pol, val, s, rollouts, grid),
                    )  # fmt: skip
                    pol, lr = step_sizes.with_step_size(pol, step)
                    recorded = list(step) if isinstance(step, tuple) else step
                steps = 0 if name == "oracle" else k
                res = adaptation_curve(pol, profiles, steps, rollouts, s.eval_episodes, seed=s.seed, lr=lr)
                ret, met = res.returns, res.metrics
                if name == "oracle":  # not adapted: the same policy at every step
                    ret = np.repeat(ret, k + 1, axis=1)
                    met = {m: np.repeat(v, k + 1, axis=1) for m, v in met.items()}
                info["inner_lr"].setdefault(name, []).append(_lr_of(pol) if recorded is None else recorded)
                if name in ("maml_ppo", "pooled_ppo", "oracle"):
                    state = load_checkpoint(
                        run / "checkpoint.pt"
                        if name == "maml_ppo"
                        else run / "baselines" / name / "checkpoint.pt"
                    )
                    info["env_steps"].setdefault(name, []).append(int(state["env_steps"]))
            add(name, ret, met)
            info["seconds"][name] = info["seconds"].get(name, 0.0) + time.time() - t0
            s.log(f"{run.name}: {name:<14} return by step {np.round(np.asarray(ret).mean(0), 3).tolist()}")

    for name in (m for m in methods if m not in ALL_LEARNED):
        t0 = time.time()
        ret, met = heuristics.evaluate_tutor(name, env_id, env_kwargs, profiles, s.eval_episodes, s.seed)
        add(
            name,
            np.repeat(ret[:, None], k + 1, axis=1),
            {m: np.repeat(v[:, None], k + 1, axis=1) for m, v in met.items()},
        )
        info["seconds"][name] = time.time() - t0
        label = "heuristic" if method_kind(env_id, name) == "heuristic" else "privileged"
        s.log(f"{label} {name:<22} return {ret.mean():.3f}")

    curves = []
    for name in methods:
        kind = method_kind(env_id, name)
        returns = np.mean(per_run[name], axis=0)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every run stays NaN
            metrics = {
                m: np.nanmean([d[m] for d in per_run_metrics[name]], axis=0) for m in per_run_metrics[name][0]
            }
        curves.append(MethodCurve(name, kind, returns, metrics))
    subgroups = {}
    speed = speed_of(env_id, profiles)
    if speed is not None and n >= 8:
        lo, hi = np.quantile(speed, [0.25, 0.75])
        subgroups = {"slowest quartile": speed <= lo, "fastest quartile": speed >= hi}
    results = build_results(
        curves,
        env_id=env_id,
        split=(
            f"students of {s.profiles_file}"
            if s.profiles_file
            else f"held-out students of {population_path}"
            if population is not None
            else s.split
        ),
        adapt_steps=k,
        rollouts_per_step=rollouts,
        eval_episodes=s.eval_episodes,
        seeds=[int(load_checkpoint(r / "checkpoint.pt")["config"]["seed"]) for r in runs],
        command=s.command,
        subgroups=subgroups,
        seed=s.seed,
    )
    results["per_seed"] = {name: [r.mean(axis=0).tolist() for r in per_run[name]] for name in per_run}
    results["details"] = info
    results["profiles_file" if s.profiles_file else "profile_seed"] = s.profiles_file or s.profile_seed
    return results


def speed_of(env_id: str, profiles: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """Every student's learning speed, as the family's profile distribution defines it
    (:meth:`envs.ProfileDistribution.learning_speed`), or ``None`` if it defines none."""
    speeds = [envs.family(env_id).load("distribution").learning_speed(p) for p in profiles]
    return None if any(v is None for v in speeds) else np.array(speeds)


def _val_profiles(run: Path, env_id: str, env_kwargs: dict, s: EvaluationSettings) -> list[dict]:
    """Students for choosing fine-tuning step sizes: the val split of the run's population."""
    dist = run_population(load_checkpoint(run / "checkpoint.pt")["config"], env_id, env_kwargs)
    if dist is not None:
        return [p.to_dict() for p in dist.sample(s.val_profiles, "val", seed=s.profile_seed + 1)]
    return envs.sample_profiles(env_id, s.val_profiles, split="val", seed=s.profile_seed + 1, **env_kwargs)


def _lr_of(policy: TutorPolicy) -> float | str:
    return "meta-sgd" if policy.inner_lrs is not None else float(policy.inner.lr)


def run_evaluation(
    checkpoints: Sequence[str | Path], s: EvaluationSettings, out_dir: str | Path
) -> dict[str, Path]:
    """Evaluate and write ``results.json``, ``summary.md``, ``adaptation_curve.png`` and
    ``learning_curve.png`` (from the first run's ``metrics.csv``) into ``out_dir``."""
    results = evaluate(checkpoints, s)
    paths = write_report(results, out_dir)
    from meta_rl.evaluation.plots import plot_learning_curve

    first = _run_dir(checkpoints[0])
    paths["learning_curve"] = Path(out_dir) / "learning_curve.png"
    plot_learning_curve(
        [_run_dir(c) / "metrics.csv" for c in checkpoints], paths["learning_curve"], title=str(first)
    )
    json.loads(paths["results"].read_text())  # the file we promise is valid JSON
    return paths
