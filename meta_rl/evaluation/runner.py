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

import hashlib
import json
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
from envs.tutors import make_tutor, omniscient_tutor_names, privileged_tutor_names, tutor_names
from meta_rl.adaptation import adaptation_curve
from meta_rl.checkpoint import atomic_write, load_checkpoint, load_policy
from meta_rl.config import ALGORITHMS, PPOConfig
from meta_rl.evaluation import heuristics, sb3_baseline
from meta_rl.evaluation.report import MethodCurve, build_results, write_report
from meta_rl.policy import init_params
from meta_rl.trainer import Trainer
from meta_rl.tutor import TutorPolicy

LEARNED = ("maml_ppo", "pooled_ppo", "scratch_ppo", "sb3_ppo", "oracle")
#: learned methods evaluated only when asked for (``--methods``): slow or optional dependencies
OPTIONAL_LEARNED = ("recurrent_ppo",)
ALL_LEARNED = (*LEARNED, *OPTIONAL_LEARNED)
#: the baselines trained with stable-baselines3 (cached as ``RUN_DIR/baselines/NAME.zip``)
SB3_METHODS = ("sb3_ppo", "recurrent_ppo")
LR_GRID = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
#: when the meta-training run gives the per-item logit offsets their own inner step size
#: (``item_bias_lr``), pooled and scratch fine-tuning may too: these multiples of the run's
#: value, each with these step sizes of the shared weights (chosen on val like the scalar step)
ITEM_LR_FACTORS = (1 / 3, 1.0, 3.0)
ITEM_SHARED_LRS = (0.05, 0.5)
SB3_LR_GRID = (1e-4, 3e-4, 1e-3)
#: how far a best step size at a grid's edge is followed outwards (see ``_best_on_val``)
MAX_GRID_EXTENSIONS = 4
#: the fine-tuning step sizes chosen on val, per run (see ``_cached_step``)
STEP_CACHE = "step_sizes.json"
STEP_CACHE_VERSION = 1

#: a profile's learning speed, for the slowest / fastest quartile subgroups
SPEED: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "MetaTutor/SkillGraph-v0": lambda p: float(np.mean(p["learn"]) * np.max(p["content_affinity"])),
    "MetaTutor/SpacedRepetition-v0": lambda p: -float(p["decay"]),
    "MetaTutor/SpacedRepetitionGoals-v0": lambda p: -float(p["decay"]),
    "MetaTutor/ZPD-v0": lambda p: float(p["learn_rate"]),
}


@dataclass
class EvaluationSettings:
    """What to evaluate and how (``meta-tutor evaluate`` options)."""

    split: str = "test"
    n_profiles: int = 80
    profile_seed: int = 0
    profiles_file: str | None = None
    adapt_steps: int = 3
    rollouts_per_step: int | None = None  # default: the meta-training run's rollouts_per_task
    eval_episodes: int = 10
    seed: int = 0
    methods: list[str] | None = None  # default: every method but the optional ones (OPTIONAL_LEARNED)
    val_profiles: int = 20  # students of the val split used to choose fine-tuning step sizes
    workers: int = 2  # processes that train missing baselines in parallel (1: in this process)
    command: str = field(default_factory=lambda: " ".join(shlex.quote(a) for a in sys.argv))
    log: Callable[[str], None] = print


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


def _train_our_baseline(run: Path, name: str, privileged: bool, log: Callable[[str], None]) -> TutorPolicy:
    """Pooled PPO (or the privileged oracle) with the meta-training run's budget; cached."""
    out = run / "baselines" / name
    state = load_checkpoint(run / "checkpoint.pt")
    if (out / "best.pt").is_file() and (out / "done").is_file():
        done_iterations = int(load_checkpoint(out / "checkpoint.pt")["iteration"])
        if done_iterations != int(state["iteration"]):
            raise ValueError(
                f"{out} was trained for {done_iterations} iterations but {run} now has "
                f"{state['iteration']}: delete {out} to retrain the baseline with the same budget"
            )
        return load_policy(out)
    cfg = dict(state["config"])
    ppo_keys = {f for f in PPOConfig.__dataclass_fields__}
    maml_cfg = ALGORITHMS[cfg["algo"]](**cfg)
    base = {k: v for k, v in cfg.items() if k in ppo_keys}
    base.update(
        algo="ppo",
        privileged=privileged,
        init_from="",
        # the same env steps per iteration and the same number of iterations as meta-training
        episodes_per_iteration=maml_cfg.pooled_episodes,
        tensorboard=False,
        # baselines train in this process (or an evaluation worker process), never on Ray
        sampler="local",
        # the oracle is used unadapted: pick its checkpoint on pre-adaptation validation return
        select_on="pre" if privileged else "post",
    )
    resume = (out / "checkpoint.pt").is_file()
    log(f"training {name} ({base['n_iterations']} iterations, cached in {out}) …")
    trainer = Trainer(PPOConfig(**base), out, resume=resume, progress=False)
    trainer.train()
    (out / "done").write_text("")
    return load_policy(out)


