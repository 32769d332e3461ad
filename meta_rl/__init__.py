"""MAML over PPO for tutoring policies that adapt to a new student.

Public API (imported lazily, so ``import meta_rl`` and the CLI stay light)::

    from meta_rl import MAMLPPO, MAMLPPOConfig, PPOConfig, load_config, load_policy, adapt

    cfg = load_config("configs/skill_graph.yaml", ["n_iterations=50"])
    trainer = MAMLPPO(cfg, "runs/demo")          # alias of Trainer; algo: maml_ppo or ppo
    trainer.train()
    tutor = load_policy("runs/demo")             # best checkpoint by validation return
    mine = adapt(tutor, new_student_profile, steps=3, rollouts=20)
    action = mine.act(observation)

* :class:`Trainer` (alias ``MAMLPPO``) – the training loop (:mod:`meta_rl.trainer`).
* :class:`MAMLPPOConfig`, :class:`PPOConfig`, :func:`load_config` – configurations.
* :class:`TutorPolicy` – a trained tutor (network, env, inner-update settings).
* :func:`load_policy`, :func:`export_policy` – checkpoints and safetensors exports.
* :func:`adapt` – personalise a tutor to one student; :func:`adaptation_curve` –
  adapt to many students at once and measure the return after each step.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MAMLPPO": "meta_rl.trainer",
    "Trainer": "meta_rl.trainer",
    "TrainingDiverged": "meta_rl.trainer",
    "MAMLPPOConfig": "meta_rl.config",
    "PPOConfig": "meta_rl.config",
    "TrainConfig": "meta_rl.config",
    "load_config": "meta_rl.config",
    "TutorPolicy": "meta_rl.tutor",
    "load_policy": "meta_rl.checkpoint",
    "export_policy": "meta_rl.checkpoint",
    "adapt": "meta_rl.adaptation",
    "adaptation_curve": "meta_rl.adaptation",
    "AdaptationResult": "meta_rl.adaptation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'meta_rl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
