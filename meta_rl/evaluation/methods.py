"""An evaluation method as an object: what it is, how it is prepared, how it adapts.

Every method of ``meta-tutor evaluate`` is a :class:`Method` held in the registry
(:mod:`meta_rl.evaluation.registry`). A method says

* its ``kind`` on an env (``"adaptive"``, ``"heuristic"``, ``"oracle"`` or ``"omniscient"``;
  see :mod:`meta_rl.evaluation.report` for how the report uses them);
* whether it ``needs_run``: learned methods are evaluated once per meta-training run
  (training seed) and their curves averaged over runs; the others (tutors) once;
* how it is prepared from a run: :meth:`Method.needs_training` / :meth:`Method.train`
  train its baseline into ``RUN_DIR/baselines/`` (possibly in a worker process) before
  any curve is measured; :meth:`Method.can_train_before_run` /
  :meth:`Method.train_before_run` say whether and how it trains from the config of a run
  that is still training (``meta-tutor demo``: on the second core, meanwhile);
* how it produces an adaptation curve on the held-out students: :meth:`Method.curve`
  returns a :class:`Curve`, returns and metrics of shape ``(students, K + 1)``, where column
  ``k`` is measured after ``k`` adaptation steps (a method that does not adapt repeats its
  column ``K + 1`` times); a method whose students adapt independently of each other may
  also measure it in parts (``CURVE_PARTS``, :meth:`Method.prepare`,
  :meth:`Method.curve_part`), which the evaluation spreads over its cores.

The evaluation protocol itself (students, episodes, seeds) is in :class:`EvalContext`, the
same for every method, so that all of them see the same students and the same env seeds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from meta_rl.evaluation.settings import EvaluationSettings
from meta_rl.tutor import TutorPolicy

#: what a method records as its step size in ``results.json`` (``details.inner_lr``): a
#: number, a (shared, per-item) pair, or a word such as ``"meta-sgd"`` (learned step sizes)
StepRecord = float | list[float] | str


@dataclass(frozen=True)
class EvalContext:
    """The protocol every method is evaluated with (one evaluation, all runs)."""

    env_id: str
    env_kwargs: Mapping[str, Any]
    #: the held-out students (profile dicts)
    profiles: Sequence[dict]
    #: students of the val split, for choosing fine-tuning step sizes (never the held-out ones)
    val: Sequence[dict]
    #: episodes per student before each adaptation step
    rollouts: int
    settings: EvaluationSettings

    @property
    def adapt_steps(self) -> int:
        """``K``: adaptation steps per student."""
        return self.settings.adapt_steps

    @property
    def log(self) -> Callable[[str], None]:
        return self.settings.log


@dataclass(frozen=True)
class Run:
    """One meta-training run being evaluated."""

    path: Path
    #: its training config (``TrainConfig.to_dict()`` as saved in the checkpoint)
    config: Mapping[str, Any]
    #: the meta-trained tutor (``best.pt``, chosen on val students)
    policy: TutorPolicy

    @property
    def seed(self) -> int:
        return int(self.config["seed"])


@dataclass
class Curve:
    """One method's results on the held-out students of one run (or once, for tutors)."""

    #: mean return of student ``i`` after ``k`` adaptation steps, shape ``(students, K + 1)``
    returns: np.ndarray
    #: per metric, shape ``(students, K + 1)`` (NaN where undefined)
    metrics: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: the env steps the method was trained with (``details.env_steps``; ``None``: not recorded)
    env_steps: int | None = None
    #: the step size it adapted with (``details.inner_lr``; ``None``: not recorded)
    step_size: StepRecord | None = None

    def __post_init__(self) -> None:
        self.returns = np.asarray(self.returns, dtype=np.float64)
        self.metrics = {m: np.asarray(v, dtype=np.float64) for m, v in self.metrics.items()}

    @classmethod
    def constant(cls, returns: np.ndarray, metrics: Mapping[str, np.ndarray], steps: int, **kw: Any) -> Curve:
        """The curve of a method that does not adapt: per-student values ``(students,)`` or
        ``(students, 1)`` repeated at every step ``k = 0 … steps``."""

        def repeat(v: np.ndarray) -> np.ndarray:
            v = np.asarray(v)
            return np.repeat(v if v.ndim == 2 else v[:, None], steps + 1, axis=1)

        return cls(repeat(returns), {m: repeat(v) for m, v in metrics.items()}, **kw)

    @classmethod
    def merge_parts(cls, parts: Sequence[Curve]) -> Curve:
        """The curve measured in ``parts`` (:meth:`Method.curve_part`): part ``j`` of ``P``
        holds the rows :func:`part_rows` ``(n, j, P)`` at ``k ≥ 1``, part 0 also column
        ``k = 0`` of every row; no other cell of a part is read. The parts must agree on the
        step size and env steps, and together fill every return (a part that measured
        nothing — no students, or no step after ``k = 0`` — adds nothing)."""
        first = parts[0]
        returns = first.returns.copy()
        metrics = {m: v.copy() for m, v in first.metrics.items()}
        for j, c in enumerate(parts[1:], start=1):
            if (c.env_steps, c.step_size) != (first.env_steps, first.step_size):
                raise ValueError(f"curve part {j} was measured with another step size or budget than part 0")
            rows = part_rows(len(returns), j, len(parts))
            if len(rows) == 0 or returns.shape[1] == 1:
                continue
            if c.returns.shape != returns.shape or set(c.metrics) != set(metrics):
                raise ValueError(f"curve part {j} does not match part 0 (shape or metrics)")
            returns[rows, 1:] = c.returns[rows, 1:]
            for m, v in c.metrics.items():
                metrics[m][rows, 1:] = v[rows, 1:]
        if np.isnan(returns).any():
            raise ValueError(f"curve parts leave {int(np.isnan(returns).sum())} returns unmeasured")
        return cls(returns, metrics, env_steps=first.env_steps, step_size=first.step_size)