def _train_sb3(
    run: Path, env_id: str, env_kwargs: Mapping[str, Any], log: Callable[[str], None], name: str = "sb3_ppo"
):
    """SB3 baseline ``name`` (``sb3_ppo`` or ``recurrent_ppo``) with the run's budget; cached."""
    recurrent = name == "recurrent_ppo"
    cls, _ = sb3_baseline.algorithm(recurrent)
    path = run / "baselines" / f"{name}.zip"
    state = load_checkpoint(run / "checkpoint.pt")
    budget, seed = int(state["env_steps"]), int(state["config"]["seed"])
    hidden = sb3_hidden_sizes(state["config"])
    if path.is_file():
        model = cls.load(path, device="cpu")
        # SB3 rounds the budget up to whole rollouts; anything else is a stale cache
        if not budget <= model.num_timesteps < budget + model.n_steps * model.n_envs:
            raise ValueError(
                f"{path} was trained for {model.num_timesteps} env steps but {run} now has {budget}: "
                f"delete it to retrain the baseline with the same budget"
            )
        cached = tuple(model.policy_kwargs.get("net_arch", ()))
        if cached != hidden:
            raise ValueError(
                f"{path} has hidden layers {list(cached)} but {run} asks for {list(hidden)}: "
                f"delete it to retrain the baseline"
            )
        return model, int(model.num_timesteps)
    log(f"training {name} ({budget} env steps, cached in {path}) …")
    population = _population(state["config"], env_id, env_kwargs)
    model = sb3_baseline.train_pooled(
        env_id, env_kwargs, budget, seed, hidden=hidden, population=population, recurrent=recurrent
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{name}.tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)  # a crash never leaves a half-written cache
    return model, int(model.num_timesteps)


def sb3_hidden_sizes(config: Mapping[str, Any]) -> tuple[int, ...]:
    """Hidden layers of the SB3 baseline: the run's MLP, or SB3's default (64, 64) when the
    run uses an item-wise policy, which SB3's ``MlpPolicy`` has no counterpart for."""
    if config.get("architecture", "mlp") == "mlp":
        return tuple(int(h) for h in config["hidden_sizes"])
    return sb3_baseline.SB3_DEFAULT_HIDDEN


def _population(config: Mapping[str, Any], env_id: str, env_kwargs: Mapping[str, Any]):
    """The calibrated population a run was trained on, or ``None`` (the env's own)."""
    if not config.get("population"):
        return None
    from envs.calibration import population_distribution

    return population_distribution(config["population"], env_id, env_kwargs)


def _train_sb3_job(run: Path, env_id: str, env_kwargs: dict, name: str) -> None:
    torch.set_num_threads(1)
    _train_sb3(run, env_id, env_kwargs, print, name)


def _train_ours_job(run: Path, name: str) -> None:
    torch.set_num_threads(1)
    _train_our_baseline(run, name, name == "oracle", print)


def prepare_baselines(
    runs: Sequence[Path], methods: Sequence[str], env_id: str, env_kwargs: dict, workers: int
) -> None:
    """Train every missing baseline of every run, ``workers`` at a time (separate processes)."""
    jobs: list[tuple[Callable[..., None], tuple]] = []
    for run in runs:
        for name in ("pooled_ppo", "oracle"):
            if name in methods and not (run / "baselines" / name / "done").is_file():
                jobs.append((_train_ours_job, (run, name)))
        for name in SB3_METHODS:
            if name in methods and not (run / "baselines" / f"{name}.zip").is_file():
                jobs.append((_train_sb3_job, (run, env_id, env_kwargs, name)))
    if workers <= 1 or len(jobs) <= 1:
        for fn, a in jobs:
            fn(*a)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker (forking a process that holds torch threads is unsafe)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for f in [pool.submit(fn, *a) for fn, a in jobs]:
            f.result()


