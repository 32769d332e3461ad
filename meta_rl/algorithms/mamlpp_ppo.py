"""MAML++ over PPO (``algo: mamlpp_ppo``; Antoniou, Edwards & Storkey 2019, "How to
train your MAML"): MAML-PPO (:mod:`meta_rl.algorithms.maml_ppo`) with four of
MAML++'s fixes, each a config switch (all off: exactly MAML-PPO; the defaults, chosen on
SkillGraph-v0 val students, keep the multi-step loss and derivative-order annealing and
use Meta-SGD rates instead of LSLR, without the cosine schedule — docs/algorithms.md):

* **multi-step loss** (``multi_step_loss``): the outer objective is
  ``J_MSL(θ) = Σ_{k=1}^{K} w_k(t) J_k(θ)``, ``J_k`` the PPO objective of ``θ_i^k(θ)`` on
  the rollouts ``D^k`` sampled with it (:func:`meta_rl.maml.multi_step_meta_loss`); the
  weights anneal from uniform to the last step over ``msl_anneal_iterations``
  (:func:`meta_rl.maml.multi_step_weights`). Every step's parameters get a direct
  learning signal early on, which stabilises training with several inner steps.
* **per-layer, per-step learnable inner step sizes** (``lslr``): one scalar
  ``α_{l,k}`` per parameter tensor ``l`` and inner step ``k``, learned with ``θ``
  (``θ_i^{k+1} = θ_i^k − α_{·,k} ⊙ ∇L_inner``). Meta-SGD learns one rate per parameter
  *element*, shared by all steps: ``|θ|`` rates against LSLR's ``K · n_tensors``.
  At test time steps beyond the ``K`` trained ones reuse step ``K``'s rates.
* **derivative-order annealing** (``first_order_iterations = N``): first-order
  meta-gradients (FOMAML, ``dθ'/dθ ≈ I``) for iterations ``t < N``, the full second
  order afterwards; cheap, stable early training, then the exact gradient.
* **cosine annealing of the outer learning rate** (``cosine_outer_lr``)::

      η_t = η_min + ½ (η_0 − η_min) (1 + cos(π t / T)),   T = n_iterations

MAML++'s per-step batch normalisation (BNRS/BNWB) does not apply: these policies have
no batch normalisation. Iterations are counted from the start of the run (pooled
``pretrain_iterations`` included). The rollouts and the budget are MAML-PPO's:
``D^0 … D^K`` are collected anyway, so the multi-step loss needs no extra env steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from meta_rl.algorithms.base import select
from meta_rl.algorithms.maml_ppo import MAMLPPO
from meta_rl.config import MAMLPlusPlusPPOConfig
from meta_rl.maml import LearningRate, OuterSettings, StepData, multi_step_meta_loss, multi_step_weights


def cosine_lr(lr: float, lr_min: float, iteration: int, n_iterations: int) -> float:
    """``η_min + ½ (η_0 − η_min)(1 + cos(π t / T))`` (module docstring)."""
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * iteration / n_iterations))


class MAMLPlusPlusPPO(MAMLPPO):
    """MAML++-PPO (module docstring)."""

    name = "mamlpp_ppo"
    config_class = MAMLPlusPlusPPOConfig
    cfg: MAMLPlusPlusPPOConfig
    extra_columns = ("outer_lr_now", "first_order_now", "msl_weight_last")

    def initial_lr(self) -> LearningRate:
        cfg = self.cfg
        if not cfg.lslr:
            return super().initial_lr()
        first = {k: float(cfg.inner_lr) for k in self.theta}
        if cfg.item_bias_lr > 0:
            first["item_bias"] = float(cfg.item_bias_lr)
        return tuple(
            {k: torch.tensor(first[k], dtype=v.dtype).requires_grad_(True) for k, v in self.theta.items()}
            for _ in range(cfg.inner_steps)
        )

    def outer_at(self, it: int) -> OuterSettings:
        """The meta-objective's settings at iteration ``it``: first order while
        ``it < first_order_iterations`` (derivative-order annealing), then as configured."""
        first_order = self.cfg.first_order or it < self.cfg.first_order_iterations
        return replace(self.outer_settings(), first_order=first_order)

    def weights(self, it: int) -> list[float]:
        """The multi-step loss weights of iteration ``it`` (last step only when off)."""
        k = self.cfg.inner_steps
        if not self.cfg.multi_step_loss:
            return [0.0] * (k - 1) + [1.0]
        return multi_step_weights(k, it, self.cfg.msl_anneal_iterations)

    def iteration(self, it: int) -> dict[str, Any]:
        cfg = self.cfg
        lr = (
            cosine_lr(cfg.outer_lr, cfg.outer_lr_min, it, cfg.n_iterations)
            if cfg.cosine_outer_lr
            else cfg.outer_lr
        )
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.outer = self.outer_at(it)
        first_order = self.outer.first_order
        self._weights = self.weights(it)
        row = super().iteration(it)
        row["outer_lr_now"] = lr
        row["first_order_now"] = int(first_order)
        row["msl_weight_last"] = self._weights[-1]
        return row

    def meta_loss_fn(self, datas: Sequence[StepData]):
        """The minibatch loss ``J_MSL`` on the tasks ``idx``."""
        weights = self._weights

        def loss_fn(idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
            sub = [select(d, idx, 0) for d in datas]
            return multi_step_meta_loss(self.spec, self.theta, self.inner, sub, weights, self.outer)

        return loss_fn
