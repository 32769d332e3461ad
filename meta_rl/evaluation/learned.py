"""The learned evaluation methods: the meta-trained tutor and the baselines trained from its run.

* :class:`MetaTrained` — the run's own tutor, adapted with its own (meta-learned) inner update;
* :class:`TrainedBaseline` — an algorithm of our trainer trained from scratch with the run's
  budget (``baselines.derived_config``), cached in ``RUN_DIR/baselines/NAME``, then adapted
  per student in one of three ways (``adaptation``):

  - ``"fine_tune"``: our inner update with the step size chosen on val students
    (:func:`fine_tuned`), as pooled PPO;
  - ``"own"``: its own inner update and learned step sizes, as the meta-trained tutor
    (for a meta-learner trained as a baseline, e.g. MAML++ with learned per-layer rates);
  - ``"none"``: used as is at every step (the privileged oracle);

* :class:`Scratch` — a randomly initialised policy of the run's architecture, fine-tuned;
* :class:`SB3Baseline` — stable-baselines3 PPO / RecurrentPPO, fine-tuned with SB3.

Every adaptation uses ``ctx.settings.seed``: all methods see the same students and env seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from meta_rl.adaptation import AdaptationResult, adaptation_curve
from meta_rl.algorithms.derive import predicted_env_steps
from meta_rl.checkpoint import load_checkpoint
from meta_rl.evaluation import baselines, sb3_baseline, step_sizes
from meta_rl.evaluation.methods import Curve, EvalContext, Method, Run, StepRecord, part_rows
from meta_rl.policy import init_params
from meta_rl.tutor import TutorPolicy

ADAPTATIONS = ("fine_tune", "own", "none")


def lr_of(policy: TutorPolicy) -> float | str:
    """The step size a policy adapts with by itself: ``"meta-sgd"`` (learned per parameter
    element), ``"lslr"`` (MAML++: learned per parameter tensor and inner step) or its inner
    update's scalar ``lr``."""
    if isinstance(policy.inner_lrs, tuple):
        return "lslr"
    return "meta-sgd" if policy.inner_lrs is not None else float(policy.inner.lr)


def own_adaptation(policy: TutorPolicy, ctx: EvalContext, steps: int | None = None) -> AdaptationResult:
    """``policy`` adapted to the held-out students with its own inner update (``steps``
    defaults to ``K``)."""
    s = ctx.settings
    k = ctx.adapt_steps if steps is None else steps
    return adaptation_curve(policy, ctx.profiles, k, ctx.rollouts, s.eval_episodes, seed=s.seed, lr=None)


def fine_tuned(
    name: str, policy: TutorPolicy, policy_files: Sequence[Path], ctx: EvalContext, run: Run
) -> tuple[AdaptationResult, StepRecord]:
    """``policy`` fine-tuned per student with our inner update, its step size chosen on the
    val students (:func:`step_sizes.choose_lr`, cached per run under ``name`` and the hashes
    of ``policy_files``). Returns the adaptation and the step size, as recorded."""
    s = ctx.settings
    grid = step_sizes.fine_tuning_grid(run.config)
    step = step_sizes.cached_step(
        run.path, name, policy_files, (ctx.env_id, ctx.env_kwargs), grid, ctx.val, s, ctx.rollouts,
        partial(step_sizes.choose_lr, policy, ctx.val, s, ctx.rollouts, grid),
    )  # fmt: skip
    pol, lr = step_sizes.with_step_size(policy, step)
    # inner=pol.inner: the same update as without it, and an encoder tutor takes the step
    res = adaptation_curve(
        pol, ctx.profiles, ctx.adapt_steps, ctx.rollouts, s.eval_episodes, seed=s.seed, inner=pol.inner, lr=lr
    )
    return res, list(step) if isinstance(step, tuple) else step


def _env_steps(checkpoint: Path) -> int:
    return int(load_checkpoint(checkpoint)["env_steps"])


@dataclass(frozen=True)
class MetaTrained(Method):
    """The meta-trained tutor of the run (``best.pt``) with its own inner update."""

    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        assert run is not None
        res = own_adaptation(run.policy, ctx)
        return Curve(
            res.returns,
            res.metrics,
            env_steps=_env_steps(run.path / "checkpoint.pt"),
            step_size=lr_of(run.policy),
        )


@dataclass(frozen=True)
class TrainedBaseline(Method):
    """``algo`` of our trainer with the run's budget, cached in ``RUN_DIR/baselines/NAME``,
    adapted per student as ``adaptation`` says (see the module docstring). ``privileged``:
    the true profile is part of the observation (an oracle no real tutor can be)."""

    algo: str = "ppo"
    privileged: bool = False
    adaptation: str = "fine_tune"

    def __post_init__(self) -> None:
        if self.adaptation not in ADAPTATIONS:
            raise ValueError(f"adaptation must be one of {ADAPTATIONS}, got {self.adaptation!r}")

    def kind(self, env_id: str) -> str:
        return "oracle" if self.privileged else "adaptive"

    def needs_training(self, run: Path) -> bool:
        return not baselines.our_baseline_done(run, self.name)

    def cost(self) -> float:
        # fine-tuning needs a step-size search on val students first
        return 2.0 if self.adaptation == "fine_tune" else 0.5

    def train(
        self, run: Path, env_id: str, env_kwargs: Mapping[str, Any], log: Callable[[str], None]
    ) -> None:
        baselines.train_our_baseline(run, self.name, log, algo=self.algo, privileged=self.privileged)

    def can_train_before_run(self, run_config: Mapping[str, Any]) -> bool:
        # its budget is the run's iterations and episodes per iteration: known from the config
        return True

    def policy(self, run: Path, log: Callable[[str], None]) -> TutorPolicy:
        """The trained baseline (trained first if it is not cached yet)."""
        baselines.train_our_baseline(run, self.name, log, algo=self.algo, privileged=self.privileged)
        return baselines.our_baseline_policy(run, self.name, algo=self.algo, privileged=self.privileged)

    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        assert run is not None
        pol = self.policy(run.path, ctx.log)
        out = baselines.our_baseline_dir(run.path, self.name)
        env_steps = _env_steps(out / "checkpoint.pt")
        if self.adaptation == "fine_tune":
            # load_policy reads best.pt, else checkpoint.pt: hash both
            res, step = fine_tuned(self.name, pol, [out / "best.pt", out / "checkpoint.pt"], ctx, run)
            return Curve(res.returns, res.metrics, env_steps=env_steps, step_size=step)
        if self.adaptation == "own":
            res = own_adaptation(pol, ctx)
            return Curve(res.returns, res.metrics, env_steps=env_steps, step_size=lr_of(pol))
        res = own_adaptation(pol, ctx, steps=0)  # not adapted: the same policy at every step
        return Curve.constant(
            res.returns, res.metrics, ctx.adapt_steps, env_steps=env_steps, step_size=lr_of(pol)
        )