def _best_on_val(grid: Sequence[Any], final_return: Callable[[Any], float]) -> Any:
    """The step size whose adapted return on val students (after K steps) is highest.

    Every entry of ``grid`` is tried. When the best is the largest (or smallest) scalar
    step of the grid, the search follows that edge outwards with the grid's own ratio there
    (e.g. 2.0 -> 4.0 -> 8.0) while the val return keeps improving, at most
    ``MAX_GRID_EXTENSIONS`` times: a baseline's step size must not be capped by a grid that
    stopped too early (a sceptical reader would rightly call that an under-tuned baseline).
    Tuple entries (per-parameter-group steps) are tried as given and never extended, and
    so is a grid with fewer than two distinct positive scalars. A NaN score (a diverging
    step) never wins.
    """
    scores = [final_return(step) for step in grid]
    best_i = int(np.argmax(np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)))
    best, best_score = grid[best_i], scores[best_i]
    scalars = sorted({float(g) for g in grid if not isinstance(g, tuple) and g > 0})
    if isinstance(best, tuple) or len(scalars) < 2 or best not in (scalars[0], scalars[-1]):
        return best
    ratio = scalars[-1] / scalars[-2] if best == scalars[-1] else scalars[0] / scalars[1]
    step = float(best)
    for _ in range(MAX_GRID_EXTENSIONS):
        step *= ratio
        score = final_return(step)
        if not score > best_score:  # ties keep the grid's value
            break
        best, best_score = step, score
    return best


#: a fine-tuning step size: one scalar, or (shared weights, per-item logit offsets)
StepSize = float | tuple[float, float]


def _step_sizes(run_config: Mapping[str, Any]) -> list[StepSize]:
    """The step sizes offered to pooled and scratch fine-tuning for a meta-training run."""
    item_lr = float(run_config.get("item_bias_lr", 0.0) or 0.0)
    grid: list[StepSize] = list(LR_GRID)
    if item_lr > 0:
        grid += [(lr, item_lr * f) for lr in ITEM_SHARED_LRS for f in ITEM_LR_FACTORS]
    return grid


def _with_step_size(policy: TutorPolicy, step: StepSize) -> tuple[TutorPolicy, float | None]:
    """``(policy, lr)`` for :func:`adaptation_curve`: a pair becomes per-parameter step sizes."""
    if isinstance(step, tuple):
        shared, item = step
        lrs = {k: torch.full_like(v, item if k == "item_bias" else shared) for k, v in policy.params.items()}
        return policy.with_inner_lr(lrs), None
    return policy, float(step)


def _choose_lr(
    policy: TutorPolicy, val: Sequence[dict], s: EvaluationSettings, rollouts: int, grid: Sequence[StepSize]
) -> StepSize:
    def final_return(step: StepSize) -> float:
        pol, lr = _with_step_size(policy, step)
        res = adaptation_curve(pol, val, s.adapt_steps, rollouts, s.eval_episodes, seed=s.seed + 1, lr=lr)
        return float(res.returns[:, -1].mean())

    return _best_on_val(grid, final_return)


