"""The evaluation method ``encoder_ppo``: a student-encoder tutor trained from the run.

Encoder-PPO (:mod:`meta_rl.algorithms.encoder_ppo`) is trained with the meta-training run's
budget — its shared settings, the same students and episodes per iteration (``inner_steps +
1`` rounds of ``rollouts_per_task`` episodes per student) and the same number of iterations
(:func:`encoder_config`), plus the ``algorithms.encoder_ppo`` section of the env's shipped config
(its encoder settings, e.g. ``z_dim``) — cached in ``RUN_DIR/baselines/encoder_ppo``, and evaluated in the
protocol of every method: adaptation step ``k`` is ``k`` sessions of ``rollouts`` episodes of
context with the student, pooled into the encoding (no gradient step), measured on fresh
episodes with that context (:meth:`meta_rl.encoder_tutor.EncoderTutor.context_adaptation_curve`,
same seeds and students as the others).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meta_rl.algorithms.derive import RUN_KEYS, shipped_settings
from meta_rl.checkpoint import load_checkpoint, load_policy
from meta_rl.config import EncoderPPOConfig, config_classes, make_config
from meta_rl.encoder_tutor import META_LEARNED_STEP
from meta_rl.evaluation.baselines import check_cached_run
from meta_rl.evaluation.learned import fine_tuned, lr_of, own_adaptation
from meta_rl.evaluation.methods import Curve, EvalContext, Method, Run
from meta_rl.tutor import TutorPolicy


def encoder_config(
    run_config: Mapping[str, Any], algo: str = "encoder_ppo", **overrides: Any
) -> EncoderPPOConfig:
    """The config that trains encoder-PPO (or another encoder algorithm ``algo``, e.g.
    ``encoder_maml_ppo``) with the budget of the run whose config is ``run_config``
    (``TrainConfig.to_dict()``): its keys that ``algo`` shares, then the
    ``algorithms.ALGO`` section of the env's shipped config, then ``overrides``. The
    section may not set what makes runs comparable (:data:`RUN_KEYS`) and may reshape an
    iteration (e.g. more rounds of context with fewer students: ``inner_steps``,
    ``meta_batch_size``) only if it keeps the run's episodes per iteration."""
    cls = config_classes().get(algo)
    if cls is None or not issubclass(cls, EncoderPPOConfig):
        raise ValueError(f"{algo!r} is not an encoder algorithm")
    fields = cls.__dataclass_fields__
    base = {k: v for k, v in run_config.items() if k in fields}
    shipped = shipped_settings(str(run_config["env"]), algo)
    where = f"algorithms.{algo} of {run_config['env']}'s shipped config"
    wrong = sorted(k for k in shipped if k in RUN_KEYS)
    if wrong:
        raise ValueError(f"{where} sets {wrong}: the run decides those (they make the comparison fair)")
    base.update(shipped)
    base.update(
        algo=algo,
        privileged=False,
        init_from="",
        episodes_per_iteration=0,
        tensorboard=False,
        sampler="local",
        select_on="post",
    )
    base.update(overrides)
    cfg = cls(**base)
    if any(k in shipped for k in _BUDGET_KEYS):
        run_episodes = make_config(dict(run_config)).pooled_episodes
        if cfg.pooled_episodes != run_episodes:
            raise ValueError(
                f"{where} gives {cfg.pooled_episodes} episodes per iteration, the run {run_episodes}: "
                f"keep meta_batch_size * rollouts_per_task * (inner_steps + 1) equal to the run's"
            )
    return cfg


#: what shapes encoder-PPO's episodes per iteration (``meta_batch_size · rollouts_per_task ·
#: (inner_steps + 1)``), which a shipped section may set only if the product stays the run's
_BUDGET_KEYS = {"meta_batch_size", "inner_steps", "rollouts_per_task"}


def baseline_dir(run: Path, name: str) -> Path:
    return run / "baselines" / name


def train_encoder(run: Path, name: str, log: Callable[[str], None], algo: str = "encoder_ppo") -> TutorPolicy:
    """The encoder tutor (``algo``) of ``run`` (trained, or resumed, into
    ``RUN_DIR/baselines/NAME`` first unless done there already with the run's number of
    iterations and today's settings)."""
    from meta_rl.trainer import Trainer

    out = baseline_dir(run, name)
    state = load_checkpoint(run / "checkpoint.pt")
    if (out / "done").is_file():
        check_cached_run(out, run, state, encoder_config(state["config"], algo))
        return load_policy(out)
    cfg = encoder_config(state["config"], algo)
    log(f"training {name} ({cfg.n_iterations} iterations, cached in {out}) …")
    trainer = Trainer(cfg, out, resume=(out / "checkpoint.pt").is_file(), progress=False)
    try:
        trainer.train()
    finally:
        trainer.close()
    (out / "done").write_text("")
    return load_policy(out)


@dataclass(frozen=True)
class EncoderBaseline(Method):
    """Encoder-PPO trained from the run (module docstring), adapted by context alone; with
    ``fine_tune`` each session of context is also a gradient step on the policy network of
    each student (:meth:`meta_rl.encoder_tutor.EncoderTutor.context_adaptation_curve`), its
    step size chosen on val students like pooled PPO's (:func:`fine_tuned`). ``trains``: the
    method whose cached encoder tutor it uses (default: its own name). ``algo``: the encoder
    algorithm that trains it; a tutor meta-trained with a gradient step per session
    (``encoder_maml_ppo``) takes that step with its own learned step sizes."""

    fine_tune: bool = False
    trains: str = ""
    algo: str = "encoder_ppo"

    def baseline_name(self) -> str:
        return self.trains or self.name

    def needs_training(self, run: Path) -> bool:
        return not (baseline_dir(run, self.baseline_name()) / "done").is_file()

    def cost(self) -> float:
        return 2.0 if self.fine_tune else 1.0

    def train(
        self, run: Path, env_id: str, env_kwargs: Mapping[str, Any], log: Callable[[str], None]
    ) -> None:
        train_encoder(run, self.baseline_name(), log, self.algo)

    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        assert run is not None
        out = baseline_dir(run.path, self.baseline_name())
        pol = train_encoder(run.path, self.baseline_name(), ctx.log, self.algo)
        env_steps = int(load_checkpoint(out / "checkpoint.pt")["env_steps"])
        if not self.fine_tune:
            res = own_adaptation(pol, ctx)
            step = lr_of(pol) if pol.algo in META_LEARNED_STEP else "context"
            return Curve(res.returns, res.metrics, env_steps=env_steps, step_size=step)
        # load_policy reads best.pt, else checkpoint.pt: hash both
        res, step = fine_tuned(self.name, pol, [out / "best.pt", out / "checkpoint.pt"], ctx, run)
        return Curve(res.returns, res.metrics, env_steps=env_steps, step_size=step)
