"""Functional categorical MLP policies (parameters are a plain dict of tensors).

A policy is described by a :class:`PolicySpec` (observation size, hidden sizes,
activation and the *factorisation* of the discrete action) and evaluated by pure
functions of ``(params, obs)``. Because parameters are just tensors, an adapted
policy θ' = θ − α∇L is just another dict, and the meta-gradient flows through it.

Batched parameters: every function accepts parameters with an optional leading
*task* dimension (``W`` of shape ``(T, out, in)`` instead of ``(out, in)``) together
with observations of shape ``(T, M, obs_dim)``; one batched matmul then evaluates
``T`` different policies at once (the same thing ``torch.func.vmap(functional_call)``
over stacked parameters would compute, without the vmap dispatch overhead).

Action heads: ``action_nvec = (n₁, …, n_F)`` declares that action
``a = Σ_f a_f · Π_{g>f} n_g`` (row-major). The network outputs one logit group
per factor and the factors are independent given the observation:
``log π(a|s) = Σ_f log softmax(z_f)[a_f]``, ``H(π) = Σ_f H(softmax(z_f))``. A *flat*
head is the special case ``action_nvec = (n,)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

Params = dict[str, Tensor]

ACTIVATIONS = ("tanh", "relu")


@dataclass(frozen=True)
class PolicySpec:
    """Architecture of a categorical MLP policy (everything needed to rebuild it)."""

    obs_dim: int
    action_nvec: tuple[int, ...]
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    def __post_init__(self) -> None:
        object.__setattr__(self, "action_nvec", tuple(int(n) for n in self.action_nvec))
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        if self.obs_dim < 1 or not self.action_nvec or min(self.action_nvec) < 1:
            raise ValueError(f"invalid policy dimensions: obs_dim={self.obs_dim}, nvec={self.action_nvec}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def n_actions(self) -> int:
        return math.prod(self.action_nvec)

    @property
    def n_logits(self) -> int:
        return sum(self.action_nvec)

    @property
    def n_layers(self) -> int:
        return len(self.hidden_sizes) + 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PolicySpec:
        return cls(
            obs_dim=int(d["obs_dim"]),
            action_nvec=tuple(d["action_nvec"]),
            hidden_sizes=tuple(d["hidden_sizes"]),
            activation=str(d["activation"]),
        )


def init_params(
    spec: PolicySpec,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    out_dim: int | None = None,
    out_gain: float = 0.01,
) -> Params:
    """Orthogonal initialisation as in PPO implementations (gain √2, output gain ``out_gain``).

    A small output gain makes the initial policy nearly uniform. ``out_dim`` overrides
    the output size (1 gives a value network with the same body).
    """
    sizes = [spec.obs_dim, *spec.hidden_sizes, spec.n_logits if out_dim is None else out_dim]
    params: Params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        w = torch.empty(n_out, n_in, dtype=dtype)
        torch.nn.init.orthogonal_(w, gain=out_gain if last else math.sqrt(2.0), generator=generator)
        params[f"l{i}.weight"] = w
        params[f"l{i}.bias"] = torch.zeros(n_out, dtype=dtype)
    return params


def mlp(spec: PolicySpec, params: Mapping[str, Tensor], obs: Tensor) -> Tensor:
    """Network output for ``obs`` of shape ``(..., M, obs_dim)``.

    With batched parameters (leading task dim ``T``) ``obs`` must be ``(T, M, obs_dim)``.
    """
    act = torch.tanh if spec.activation == "tanh" else torch.relu
    x = obs.to(params["l0.weight"].dtype)
    n = spec.n_layers
    for i in range(n):
        w, b = params[f"l{i}.weight"], params[f"l{i}.bias"]
        x = torch.matmul(x, w.transpose(-1, -2)) + b.unsqueeze(-2)
        if i < n - 1:
            x = act(x)
    return x


def _groups(spec: PolicySpec, logits: Tensor) -> tuple[Tensor, ...]:
    return torch.split(logits, list(spec.action_nvec), dim=-1)


def _strides(spec: PolicySpec) -> list[int]:
    strides, s = [], 1
    for n in reversed(spec.action_nvec):
        strides.append(s)
        s *= n
    return strides[::-1]


def factor_actions(spec: PolicySpec, actions: Tensor) -> list[Tensor]:
    """Split joint actions into one index per factor (row-major)."""
    return [(actions // s) % n for s, n in zip(_strides(spec), spec.action_nvec)]


def log_prob(spec: PolicySpec, logits: Tensor, actions: Tensor) -> Tensor:
    """``log π(a|s)``: the sum of the factors' log-probabilities."""
    out = torch.zeros(actions.shape, dtype=logits.dtype, device=logits.device)
    for z, a in zip(_groups(spec, logits), factor_actions(spec, actions)):
        out = out + torch.log_softmax(z, dim=-1).gather(-1, a.unsqueeze(-1)).squeeze(-1)
    return out


def entropy(spec: PolicySpec, logits: Tensor) -> Tensor:
    """Entropy of the joint action distribution (sum over independent factors)."""
    out = torch.zeros(logits.shape[:-1], dtype=logits.dtype, device=logits.device)
    for z in _groups(spec, logits):
        lp = torch.log_softmax(z, dim=-1)
        out = out - (lp.exp() * lp).sum(-1)
    return out


def kl_divergence(spec: PolicySpec, logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """``KL(p ‖ q)`` of the joint distributions (sum over factors)."""
    out = torch.zeros(logits_p.shape[:-1], dtype=logits_p.dtype, device=logits_p.device)
    for zp, zq in zip(_groups(spec, logits_p), _groups(spec, logits_q)):
        lp, lq = torch.log_softmax(zp, dim=-1), torch.log_softmax(zq, dim=-1)
        out = out + (lp.exp() * (lp - lq)).sum(-1)
    return out


def sample(spec: PolicySpec, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw joint actions (Gumbel-max per factor; reproducible with ``generator``)."""
    action = torch.zeros(logits.shape[:-1], dtype=torch.int64, device=logits.device)
    for z, s in zip(_groups(spec, logits), _strides(spec)):
        u = torch.rand(z.shape, generator=generator, dtype=torch.float64, device=z.device)
        gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
        action = action + s * torch.argmax(z.double() + gumbel, dim=-1)
    return action


def mode(spec: PolicySpec, logits: Tensor) -> Tensor:
    """Most likely joint action (the factors are independent, so argmax per factor)."""
    action = torch.zeros(logits.shape[:-1], dtype=torch.int64, device=logits.device)
    for z, s in zip(_groups(spec, logits), _strides(spec)):
        action = action + s * torch.argmax(z, dim=-1)
    return action


def expand_params(params: Mapping[str, Tensor], n_tasks: int) -> Params:
    """``T`` copies of unbatched parameters as a (differentiable) expanded view.

    The gradient of ``Σ_i L_i(θ_i)`` with respect to the expanded tensor holds the
    per-task gradients ``∇L_i`` in row ``i`` — one backward pass for all tasks,
    second order included.
    """
    return {k: v.unsqueeze(0).expand(n_tasks, *v.shape) for k, v in params.items()}


def is_batched(params: Mapping[str, Tensor]) -> bool:
    return params["l0.weight"].dim() == 3
