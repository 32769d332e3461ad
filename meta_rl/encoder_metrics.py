"""How well a student encoder identifies students: pair ranking AUC and profile decoding.

* :func:`pair_auc`: for embeddings of single sessions of ``T`` students, the probability that
  a pair of sessions of the same student is closer (Euclidean) than a pair of sessions of two
  different students — the ranking AUC, Mann-Whitney ``U / (n_same · n_diff)`` (ties count ½);
  0.5 is chance, 1 a perfect metric.
* :func:`decoding_scores`: the decoder's profile estimate after ``n`` sessions against the
  truth, per field: ``R² = 1 − Σ (y − ŷ)² / Σ (y − ȳ)²`` with ``ȳ`` the *population* mean
  (the estimate a tutor has before meeting the student; 0 = no better, 1 = exact), and for
  every vector field the accuracy of its arg-max (e.g. SkillGraph-v0's preferred content
  type) against the population's most frequent arg-max.

The sessions are played by the tutor itself in the evaluation protocol: chunks of
``rollouts_per_step`` episodes, each chunk with the earlier chunks as context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats

from envs.profiles import StudentProfile
from meta_rl.encoder import EncoderState, decode, embed
from meta_rl.encoder_tutor import EncoderTutor
from meta_rl.sampler import Sampler


def pair_auc(z: np.ndarray) -> float:
    """Ranking AUC of same-student vs different-student session pairs; ``z (T, S, z_dim)``."""
    z = np.asarray(z, dtype=np.float64)
    t, s = z.shape[:2]
    if t < 2 or s < 2:
        raise ValueError(f"pair_auc needs >= 2 students with >= 2 sessions each, got {t} x {s}")
    flat = z.reshape(t * s, -1)
    who = np.repeat(np.arange(t), s)
    d = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    iu = np.triu_indices(t * s, k=1)
    same = who[iu[0]] == who[iu[1]]
    dist = d[iu]
    u = stats.mannwhitneyu(dist[~same], dist[same], alternative="two-sided").statistic
    return float(u / (same.sum() * (~same).sum()))


def play_sessions(
    policy: EncoderTutor, profiles: Sequence[StudentProfile], sessions: int, seed: int = 0
) -> torch.Tensor:
    """Session summaries ``(T, sessions, h)`` of the tutor playing each student in chunks of
    ``rollouts_per_step`` episodes, each chunk with the earlier ones as context."""
    sampler = Sampler(policy.env, policy.spec)
    state = EncoderState.empty(len(profiles), policy.espec)
    chunks, done, k = [], 0, 0
    while done < sessions:
        n = min(policy.rollouts_per_step, sessions - done)
        roll = policy.collect(sampler, profiles, n, seed=(seed + 1) * 4096 * 64 + k * 4096, state=state)
        summ = policy.summaries(roll)
        state.add_sessions(summ, roll.mask.any(-1))
        chunks.append(summ)
        done, k = done + n, k + 1
    return torch.cat(chunks, dim=1)


def single_session_embeddings(policy: EncoderTutor, summaries: torch.Tensor) -> np.ndarray:
    """``z`` of every session alone as the context ``(T, S, z_dim)``."""
    with torch.no_grad():
        ones = torch.ones(summaries.shape[:2])
        return embed(
            policy.encoder, summaries, ones, torch.zeros_like(summaries), torch.zeros_like(ones)
        ).numpy()


def embeddings_after(policy: EncoderTutor, summaries: torch.Tensor, n: int) -> torch.Tensor:
    """``z (T, z_dim)`` at the start of a new session after the first ``n`` sessions (``n = 0``:
    the prior)."""
    t = summaries.shape[0]
    with torch.no_grad():
        if n == 0:
            return EncoderState.empty(t, policy.espec).z(policy.encoder)
        ctx = summaries[:, :n].mean(1)
        return embed(policy.encoder, ctx, torch.full((t,), float(n)), torch.zeros_like(ctx), torch.zeros(t))


def _field_slices(policy: EncoderTutor) -> list[tuple[str, slice, bool]]:
    probe = policy.env.probe
    dims, out, col = probe.dims(), [], 0
    for s in probe.profile_cls.FIELDS:
        width = 1 if s.dim is None else dims[s.dim]
        out.append((s.name, slice(col, col + width), s.dim is not None))
        col += width
    return out


def decoding_scores(
    policy: EncoderTutor,
    profiles: Sequence[StudentProfile],
    summaries: torch.Tensor,
    counts: Sequence[int],
    population: np.ndarray,
) -> dict[int, dict[str, Any]]:
    """Per session count ``n`` and field: ``r2`` (against the population mean of ``population``,
    normalised features of many ``train`` students) and, for vector fields, ``argmax_acc`` and
    ``argmax_base`` (the population's most frequent arg-max)."""
    y = policy.env.profile_features(profiles).astype(np.float64)
    mean = population.mean(0)
    out: dict[int, dict[str, Any]] = {}
    for n in counts:
        with torch.no_grad():
            mu, _ = decode(policy.encoder, embeddings_after(policy, summaries, n))
        pred = mu.numpy().astype(np.float64)
        row: dict[str, Any] = {}
        for name, sl, vector in _field_slices(policy):
            sse = ((y[:, sl] - pred[:, sl]) ** 2).sum()
            sst = ((y[:, sl] - mean[sl]) ** 2).sum()
            entry = {"r2": float(1.0 - sse / max(sst, 1e-12))}
            if vector:
                true_arg = y[:, sl].argmax(1)
                pop_arg = population[:, sl].argmax(1)
                entry["argmax_acc"] = float((pred[:, sl].argmax(1) == true_arg).mean())
                entry["argmax_base"] = float((true_arg == np.bincount(pop_arg).argmax()).mean())
            row[name] = entry
        out[n] = row
    return out