def _cached_step(
    run: Path,
    name: str,
    policy_files: Sequence[Path],
    env: tuple[str, Mapping[str, Any]],
    grid: Sequence[StepSize],
    val: Sequence[dict],
    s: EvaluationSettings,
    rollouts: int,
    choose: Callable[[], StepSize],
) -> StepSize:
    """``choose()``, remembered in ``RUN_DIR/baselines/step_sizes.json``.

    The choice depends on the policy, the grid and the val protocol but not on the split
    being evaluated, so evaluating the same run again (``--split ood`` after ``test``)
    reuses it instead of repeating every candidate's val adaptation. The key holds all it
    depends on (hashes of the policy files and of the val students included): a retrained
    baseline or any other setting is chosen afresh. ``STEP_CACHE_VERSION`` stands for the
    rules in code (val seed, SB3's val subset, scoring): bump it when they change. Two
    evaluations of one run writing at the same time may drop each other's entry; that only
    costs a recomputation.
    """
    policy_hash = hashlib.sha256()
    for f in policy_files:
        if f.is_file():
            policy_hash.update(f.name.encode() + hashlib.sha256(f.read_bytes()).digest())
    key = json.dumps(
        {
            "version": STEP_CACHE_VERSION,
            "method": name,
            "env_id": env[0],
            "env_kwargs": dict(env[1]),
            "policy_sha256": policy_hash.hexdigest(),
            "val_sha256": hashlib.sha256(json.dumps(list(val), sort_keys=True).encode()).hexdigest(),
            "grid": [list(g) if isinstance(g, tuple) else g for g in grid],
            "max_grid_extensions": MAX_GRID_EXTENSIONS,
            "seed": s.seed,
            "adapt_steps": s.adapt_steps,
            "rollouts": rollouts,
            "eval_episodes": s.eval_episodes,
        },
        sort_keys=True,
    )
    path = run / "baselines" / STEP_CACHE
    cache: dict[str, Any] = {}
    if path.is_file():
        try:
            cache = json.loads(path.read_text())
            if not isinstance(cache, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            warnings.warn(f"{path} is not a valid step-size cache ({e}): choosing again", stacklevel=2)
            cache = {}
    value = cache.get(key)
    if _is_step_size(value):
        s.log(f"{run.name}: {name:<14} step size {value} (chosen on val earlier: {path})")
        return tuple(value) if isinstance(value, list) else float(value)
    if value is not None:
        warnings.warn(f"{path}: {value!r} is not a step size: choosing again", stacklevel=2)
    step = choose()
    cache[key] = list(step) if isinstance(step, tuple) else step
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n"))
    return step


def _is_step_size(value: Any) -> bool:
    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x) and x > 0

    return number(value) or (isinstance(value, list) and len(value) == 2 and all(map(number, value)))


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
    population = _population(load_checkpoint(runs[0] / "checkpoint.pt")["config"], env_id, env_kwargs)
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
                model, budget = _train_sb3(run, env_id, env_kwargs, s.log, name)
                lr = _cached_step(
                    run, name, [run / "baselines" / f"{name}.zip"], (env_id, env_kwargs), SB3_LR_GRID,
                    val, s, rollouts,
                    partial(_choose_sb3_lr, model, env_id, env_kwargs, val, s, rollouts),
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
                    pol, lr = _train_our_baseline(run, "oracle", True, s.log), None
                else:
                    pol = (
                        _train_our_baseline(run, "pooled_ppo", False, s.log)
                        if name == "pooled_ppo"
                        else _scratch(maml, seed + 12345)
                    )
                    grid = _step_sizes(run_config)
                    # load_policy reads best.pt, else checkpoint.pt: hash both. Scratch starts
                    # from the run's architecture: the run's checkpoint stands for it.
                    policy_dir = run / "baselines" / name if name == "pooled_ppo" else run
                    step = _cached_step(
                        run, name, [policy_dir / "best.pt", policy_dir / "checkpoint.pt"],
                        (env_id, env_kwargs), grid, val, s, rollouts,
                        partial(_choose_lr, pol, val, s, rollouts, grid),
                    )  # fmt: skip
                    pol, lr = _with_step_size(pol, step)
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
    speed = np.array([SPEED[env_id](p) for p in profiles]) if env_id in SPEED else None
    subgroups = {}
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


def _val_profiles(run: Path, env_id: str, env_kwargs: dict, s: EvaluationSettings) -> list[dict]:
    """Students for choosing fine-tuning step sizes: the val split of the run's population."""
    dist = _population(load_checkpoint(run / "checkpoint.pt")["config"], env_id, env_kwargs)
    if dist is not None:
        return [p.to_dict() for p in dist.sample(s.val_profiles, "val", seed=s.profile_seed + 1)]
    return envs.sample_profiles(env_id, s.val_profiles, split="val", seed=s.profile_seed + 1, **env_kwargs)


def _lr_of(policy: TutorPolicy) -> float | str:
    return "meta-sgd" if policy.inner_lrs is not None else float(policy.inner.lr)


def _choose_sb3_lr(model, env_id, env_kwargs, val, s: EvaluationSettings, rollouts: int) -> float:
    val = list(val)[: max(2, len(val) // 2)]  # SB3 fine-tuning loops over students: keep it short

    def final_return(lr: float) -> float:
        ret, _ = sb3_baseline.adaptation_curve(
            model,
            env_id,
            env_kwargs,
            val,
            s.adapt_steps,
            rollouts,
            s.eval_episodes,
            s.seed + 1,
            learning_rate=lr,
        )
        return float(ret[:, -1].mean())

    return _best_on_val(SB3_LR_GRID, final_return)


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
