"""The evaluation registry: a method is one class and one ``register`` line.

Two methods defined here (and nowhere else) are registered and evaluated through the CLI:
a tutor that always takes action 0, checked against the same episodes run by hand, and a
learned method with a baseline to train and a known curve, checked value by value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from meta_rl.cli import main as cli_main
from meta_rl.config import MAMLPPOConfig
from meta_rl.evaluation import episodes
from meta_rl.evaluation.methods import Curve, EvalContext, Method, Run
from meta_rl.evaluation.registry import (
    available_methods,
    default_methods,
    method_kind,
    register,
    unregister,
)
from meta_rl.trainer import Trainer

ENV_ID = "MetaTutor/SkillGraph-v0"
KW = {"n_skills": 3, "n_content": 2, "horizon": 12, "prerequisites": "chain"}


@dataclass(frozen=True)
class AlwaysFirst(Method):
    """A tutor that always takes action 0 (it does not learn: the same numbers at every step)."""

    KIND = "heuristic"
    needs_run = False

    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        returns, metrics = _first_action_episodes(ctx.env_id, ctx.env_kwargs, ctx.profiles, ctx.settings)
        return Curve.constant(returns, metrics, ctx.adapt_steps)


def _first_action_episodes(env_id, env_kwargs, profiles, s):
    venv = episodes.make_task_env(env_id, env_kwargs, profiles, s.eval_episodes)
    ret, met = episodes.run_episodes(venv, lambda obs: np.zeros(len(obs), dtype=np.int64), seed=s.seed)
    n = len(profiles)
    return episodes.per_task_mean(ret, n), {k: episodes.per_task_mean(v, n) for k, v in met.items()}


@dataclass(frozen=True)
class Counting(Method):
    """A learned method whose 'baseline' is a file holding the run's seed; student ``i``
    scores ``seed + i + k / 10`` after ``k`` steps."""

    optional: bool = True  # only when asked for

    def needs_training(self, run: Path) -> bool:
        return not (run / "baselines" / "counting.txt").is_file()

    def train(self, run, env_id, env_kwargs, log) -> None:
        (run / "baselines").mkdir(exist_ok=True)
        (run / "baselines" / "counting.txt").write_text(str(run.name))
        TRAINED.append(run.name)

    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        assert run is not None and (run.path / "baselines" / "counting.txt").read_text() == run.path.name
        n, k = len(ctx.profiles), ctx.adapt_steps
        returns = run.seed + np.arange(n)[:, None] + np.arange(k + 1)[None, :] / 10
        return Curve(returns, {}, env_steps=7, step_size=0.125)


TRAINED: list[str] = []


@pytest.fixture
def registered():
    TRAINED.clear()
    methods = [register(AlwaysFirst("always_first")), register(Counting("counting"))]
    yield methods
    for m in methods:
        unregister(m.name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    out = []
    for seed in (0, 1):
        run = tmp_path_factory.mktemp(f"seed{seed}")
        cfg = MAMLPPOConfig(
            env_kwargs=KW, n_iterations=1, meta_batch_size=2, rollouts_per_task=2, eval_every=1,
            val_tasks=2, val_episodes=1, tensorboard=False, seed=seed,
        )  # fmt: skip
        Trainer(cfg, run, progress=False).train()
        out.append(run)
    return out


def test_a_registered_method_is_evaluated_and_reported(registered, runs, tmp_path, capsys) -> None:
    import envs
    from meta_rl.evaluation.settings import EvaluationSettings

    assert available_methods(ENV_ID)[:3] == ["maml_ppo", "pooled_ppo", "scratch_ppo"]
    assert {"always_first", "counting", "random"} <= set(available_methods(ENV_ID))
    defaults = default_methods(ENV_ID, KW)
    assert "always_first" in defaults and "counting" not in defaults  # optional
    assert (
        method_kind(ENV_ID, "always_first") == "heuristic" and method_kind(ENV_ID, "counting") == "adaptive"
    )
    out = tmp_path / "eval"
    rc = cli_main([
        "evaluate", "--checkpoint", *map(str, runs), "--n", "8", "--adapt-steps", "2", "--eval-episodes", "2",
        "--workers", "1", "--methods", "maml_ppo", "always_first", "counting", "random", "--out", str(out),
    ])  # fmt: skip
    assert rc == 0
    assert TRAINED == [r.name for r in runs]  # trained once per run, before evaluation
    res = json.loads((out / "results.json").read_text())
    assert list(res["methods"]) == ["maml_ppo", "always_first", "counting", "random"]
    first, counting = res["methods"]["always_first"], res["methods"]["counting"]
    assert first["kind"] == "heuristic" and counting["kind"] == "adaptive"
    # the tutor: the same episodes run by hand, at every step
    profs = envs.sample_profiles(ENV_ID, 8, "test", 0, **KW)
    s = EvaluationSettings(eval_episodes=2)
    by_hand, _ = _first_action_episodes(ENV_ID, KW, profs, s)
    np.testing.assert_allclose(np.asarray(first["per_profile"]), np.repeat(by_hand[:, None], 3, axis=1))
    assert len(res["per_seed"]["always_first"]) == 1  # not per run
    # the learned method: averaged over the runs (seeds 0 and 1), recorded per run
    expected = 0.5 + np.arange(8)[:, None] + np.arange(3)[None, :] / 10
    np.testing.assert_allclose(np.asarray(counting["per_profile"]), expected)
    np.testing.assert_allclose(
        res["per_seed"]["counting"], [(expected - 0.5 + seed).mean(0) for seed in (0, 1)]
    )
    assert res["details"]["env_steps"]["counting"] == [7, 7]
    assert res["details"]["inner_lr"]["counting"] == [0.125, 0.125]
    assert "maml_ppo - counting" in res["paired"] and "maml_ppo - always_first" in res["paired"]
    summary = (out / "summary.md").read_text()
    assert "| always_first | heuristic |" in summary and "| counting | adaptive |" in summary
    # cached: evaluating again trains nothing
    assert cli_main([
        "evaluate", "--checkpoint", str(runs[0]), "--n", "8", "--adapt-steps", "1", "--eval-episodes", "2",
        "--workers", "1", "--methods", "counting", "--out", str(tmp_path / "again"),
    ]) == 0  # fmt: skip
    assert TRAINED == [r.name for r in runs]


def test_registry_rejects_bad_registrations(registered) -> None:
    with pytest.raises(ValueError, match="registered already"):
        register(AlwaysFirst("always_first"))
    register(AlwaysFirst("always_first"), replace=True)  # keeps its place
    with pytest.raises(ValueError, match="non-empty word other than 'default'"):
        register(AlwaysFirst("default"))
    with pytest.raises(TypeError, match=r"takes a meta_rl\.evaluation\.methods\.Method"):
        register("random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not registered"):
        unregister("nope")
    register(AlwaysFirst("random"))  # the name of a SkillGraph tutor
    try:
        with pytest.raises(ValueError, match=r"\['random'\] have the name of a tutor"):
            available_methods(ENV_ID)
    finally:
        unregister("random")


def test_trained_baseline_rejects_an_unknown_adaptation() -> None:
    from meta_rl.evaluation.learned import TrainedBaseline

    with pytest.raises(ValueError, match=r"adaptation must be one of \('fine_tune', 'own', 'none'\)"):
        TrainedBaseline("x", adaptation="twice")
    assert TrainedBaseline("o", privileged=True, adaptation="none").kind(ENV_ID) == "oracle"
