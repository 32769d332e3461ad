"""Encoder-PPO (``algo: encoder_ppo``): a tutor on ``(observation, z)``, ``z`` the embedding of
the student's own history by a metric-trained student encoder (:mod:`meta_rl.encoder`).

One iteration:

1. draw ``meta_batch_size`` students (tasks) from the ``train`` split;
2. for rounds ``r = 0 … R − 1`` (``R = inner_steps + 1``, the episodes of one MAML-PPO
   iteration): play ``rollouts_per_task`` episodes (sessions) per student with the current
   tutor, ``z`` pooling the student's ``r · rollouts_per_task`` earlier sessions and the steps
   of the running session (all students and sessions in one vector env, one batched call per
   step); advantages with GAE and the baseline fitted per student and round;
3. ``outer_epochs`` × ``n_minibatches`` (over students) Adam steps on

   ``L = L_clip + c_m L_proto + c_d L_dec``

   * ``L_clip``: PPO's clipped surrogate (:func:`meta_rl.ppo.clipped_surrogate`) minus
     ``ent_coef`` × entropy, with ``z`` recomputed from the stored sessions at every step
     (``end_to_end``: the gradient reaches the encoder through ``z``; otherwise ``z`` is
     detached for the policy and the encoder learns from the two losses below only);
   * ``L_proto``: prototypical loss (:func:`meta_rl.encoder.prototypical_loss`) over the
     students of the minibatch: a student's even sessions, pooled, are one stretch, its odd
     ones another; each stretch is a query against the other half's stretches of every
     student, ``−log softmax_j(−‖z_i − z'_j‖²/τ)`` at the student's own (symmetrised);
   * ``L_dec``: squared error and Gaussian NLL (:func:`meta_rl.encoder.decoder_loss`) of the
     decoder's estimate of the normalised profile
     (:meth:`~meta_rl.envspec.EnvSpec.profile_features`) from every step's ``z`` and from the
     session-level embeddings — the simulator knows the profile at training time; the
     encoder never reads it (its inputs are observations, actions and rewards).

Before the first iteration the summary normaliser of the encoder is fitted on one round of
the initial tutor's sessions (:func:`meta_rl.encoder.fit_normaliser`; its env steps count).
The value network (``baseline: value_net``) sees the observation only. With ``init_from`` the
policy network starts from a pooled-PPO tutor (training in stages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from meta_rl.adaptation import rollout_step_data
from meta_rl.algorithms.base import Algorithm, Context, check_finite
from meta_rl.config import EncoderPPOConfig
from meta_rl.encoder import (
    EncoderState,
    causal_mean,
    conditioned_logits,
    decode,
    decoder_loss,
    embed,
    encoder_spec,
    episode_encodings,
    fit_normaliser,
    init_encoder,
    prototypical_loss,
    session_summary,
)
from meta_rl.encoder_tutor import EncoderTutor
from meta_rl.policy import entropy, log_prob
from meta_rl.ppo import approx_kl, clip_fraction, clipped_surrogate, masked_mean

#: the encoder's initial weights are drawn from a generator seeded with ``seed + this``
ENCODER_SEED_OFFSET = 7919


class Batch(NamedTuple):
    """The iteration's sessions, ``(T, R, E, H)`` (students, rounds, episodes, steps)."""

    obs: Tensor  # (T, R, E, H + 1, d)
    actions: Tensor
    rewards: Tensor
    mask: Tensor
    logp: Tensor
    adv: Tensor
    target: Tensor  # (T, profile_dim) normalised profiles (training targets only)

    def tasks(self, idx: Tensor) -> Batch:
        return Batch(*(x.index_select(0, idx) for x in self))


class Encoded(NamedTuple):
    z: Tensor  # (T, R, E, H, z_dim): the tutor's embedding before each step
    summaries: Tensor  # (T, R, E, h)


def encode_batch(cfg: EncoderPPOConfig, spec: Any, params: Mapping[str, Tensor], b: Batch) -> Encoded:
    """``z`` of every step: round ``r`` pools the ``r · E`` sessions of rounds ``< r`` and the
    running session's earlier steps (the same ``z`` the tutor acted on, recomputed)."""
    _, r, e, _ = b.actions.shape
    enc = episode_encodings(spec, params, b.obs, b.actions, b.rewards)
    summ = session_summary(enc, b.mask)
    round_sum = summ.sum(2)
    before = torch.cumsum(round_sum, 1) - round_sum  # (T, R, h)
    n_ctx = torch.arange(r, dtype=enc.dtype) * e
    ctx = before / n_ctx.clamp_min(1.0).unsqueeze(-1)
    cur, n_cur = causal_mean(enc, b.mask)
    z = embed(params, ctx[:, :, None, None, :], n_ctx[None, :, None, None], cur, n_cur)
    return Encoded(z, summ)


