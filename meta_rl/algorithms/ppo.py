"""Pooled PPO (``algo: ppo``): no meta-learning; the baseline, and with
``privileged: true`` the oracle.

One iteration: one episode from each of ``pooled_episodes`` fresh ``train`` students,
advantages with one baseline and one normalisation over the whole batch, then PPO's
clipped surrogate (:func:`meta_rl.ppo.clipped_surrogate`)::

    L_clip(θ) = −E_t[ min(ρ_t A_t, clip(ρ_t, 1 − ε, 1 + ε) A_t) ] − c_H E_t[H(π_θ(·|s_t))]

for ``outer_epochs`` epochs of ``n_minibatches`` minibatches of episodes (Adam,
gradient clipped to ``max_grad_norm``). The step itself is
:meth:`~meta_rl.algorithms.base.Algorithm.pooled_iteration`, shared with the warm start
of the meta-learners.

Budget: ``pooled_episodes = meta_batch_size · rollouts_per_task · (inner_steps + 1)``
by default, the episodes of one MAML-PPO iteration (matched in episodes, not env
steps; see :attr:`meta_rl.config.TrainConfig.pooled_episodes`).
"""

from __future__ import annotations

from typing import Any

from meta_rl.algorithms.base import Algorithm
from meta_rl.config import PPOConfig


class PooledPPO(Algorithm):
    """Pooled PPO (module docstring)."""

    name = "ppo"
    config_class = PPOConfig

    def iteration(self, it: int) -> dict[str, Any]:
        return self.pooled_iteration(it)
