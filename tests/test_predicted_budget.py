"""A run's env steps predicted from its config (SB3 pre-trains while the run trains)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from meta_rl.algorithms.derive import predicted_env_steps
from meta_rl.checkpoint import load_checkpoint
from meta_rl.config import MAMLPPOConfig, PPOConfig, ReptilePPOConfig
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


@pytest.mark.parametrize(
    "env_id", ["MetaTutor/SkillGraph-v0", "MetaTutor/SpacedRepetition-v0", "MetaTutor/ZPD-v0"]
)
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
    [{}, {"pretrain_iterations": 1}, {"inner_steps": 2}, {"algo": "ppo", "episodes_per_iteration": 5}],
)
def test_prediction_equals_the_finished_runs_env_steps(tmp_path, extra) -> None:
    cls = PPOConfig if extra.get("algo") == "ppo" else MAMLPPOConfig
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
    trainer = SimpleNamespace(train=lambda: None, out=run)
    methods = methods_for(env_id)
    learned = [methods[n] for n in ("maml_ppo", "pooled_ppo", "sb3_ppo")]
    ctx = EvalContext(env_id, env_kwargs, [], [], 3, EvaluationSettings())
    jobs = _jobs(learned, [run], [cfg.to_dict()], ctx, trainer)
    labels = [j.label for j in jobs]
    sb3 = jobs[labels.index("train sb3_ppo (run)")]
    assert sb3.args[-1] is sb3_early and sb3.after == (() if sb3_early else (0,))
    assert jobs[labels.index("train pooled_ppo (run)")].after == ()  # from the config, always
    # the curves wait for the run and for their baseline
    assert set(jobs[labels.index("curve sb3_ppo (run)")].after) == {0, labels.index("train sb3_ppo (run)")}
    # without a trainer (finished runs) nothing is predicted: SB3 gets the run's measured steps
    jobs = _jobs(learned, [Path(run)], [cfg.to_dict()], ctx, None)
    assert all(j.args[-1] is False for j in jobs if j.label.startswith("train sb3"))
