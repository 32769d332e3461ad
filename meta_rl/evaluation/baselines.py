"""The baselines trained from a meta-training run, with its budget, cached in ``RUN_DIR/baselines/``.

* our trainer's baselines (``baselines/NAME/``): pooled PPO and the privileged oracle today,
  any algorithm of :data:`meta_rl.config.ALGORITHMS` tomorrow, trained with
  :func:`derived_config` (the run's shared settings and env-episode budget);
* the stable-baselines3 ones (``baselines/NAME.zip``): SB3 PPO and sb3-contrib's RecurrentPPO,
  given the run's env steps.

A cached baseline trained with another budget than the run's, or (ours) with other settings
than those the run derives today (e.g. after a shipped config changed), is refused with a
message that names the file to delete. The evaluation trains the missing ones, each in its own job
(:mod:`meta_rl.evaluation.parallel`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from envs.profiles import ProfileDistribution
from meta_rl.algorithms import derived_config
from meta_rl.algorithms.derive import predicted_env_steps
from meta_rl.checkpoint import load_checkpoint, load_policy
from meta_rl.config import TrainConfig, make_config
from meta_rl.evaluation import sb3_baseline
from meta_rl.runlock import run_lock
from meta_rl.trainer import Trainer
from meta_rl.tutor import TutorPolicy


def our_baseline_dir(run: Path, name: str) -> Path:
    """Where our trainer's baseline ``name`` of ``run`` lives (a run directory of its own)."""
    return run / "baselines" / name


def our_baseline_done(run: Path, name: str) -> bool:
    return (our_baseline_dir(run, name) / "done").is_file()


def run_config(run: Path) -> dict[str, Any]:
    """The training config of ``run``: its checkpoint's, or before the first checkpoint the
    resolved ``config.yaml`` the run directory starts with (the same dict)."""
    if (run / "checkpoint.pt").is_file():
        return dict(load_checkpoint(run / "checkpoint.pt")["config"])
    from meta_rl.config import load_config

    return load_config(run / "config.yaml").to_dict()


def train_our_baseline(
    run: Path, name: str, log: Callable[[str], None], *, algo: str = "ppo", privileged: bool = False
) -> None:
    """Train (or resume) our trainer's baseline ``name``: ``algo`` with the run's budget
    (:func:`derived_config`: its iterations and episodes per iteration, known from its config
    alone, so this may run while the run itself is still training), in ``RUN_DIR/baselines/NAME``,
    unless done there already."""
    out = our_baseline_dir(run, name)
    if (out / "done").is_file():
        return
    # one writer per baseline: a second evaluation of this run fails at once, naming the holder
    with run_lock(out, f"{name} baseline"):
        if not (out / "done").is_file():  # unless the holder finished it meanwhile
            cfg = derived_config(run_config(run), algo, privileged=privileged)
            resume = (out / "checkpoint.pt").is_file()
            log(f"training {name} ({cfg.n_iterations} iterations, cached in {out}) …")
            trainer = Trainer(cfg, out, resume=resume, progress=False)
            try:
                trainer.train()
            finally:
                trainer.close()
            (out / "done").write_text("")