def part_rows(n: int, part: int, parts: int) -> np.ndarray:
    """The students (rows) that part ``part`` of ``parts`` of a split curve adapts to:
    contiguous blocks of sizes as equal as they can be."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} of {parts}: need 0 <= part < parts")
    return np.array_split(np.arange(n), parts)[part]


@dataclass(frozen=True)
class Method(ABC):
    """An evaluation method (see the module docstring). Subclasses set ``KIND`` (or override
    :meth:`kind`) and implement :meth:`curve`; a learned one also ``needs_run`` and, when it
    has a baseline to train, :meth:`needs_training` and :meth:`train`."""

    KIND: ClassVar[str] = "adaptive"

    #: the name in ``--methods``, ``results.json`` and ``summary.md``
    name: str
    #: left out of the default methods (evaluated only when named in ``--methods``)
    optional: bool = False

    #: evaluated once per meta-training run (``True``) or once per evaluation (``False``)
    needs_run: ClassVar[bool] = True

    #: into how many jobs the evaluation may split its curve when it has several cores
    #: (students partitioned by :func:`part_rows`; see :meth:`curve_part`); 1: never split
    CURVE_PARTS: ClassVar[int] = 1

    def kind(self, env_id: str) -> str:
        """``"adaptive"``, ``"heuristic"``, ``"oracle"`` or ``"omniscient"`` on ``env_id``."""
        return self.KIND

    def cannot_run(self, env_id: str, env_kwargs: Mapping[str, Any]) -> str | None:
        """Why this method cannot run on that env configuration, or ``None`` if it can."""
        return None

    def needs_training(self, run: Path) -> bool:
        """Whether its baseline for ``run`` is missing (then :meth:`train` is called first)."""
        return False

    def baseline_name(self) -> str:
        """The baseline its :meth:`train` produces (``RUN_DIR/baselines/NAME``): methods that
        share one (say, a tutor adapted in two ways) are trained once, by one job."""
        return self.name

    def train(
        self, run: Path, env_id: str, env_kwargs: Mapping[str, Any], log: Callable[[str], None]
    ) -> None:
        """Train (and cache in ``RUN_DIR/baselines/``) its baseline for ``run``; called when
        :meth:`needs_training`. Runs in a worker process when several are missing, so the
        method must be picklable (a class at a module's top level) and take everything from
        ``run``."""
        raise NotImplementedError(f"method {self.name!r} needs training but has no train()")

    def can_train_before_run(self, run_config: Mapping[str, Any]) -> bool:
        """Whether its baseline can be trained from the config of a run that is still
        training (``meta-tutor demo`` does so on its second core), by
        :meth:`train_before_run`; ``False`` (the default): it needs the finished run."""
        return False

    def train_before_run(
        self,
        run: Path,
        run_config: Mapping[str, Any],
        env_id: str,
        env_kwargs: Mapping[str, Any],
        log: Callable[[str], None],
    ) -> None:
        """:meth:`train` from ``run_config`` alone, while the run is still training (called
        only when :meth:`can_train_before_run`); by default :meth:`train`, for a method that
        reads nothing but the config from the run directory."""
        self.train(run, env_id, env_kwargs, log)

    def cost(self) -> float:
        """The rough relative cost of its curve: the evaluation hands out the most expensive
        curves first (see ``evaluation.parallel``), and among the baselines that train while
        the run trains, those of the most expensive methods first (their chain of training,
        step-size search and curve is the longest). Only the order depends on it, never a
        result."""
        return 1.0

    def prepare(self, ctx: EvalContext, run: Run) -> None:
        """What every part of a split curve needs first, done once before the parts (for
        example a step-size search on val students, cached in the run directory). Called
        only when the curve is split (``CURVE_PARTS > 1``, on two or more workers, with at
        least two students and one adaptation step); nothing by default."""
        return None  # an optional hook (not abstract): most methods need nothing first

    def curve_part(self, ctx: EvalContext, run: Run, part: int, parts: int) -> Curve:
        """Part ``part`` of ``parts`` of :meth:`curve`: the rows :func:`part_rows` at every
        ``k ≥ 1`` and, for part 0, column ``k = 0`` of every row (what a method measures for
        all students at once); other cells are not read (:meth:`Curve.merge_parts`). The
        merged parts must equal :meth:`curve` exactly: each student's adaptation seeded by
        itself alone. Only for ``CURVE_PARTS > 1`` (the evaluation uses at most one part
        per student)."""
        raise NotImplementedError(f"method {self.name!r} does not split its curve")

    @abstractmethod
    def curve(self, ctx: EvalContext, run: Run | None) -> Curve:
        """Adapt to every student of ``ctx.profiles`` and measure after each step
        (``run`` is ``None`` exactly when the method does not ``needs_run``)."""