def session_losses(
    cfg: EncoderPPOConfig, params: Mapping[str, Tensor], summ: Tensor, target: Tensor
) -> dict[str, Tensor]:
    """Prototypical loss between two stretches of every student, and the decoder's NLL on
    session-level embeddings.

    Each student's sessions ``(T, S, h)`` split into the even and the odd ones; each half,
    pooled, is one stretch. The loss is symmetric: every stretch is a query against the other
    half's stretches of all students (:func:`meta_rl.encoder.prototypical_loss`). The decoder
    reads both stretches and every session alone (the estimate after one session)."""
    t = summ.shape[0]
    flat = summ.reshape(t, -1, summ.shape[-1])
    zeros, none = torch.zeros_like(flat[:, 0]), torch.zeros(t)

    def stretch(half: Tensor) -> Tensor:
        return embed(params, half.mean(1), torch.full((t,), float(half.shape[1])), zeros, none)

    z_a, z_b = stretch(flat[:, 0::2]), stretch(flat[:, 1::2])
    loss_ab, acc_ab = prototypical_loss(z_a.unsqueeze(1), z_b, cfg.metric_temperature)
    loss_ba, acc_ba = prototypical_loss(z_b.unsqueeze(1), z_a, cfg.metric_temperature)
    ones = torch.ones(flat.shape[:2])
    singles = embed(params, flat, ones, torch.zeros_like(flat), torch.zeros_like(ones))
    dec = torch.stack(
        [
            decoder_loss(*decode(params, z), target.unsqueeze(1)).mean()
            for z in (torch.stack([z_a, z_b], 1), singles)
        ]
    ).mean()
    return {
        "metric_loss": 0.5 * (loss_ab + loss_ba),
        "metric_acc": 0.5 * (acc_ab + acc_ba),
        "decoder_loss_sessions": dec,
    }


