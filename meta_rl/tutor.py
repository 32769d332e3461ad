"""A trained tutor: policy parameters plus everything needed to use and adapt them.

:class:`TutorPolicy` bundles the network (:class:`~meta_rl.policy.PolicySpec` and
parameters), the env it belongs to (:class:`~meta_rl.envspec.EnvSpec`: env id,
env arguments, observation transform) and the inner-update settings with which it
is adapted to a new student (step size or learned Meta-SGD step sizes, objective,
advantage estimation). Checkpoints and exports store exactly this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from envs.profiles import StudentProfile
from meta_rl.envspec import EnvSpec
from meta_rl.maml import InnerUpdate, LearningRate
from meta_rl.policy import PolicySpec, init_params, log_prob, mlp, mode, sample

POLICY_FORMAT = "meta-tutor-policy"
POLICY_VERSION = 1


@dataclass(frozen=True)
class AdvantageSettings:
    """How advantages are estimated for an inner update."""

    gamma: float = 0.99
    gae_lambda: float = 0.95
    baseline: str = "linear"
    normalize: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TutorPolicy:
    """A tutoring policy ready to act and to adapt (see the module docstring).

    ``profile`` is set on a policy personalised for one student; a *privileged*
    policy needs it to build its observations.
    """

    spec: PolicySpec
    env: EnvSpec
    params: dict[str, Tensor]
    inner: InnerUpdate = field(default_factory=InnerUpdate)
    advantage: AdvantageSettings = field(default_factory=AdvantageSettings)
    rollouts_per_step: int = 20
    value_params: dict[str, Tensor] | None = None
    algo: str = "maml_ppo"
    profile: StudentProfile | None = None
    _gen: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0), repr=False)

    @property
    def inner_lrs(self) -> dict[str, Tensor] | tuple[dict[str, Tensor], ...] | None:
        """The learned inner step sizes of ``inner.lr`` (``None`` for a scalar step size):
        one mapping (Meta-SGD) or one mapping per inner step (LSLR). Read-only view, for
        checkpoints; the step size itself lives in ``inner.lr``."""
        lr = self.inner.lr
        if isinstance(lr, float):
            return None
        if isinstance(lr, tuple):
            return tuple(dict(m) for m in lr)
        return dict(lr)

    def with_inner_lr(self, lr: LearningRate) -> TutorPolicy:
        """A copy whose inner step size is ``lr`` (a scalar or rate tensors)."""
        return replace(self, inner=replace(self.inner, lr=lr))

    def with_params(self, params: Mapping[str, Tensor], profile: StudentProfile | None = None) -> TutorPolicy:
        """A copy with other parameters (e.g. adapted to ``profile``).

        The copy gets its own action generator, starting from the current state of this
        policy's: seeding or acting with one does not affect the other.
        """
        gen = torch.Generator()
        gen.set_state(self._gen.get_state())
        return replace(
            self, params={k: v.detach().clone() for k, v in params.items()}, profile=profile, _gen=gen
        )

    def seed(self, seed: int) -> None:
        """Seed the sampling of :meth:`act`."""
        self._gen.manual_seed(int(seed))

    def observation(self, obs: np.ndarray) -> np.ndarray:
        """Policy input for env observations (appends profile features if privileged)."""
        o = np.asarray(obs, dtype=np.float32)
        if o.ndim not in (1, 2) or o.shape[-1] != self.env.env_obs_dim:
            raise ValueError(self._obs_mismatch(o.shape))
        if not self.env.privileged:
            return o
        if self.profile is None:
            raise ValueError("a privileged policy needs the student's profile (adapt it to a profile first)")
        feats = self.env.profile_features([self.profile])[0]
        return np.concatenate([o, np.broadcast_to(feats, (*o.shape[:-1], len(feats)))], axis=-1)

    def _obs_mismatch(self, shape: tuple[int, ...]) -> str:
        """Which env the policy was trained on, for an observation that does not fit it."""
        return (
            f"observation of shape {tuple(shape)} does not fit this policy: it expects "
            f"({self.env.env_obs_dim},) or (n, {self.env.env_obs_dim}), the observations of "
            f"{self.env.env_id} with env_kwargs {dict(self.env.env_kwargs)}; "
            "build the env with those settings"
        )

    def act(self, obs: np.ndarray, deterministic: bool = False) -> int | np.ndarray:
        """Action(s) for one observation ``(obs_dim,)`` or a batch ``(n, obs_dim)``.

        Actions are sampled from the policy (the way it was trained and evaluated);
        ``deterministic=True`` takes the most likely action instead.
        """
        x = torch.from_numpy(np.ascontiguousarray(self.observation(obs)))
        single = x.dim() == 1
        with torch.no_grad():
            z = mlp(self.spec, self.params, x.reshape(-1, x.shape[-1]))
            a = mode(self.spec, z) if deterministic else sample(self.spec, z, self._gen)
        return int(a[0]) if single else a.numpy()

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        """Probabilities of every joint action, shape ``(n, n_actions)``."""
        x = torch.from_numpy(np.ascontiguousarray(self.observation(obs))).reshape(-1, self.spec.obs_dim)
        with torch.no_grad():
            z = mlp(self.spec, self.params, x)
            a = torch.arange(self.spec.n_actions).expand(len(x), -1)
            lp = log_prob(self.spec, z.unsqueeze(1).expand(-1, self.spec.n_actions, -1), a)
        return lp.exp().numpy()

    # ------------------------------------------------------------ persistence
    def meta(self) -> dict[str, Any]:
        """JSON-ready description (architecture, env, obs transform, inner update)."""
        return {
            "format": POLICY_FORMAT,
            "version": POLICY_VERSION,
            "algo": self.algo,
            "env": self.env.to_dict(),
            "policy": self.spec.to_dict(),
            "inner": self.inner.to_dict(),
            "advantage": self.advantage.to_dict(),
            "rollouts_per_step": self.rollouts_per_step,
            "meta_sgd": isinstance(self.inner_lrs, dict),
            "per_step_lrs": isinstance(self.inner_lrs, tuple),
            "value_net": self.value_params is not None,
            "profile": None if self.profile is None else self.profile.to_dict(),
        }

    @classmethod
    def from_meta(
        cls,
        meta: Mapping[str, Any],
        params: Mapping[str, Tensor],
        inner_lrs: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]] | None = None,
        value_params: Mapping[str, Tensor] | None = None,
    ) -> TutorPolicy:
        if meta.get("format") != POLICY_FORMAT:
            raise ValueError(f"not a meta-tutor policy description (format {meta.get('format')!r})")
        env = EnvSpec.from_dict(meta["env"])
        spec = PolicySpec.from_dict(meta["policy"])
        _check_shapes(spec, params)
        lr: LearningRate = float(meta["inner"]["lr"])
        if isinstance(inner_lrs, Mapping) and inner_lrs:
            _check_shapes(spec, inner_lrs, "Meta-SGD step sizes")
            lr = dict(inner_lrs)
        elif inner_lrs:
            for k, rates in enumerate(inner_lrs):
                _check_shapes(spec, rates, f"per-step step sizes of inner step {k}", scalar=True)
            lr = tuple(dict(m) for m in inner_lrs)
        if value_params:
            _check_shapes(spec, value_params, "value-network parameters", out_dim=1)
        profile = None if meta.get("profile") is None else env.coerce([meta["profile"]])[0]
        return cls(
            spec=spec,
            env=env,
            params=dict(params),
            inner=InnerUpdate(**{**meta["inner"], "lr": lr}),
            advantage=AdvantageSettings(**meta["advantage"]),
            rollouts_per_step=int(meta.get("rollouts_per_step", 20)),
            value_params=None if not value_params else dict(value_params),
            algo=str(meta.get("algo", "maml_ppo")),
            profile=profile,
        )


def _check_shapes(
    spec: PolicySpec,
    params: Mapping[str, Tensor],
    what: str = "parameters",
    out_dim: int | None = None,
    scalar: bool = False,
) -> None:
    expected = {k: () if scalar else tuple(v.shape) for k, v in init_params(spec, out_dim=out_dim).items()}
    got = {k: tuple(v.shape) for k, v in params.items()}
    if expected != got:
        raise ValueError(f"{what} do not match the architecture: expected {expected}, got {got}")
