"""The training algorithms, one small class each, registered by name.

``algo: NAME`` in a config picks ``ALGORITHMS[NAME]`` and its config dataclass
(``ALGORITHMS[NAME].config_class``, in :mod:`meta_rl.config`). Adding an algorithm is
one subclass of :class:`~meta_rl.algorithms.base.Algorithm`, its config dataclass and
one line here.
"""

from __future__ import annotations

from meta_rl.algorithms.base import Algorithm, Context, TrainingDiverged
from meta_rl.algorithms.derive import derived_config
from meta_rl.algorithms.encoder_maml_ppo import EncoderMAMLPPO
from meta_rl.algorithms.encoder_ppo import EncoderPPO
from meta_rl.algorithms.maml_ppo import MAMLPPO
from meta_rl.algorithms.mamlpp_ppo import MAMLPlusPlusPPO
from meta_rl.algorithms.ppo import PooledPPO
from meta_rl.algorithms.reptile_ppo import ReptilePPO

#: every training algorithm by its ``algo`` name
ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls for cls in (MAMLPPO, PooledPPO, ReptilePPO, MAMLPlusPlusPPO, EncoderPPO, EncoderMAMLPPO)
}

__all__ = [
    "ALGORITHMS",
    "MAMLPPO",
    "Algorithm",
    "Context",
    "MAMLPlusPlusPPO",
    "PooledPPO",
    "ReptilePPO",
    "TrainingDiverged",
    "derived_config",
]