class EncoderPPO(Algorithm):
    """Encoder-PPO (module docstring)."""

    name = "encoder_ppo"
    config_class = EncoderPPOConfig
    cfg: EncoderPPOConfig
    extra_columns = ("metric_loss", "metric_acc", "decoder_loss")

    def __init__(self, cfg: EncoderPPOConfig, ctx: Context) -> None:
        # the encoder exists before the base class builds the optimiser over named_outer_params
        self.espec = encoder_spec(
            ctx.spec,
            ctx.env.profile_dim,
            cfg.encoder_hidden,
            cfg.z_dim,
            cfg.encoder_reads_reward,
            item_logits=cfg.z_item_logits,
        )
        gen = torch.Generator().manual_seed(cfg.seed + ENCODER_SEED_OFFSET)
        self.encoder = {
            k: v if k.startswith("norm.") else v.requires_grad_(True)
            for k, v in init_encoder(self.espec, gen).items()
        }
        super().__init__(cfg, ctx)

    # ------------------------------------------------------------ state
    def named_outer_params(self) -> list[tuple[str, Tensor]]:
        # the summary normaliser is fitted once (fit_normaliser), not trained by gradient
        trained = [(f"encoder.{k}", v) for k, v in self.encoder.items() if not k.startswith("norm.")]
        return super().named_outer_params() + trained

    def extra_state(self) -> dict[str, Any]:
        return {"encoder": {k: v.detach().clone() for k, v in self.encoder.items()}}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            for k, v in self.encoder.items():
                v.copy_(state["encoder"][k])

    def policy(self) -> EncoderTutor:
        return EncoderTutor.wrap(super().policy(), self.espec, self.encoder)

    # ------------------------------------------------------------ iteration
    def iteration(self, it: int) -> dict[str, Any]:
        cfg, spec = self.cfg, self.spec
        n_t, n_e, rounds = cfg.meta_batch_size, cfg.rollouts_per_task, cfg.inner_steps + 1
        env_steps = 0
        if it == 0:
            env_steps += self.fit_normaliser()
        profiles = self.ctx.dist.sample(n_t, "train", rng=self.rng)
        tutor = self.policy()
        state = EncoderState.empty(n_t, self.espec)
        rolls, datas, rets = [], [], []
        for r in range(rounds):
            roll = tutor.collect(self.ctx.sampler, profiles, n_e, self.next_seed(), state)
            check_finite(it, "episode return", torch.as_tensor(roll.returns))
            data, ret = rollout_step_data(spec, roll, self.adv, self.value_detached())
            rolls.append(roll)
            datas.append(data)
            rets.append(ret)
            if r < rounds - 1:
                state.add_sessions(tutor.summaries(roll), roll.mask.any(-1))

        def stack(get: Any) -> Tensor:
            return torch.stack([get(i) for i in range(rounds)], dim=1)

        batch = Batch(
            obs=stack(lambda i: rolls[i].obs),
            actions=stack(lambda i: rolls[i].actions),
            rewards=stack(lambda i: rolls[i].rewards),
            mask=stack(lambda i: rolls[i].mask),
            logp=stack(lambda i: rolls[i].logp),
            adv=stack(lambda i: datas[i].adv),
            target=torch.from_numpy(self.env.profile_features(profiles)),
        )
        stats = self.optimise(it, self.loss_fn(batch), n_t, 0, datas, rets)
        row = self.row(it, "encoder", rolls[0], rolls[-1], stats)
        row["adapt_kl"] = float("nan")
        for k in self.extra_columns:
            row[k] = float(stats.get(k, float("nan")))
        row["_env_steps"] = env_steps + sum(r.env_steps for r in rolls)
        row["_iter_steps"] = row["_env_steps"]
        return row

    def fit_normaliser(self) -> int:
        """Standardise the session summaries (:func:`meta_rl.encoder.fit_normaliser`) with the
        sessions of the initial tutor on ``meta_batch_size`` fresh ``train`` students, before the
        first iteration; returns the env steps spent."""
        cfg = self.cfg
        profiles = self.ctx.dist.sample(cfg.meta_batch_size, "train", rng=self.rng)
        tutor = self.policy()
        state = EncoderState.empty(len(profiles), self.espec)
        roll = tutor.collect(self.ctx.sampler, profiles, cfg.rollouts_per_task, self.next_seed(), state)
        fit_normaliser(self.encoder, tutor.summaries(roll))
        return roll.env_steps

    def loss_fn(self, batch: Batch) -> Any:
        """The minibatch loss ``L`` (module docstring) of the students ``idx`` (the prototypical
        loss: the other students of the minibatch are the negatives)."""
        cfg, spec = self.cfg, self.spec

        def loss(idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            b = batch.tasks(idx)
            encoded = encode_batch(cfg, self.espec, self.encoder, b)
            z = encoded.z
            z_pol = z if cfg.end_to_end else z.detach()
            logits = conditioned_logits(spec, self.theta, self.encoder, b.obs[..., :-1, :], z_pol)
            logp = log_prob(spec, logits, b.actions)
            ent = masked_mean(entropy(spec, logits), b.mask)
            return objective(cfg, self.encoder, b, encoded, logp, ent)

        return loss


def objective(
    cfg: EncoderPPOConfig,
    encoder: Mapping[str, Tensor],
    b: Batch,
    encoded: Encoded,
    logp: Tensor,
    ent: Tensor,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L = L_clip − c_H H + c_m L_proto + c_d L_dec`` (module docstring) of the minibatch ``b``
    given the tutor's log-probabilities ``logp`` ``(T, R, E, H)`` of the stored actions and its
    mean entropy ``ent``; and its parts for the log."""
    surr = clipped_surrogate(logp, b.logp, b.adv, cfg.clip_eps, b.mask)
    mu, lv = decode(encoder, encoded.z)
    nll = decoder_loss(mu, lv, b.target[:, None, None, None, :]).mean(-1)
    dec_steps = masked_mean(nll, b.mask)
    sess = session_losses(cfg, encoder, encoded.summaries, b.target)
    dec = 0.5 * (dec_steps + sess["decoder_loss_sessions"])
    total = surr - cfg.ent_coef * ent + cfg.metric_coef * sess["metric_loss"] + cfg.decoder_coef * dec
    with torch.no_grad():
        st = {
            "surrogate": surr.detach(),
            "entropy": ent.detach(),
            "approx_kl": approx_kl(logp, b.logp, b.mask),
            "clip_fraction": clip_fraction(logp, b.logp, cfg.clip_eps, b.mask),
            "metric_loss": sess["metric_loss"].detach(),
            "metric_acc": sess["metric_acc"],
            "decoder_loss": dec.detach(),
        }
    return total, st
