"""Encoder-MAML-PPO (``algo: encoder_maml_ppo``): the encoder-conditioned tutor of
:mod:`meta_rl.algorithms.encoder_ppo` is also MAML's initialisation — the embedding ``z``
says who the student probably is, and a gradient step on the student's own sessions refines
the policy network from there.

One iteration (``R = inner_steps + 1`` rounds, the episodes of one MAML-PPO iteration):

1. draw ``meta_batch_size`` students from the ``train`` split;
2. for rounds ``r = 0 … R − 1``: play ``rollouts_per_task`` episodes per student with
   ``θ_i^r`` on ``(observation, z)``, ``z`` pooling the student's earlier rounds and the
   running session's steps (as encoder-PPO); then, before the next round, the inner step
   ``θ_i^{r+1} = θ_i^r − α ⊙ ∇_θ L_inner(θ_i^r; round r, z)`` (:func:`meta_rl.maml.inner_step`
   with the embeddings the tutor acted on held fixed: :class:`meta_rl.maml.StepData` carries
   them as the network's conditioning);
3. ``outer_epochs`` × ``n_minibatches`` Adam steps on

   ``L = (1/N) Σ_r Σ_{t ∈ round r} ℓ_clip(θ_i^r(θ); t) − c_H H + c_m L_proto + c_d L_dec``

   with ``θ_i^r(θ)`` recomputed from the stored rounds in every step, so the gradient flows
   through the inner steps (second order unless ``first_order``), ``z`` recomputed from the
   stored sessions (``end_to_end``: PPO's gradient reaches the encoder through the ``z`` of
   the clipped surrogate; the inner steps see ``z`` detached), ``N`` the valid steps of all
   rounds, and the encoder's prototypical and decoder losses as in encoder-PPO. Unlike
   MAML-PPO's meta-objective, round 0 (the tutor before any step, ``k = 0``) is in the
   surrogate too: the encoder tutor's strength is acting well before any gradient step, and
   a meta-objective on the adapted rounds alone would not keep it.

With ``meta_sgd`` the inner step size ``α`` is one learned rate per element of ``θ`` (Li et
al. 2017), initialised to ``inner_lr``. At test time the tutor adapts like it trained: each
session of context is pooled into ``z`` *and* is one inner step
(:meth:`meta_rl.encoder_tutor.EncoderTutor.context_adaptation_curve`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from meta_rl.algorithms.base import check_finite
from meta_rl.algorithms.encoder_ppo import Batch, EncoderPPO, encode_batch, objective
from meta_rl.algorithms.maml_ppo import adaptation_kl, initial_inner_lr
from meta_rl.config import EncoderMAMLPPOConfig
from meta_rl.encoder import EncoderState, conditioning
from meta_rl.maml import LearningRate, StepData, inner_step, step_logits
from meta_rl.policy import entropy, expand_params, log_prob
from meta_rl.ppo import masked_mean


class EncoderMAMLPPO(EncoderPPO):
    """Encoder-MAML-PPO (module docstring)."""

    name = "encoder_maml_ppo"
    config_class = EncoderMAMLPPOConfig
    cfg: EncoderMAMLPPOConfig

    def initial_lr(self) -> LearningRate:
        return initial_inner_lr(self.cfg, self.theta)

    # ------------------------------------------------------------ iteration
    def iteration(self, it: int) -> dict[str, Any]:
        cfg, spec = self.cfg, self.spec
        n_t, n_e, rounds = cfg.meta_batch_size, cfg.rollouts_per_task, cfg.inner_steps + 1
        env_steps = self.fit_normaliser() if it == 0 else 0
        profiles = self.ctx.dist.sample(n_t, "train", rng=self.rng)
        tutor = self.policy()
        state = EncoderState.empty(n_t, self.espec)
        params = expand_params({k: v.detach() for k, v in self.theta.items()}, n_t)
        inner = self.inner.detached()
        rolls, datas, rets = [], [], []
        for r in range(rounds):
            z_steps: list[Tensor] = []
            roll = tutor.collect(self.ctx.sampler, profiles, n_e, self.next_seed(), state, params, z_steps)
            check_finite(it, "episode return", torch.as_tensor(roll.returns))
            data, ret = tutor.step_data(roll, z_steps)
            rolls.append(roll)
            datas.append(data)
            rets.append(ret)
            if r < rounds - 1:
                params = inner_step(spec, params, data, inner, create_graph=False, step=r)
                state.add_sessions(tutor.summaries(roll), roll.mask.any(-1))
        adapt_kl = adaptation_kl(spec, self.theta, datas[0], params)
        batch = Batch(
            obs=torch.stack([r.obs for r in rolls], 1),
            actions=torch.stack([r.actions for r in rolls], 1),
            rewards=torch.stack([r.rewards for r in rolls], 1),
            mask=torch.stack([r.mask for r in rolls], 1),
            logp=torch.stack([r.logp for r in rolls], 1),
            adv=torch.stack([d.adv for d in datas], 1),
            target=torch.from_numpy(self.env.profile_features(profiles)),
        )
        stats = self.optimise(it, self.loss_fn(batch), n_t, 0, datas, rets)
        row = self.row(it, "encoder_maml", rolls[0], rolls[-1], stats)
        row["adapt_kl"] = adapt_kl
        for k in self.extra_columns:
            row[k] = float(stats.get(k, float("nan")))
        row["_env_steps"] = env_steps + sum(r.env_steps for r in rolls)
        row["_iter_steps"] = row["_env_steps"]
        return row

    def loss_fn(self, batch: Batch) -> Any:
        """The minibatch loss ``L`` (module docstring) of the students ``idx``."""
        cfg, spec = self.cfg, self.spec

        def loss(idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            b = batch.tasks(idx)
            encoded = encode_batch(cfg, self.espec, self.encoder, b)
            z = encoded.z  # (T, R, E, H, z_dim)
            z_pol = z if cfg.end_to_end else z.detach()
            params = expand_params(self.theta, len(idx))
            logps, ents = [], []
            for r in range(b.actions.shape[1]):
                obs = b.obs[:, r, :, :-1]
                bias0, offset = conditioning(spec, self.encoder, obs, z_pol[:, r])
                d = StepData(
                    obs, b.actions[:, r], b.adv[:, r], b.mask[:, r], b.logp[:, r], None, bias0, offset
                )
                logits = step_logits(spec, params, d)
                logps.append(log_prob(spec, logits, d.actions))
                ents.append(entropy(spec, logits))
                if r < b.actions.shape[1] - 1:
                    # the inner step sees z as the tutor did: a constant of the network
                    inner_data = d._replace(
                        bias0=bias0.detach(), logit_offset=None if offset is None else offset.detach()
                    )
                    params = inner_step(spec, params, inner_data, self.inner, not cfg.first_order, step=r)
            ent = masked_mean(torch.stack(ents, 1), b.mask)
            return objective(cfg, self.encoder, b, encoded, torch.stack(logps, 1), ent)

        return loss
