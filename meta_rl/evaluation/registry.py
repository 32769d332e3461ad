"""The one registry of evaluation methods (see :mod:`meta_rl.evaluation.methods`).

Registered methods run on every env, in registration order; the tutors of the env being
evaluated (``envs.tutors``) follow them, one :class:`~meta_rl.evaluation.heuristics.TutorMethod`
each. Adding a method is one class and one line::

    from meta_rl.evaluation.methods import Curve, Method
    from meta_rl.evaluation.registry import register

    @dataclass(frozen=True)
    class Greedy(Method):
        KIND = "heuristic"
        needs_run = False

        def curve(self, ctx, run):
            ...  # returns and metrics of shape (len(ctx.profiles), ctx.adapt_steps + 1)
            return Curve(returns, metrics)

    register(Greedy("greedy"))

after which ``meta-tutor evaluate --methods default greedy`` (or ``optional=False``: the
default methods) evaluates it and ``results.json`` and ``summary.md`` report it.

A baseline trained by our trainer with the run's budget and fine-tuned per student like
pooled PPO is one line, ``register(TrainedBaseline("NAME", algo="ALGO"))``; one adapted with
its own learned inner step sizes is ``TrainedBaseline("NAME", algo="ALGO", adaptation="own")``
(see :mod:`meta_rl.evaluation.learned`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envs.tutors import tutor_names
from meta_rl.evaluation.encoder_method import EncoderBaseline
from meta_rl.evaluation.heuristics import TutorMethod
from meta_rl.evaluation.learned import MetaTrained, SB3Baseline, Scratch, TrainedBaseline
from meta_rl.evaluation.methods import Method
from meta_rl.evaluation.report import KINDS

_REGISTRY: dict[str, Method] = {}


def register(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to the registry (after the methods registered before it) and return it.
    A name registered already is an error unless ``replace``, which keeps its place."""
    if not isinstance(method, Method):
        raise TypeError(f"register() takes a meta_rl.evaluation.methods.Method, got {type(method).__name__}")
    name = method.name
    if not isinstance(name, str) or not name or name == "default" or any(c.isspace() for c in name):
        raise ValueError(f"a method name must be a non-empty word other than 'default', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"method {name!r} is registered already (register(..., replace=True) replaces it)")
    _REGISTRY[name] = method
    return method


def unregister(name: str) -> Method:
    """Remove method ``name`` from the registry and return it."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise ValueError(f"method {name!r} is not registered; registered: {list(_REGISTRY)}") from None


def methods_for(env_id: str) -> dict[str, Method]:
    """Every method available on ``env_id`` by name: the registered ones, then the env's tutors."""
    tutors = tutor_names(env_id)
    clash = sorted(set(_REGISTRY) & set(tutors))
    if clash:
        raise ValueError(f"registered method(s) {clash} have the name of a tutor of {env_id}")
    methods = dict(_REGISTRY)
    for name in tutors:
        methods[name] = TutorMethod(name)
    for m in methods.values():
        if m.kind(env_id) not in KINDS:
            raise ValueError(f"method {m.name!r} has kind {m.kind(env_id)!r}; kinds: {KINDS}")
    return methods


def available_methods(env_id: str) -> list[str]:
    """Names of every method that can be asked for on ``env_id`` (``--methods``)."""
    return list(methods_for(env_id))


def default_methods(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> list[str]:
    """What ``evaluate`` runs without ``--methods``: every method but the optional ones, and
    (given ``env_kwargs``) but those that cannot run on that configuration."""
    return [
        name
        for name, m in methods_for(env_id).items()
        if not m.optional and (env_kwargs is None or m.cannot_run(env_id, env_kwargs) is None)
    ]


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
    ``belief_planner``), ``"omniscient"`` (privileged tutors that also read hidden state the
    profile does not determine, e.g. SkillGraph's ``planner``), ``"adaptive"`` (the other
    learned methods) or ``"heuristic"``."""
    return methods_for(env_id)[name].kind(env_id)


# The built-in methods, in the order of the report. Budget-matched baselines of other
# algorithms of our trainer are one line each (meta_rl.algorithms.derived_config sets them up).
register(MetaTrained("maml_ppo"))
register(TrainedBaseline("pooled_ppo", algo="ppo"))
register(Scratch("scratch_ppo"))
register(SB3Baseline("sb3_ppo"))
register(TrainedBaseline("oracle", algo="ppo", privileged=True, adaptation="none"))
# the other optimisation-based meta-learners, trained with the run's budget: Reptile's
# initialisation is fine-tuned like pooled PPO; MAML++ adapts with its own learned step sizes
register(TrainedBaseline("reptile_ppo", algo="reptile_ppo"))
register(TrainedBaseline("mamlpp_ppo", algo="mamlpp_ppo", adaptation="own"))
# slow, and needs the optional sb3-contrib: evaluated only when asked for
register(SB3Baseline("recurrent_ppo", recurrent=True, optional=True))
# issue 16: the student-encoder tutor (adapts by context, no gradient step); trains a model per
# run with the run's budget, so only when asked for (--methods ... encoder_ppo)
register(EncoderBaseline("encoder_ppo", optional=True))
# the same encoder tutor, each session of context also a gradient step on its policy network
# (step size chosen on val students, like pooled PPO's): does the step refine what z inferred?
register(EncoderBaseline("encoder_ppo_ft", optional=True, fine_tune=True, trains="encoder_ppo"))
# the encoder-conditioned policy as MAML's initialisation (meta-trained through the step)
register(EncoderBaseline("encoder_maml_ppo", optional=True, algo="encoder_maml_ppo"))
