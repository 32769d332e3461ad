"""Training configurations: one dataclass per algorithm, loaded from YAML with checks.

``algo: maml_ppo`` (:class:`MAMLPPOConfig`) meta-trains an initialisation that adapts
to a new student; ``algo: mamlpp_ppo`` (:class:`MAMLPlusPlusPPOConfig`) adds MAML++'s
fixes; ``algo: reptile_ppo`` (:class:`ReptilePPOConfig`) is first-order Reptile;
``algo: ppo`` (:class:`PPOConfig`) trains plain PPO on the pooled ``train`` population
(each episode a fresh student) — the baseline, and with ``privileged: true`` the oracle.
All share the fields of :class:`TrainConfig`; the algorithm classes that use them are
registered in :data:`meta_rl.algorithms.ALGORITHMS`. A key of another algorithm is
rejected with the name of the algorithm it belongs to.

Loading rejects unknown keys and ill-typed values with a message listing the valid
keys. A file written for one algorithm can be reused for the other with ``--set
algo=...``: the file's keys that only the other algorithm knows are then dropped
(keys given on the command line are always checked). ``--set key=value`` overrides
are parsed as YAML scalars (``--set env_kwargs.n_skills=4`` sets one env argument).
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from meta_rl.gae import BASELINES
from meta_rl.maml import INNER_OBJECTIVES
from meta_rl.policy import ACTIVATIONS

#: where rollouts run (see meta_rl.sampler and meta_rl.ray_sampler)
SAMPLERS = ("local", "ray")
#: policy networks (see meta_rl.policy)
ARCHITECTURES = ("mlp", "itemwise")
#: seeds seed numpy and torch generators; torch takes at most 64 bits, and 32 bits is the
#: range every generator here accepts (numpy's legacy seeding included)
MAX_SEED = 2**32 - 1
#: an Adam learning rate above this is almost surely a typo (1e3 for 1e-3): Adam moves each
#: parameter by up to ``lr`` per update, and the initial weights are O(1)
ADAM_LR_WARN = 1.0


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Fields shared by every algorithm (see each field's ``help``)."""

    ALGO: ClassVar[str] = ""

    algo: str = _f(
        "maml_ppo",
        "algorithm: maml_ppo (meta-learning) or ppo (pooled PPO baseline); every registered one: "
        "meta-tutor train --list-keys",
    )
    env: str = _f("MetaTutor/SkillGraph-v0", "gymnasium env id")
    env_kwargs: dict = _f({}, "keyword arguments of the env (e.g. n_skills, horizon)")  # noqa: RUF009 - _f returns a field
    seed: int = _f(0, "random seed of the run (same seed and config give identical metrics)")
    n_iterations: int = _f(100, "number of training iterations")
    # policy
    hidden_sizes: list = _f([64, 64], "hidden layer sizes of the policy MLP")  # noqa: RUF009
    activation: str = _f("tanh", "hidden activation: tanh or relu")
    head: str = _f(
        "factorised", "action head: factorised (one softmax per factor of the env's action_nvec) or flat"
    )
    architecture: str = _f(
        "mlp",
        "policy network: mlp (over the whole observation) or itemwise (one shared MLP scores every "
        "item; for envs whose action picks one of K items with per-item observation blocks, e.g. "
        "SpacedRepetition)",
    )
    item_bias: bool = _f(
        False,
        "itemwise only: a learnable logit offset per item, the one item-specific part an inner "
        "step can adapt (e.g. 'this card is hard for this student')",
    )
    privileged: bool = _f(False, "append the true, normalised profile to observations (oracle)")
    # sampling
    meta_batch_size: int = _f(20, "tasks (train students) per iteration")
    rollouts_per_task: int = _f(20, "episodes per task before each inner step and after adaptation")
    episodes_per_iteration: int = _f(
        0,
        "pooled PPO episodes per iteration (each a fresh student); 0 = the episodes of one MAML "
        "iteration, meta_batch_size * rollouts_per_task * (inner_steps + 1). The budget is matched "
        "in episodes, not env steps: the env steps are equal only if episodes have the same length "
        "under both algorithms, and differ where episodes end early (e.g. ZPD students who quit); "
        "metrics.csv and the checkpoint record the real env_steps",
    )
    # advantages
    gamma: float = _f(0.99, "discount factor")
    gae_lambda: float = _f(0.95, "GAE lambda")
    baseline: str = _f("linear", "baseline: linear (feature baseline per task), time_mean or value_net")
    normalize_advantages: bool = _f(True, "standardise advantages per task")
    value_lr: float = _f(1e-3, "Adam learning rate of the value network (baseline=value_net)")
    # inner update (also the fine-tuning used to adapt a pooled policy at validation)
    inner_lr: float = _f(0.5, "inner-loop step size alpha (initial value with meta_sgd)")
    inner_steps: int = _f(1, "inner gradient steps (each on fresh rollouts_per_task episodes)")
    inner_objective: str = _f("lvc", "inner objective: lvc (ProMP low-variance curvature) or vpg")
    inner_ent_coef: float = _f(0.0, "entropy bonus in the inner objective")
    # outer / PPO optimisation
    outer_epochs: int = _f(5, "PPO epochs per batch (adaptation recomputed in every epoch)")
    outer_lr: float = _f(3e-4, "Adam learning rate of the outer (PPO) update")
    n_minibatches: int = _f(1, "minibatches per epoch (over tasks for maml_ppo, over episodes for ppo)")
    clip_eps: float = _f(0.2, "PPO clipping epsilon")
    ent_coef: float = _f(0.0, "entropy bonus in the outer objective")
    max_grad_norm: float = _f(0.5, "clip the outer gradient to this norm (0 disables)")
    target_kl: float = _f(0.0, "stop the epochs of a batch once approx KL > 1.5 * target_kl (0 disables)")
    init_from: str = _f("", "checkpoint or run dir whose policy parameters initialise training (warm start)")
    population: str = _f(
        "",
        "fitted population file (meta-tutor calibrate --out) to train on (empty: the env's own population)",
    )
    # validation
    eval_every: int = _f(10, "validate every this many iterations (and after the last)")
    val_tasks: int = _f(40, "validation students (val split; fixed for the run)")
    val_episodes: int = _f(10, "evaluation episodes per validation student and adaptation step")
    val_adapt_steps: int = _f(1, "adaptation steps at validation (rollouts_per_task episodes each)")
    val_seed: int = _f(1000, "seed of the validation students and episodes")
    select_on: str = _f(
        "post",
        "best.pt maximises the validation return after val_adapt_steps steps (post) or before "
        "adaptation (pre, e.g. for the privileged oracle, which is used without adaptation)",
    )
    # system
    num_threads: int = _f(1, "torch intra-op threads (1 is fastest for these small networks)")
    tensorboard: bool = _f(True, "write TensorBoard event files")
    sampler: str = _f(
        "local",
        "where rollouts run: local (native vector env in this process, the fast path on one machine) "
        "or ray (split across Ray actors; needs meta-tutor[ray])",
    )
    num_workers: int = _f(2, "Ray rollout actors (sampler=ray; the same count reproduces the same run)")
    ray_address: str = _f("", "Ray cluster address for sampler=ray (empty: start or reuse a local instance)")

    def __post_init__(self) -> None:
        if self.ALGO and self.algo != self.ALGO:
            raise ValueError(f"{type(self).__name__} needs algo={self.ALGO!r}, got {self.algo!r}")
        positive = [
            "n_iterations",
            "meta_batch_size",
            "rollouts_per_task",
            "outer_epochs",
            "n_minibatches",
            "eval_every",
            "val_tasks",
            "val_episodes",
            "num_threads",
            "num_workers",
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("inner_steps", "val_adapt_steps", "episodes_per_iteration"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("head", self.head, ("factorised", "flat"))
        _choice("architecture", self.architecture, ARCHITECTURES)
        if self.item_bias and self.architecture != "itemwise":
            raise ValueError("item_bias needs architecture: itemwise")
        _choice("baseline", self.baseline, BASELINES)
        _choice("inner_objective", self.inner_objective, INNER_OBJECTIVES)
        _choice("select_on", self.select_on, ("post", "pre"))
        _choice("sampler", self.sampler, SAMPLERS)
        if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be a list of positive integers, got {self.hidden_sizes}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(
                f"gamma and gae_lambda must lie in [0, 1], got {self.gamma} and {self.gae_lambda}"
            )
        # `not x > 0` (not `x <= 0`): NaN fails every comparison and must not slip through
        for name in ("inner_lr", "outer_lr", "value_lr", "clip_eps"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 0 and finite, got {value}")
        for name in ("max_grad_norm", "target_kl", "ent_coef", "inner_ent_coef"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 and finite, got {value}")
        for name in ("seed", "val_seed"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_SEED:
                raise ValueError(f"{name} must be an integer in [0, 2**32), got {value}")
        for name in ("outer_lr", "value_lr"):
            # a warning, not an error: a large step is not invalid (a sweep may probe it on
            # purpose, and a run that blows up stops with TrainingDiverged), but it is rarely meant
            value = getattr(self, name)
            if value > ADAM_LR_WARN:
                warnings.warn(
                    f"{name}={value:g} is an unusually large Adam learning rate (typical: 1e-4 to 1e-2); "
                    "each update can move every parameter by up to that much",
                    UserWarning,
                    stacklevel=2,
                )

    @property
    def pooled_episodes(self) -> int:
        """Episodes of one pooled PPO iteration (see ``episodes_per_iteration``).

        This matches one MAML iteration in episodes, not in env steps (see the field help).
        """
        return self.episodes_per_iteration or self.meta_batch_size * self.rollouts_per_task * (
            self.inner_steps + 1
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class MetaGradientSettings:
    """The settings of MAML's meta-gradient and learned inner step sizes, shared by the
    algorithms that differentiate through an inner step (MAML-PPO, MAML++-PPO,
    encoder-MAML-PPO). A mixin before the config's base class, so that these fields follow
    the base's in every listing."""

    first_order: bool = _f(False, "first-order meta-gradient (FOMAML) instead of full second order")
    meta_sgd: bool = _f(False, "learn a per-parameter inner step size (Meta-SGD), initialised to inner_lr")
    item_bias_lr: float = _f(
        0.0,
        "meta_sgd with item_bias only: initial Meta-SGD step size of the per-item logit offsets "
        "(0: inner_lr). The inner loss is a mean over all steps, so one item's offset gets a "
        "gradient ~1/n_items of a shared weight's; a larger step lets one update reweigh items",
    )

    def check_item_bias_lr(self, learned: bool, needs: str) -> None:
        """``item_bias_lr`` is a finite number ``>= 0``, set only with learned step sizes
        (``learned``) and per-item offsets; ``needs`` says what it needs, for the error."""
        if not math.isfinite(self.item_bias_lr) or self.item_bias_lr < 0:
            raise ValueError(f"item_bias_lr must be a finite number >= 0, got {self.item_bias_lr}")
        if self.item_bias_lr > 0 and not (learned and getattr(self, "item_bias", False)):
            raise ValueError(f"item_bias_lr needs {needs}")


@dataclass
class MAMLPPOConfig(MetaGradientSettings, TrainConfig):
    """MAML over PPO (see :mod:`meta_rl.maml` for the objective)."""

    ALGO: ClassVar[str] = "maml_ppo"

    kl_coef: float = _f(0.0, "penalty on KL(sampling pre-update policy || current pre-update policy)")
    pretrain_iterations: int = _f(0, "first run this many pooled PPO iterations (warm start in the same run)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.kl_coef >= 0 and math.isfinite(self.kl_coef)):
            raise ValueError(f"kl_coef must be >= 0 and finite, got {self.kl_coef}")
        if self.pretrain_iterations < 0:
            raise ValueError(f"pretrain_iterations must be >= 0, got {self.pretrain_iterations}")
        if self.inner_steps < 1:
            raise ValueError("maml_ppo needs inner_steps >= 1")
        learned = self.meta_sgd or getattr(self, "lslr", False)  # MAML++'s per-step rates
        self.check_item_bias_lr(
            learned,
            "meta_sgd: true and item_bias: true (with mamlpp_ppo: lslr: true in place of meta_sgd)",
        )


@dataclass
class PPOConfig(TrainConfig):
    """Pooled PPO on the ``train`` population: no meta-learning (baseline / oracle)."""

    ALGO: ClassVar[str] = "ppo"

    algo: str = _f("ppo", "algorithm (see meta-tutor train --list-keys)")


@dataclass
class MAMLPlusPlusPPOConfig(MAMLPPOConfig):
    """MAML++ over PPO (Antoniou et al. 2019): MAML-PPO plus four switches; see
    :mod:`meta_rl.algorithms.mamlpp_ppo`. With every switch off it is MAML-PPO.

    Defaults chosen on SkillGraph-v0 val students (one seed, docs/algorithms.md): the
    multi-step loss and derivative-order annealing on; LSLR off in favour of Meta-SGD;
    cosine annealing off."""

    ALGO: ClassVar[str] = "mamlpp_ppo"

    algo: str = _f("mamlpp_ppo", "algorithm (see meta-tutor train --list-keys)")
    # defaults chosen on SkillGraph-v0 val students (docs/algorithms.md): per-element
    # Meta-SGD rates beat LSLR's per-tensor ones, and the cosine schedule hurt
    meta_sgd: bool = _f(
        True,
        "learn a per-parameter inner step size (Meta-SGD), initialised to inner_lr (on by default "
        "here: it beat lslr on val students)",
    )
    multi_step_loss: bool = _f(
        True,
        "outer loss after every inner step k (on the rollouts of step k), weighted; the weights "
        "start uniform and anneal to the last step over msl_anneal_iterations (needs inner_steps >= 2 "
        "to differ from MAML)",
    )
    msl_anneal_iterations: int = _f(
        50, "iterations over which the multi-step loss weights move from uniform to the last step"
    )
    lslr: bool = _f(
        False,
        "learn one inner step size per parameter tensor and per inner step (LSLR), initialised to "
        "inner_lr (excludes meta_sgd, which learns one per parameter element shared by all steps)",
    )
    first_order_iterations: int = _f(
        50,
        "derivative-order annealing: first-order meta-gradients for this many iterations, then second order",
    )
    cosine_outer_lr: bool = _f(
        False, "cosine annealing of the outer learning rate from outer_lr to outer_lr_min over n_iterations"
    )
    outer_lr_min: float = _f(0.0, "cosine_outer_lr: the outer learning rate at the last iteration")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lslr and self.meta_sgd:
            raise ValueError("lslr and meta_sgd exclude each other (both learn the inner step sizes)")
        for name in ("msl_anneal_iterations", "first_order_iterations"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.outer_lr_min <= self.outer_lr:
            raise ValueError(f"outer_lr_min must lie in [0, outer_lr], got {self.outer_lr_min}")


@dataclass
class ReptilePPOConfig(TrainConfig):
    """Reptile over PPO (Nichol et al. 2018): first-order; see :mod:`meta_rl.algorithms.reptile_ppo`.

    ``inner_steps`` is the number of inner rounds (fresh rollouts + PPO epochs) per
    student; one iteration collects ``meta_batch_size · rollouts_per_task · inner_steps``
    episodes (MAML-PPO's budget with ``inner_steps = K + 1``).
    """

    ALGO: ClassVar[str] = "reptile_ppo"

    algo: str = _f("reptile_ppo", "algorithm (see meta-tutor train --list-keys)")
    inner_epochs: int = _f(
        2,
        "PPO epochs per inner round (each one full-batch gradient step of size inner_lr on the "
        "student's clipped surrogate; the first equals the MAML inner step)",
    )
    outer_update: str = _f(
        "interpolate",
        "outer update: interpolate (theta <- theta + meta_step_size * (mean phi - theta)) or adam "
        "(Adam with outer_lr on the pseudo-gradient theta - mean phi, clipped to max_grad_norm)",
    )
    meta_step_size: float = _f(0.5, "outer_update interpolate: the step epsilon towards the mean adapted phi")

    @property
    def pooled_episodes(self) -> int:
        """Episodes of one pooled PPO iteration matched to one Reptile iteration
        (``meta_batch_size · rollouts_per_task · inner_steps``)."""
        return self.episodes_per_iteration or self.meta_batch_size * self.rollouts_per_task * self.inner_steps

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inner_steps < 1:
            raise ValueError("reptile_ppo needs inner_steps >= 1")
        if self.inner_epochs < 1:
            raise ValueError(f"inner_epochs must be >= 1, got {self.inner_epochs}")
        _choice("outer_update", self.outer_update, ("interpolate", "adam"))
        if not 0.0 < self.meta_step_size <= 1.0:
            raise ValueError(f"meta_step_size must lie in (0, 1], got {self.meta_step_size}")


@dataclass
class EncoderPPOConfig(TrainConfig):
    """PPO on ``(observation, z)`` with a metric-trained student encoder
    (:mod:`meta_rl.algorithms.encoder_ppo`, :mod:`meta_rl.encoder`).

    ``inner_steps`` keeps its budget meaning: each iteration plays ``inner_steps + 1``
    rounds of ``rollouts_per_task`` episodes with each of ``meta_batch_size`` students,
    round ``r`` with the ``r · rollouts_per_task`` earlier episodes as context (the
    episodes of one MAML-PPO iteration); no gradient step adapts to a student.
    """

    ALGO: ClassVar[str] = "encoder_ppo"

    algo: str = _f("encoder_ppo", "algorithm: encoder_ppo (student encoder + PPO)")
    z_dim: int = _f(8, "width of the student embedding z")
    encoder_hidden: int = _f(64, "hidden width of the encoder's transition, pooling and decoder MLPs")
    metric_coef: float = _f(
        1.0, "weight of the prototypical loss (sessions of one student close, of different students far)"
    )
    metric_temperature: float = _f(
        0.1, "temperature tau of the prototypical loss (cosine distances of the embeddings / tau)"
    )
    decoder_coef: float = _f(
        1.0,
        "weight of the profile-decoding loss (squared error + Gaussian NLL of the normalised profile; "
        "training only)",
    )
    end_to_end: bool = _f(
        True, "PPO's gradient also trains the encoder through z (false: z is detached for the policy)"
    )
    encoder_reads_reward: bool = _f(
        True,
        "the encoder sees the rewards (false: observations and actions only, e.g. when the reward "
        "reveals hidden state a deployed tutor cannot see, such as SkillGraph's mastery gains)",
    )
    z_item_logits: bool = _f(
        False,
        "item-wise policies: add x_j' U z to item j's logit (x_j the item's own observation "
        "features, U learnable and zero at the start): a direct path from the embedding to which "
        "items to favour, e.g. the cards of a student's goal chapter",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("z_dim", "encoder_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("metric_coef", "decoder_coef"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 and finite, got {value}")
        if not (self.metric_temperature > 0 and math.isfinite(self.metric_temperature)):
            raise ValueError(f"metric_temperature must be > 0 and finite, got {self.metric_temperature}")
        if self.privileged:
            raise ValueError("encoder_ppo infers the student from interactions: privileged must be false")
        if self.sampler != "local":
            raise ValueError("encoder_ppo collects history-dependent rollouts locally: sampler must be local")
        if self.rollouts_per_task < 2:
            raise ValueError("encoder_ppo needs rollouts_per_task >= 2 (two stretches per student)")
        if self.z_item_logits and self.architecture != "itemwise":
            raise ValueError("z_item_logits needs architecture: itemwise")


@dataclass
class EncoderMAMLPPOConfig(MetaGradientSettings, EncoderPPOConfig):
    """Encoder-PPO whose policy network is also MAML's initialisation
    (:mod:`meta_rl.algorithms.encoder_maml_ppo`): round ``r`` of an iteration is played by
    ``θ_i^r``, ``r`` inner steps on the student's earlier rounds, each conditioned on the
    embedding of the student's history; the gradient step refines what the encoder inferred.
    """

    ALGO: ClassVar[str] = "encoder_maml_ppo"

    algo: str = _f("encoder_maml_ppo", "algorithm: encoder_maml_ppo (student encoder + MAML-PPO)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inner_steps < 1:
            raise ValueError("encoder_maml_ppo needs inner_steps >= 1")
        self.check_item_bias_lr(self.meta_sgd, "meta_sgd: true and item_bias: true")


def config_classes() -> dict[str, type[TrainConfig]]:
    """``{algo: config dataclass}`` of every registered algorithm
    (:data:`meta_rl.algorithms.ALGORITHMS` is the one registry)."""
    from meta_rl.algorithms import ALGORITHMS as REGISTRY

    return {name: cls.config_class for name, cls in REGISTRY.items()}


def __getattr__(name: str) -> Any:
    # ``ALGORITHMS`` (algo -> config class) is derived from the algorithm registry on
    # access: the algorithms import this module, so it cannot import them at load time
    if name == "ALGORITHMS":
        return config_classes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def field_help(cls: type[TrainConfig]) -> dict[str, str]:
    """``{key: help}`` of every config key of ``cls``."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _check_type(cls: type[TrainConfig], key: str, value: Any, typ: Any) -> Any:
    def bad() -> ValueError:
        return ValueError(f"config key {key!r} must be of type {typ.__name__}, got {value!r}")

    if typ is bool:
        if not isinstance(value, bool):
            raise bad()
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
    elif typ is float:
        if isinstance(value, str):
            # PyYAML reads "1e-3" (no dot) as a string; accept it as the number it means
            try:
                value = float(value)
            except ValueError:
                raise bad() from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        value = float(value)
    elif typ is str:
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise bad()
    elif typ is list:
        if not isinstance(value, list):
            raise bad()
    elif typ is dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise bad()
    return value


def make_config(data: Mapping[str, Any]) -> TrainConfig:
    """Build the config of ``data["algo"]`` (default ``maml_ppo``) with full checks."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a config must be a mapping of keys to values, got {type(data).__name__}")
    algo = data.get("algo", "maml_ppo")
    classes = config_classes()
    if not isinstance(algo, str) or algo not in classes:
        raise ValueError(f"unknown algo {algo!r}; valid: {list(classes)}")
    cls = classes[algo]
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    for k in unknown:  # a key of another algorithm is named with the algorithm it belongs to
        owners = [a for a, c in classes.items() if k in {f.name for f in dataclasses.fields(c)}]
        if owners:
            raise ValueError(
                f"unknown config key {k!r} for algo {algo!r}: it belongs to algo "
                + " / ".join(repr(a) for a in owners)
            )
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for algo {algo!r}; valid keys: {', '.join(names)}")
    values = {k: _check_type(cls, k, v, hints[k]) for k, v in data.items()}
    return cls(**values)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "env_kwargs.n_skills=4"]`` → nested dict of YAML-parsed values."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ValueError(f"--set {item}: the value is not valid YAML ({problem})") from None
        if "." in key:
            top, sub = key.split(".", 1)
            out.setdefault(top, {})[sub] = value
        else:
            out[key] = value
    return out


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def read_yaml_mapping(path: str | os.PathLike[str], what: str = "config") -> dict[str, Any]:
    """A YAML file holding a mapping (an empty file is ``{}``); clear errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file {p} does not exist")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML ({' '.join(str(e).split())})") from e
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError(f"{p}: a {what} file must be a mapping of keys to values")
    return dict(loaded or {})


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    **fields: Any,
) -> TrainConfig:
    """Read a YAML config (optional), apply keyword ``fields`` then ``--set`` overrides."""
    data = read_yaml_mapping(path, "config") if path is not None else {}
    if path is not None and not data:
        # an empty file silently meaning "all defaults" hides a wrong or truncated file
        raise ValueError(f"{path}: the config file is empty; leave out --config to use the built-in defaults")
    given = merge(fields, parse_overrides(overrides))
    classes = config_classes()
    try:
        sections = algorithm_sections(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    data.pop("algorithms", None)
    algo = given.get("algo")
    if isinstance(algo, str) and algo in classes and algo != data.get("algo", "maml_ppo"):
        # the file was written for another algorithm (e.g. --set algo=ppo on the MAML
        # config, for a baseline with the same settings): drop the keys only it knows
        valid = {f.name for f in dataclasses.fields(classes[algo])}
        data = {k: v for k, v in data.items() if k in valid}
    # the file's settings for the chosen algorithm on this env (the caller's come last)
    chosen = given.get("algo", data.get("algo", "maml_ppo"))
    if isinstance(chosen, str):  # anything else is refused by make_config, naming the key
        data = merge(data, sections.get(chosen, {}))
    try:
        return make_config(merge(data, given))
    except ValueError as e:
        source = _blame(data, fields, overrides, str(e), path)
        raise ValueError(f"{source}: {e}" if source else str(e)) from None


def _blame(
    data: Mapping[str, Any],
    fields: Mapping[str, Any],
    overrides: Sequence[str],
    error: str,
    path: str | os.PathLike[str] | None,
) -> str | None:
    """Where a config error comes from: the first ``--set`` item that brings it in, else the
    file; ``None`` when neither alone is the cause (e.g. a keyword field)."""

    def fails(d: Mapping[str, Any]) -> bool:
        try:
            make_config(d)
        except ValueError as e:
            return str(e) == error
        return False

    base = merge(data, fields)
    if not fails(base):
        for n in range(1, len(overrides) + 1):
            if fails(merge(base, parse_overrides(overrides[:n]))):
                return f"--set {overrides[n - 1]}"
    if path is not None and (fails(data) or not fields):
        return str(path)
    return None


def algorithm_sections(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``algorithms:`` section of a config file: ``{algo: {key: value}}``.

    A shipped config (``meta_rl/configs/<env>.yaml``) holds the settings of its own
    ``algo`` at the top level and, under ``algorithms:``, what another algorithm
    changes on the same env (e.g. ``reptile_ppo: {inner_steps: 2}``). Loading with
    ``algo: NAME`` (in the file or ``--set algo=NAME``) applies section ``NAME`` over
    the top level; command-line ``--set`` values come last. Keys are checked as usual.
    """
    raw = data.get("algorithms") or {}
    classes = config_classes()
    if not isinstance(raw, Mapping):
        raise ValueError("'algorithms' must map algorithm names to mappings of config keys")
    for name, sec in raw.items():
        if name not in classes:
            raise ValueError(f"'algorithms' names unknown algo {name!r}; valid: {list(classes)}")
        if not isinstance(sec, Mapping):
            raise ValueError(f"'algorithms.{name}' must be a mapping of config keys to values")
        if "algo" in sec:
            raise ValueError(f"'algorithms.{name}' must not set 'algo'")
    return {name: dict(sec) for name, sec in raw.items()}


def save_config(config: TrainConfig, path: str | os.PathLike[str]) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def default_config_path(env_id: str) -> Path | None:
    """The shipped ``configs/<name>.yaml`` for ``env_id`` if it exists (``name``: the family's
    ``config``, by default its package's last part, e.g. ``skill_graph``).

    The files live in the package (``meta_rl/configs``, installed as package data);
    the repository's top-level ``configs`` is a link to them.
    """
    import envs

    fam = envs.family(env_id)
    name = fam.config or fam.package.split(".")[-1]
    p = Path(__file__).resolve().parent / "configs" / f"{name}.yaml"
    return p if p.is_file() else None
