"""Teacher-readable identification of a student from its interaction history.

``identify(policy, history)`` encodes a student's sessions with the tutor's student encoder
(:mod:`meta_rl.encoder`: every session summarised, the summaries pooled by their mean), and
returns

* the decoded profile estimate with an uncertainty: the decoder's mean ``μ`` and standard
  deviation ``σ`` of every normalised profile feature, mapped back to the field's units
  (``x = low + μ (high − low)``, ``σ_x = σ (high − low)``; for a field with an infinite upper
  bound, normalised as ``u / (1 + u)``, the inverse ``u = μ / (1 − μ)`` and the delta method
  ``σ_u = σ / (1 − μ)²``), and for every vector field the index of its largest entry (e.g.
  SkillGraph-v0's ``content_affinity``: the content type the student learns best from);
* the nearest training students by embedding distance ``‖z − z_j‖`` among a reference bank of
  simulated ``train`` students played by the same tutor (:func:`reference_bank`).

:mod:`meta_rl.log_sessions` turns a response log (the formats ``meta-tutor calibrate``
reads, :mod:`envs.calibration.logs`) into :class:`Session` s of the tutor's env, for every
env family: each logged response becomes the action that asked for it and the observations
are rebuilt by the env's own rules (what a log cannot carry is listed there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from meta_rl.encoder import EncoderState, decode, embed, episode_encodings, pool, session_summary
from meta_rl.encoder_tutor import EncoderTutor
from meta_rl.log_sessions import Session
from meta_rl.sampler import Sampler


def _check_session(policy: EncoderTutor, s: Session, where: str) -> None:
    obs, a, r = np.asarray(s.obs), np.asarray(s.actions), np.asarray(s.rewards)
    d = policy.spec.obs_dim
    if obs.ndim != 2 or obs.shape[1] != d or len(obs) < 2:
        raise ValueError(f"{where}: observations must be (L + 1, {d}) with L >= 1, got {obs.shape}")
    if a.shape != (len(obs) - 1,) or r.shape != a.shape:
        raise ValueError(f"{where}: {len(obs) - 1} steps need {len(obs) - 1} actions and rewards")
    if a.size and (a.min() < 0 or a.max() >= policy.spec.n_actions):
        raise ValueError(f"{where}: actions must lie in [0, {policy.spec.n_actions})")


def session_summaries(policy: EncoderTutor, sessions: Sequence[Session]) -> torch.Tensor:
    """Summaries ``(S, h)`` of sessions of any lengths (padded into one batch)."""
    for i, s in enumerate(sessions):
        _check_session(policy, s, f"session {i}")
    n, h_max, d = len(sessions), max(len(s.actions) for s in sessions), policy.spec.obs_dim
    obs = torch.zeros(n, h_max + 1, d)
    actions = torch.zeros(n, h_max, dtype=torch.int64)
    rewards = torch.zeros(n, h_max)
    mask = torch.zeros(n, h_max, dtype=torch.bool)
    for i, s in enumerate(sessions):
        length = len(s.actions)
        obs[i, : length + 1] = torch.as_tensor(np.asarray(s.obs, dtype=np.float32))
        actions[i, :length] = torch.as_tensor(np.asarray(s.actions, dtype=np.int64))
        rewards[i, :length] = torch.as_tensor(np.asarray(s.rewards, dtype=np.float32))
        mask[i, :length] = True
    with torch.no_grad():
        enc = episode_encodings(policy.espec, policy.encoder, obs, actions, rewards)
        return session_summary(enc, mask)


def encode_history(policy: EncoderTutor, sessions: Sequence[Session]) -> torch.Tensor:
    """``z`` at the start of a new session after ``sessions`` (pooled by their mean)."""
    with torch.no_grad():
        if not sessions:
            state = EncoderState.empty(1, policy.espec)
            return state.z(policy.encoder)[0]
        ctx, n = pool(session_summaries(policy, sessions))
        zero = torch.zeros_like(ctx)
        return embed(policy.encoder, ctx, n, zero, torch.zeros(()))


@dataclass
class ReferenceBank:
    """Embeddings of simulated ``train`` students (their profiles known) for nearest neighbours."""

    z: np.ndarray  # (N, z_dim)
    profiles: list[Any]
    sessions: int


def reference_bank(
    policy: EncoderTutor, n_students: int = 100, sessions: int = 20, seed: int = 0
) -> ReferenceBank:
    """``n_students`` ``train`` students, each played ``sessions`` episodes by the tutor (no earlier
    context) and embedded from them (deterministic given ``seed``)."""
    profiles = policy.env.distribution().sample(n_students, "train", seed=seed)
    sampler = Sampler(policy.env, policy.spec)
    roll = policy.collect(
        sampler, profiles, sessions, seed=seed * 4096, state=EncoderState.empty(n_students, policy.espec)
    )
    summ = policy.summaries(roll)
    with torch.no_grad():
        ctx, n = pool(summ, roll.mask.any(-1))
        z = embed(policy.encoder, ctx, n, torch.zeros_like(ctx), torch.zeros(n.shape))
    return ReferenceBank(z.numpy(), list(profiles), sessions)


@dataclass
class FieldEstimate:
    name: str
    mean: np.ndarray  # in the field's units; shape () or (dim,)
    std: np.ndarray
    description: str = ""

    def text(self) -> str:
        def fmt(m: float, s: float) -> str:
            return f"{m:.2f} ± {s:.2f}"

        if self.mean.ndim == 0:
            body = fmt(float(self.mean), float(self.std))
        else:
            body = "[" + ", ".join(fmt(float(m), float(s)) for m, s in zip(self.mean, self.std)) + "]"
            body += f"; largest: index {int(np.argmax(self.mean))}"
        return f"{self.name}: {body}" + (f"  ({self.description})" if self.description else "")


@dataclass
class Identification:
    """What :func:`identify` returns for one student."""

    z: np.ndarray
    sessions: int
    fields: list[FieldEstimate]
    #: nearest reference students: (distance, profile dict), closest first
    neighbours: list[tuple[float, dict]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "z": [float(x) for x in self.z],
            "estimate": {
                f.name: {"mean": np.asarray(f.mean).tolist(), "std": np.asarray(f.std).tolist()}
                for f in self.fields
            },
            "nearest_training_students": [{"distance": d, "profile": p} for d, p in self.neighbours],
        }

    def text(self) -> str:
        lines = [f"after {self.sessions} session(s):"]
        lines += ["  " + f.text() for f in self.fields]
        for d, p in self.neighbours:
            short = {k: _round(v) for k, v in p.items()}
            lines.append(f"  nearest training student (distance {d:.3f}): {short}")
        return "\n".join(lines)


def _round(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_round(x) for x in v]
    return round(float(v), 3) if isinstance(v, float) else v


def field_estimates(policy: EncoderTutor, mu: np.ndarray, sd: np.ndarray) -> list[FieldEstimate]:
    """The decoder's normalised ``(μ, σ)`` mapped back to every profile field's units (module docstring)."""
    out, col = [], 0
    probe = policy.env.probe
    dims = probe.dims()
    for s in probe.profile_cls.FIELDS:
        width = 1 if s.dim is None else dims[s.dim]
        m = np.clip(mu[col : col + width].astype(np.float64), 0.0, 1.0)
        d = sd[col : col + width].astype(np.float64)
        col += width
        if math.isfinite(s.high) and math.isfinite(s.low):
            mean, std = s.low + m * (s.high - s.low), d * (s.high - s.low)
        else:
            m = np.minimum(m, 1.0 - 1e-6)
            low = s.low if math.isfinite(s.low) else 0.0
            mean, std = low + m / (1.0 - m), d / (1.0 - m) ** 2
        if s.dim is None:
            mean, std = mean.reshape(()), std.reshape(())
        out.append(FieldEstimate(s.name, mean, std, getattr(s, "description", "") or ""))
    return out


def identify(
    policy: EncoderTutor,
    history: Sequence[Session | Mapping[str, Any]],
    reference: ReferenceBank | None = None,
    n_neighbours: int = 3,
) -> Identification:
    """Identify one student from its ``history`` (a list of :class:`Session`, or dicts with
    ``obs``, ``actions``, ``rewards``): the decoded profile with uncertainty and, given a
    ``reference`` bank, the ``n_neighbours`` nearest training students (module docstring)."""
    if not isinstance(policy, EncoderTutor):
        raise ValueError(f"identify needs an encoder tutor (algo encoder_ppo), got algo {policy.algo!r}")
    sessions = [
        s if isinstance(s, Session) else Session(s["obs"], s["actions"], s["rewards"]) for s in history
    ]
    z = encode_history(policy, sessions)
    with torch.no_grad():
        mu, logvar = decode(policy.encoder, z)
    est = field_estimates(policy, mu.numpy(), torch.exp(0.5 * logvar).numpy())
    neighbours: list[tuple[float, dict]] = []
    if reference is not None and n_neighbours > 0:
        dist = np.linalg.norm(reference.z - z.numpy()[None], axis=1)
        for j in np.argsort(dist, kind="stable")[:n_neighbours]:
            neighbours.append((float(dist[j]), reference.profiles[j].to_dict()))
    return Identification(z.numpy(), len(sessions), est, neighbours)