@dataclass(frozen=True)
class Scratch(Method):
    """A randomly initialised policy of the run's architecture (seeded by the run's seed + ``offset``),
    fine-tuned like pooled PPO: what adaptation alone achieves without any pre-training."""

    offset: int = 12345

    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        assert run is not None
        gen = torch.Generator().manual_seed(run.seed + self.offset)
        pol = run.policy.with_params(init_params(run.policy.spec, gen))
        # scratch starts from the run's architecture: the run's checkpoint stands for it
        files = [run.path / "best.pt", run.path / "checkpoint.pt"]
        res, step = fine_tuned(self.name, pol, files, ctx, run)
        return Curve(res.returns, res.metrics, step_size=step)

    def cost(self) -> float:
        return 2.0


@dataclass(frozen=True)
class SB3Baseline(Method):
    """stable-baselines3 PPO (``recurrent``: sb3-contrib's RecurrentPPO) on the pooled
    population with the run's env steps, cached in ``RUN_DIR/baselines/NAME.zip``, fine-tuned
    per student with SB3 (learning rate chosen on val students)."""

    recurrent: bool = False

    #: SB3 fine-tunes one student at a time, each seeded by itself: four parts let the
    #: evaluation's cores share the longest curve (the demo's last jobs)
    CURVE_PARTS = 4

    def needs_training(self, run: Path) -> bool:
        return not baselines.sb3_path(run, self.name).is_file()

    def cost(self) -> float:
        # SB3 fine-tunes one student at a time with its own PPO object: its step-size search
        # and curve cost more than all our methods' together
        return 10.0

    def train(
        self, run: Path, env_id: str, env_kwargs: Mapping[str, Any], log: Callable[[str], None]
    ) -> None:
        baselines.train_sb3(run, env_id, env_kwargs, log, self.name, recurrent=self.recurrent)

    def can_train_before_run(self, run_config: Mapping[str, Any]) -> bool:
        # its budget is the run's env steps: known in advance when episodes have a fixed length
        return predicted_env_steps(run_config) is not None

    def train_before_run(
        self,
        run: Path,
        run_config: Mapping[str, Any],
        env_id: str,
        env_kwargs: Mapping[str, Any],
        log: Callable[[str], None],
    ) -> None:
        # the curve checks the model against the finished run's measured env steps
        baselines.train_sb3(
            run, env_id, env_kwargs, log, self.name, recurrent=self.recurrent, training_config=run_config
        )

    def _model_and_lr(self, ctx: EvalContext, run: Run, quiet: bool = False) -> tuple[Any, int, float]:
        """The cached pre-trained model, its env steps and the fine-tuning learning rate
        chosen on val students (cached in the run: chosen once, by the first caller;
        ``quiet``: without saying so again, as each part of a split curve would)."""
        s, env = ctx.settings, (ctx.env_id, ctx.env_kwargs)
        if quiet:
            s = replace(s, log=lambda _: None)
        model, budget = baselines.train_sb3(run.path, *env, ctx.log, self.name, recurrent=self.recurrent)
        lr = step_sizes.cached_step(
            run.path, self.name, [baselines.sb3_path(run.path, self.name)], env, step_sizes.SB3_LR_GRID,
            ctx.val, s, ctx.rollouts,
            partial(step_sizes.choose_sb3_lr, model, *env, ctx.val, s, ctx.rollouts),
        )  # fmt: skip
        return model, budget, lr

    def _curve(self, ctx: EvalContext, run: Run, students: Sequence[int] | None, initial: bool) -> Curve:
        model, budget, lr = self._model_and_lr(ctx, run, quiet=students is not None)
        ret, met = sb3_baseline.adaptation_curve(
            model,
            ctx.env_id,
            ctx.env_kwargs,
            ctx.profiles,
            ctx.adapt_steps,
            ctx.rollouts,
            ctx.settings.eval_episodes,
            ctx.settings.seed,
            learning_rate=lr,
            students=students,
            initial=initial,
        )
        return Curve(ret, met, env_steps=budget, step_size=lr)

    def prepare(self, ctx: EvalContext, run: Run) -> None:
        self._model_and_lr(ctx, run)  # the learning-rate search, cached for the parts

    def curve_part(self, ctx: EvalContext, run: Run, part: int, parts: int) -> Curve:
        return self._curve(ctx, run, part_rows(len(ctx.profiles), part, parts).tolist(), part == 0)

    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        assert run is not None
        return self._curve(ctx, run, None, True)
