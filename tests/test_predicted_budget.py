"""A run's env steps predicted from its config (SB3 pre-trains while the run trains)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import envs
from meta_rl.algorithms.derive import predicted_env_steps
from meta_rl.checkpoint import load_checkpoint
from meta_rl.config import MAMLPlusPlusPPOConfig, MAMLPPOConfig, PPOConfig, ReptilePPOConfig
from meta_rl.envspec import EnvSpec
from meta_rl.evaluation.methods import EvalContext
from meta_rl.evaluation.registry import methods_for
from meta_rl.evaluation.runner import _jobs
from meta_rl.evaluation.settings import EvaluationSettings
from meta_rl.trainer import Trainer

SG = "MetaTutor/SkillGraph-v0"
SG_KW = {"n_skills": 3, "n_content": 2, "horizon": 12, "prerequisites": "chain"}
TINY = {"n_iterations": 2, "meta_batch_size": 2, "rollouts_per_task": 3, "eval_every": 2, "val_tasks": 2}
TINY |= {"val_episodes": 2, "tensorboard": False}


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_fixed_length_families_end_every_episode_at_the_horizon(env_id) -> None:
    """The claim the prediction rests on, checked on 200 students under random teaching."""
    venv = EnvSpec(env_id).make_vector_env(200)
    dyn = venv.dynamics
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    length = np.zeros(200, dtype=int)
    ended_at: list[int] = []
    for _ in range(dyn.horizon):
        _, _, term, trunc, _ = venv.step(rng.integers(0, venv.single_action_space.n, 200))
        length += 1
        done = term | trunc
        ended_at += length[done].tolist()
        length[done] = 0
    if type(dyn).fixed_length:
        assert ended_at == [dyn.horizon] * 200
    else:  # ZPD: students quit, so its run's env steps depend on the policy
        assert min(ended_at) < dyn.horizon


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"pretrain_iterations": 1},
        {"pretrain_iterations": 1, "episodes_per_iteration": 5},  # warm start: 5 episodes
        {"pretrain_iterations": 3},  # more than n_iterations
        {"inner_steps": 2},
        {"algo": "ppo", "episodes_per_iteration": 5},
        {"algo": "mamlpp_ppo", "inner_steps": 2, "pretrain_iterations": 1},
    ],
)
def test_prediction_equals_the_finished_runs_env_steps(tmp_path, extra) -> None:
    cls = {"ppo": PPOConfig, "mamlpp_ppo": MAMLPlusPlusPPOConfig}.get(extra.get("algo"), MAMLPPOConfig)
    cfg = cls(env_kwargs=SG_KW, **TINY, **{k: v for k, v in extra.items() if k != "algo"})
    predicted = predicted_env_steps(cfg.to_dict())
    Trainer(cfg, tmp_path / "run", progress=False).train()
    assert predicted == int(load_checkpoint(tmp_path / "run" / "checkpoint.pt")["env_steps"])


def test_no_prediction_where_the_steps_depend_on_the_policy() -> None:
    zpd = MAMLPPOConfig(env="MetaTutor/ZPD-v0", **TINY).to_dict()
    assert predicted_env_steps(zpd) is None  # students quit early
    reptile = ReptilePPOConfig(env_kwargs=SG_KW, **TINY).to_dict()
    assert predicted_env_steps(reptile) is None  # not an algorithm the prediction covers


@pytest.mark.parametrize(
    "env_id, env_kwargs, sb3_early", [(SG, SG_KW, True), ("MetaTutor/ZPD-v0", {}, False)]
)
def test_with_a_trainer_sb3_pretrains_while_the_run_trains_where_the_budget_is_known(
    tmp_path, env_id, env_kwargs, sb3_early
) -> None:
    cfg = MAMLPPOConfig(env=env_id, env_kwargs=env_kwargs, **TINY)
    run = tmp_path / "run"
    trainer = SimpleNamespace(train=lambda: None, out=run, iteration=0, cfg=cfg)
    methods = methods_for(env_id)
    learned = [methods[n] for n in ("maml_ppo", "pooled_ppo", "sb3_ppo")]
    ctx = EvalContext(env_id, env_kwargs, [], [], 3, EvaluationSettings())
    jobs, _ = _jobs(learned, [run], [cfg.to_dict()], ctx, trainer)
    labels = [j.label for j in jobs]
    name = f"{run.parent.name}/run"
    sb3 = labels.index(f"train sb3_ppo ({name})")
    assert (jobs[sb3].args[-1] is not None) is sb3_early and jobs[sb3].after == (() if sb3_early else (0,))
    pooled = labels.index(f"train pooled_ppo ({name})")
    assert jobs[pooled].after == ()  # from the config, always
    if sb3_early:  # the longest chain first
        assert sb3 < pooled
    # the curves wait for the run and for their baseline
    assert set(jobs[labels.index(f"curve sb3_ppo ({name})")].after) == {0, sb3}
    # a finished run (rerun of the demo) or none at all: SB3 gets the run's measured steps
    finished = SimpleNamespace(train=lambda: None, out=run, iteration=cfg.n_iterations, cfg=cfg)
    for t in (finished, None):
        jobs, _ = _jobs(learned, [Path(run)], [cfg.to_dict()], ctx, t)
        assert all(j.args[-1] is None for j in jobs if j.label.startswith("train sb3"))


def test_shipped_configs_predict_their_runs_env_steps(tmp_path) -> None:
    """Every shipped config whose budget is predictable, cut to 2 tiny iterations (one of them
    a warm-start iteration where the config has a warm start)."""
    from meta_rl.config import load_config

    tiny = ["n_iterations=2", "meta_batch_size=2", "rollouts_per_task=2", "eval_every=2", "val_tasks=2"]
    tiny += ["val_episodes=2", "tensorboard=false"]
    checked = []
    for path in sorted((Path(__file__).parents[1] / "meta_rl" / "configs").glob("*.yaml")):
        if predicted_env_steps(load_config(path).to_dict()) is None:
            continue
        warm = ["pretrain_iterations=1"] if getattr(load_config(path), "pretrain_iterations", 0) else []
        cfg = load_config(path, tiny + warm)
        Trainer(cfg, tmp_path / path.stem, progress=False).train()
        measured = int(load_checkpoint(tmp_path / path.stem / "checkpoint.pt")["env_steps"])
        assert predicted_env_steps(cfg.to_dict()) == measured, path.name
        checked.append(path.stem)
    assert {"skill_graph", "spaced_repetition", "spaced_repetition_goals"} <= set(checked)