def check_cached_run(out: Path, run: Path, run_state: Mapping[str, Any], wanted: TrainConfig) -> None:
    """Refuse the cached run in ``out`` (a baseline of ``run``, whose checkpoint state is
    ``run_state``) unless it was trained for the run's number of iterations and with config
    ``wanted`` (the settings the evaluation derives today): a run that went on training, or a
    shipped config that changed since the cache was trained, would otherwise be evaluated with
    the old budget or settings, silently. The error names the differing keys and the folder to
    delete."""
    state = load_checkpoint(out / "checkpoint.pt")
    done, now_iterations = int(state["iteration"]), int(run_state["iteration"])
    if done != now_iterations:
        raise ValueError(
            f"{out} was trained for {done} iterations but {run} now has {now_iterations}: "
            f"delete {out} to retrain it with the same budget"
        )
    try:
        cached = make_config(dict(state["config"])).to_dict()
    except ValueError as e:  # a key this version no longer knows
        raise ValueError(
            f"{out} was trained by another version of meta-tutor ({e}): delete {out} to retrain it"
        ) from None
    now = wanted.to_dict()
    diff = sorted(k for k in cached.keys() | now.keys() if cached.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{k}: {cached.get(k)!r} then, {now.get(k)!r} now" for k in diff[:4])
        more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
        raise ValueError(f"{out} was trained with other settings ({shown}{more}): delete {out} to retrain it")


def our_baseline_policy(run: Path, name: str, *, algo: str = "ppo", privileged: bool = False) -> TutorPolicy:
    """The trained baseline ``name`` (``algo``, ``privileged``) of the finished run ``run``
    (:func:`check_cached_run` against :func:`derived_config`)."""
    out = our_baseline_dir(run, name)
    state = load_checkpoint(run / "checkpoint.pt")
    check_cached_run(out, run, state, derived_config(dict(state["config"]), algo, privileged=privileged))
    return load_policy(out)


def sb3_path(run: Path, name: str) -> Path:
    """Where the SB3 baseline ``name`` of ``run`` is cached."""
    return run / "baselines" / f"{name}.zip"


def train_sb3(
    run: Path,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    log: Callable[[str], None],
    name: str = "sb3_ppo",
    *,
    recurrent: bool | None = None,
    training_config: Mapping[str, Any] | None = None,
) -> tuple[Any, int]:
    """SB3 baseline ``name`` with the run's budget, cached in ``RUN_DIR/baselines/NAME.zip``:
    PPO, or RecurrentPPO when ``recurrent`` (default: when ``name`` is ``recurrent_ppo``).
    Returns the model and the env steps it was trained for.

    The budget is the run's measured env steps (its checkpoint's); given the
    ``training_config`` of a run that is still training, the env steps it will have when it
    is done, predicted from that config (:func:`predicted_env_steps`). Either way, a cached
    model is checked against the budget, so a wrong prediction is refused later against the
    finished run's count."""
    if recurrent is None:
        recurrent = name == "recurrent_ppo"
    cls, _ = sb3_baseline.algorithm(recurrent)
    path = sb3_path(run, name)
    if training_config is None:
        state = load_checkpoint(run / "checkpoint.pt")
        config, budget = state["config"], int(state["env_steps"])
    else:
        config, predicted = training_config, predicted_env_steps(training_config)
        if predicted is None:
            raise ValueError(f"the env steps of {run} depend on its policy: train {name} after the run")
        budget = predicted
    seed = int(config["seed"])
    hidden = sb3_hidden_sizes(config)
    if path.is_file():
        model = cls.load(path, device="cpu")
        # SB3 rounds the budget up to whole rollouts; anything else is a stale cache
        if not budget <= model.num_timesteps < budget + model.n_steps * model.n_envs:
            raise ValueError(
                f"{path} was trained for {model.num_timesteps} env steps but {run} now has {budget}: "
                f"delete it to retrain the baseline with the same budget"
            )
        if model.n_envs != sb3_baseline.SB3_N_ENVS:
            raise ValueError(
                f"{path} was pre-trained with {model.n_envs} students per rollout, this version uses "
                f"{sb3_baseline.SB3_N_ENVS}: delete it to retrain the baseline"
            )
        cached = tuple(model.policy_kwargs.get("net_arch", ()))
        if cached != hidden:
            raise ValueError(
                f"{path} has hidden layers {list(cached)} but {run} asks for {list(hidden)}: "
                f"delete it to retrain the baseline"
            )
        return model, int(model.num_timesteps)
    # one writer per cached model (one lock file each: sb3_ppo and recurrent_ppo train at once)
    with run_lock(path.parent, f"{name} baseline", name=f".{name}.lock"):
        if path.is_file():  # another process finished it meanwhile: check it as above
            return train_sb3(
                run, env_id, env_kwargs, log, name, recurrent=recurrent, training_config=training_config
            )
        log(f"training {name} ({budget} env steps, cached in {path}) …")
        population = run_population(config, env_id, env_kwargs)
        model = sb3_baseline.train_pooled(
            env_id, env_kwargs, budget, seed, hidden=hidden, population=population, recurrent=recurrent
        )
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


def run_population(
    config: Mapping[str, Any], env_id: str, env_kwargs: Mapping[str, Any]
) -> ProfileDistribution | None:
    """The calibrated population a run was trained on, or ``None`` (the env's own)."""
    if not config.get("population"):
        return None
    from envs.calibration import population_distribution

    return population_distribution(config["population"], env_id, env_kwargs)
