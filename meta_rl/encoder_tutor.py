"""A tutor conditioned on a student encoding: acting, collecting, evaluating, online use.

:class:`EncoderTutor` is a :class:`~meta_rl.tutor.TutorPolicy` (the policy network ``θ`` on
the observation) plus a student encoder (:mod:`meta_rl.encoder`) whose embedding ``z`` of
the student's history offsets the network's first layer. It adapts to a student by
*context*, not by gradient steps: adaptation step ``k`` means ``k`` sessions of
``rollouts_per_step`` episodes with the student, all pooled into ``z`` — the same protocol,
seeds and students as :func:`meta_rl.adaptation.adaptation_curve`, which hands encoder
tutors to :meth:`EncoderTutor.context_adaptation_curve`.

:class:`OnlineTutor` is the deployment object: one interaction at a time in, the next
teaching action out, at a constant cost per step (a running sum per student; no gradient).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from envs.profiles import StudentProfile
from meta_rl.adaptation import AdaptationResult, curve_setup, rollout_step_data, run_curve
from meta_rl.encoder import (
    EncoderSpec,
    EncoderState,
    check_params,
    conditioned_logits,
    conditioning,
    decode,
    episode_encodings,
    phi,
    session_summary,
    transition_features,
)
from meta_rl.maml import InnerUpdate, StepData, inner_step
from meta_rl.policy import expand_params, log_prob, mode, sample
from meta_rl.sampler import Rollouts, Sampler
from meta_rl.tutor import TutorPolicy

#: the algorithms whose encoder tutors were meta-trained to take an inner step on each
#: session of context (:mod:`meta_rl.algorithms.encoder_maml_ppo`): their adaptation curve
#: takes it by default, with their own (possibly learned) step sizes
META_LEARNED_STEP = ("encoder_maml_ppo",)


@dataclass
class EncoderTutor(TutorPolicy):
    """A tutor on ``(observation, z)`` with its student encoder (module docstring)."""

    encoder_spec: EncoderSpec | None = None
    encoder: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.encoder_spec is None:
            raise ValueError("an EncoderTutor needs its encoder_spec")
        check_params(self.encoder_spec, self.encoder)
        if self.env.privileged:
            raise ValueError("an encoder tutor infers the student: it cannot be privileged")

    @classmethod
    def wrap(cls, policy: TutorPolicy, spec: EncoderSpec, encoder: Mapping[str, Tensor]) -> EncoderTutor:
        """``policy`` (its network, env and settings) with the encoder ``(spec, encoder)``."""
        kw = {f.name: getattr(policy, f.name) for f in fields(TutorPolicy) if f.init}
        return cls(**kw, encoder_spec=spec, encoder={k: v.detach().clone() for k, v in encoder.items()})

    @classmethod
    def from_parts(
        cls,
        meta: Mapping[str, Any],
        params: Mapping[str, Tensor],
        encoder: Mapping[str, Tensor] | None,
        value_params: Mapping[str, Tensor] | None = None,
        inner_lrs: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]] | None = None,
    ) -> EncoderTutor:
        """Rebuild from :meth:`meta` and the tensors (a checkpoint or an export); ``inner_lrs``:
        learned inner step sizes (a tutor meta-trained with a gradient step)."""
        if not isinstance(encoder, Mapping) or not encoder:
            raise ValueError(
                "the policy description names a student encoder but no encoder tensors are stored"
            )
        spec = EncoderSpec.from_dict(meta["encoder"])
        base = TutorPolicy.from_meta(meta, params, inner_lrs, value_params)
        if spec.obs_dim != base.spec.obs_dim or spec.cond_dim != base.spec.hidden_sizes[0]:
            raise ValueError(f"the encoder {spec} does not fit the policy {base.spec}")
        return cls.wrap(base, spec, encoder)

    def meta(self) -> dict[str, Any]:
        out = super().meta()
        assert self.encoder_spec is not None
        out["encoder"] = self.encoder_spec.to_dict()
        return out

    # ------------------------------------------------------------ acting
    def logits(self, obs: Tensor, z: Tensor) -> Tensor:
        """Logits on ``(obs (..., M, d), z (..., M, z_dim))``."""
        return conditioned_logits(self.spec, self.params, self.encoder, obs, z)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> int | np.ndarray:
        raise ValueError(
            "an encoder tutor acts on the student's history, not on one observation: "
            "use meta_rl.encoder_tutor.OnlineTutor(policy) (one interaction at a time)"
        )

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        raise ValueError("an encoder tutor's action probabilities depend on the history: use OnlineTutor")

    # ------------------------------------------------------------ encoding data
    def summaries(self, roll: Rollouts) -> Tensor:
        """Session summaries ``(T, E, h)`` of collected episodes."""
        with torch.no_grad():
            enc = episode_encodings(self.espec, self.encoder, roll.obs, roll.actions, roll.rewards)
            return session_summary(enc, roll.mask)

    @property
    def espec(self) -> EncoderSpec:
        assert self.encoder_spec is not None
        return self.encoder_spec

    def collect(
        self,
        sampler: Sampler,
        profiles: Sequence[StudentProfile],
        episodes: int,
        seed: int,
        state: EncoderState,
        params: Mapping[str, Tensor] | None = None,
        z_out: list[Tensor] | None = None,
    ) -> Rollouts:
        """``episodes`` fresh sessions per student, each conditioned on the student's earlier
        sessions (``state``, one row per student; not modified) and on its own steps so far.

        ``params``: the policy network's parameters, shared or batched over the students
        (default: the tutor's own). ``z_out``, if given, receives the embedding the tutor
        acted on at each step, ``(T, E, z_dim)`` per step (fewer than the horizon when every
        episode ended earlier)."""
        n_t, n_e, d = len(profiles), int(episodes), self.spec.obs_dim
        rows = state.expand_to(n_e)
        spec, enc = self.espec, self.encoder
        theta = self.params if params is None else params

        def act(
            t: int, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, mask: np.ndarray
        ) -> Tensor:
            if t > 0:
                x = transition_features(
                    spec,
                    torch.from_numpy(obs[:, t - 1]),
                    torch.from_numpy(actions[:, t - 1]),
                    torch.from_numpy(rewards[:, t - 1]),
                    torch.from_numpy(obs[:, t]),
                )
                rows.add_steps(phi(enc, x), torch.from_numpy(mask[:, t - 1]))
            z = rows.z(enc).reshape(n_t, n_e, -1)
            if z_out is not None:
                z_out.append(z)
            o = torch.from_numpy(obs[:, t]).reshape(n_t, n_e, d)
            return conditioned_logits(self.spec, theta, enc, o, z)

        return sampler.collect(theta, profiles, n_e, seed=seed, act=act)

    def step_data(self, roll: Rollouts, z_steps: Sequence[Tensor]) -> tuple[StepData, Tensor]:
        """The :class:`~meta_rl.maml.StepData` of collected sessions for a gradient step on the
        policy network ``θ`` — advantages as in training, and the conditioning by the
        embeddings ``z_steps`` the tutor acted on (:meth:`collect`'s ``z_out``), constants of
        ``θ`` (the encoder is not adapted) — and the returns-to-go."""
        data, returns = rollout_step_data(self.spec, roll, self.advantage, self.value_params)
        z = torch.stack(list(z_steps), dim=2)  # (T, E, H', z_dim)
        h = data.obs.shape[2]
        if z.shape[2] < h:  # every episode had ended: those steps are masked out
            z = torch.cat([z, z.new_zeros(*z.shape[:2], h - z.shape[2], z.shape[-1])], dim=2)
        with torch.no_grad():
            bias0, offset = conditioning(self.spec, self.encoder, data.obs, z)
        return data._replace(bias0=bias0, logit_offset=offset), returns

    # ------------------------------------------------------------ evaluation protocol
    def context_adaptation_curve(
        self,
        profiles: Sequence[StudentProfile | Mapping[str, Any]],
        steps: int,
        rollouts_per_step: int | None = None,
        eval_episodes: int = 10,
        seed: int = 0,
        env_id: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        sampler: Sampler | None = None,
        context_from: Sequence[int] | None = None,
        inner: InnerUpdate | None = None,
        lr: float | None = None,
    ) -> AdaptationResult:
        """:func:`meta_rl.adaptation.adaptation_curve` for this tutor: adaptation step ``k`` is
        ``k`` sessions of ``rollouts_per_step`` episodes of context (no gradient step); the
        evaluation after step ``k`` runs on ``eval_episodes`` fresh episodes with that context.
        Same seeds as the gradient-based curve (common random numbers).

        With ``inner`` or ``lr`` (the step size of the tutor's inner update), and always for a
        tutor meta-trained with that step (:data:`META_LEARNED_STEP`, with its own inner
        update by default), each session of context is also one gradient step on the policy
        network of each student,
        ``θ_i ← θ_i − α ∇_θ L_inner(θ_i; session, z)`` (:func:`meta_rl.maml.inner_step`, the
        embeddings ``z`` the tutor acted on held fixed, the encoder not adapted): the
        gradient step refines what the encoder inferred, on the same data.

        ``context_from`` is a diagnostic: student ``i``'s earlier sessions are replaced by
        those played with student ``context_from[i]`` (the running session stays its own).
        If the curve does not drop, the tutor does not act on what the context says about
        the student."""
        env, sampler, profs, k_max, e_adapt = curve_setup(
            self, profiles, steps, rollouts_per_step, env_id, env_kwargs, sampler
        )
        state = EncoderState.empty(len(profs), self.espec)
        source = _context_source(context_from, len(profs))
        params = expand_params({k: v.detach() for k, v in self.params.items()}, len(profs))
        step = None
        if inner is not None or lr is not None or self.algo in META_LEARNED_STEP:
            step = (inner or self.inner).detached()
            if lr is not None:
                step = replace(step, lr=float(lr))
        z_steps: list[Tensor] = []

        def collect(n_episodes: int, seed: int) -> Rollouts:
            z_steps.clear()
            return self.collect(sampler, profs, n_episodes, seed, state, params, z_steps)

        def update(k: int, roll: Rollouts) -> None:
            nonlocal params
            if step is not None:  # z_steps: the embeddings this session was played with
                data, _ = self.step_data(roll, z_steps)
                params = inner_step(self.spec, params, data, step, create_graph=False, step=k)
            summaries, valid = self.summaries(roll), roll.mask.any(-1)
            if source is not None:
                summaries, valid = summaries[source], valid[source]
            state.add_sessions(summaries, valid)

        returns, metrics, adapt_returns, env_steps = run_curve(
            k_max, eval_episodes, e_adapt, seed, env.metric_names, len(profs), collect, update
        )
        return AdaptationResult(returns, metrics, adapt_returns, params, profs, env_steps)


def _context_source(context_from: Sequence[int] | None, n: int) -> Tensor | None:
    if context_from is None:
        return None
    source = [int(i) for i in context_from]
    if len(source) != n or any(not 0 <= i < n for i in source):
        raise ValueError(f"context_from must give one student index in [0, {n}) per student, got {source}")
    return torch.tensor(source, dtype=torch.int64)


class OnlineTutor:
    """One student, one interaction at a time (module docstring)::

        tutor = OnlineTutor(load_policy("export_dir"))
        a = tutor.act(obs)                     # first step of a session
        obs2, r, *_ = env.step(a)
        a = tutor.step(obs, a, r, obs2)        # record the interaction, act on obs2
        ...
        tutor.end_session()                    # the session joins the student's history

    ``deterministic=True`` takes the most likely action; otherwise actions are sampled
    (as in training and evaluation) from a generator seeded with ``seed``.
    """

    def __init__(self, policy: EncoderTutor, seed: int = 0, deterministic: bool = False) -> None:
        if not isinstance(policy, EncoderTutor):
            raise ValueError(
                f"OnlineTutor needs an encoder tutor (algo encoder_ppo), got algo {policy.algo!r}"
            )
        self.policy = policy
        self.deterministic = deterministic
        self.gen = torch.Generator().manual_seed(int(seed))
        self.state = EncoderState.empty(1, policy.espec)

    def _obs(self, obs: Any) -> Tensor:
        o = np.asarray(obs, dtype=np.float32)
        if o.shape != (self.policy.spec.obs_dim,):
            raise ValueError(self.policy._obs_mismatch(o.shape))
        return torch.from_numpy(np.ascontiguousarray(o))

    def z(self) -> Tensor:
        """The student's current embedding ``(z_dim,)``."""
        with torch.no_grad():
            return self.state.z(self.policy.encoder)[0]

    def logits(self, obs: Any) -> Tensor:
        with torch.no_grad():
            return self.policy.logits(self._obs(obs).reshape(1, 1, -1), self.z().reshape(1, 1, -1))[0, 0]

    def action_probs(self, obs: Any) -> np.ndarray:
        """Probabilities of every joint action ``(n_actions,)`` given the history so far."""
        spec = self.policy.spec
        with torch.no_grad():
            z = self.logits(obs)
            lp = log_prob(spec, z.expand(spec.n_actions, -1), torch.arange(spec.n_actions))
        return lp.exp().numpy()

    def act(self, obs: Any) -> int:
        """The next teaching action for observation ``obs`` given everything recorded so far."""
        z = self.logits(obs)
        a = mode(self.policy.spec, z) if self.deterministic else sample(self.policy.spec, z, self.gen)
        return int(a)

    def record(self, obs: Any, action: int, reward: float, next_obs: Any) -> None:
        """Add one interaction (observation, teaching action, reward/answer, next observation)."""
        n = self.policy.spec.n_actions
        if not (isinstance(action, (int, np.integer)) and 0 <= int(action) < n):
            raise ValueError(f"action must be an integer in [0, {n}), got {action!r}")
        if not np.isfinite(float(reward)):
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        x = transition_features(
            self.policy.espec,
            self._obs(obs),
            torch.tensor(int(action)),
            torch.tensor(float(reward)),
            self._obs(next_obs),
        )
        with torch.no_grad():
            self.state.add_steps(phi(self.policy.encoder, x).unsqueeze(0), torch.ones(1, dtype=torch.bool))

    def step(self, obs: Any, action: int, reward: float, next_obs: Any) -> int:
        """:meth:`record` the interaction, then :meth:`act` on ``next_obs``."""
        self.record(obs, action, reward, next_obs)
        return self.act(next_obs)

    def end_session(self) -> None:
        """Close the current session: it joins the student's earlier sessions."""
        self.state.end_session()

    def profile_estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """Decoded normalised profile: mean and standard deviation per feature."""
        with torch.no_grad():
            mu, logvar = decode(self.policy.encoder, self.z())
        return mu.numpy(), torch.exp(0.5 * logvar).numpy()
