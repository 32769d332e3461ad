"""Test-time adaptation: personalise a trained tutor to students with a few gradient steps.

:func:`adaptation_curve` is the measuring instrument used by validation and by the
evaluation: for ALL given profiles at once (each profile is a task in one vector
env; the per-task parameters are evaluated in one batched call) it

1. evaluates the unadapted policy on ``eval_episodes`` fresh episodes per profile
   (step 0), then
2. ``steps`` times: collects ``rollouts_per_step`` episodes per profile with the
   current per-profile parameters, applies the policy's inner update
   (:func:`meta_rl.maml.inner_step`, same objective, step size — scalar or learned
   Meta-SGD — and advantage estimation as in training) and evaluates again.

Evaluation episodes *sample* actions from the policy (stochastic), as during
training; they are never used for adaptation. Results are deterministic given
``seed`` and the list of profiles: the env seeds of evaluation after step ``k`` and
of the adaptation rollouts of step ``k`` are derived from ``seed`` alone, so two
policies evaluated with the same seed see the same students and the same env
randomness (common random numbers for paired comparisons).

:func:`adapt` is the deployment operation for one new student.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from envs.profiles import StudentProfile
from meta_rl.envspec import EnvSpec
from meta_rl.gae import compute_advantages
from meta_rl.maml import InnerUpdate, StepData, inner_step
from meta_rl.policy import PolicySpec, expand_params, state_value
from meta_rl.sampler import Rollouts, Sampler, spaced_seed, task_means
from meta_rl.tutor import AdvantageSettings, TutorPolicy


@dataclass
class AdaptationResult:
    """Per-profile results of :func:`adaptation_curve` (``P`` profiles, ``K`` steps)."""

    returns: np.ndarray  # (P, K + 1) mean undiscounted evaluation return after k steps
    metrics: dict[str, np.ndarray]  # name -> (P, K + 1) mean episode-end education metric
    adapt_returns: np.ndarray  # (P, K) mean return of the adaptation rollouts of step k
    params: dict[str, Tensor]  # final adapted parameters, batched over profiles
    profiles: list[StudentProfile]
    env_steps: int  # env steps spent on adaptation rollouts (evaluation excluded)

    def mean_returns(self) -> np.ndarray:
        """Mean over profiles, shape ``(K + 1,)``."""
        return self.returns.mean(0)

    def mean_metric(self, name: str) -> np.ndarray:
        """Mean over profiles per step, ignoring NaN (a metric may be undefined, e.g.
        steps to mastery of a student who never mastered everything)."""
        return task_means(self.metrics[name].T)


def rollout_step_data(
    spec: PolicySpec,
    roll: Rollouts,
    adv: AdvantageSettings,
    value_params: Mapping[str, Tensor] | None = None,
    pooled: bool = False,
) -> tuple[StepData, Tensor]:
    """Advantages for rollouts → the :class:`StepData` of an inner/outer loss, and returns.

    ``pooled=True`` treats all episodes as one task (pooled PPO): one baseline and one
    advantage normalisation over the whole batch.
    """
    obs, t, e = roll.obs, roll.n_tasks, roll.actions.shape[1]
    values = None
    if adv.baseline == "value_net":
        if value_params is None:
            raise ValueError("baseline 'value_net' needs value-network parameters")
        with torch.no_grad():
            values = state_value(spec, value_params, obs.reshape(t, -1, obs.shape[-1])).reshape(obs.shape[:3])

    def shaped(x: Tensor | None) -> Tensor | None:
        if x is None or not pooled:
            return x
        return x.reshape(1, t * e, *x.shape[2:])

    adv_t, returns = compute_advantages(
        shaped(obs),
        shaped(roll.rewards),
        shaped(roll.mask),
        shaped(roll.terminated),
        shaped(roll.truncated),
        adv.gamma,
        adv.gae_lambda,
        adv.baseline,
        shaped(values),
        adv.normalize,
    )
    if pooled:
        adv_t, returns = adv_t.reshape(roll.rewards.shape), returns.reshape(roll.rewards.shape)
    data = StepData(obs[:, :, :-1], roll.actions, adv_t, roll.mask, roll.logp, roll.logits)
    return data, returns


def _seeds(seed: int, steps: int) -> np.ndarray:
    # two seeds per step (evaluation, adaptation rollouts), spaced so that the
    # sub-env seeds seed + i of different collections never overlap in practice
    state = np.random.SeedSequence(int(seed)).generate_state(2 * (steps + 1), np.uint32)
    return spaced_seed(state.astype(np.int64))


def adaptation_curve(
    policy: TutorPolicy,
    profiles: Sequence[StudentProfile | Mapping[str, Any]],
    steps: int,
    rollouts_per_step: int | None = None,
    eval_episodes: int = 10,
    seed: int = 0,
    inner: InnerUpdate | None = None,
    lr: float | None = None,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    sampler: Sampler | None = None,
) -> AdaptationResult:
    """Adapt ``policy`` to every profile at once and measure it after each step.

    Args:
        policy: the trained tutor (any algorithm; same checkpoint format).
        profiles: the students (dicts or profile dataclasses of the policy's env).
        steps: number of inner updates ``K``.
        rollouts_per_step: episodes per profile before each update (default: the
            policy's training value).
        eval_episodes: evaluation episodes per profile at each ``k = 0 … K`` (0: none).
        seed: seed of all env and action randomness.
        inner: override the policy's inner-update settings (objective, entropy, lr).
        lr: override only the step size with a scalar (e.g. to choose it on validation
            students for a pooled policy), in place of learned Meta-SGD rates too.
            An encoder tutor adapts by context alone unless ``inner`` or ``lr`` is given;
            then each session of context is also a gradient step
            (:meth:`meta_rl.encoder_tutor.EncoderTutor.context_adaptation_curve`).
        env_id, env_kwargs: evaluate in another env configuration with the same spaces
            (default: the policy's).
        sampler: reuse a sampler (and its vector envs) of the same env and policy.

    Returns:
        :class:`AdaptationResult` with per-profile × step returns and education metrics.
    """
    context_curve = getattr(policy, "context_adaptation_curve", None)
    if context_curve is not None:
        # an encoder tutor adapts by context (meta_rl.encoder_tutor); given inner or lr, each
        # session of context is also one gradient step on its policy network
        return context_curve(
            profiles, steps, rollouts_per_step, eval_episodes, seed, env_id, env_kwargs, sampler,
            inner=inner, lr=lr,
        )  # fmt: skip
    env, sampler, profs, k_max, e_adapt = curve_setup(
        policy, profiles, steps, rollouts_per_step, env_id, env_kwargs, sampler
    )
    inner = (inner or policy.inner).detached()
    if lr is not None:
        inner = replace(inner, lr=float(lr))
    params = expand_params({k: v.detach() for k, v in policy.params.items()}, len(profs))

    def collect(n_episodes: int, seed: int) -> Rollouts:
        return sampler.collect(params, profs, n_episodes, seed=seed)

    def update(k: int, roll: Rollouts) -> None:
        nonlocal params
        data, _ = rollout_step_data(policy.spec, roll, policy.advantage, policy.value_params)
        params = inner_step(policy.spec, params, data, inner, create_graph=False, step=k)

    returns, metrics, adapt_returns, env_steps = run_curve(
        k_max, eval_episodes, e_adapt, seed, env.metric_names, len(profs), collect, update
    )
    return AdaptationResult(returns, metrics, adapt_returns, params, profs, env_steps)


def curve_setup(
    policy: Any,
    profiles: Sequence[StudentProfile | Mapping[str, Any]],
    steps: int,
    rollouts_per_step: int | None,
    env_id: str | None,
    env_kwargs: Mapping[str, Any] | None,
    sampler: Sampler | None,
) -> tuple[EnvSpec, Sampler, list[StudentProfile], int, int]:
    """The env, sampler, students, ``K`` and episodes per adaptation step of an adaptation
    curve of ``policy`` (see :func:`adaptation_curve` for the arguments)."""
    env = policy.env
    if env_id is not None or env_kwargs is not None:
        env = EnvSpec(
            env_id or env.env_id, env_kwargs if env_kwargs is not None else env.env_kwargs, env.privileged
        )
    if sampler is None:
        sampler = Sampler(env, policy.spec)
    profs = env.coerce(profiles)
    if not profs:
        raise ValueError("adaptation_curve needs at least one profile")
    return env, sampler, profs, int(steps), int(rollouts_per_step or policy.rollouts_per_step)


def run_curve(
    k_max: int,
    eval_episodes: int,
    e_adapt: int,
    seed: int,
    metric_names: Sequence[str],
    n_profiles: int,
    collect: Callable[[int, int], Rollouts],
    update: Callable[[int, Rollouts], None],
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, int]:
    """The measure-then-adapt loop of an adaptation curve: for ``k = 0 … K`` measure on
    ``eval_episodes`` fresh episodes (``collect(n, seed)``), then, before the next ``k``,
    collect ``e_adapt`` episodes and adapt on them (``update(k, rollouts)``: a gradient
    step, or more context). Returns per-profile × step returns and metrics, the returns
    of the adaptation rollouts and their env steps."""
    seeds = _seeds(seed, k_max)
    returns = np.full((n_profiles, k_max + 1), np.nan)
    adapt_returns = np.full((n_profiles, k_max), np.nan)
    metrics = {name: np.full((n_profiles, k_max + 1), np.nan) for name in metric_names}
    env_steps = 0
    for k in range(k_max + 1):
        if eval_episodes > 0:
            ev = collect(eval_episodes, int(seeds[2 * k]))
            returns[:, k] = ev.returns.mean(1)
            for name in metrics:
                metrics[name][:, k] = task_means(ev.metrics[name])
        if k == k_max:
            break
        roll = collect(e_adapt, int(seeds[2 * k + 1]))
        env_steps += roll.env_steps
        adapt_returns[:, k] = roll.returns.mean(1)
        update(k, roll)
    return returns, metrics, adapt_returns, env_steps


def adapt(
    policy: TutorPolicy,
    env_or_profile: Any,
    steps: int = 1,
    rollouts: int | None = None,
    seed: int = 0,
    lr: float | None = None,
) -> TutorPolicy:
    """Personalise ``policy`` for one student: ``steps`` inner updates on ``rollouts`` episodes each.

    ``env_or_profile`` is the student's profile (dict or dataclass) or a meta-tutor env
    (single or vector with one sub-env) whose current student is used — the operation
    a deployment runs for a new learner. Returns a new :class:`TutorPolicy` (the input
    is unchanged) that remembers the profile.
    """
    if getattr(policy, "context_adaptation_curve", None) is not None:
        raise ValueError(
            f"a {policy.algo} tutor adapts by context, not by gradient steps: give it the student's "
            "interactions through meta_rl.encoder_tutor.OnlineTutor"
        )
    profile = _profile_of(policy, env_or_profile)
    res = adaptation_curve(policy, [profile], steps, rollouts, eval_episodes=0, seed=seed, lr=lr)
    return policy.with_params({k: v[0] for k, v in res.params.items()}, profile=res.profiles[0])


def _profile_of(policy: TutorPolicy, x: Any) -> StudentProfile | Mapping[str, Any]:
    inner = getattr(x, "unwrapped", x)
    dyn = getattr(inner, "dynamics", None)
    if dyn is None:
        return x
    import envs

    env_id = envs.env_id_of(dyn)
    if env_id != policy.env.env_id:
        raise ValueError(f"the policy was trained on {policy.env.env_id}, not {env_id}")
    if getattr(inner, "get_task", None) is not None and inner.get_task() is not None:
        return inner.get_task()
    if dyn.has_profile[0]:
        return dyn.profile_of(0)
    raise ValueError("the env has no student yet: set its task or reset it first")


def mean_curve(result: AdaptationResult) -> dict[str, list[float]]:
    """Mean return and metrics per step (a small JSON-ready summary)."""
    out = {"return": [float(x) for x in result.mean_returns()]}
    for name in result.metrics:
        out[name] = [float(x) for x in result.mean_metric(name)]
    return out


__all__ = [
    "AdaptationResult",
    "adapt",
    "adaptation_curve",
    "mean_curve",
    "rollout_step_data",
]
