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

Item-wise policies (``item_cols`` set): when the action picks one of ``K`` items and
the observation holds the same ``F`` features for every item (e.g. a flash-card app:
time since each card was shown, times shown, last answer), one small MLP scores every
item from ``[its F features, the mean of the F features over items, the G global
features]`` and ``logit_i`` is that score. The policy is permutation-equivariant:
what is learnt about one card applies to every card, which an MLP over the
concatenated observation has to learn ``K`` times over. The value network of an
item-wise spec averages the per-item outputs (permutation-invariant).
"""

from __future__ import annotations

import functools
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
    #: item-wise architecture: observation columns of each item's features, ``(K, F)``;
    #: empty for a plain MLP over the whole observation
    item_cols: tuple[tuple[int, ...], ...] = ()
    #: item-wise architecture: observation columns shared by all items
    global_cols: tuple[int, ...] = ()
    #: item-wise architecture: add a learnable logit offset per item (parameter
    #: ``item_bias``), the one card-specific part an inner step can adapt
    item_bias: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "action_nvec", tuple(int(n) for n in self.action_nvec))
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        object.__setattr__(self, "item_cols", tuple(tuple(int(c) for c in row) for row in self.item_cols))
        object.__setattr__(self, "global_cols", tuple(int(c) for c in self.global_cols))
        if self.obs_dim < 1 or not self.action_nvec or min(self.action_nvec) < 1:
            raise ValueError(f"invalid policy dimensions: obs_dim={self.obs_dim}, nvec={self.action_nvec}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        if self.itemwise:
            widths = {len(row) for row in self.item_cols}
            cols = [c for row in self.item_cols for c in row] + list(self.global_cols)
            if self.action_nvec != (len(self.item_cols),):
                raise ValueError(
                    f"an item-wise policy needs one action per item: action_nvec {self.action_nvec} "
                    f"but {len(self.item_cols)} items"
                )
            if len(widths) != 1 or 0 in widths:
                raise ValueError("every item needs the same, non-zero number of feature columns")
            if min(cols) < 0 or max(cols) >= self.obs_dim:
                raise ValueError(f"item-wise feature columns must lie in [0, {self.obs_dim})")
            if len(set(cols)) != len(cols):
                raise ValueError(
                    "an observation column may describe one item or be global, not both or twice"
                )
        elif self.global_cols or self.item_bias:
            raise ValueError("global_cols and item_bias are only meaningful with item_cols")

    @property
    def itemwise(self) -> bool:
        return bool(self.item_cols)

    @property
    def input_dim(self) -> int:
        """Input width of the network: the observation, or one item's input (item-wise)."""
        if not self.itemwise:
            return self.obs_dim
        return 2 * len(self.item_cols[0]) + len(self.global_cols)

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
        d["item_cols"] = [list(row) for row in self.item_cols]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PolicySpec:
        return cls(
            obs_dim=int(d["obs_dim"]),
            action_nvec=tuple(d["action_nvec"]),
            hidden_sizes=tuple(d["hidden_sizes"]),
            activation=str(d["activation"]),
            # absent in checkpoints written before item-wise policies existed
            item_cols=tuple(tuple(row) for row in d.get("item_cols", ())),
            global_cols=tuple(d.get("global_cols", ())),
            item_bias=bool(d.get("item_bias", False)),
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
    the output size (1 gives a value network with the same body). An item-wise network
    has one output per item (its logit, or its share of the value).
    """
    policy_head = out_dim is None
    if spec.itemwise:
        if out_dim not in (None, 1):
            raise ValueError(f"an item-wise network has one output per item, not out_dim={out_dim}")
        out_dim = 1
    sizes = [spec.input_dim, *spec.hidden_sizes, spec.n_logits if out_dim is None else out_dim]
    params: Params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        w = torch.empty(n_out, n_in, dtype=dtype)
        torch.nn.init.orthogonal_(w, gain=out_gain if last else math.sqrt(2.0), generator=generator)
        params[f"l{i}.weight"] = w
        params[f"l{i}.bias"] = torch.zeros(n_out, dtype=dtype)
    if spec.item_bias and policy_head:
        params["item_bias"] = torch.zeros(spec.n_actions, dtype=dtype)
    return params


def mlp(spec: PolicySpec, params: Mapping[str, Tensor], obs: Tensor, bias0: Tensor | None = None) -> Tensor:
    """Network output (the logits) for ``obs`` of shape ``(..., M, obs_dim)``.

    With batched parameters (leading task dim ``T``) ``obs`` must be ``(T, M, obs_dim)``.
    ``bias0`` ``(..., M, hidden_sizes[0])``, if given, is added to the first layer's
    pre-activation, ``h₁ = act(W₀ x + b₀ + bias0)``: conditioning on a context vector ``z``
    through ``bias0 = W_z z`` is the same network as one over ``[x, z]`` (used by
    :mod:`meta_rl.encoder`; item-wise: the same offset for every item).
    """
    if not spec.itemwise:
        return _dense(spec, params, obs, bias0)
    return _per_item(spec, params, obs, bias0)


def state_value(spec: PolicySpec, params: Mapping[str, Tensor], obs: Tensor) -> Tensor:
    """Value-network output, shape ``(..., M)`` (parameters from ``init_params(out_dim=1)``)."""
    if not spec.itemwise:
        return _dense(spec, params, obs).squeeze(-1)
    return _per_item(spec, params, obs).mean(-1)


def _per_item(
    spec: PolicySpec, params: Mapping[str, Tensor], obs: Tensor, bias0: Tensor | None = None
) -> Tensor:
    """Item-wise scores ``(..., M, K)``: one shared MLP applied to every item's input."""
    items = item_inputs(spec, obs)  # (..., M, K, F)
    k = items.shape[-2]
    parts = [items, items.mean(-2, keepdim=True).expand_as(items)]
    if spec.global_cols:
        shared = obs[..., _index(spec.global_cols)].unsqueeze(-2)
        parts.append(shared.expand(*items.shape[:-1], shared.shape[-1]))
    x = torch.cat(parts, dim=-1)
    m = x.shape[-3]
    # items become rows, so batched parameters (T, out, in) still see (T, rows, in)
    if bias0 is not None:  # one offset per row, shared by its K items
        bias0 = bias0.unsqueeze(-2).expand(*bias0.shape[:-1], k, bias0.shape[-1])
        bias0 = bias0.reshape(*bias0.shape[:-3], m * k, bias0.shape[-1])
    out = _dense(spec, params, x.reshape(*x.shape[:-3], m * k, x.shape[-1]), bias0)
    out = out.reshape(*x.shape[:-3], m, k)
    if "item_bias" in params:  # (K,), or (T, K) batched over tasks
        out = out + params["item_bias"].unsqueeze(-2)
    return out


def item_inputs(spec: PolicySpec, obs: Tensor) -> Tensor:
    """Each item's own observation columns, ``(..., K, F)`` for ``obs (..., obs_dim)``
    (item-wise policies)."""
    if not spec.itemwise:
        raise ValueError("item_inputs needs an item-wise policy spec")
    return obs[..., _index(spec.item_cols)]


@functools.lru_cache(maxsize=64)
def _index(cols: tuple) -> Tensor:
    return torch.tensor(cols, dtype=torch.int64)


def _dense(
    spec: PolicySpec, params: Mapping[str, Tensor], obs: Tensor, bias0: Tensor | None = None
) -> Tensor:
    act = torch.tanh if spec.activation == "tanh" else torch.relu
    x = obs.to(params["l0.weight"].dtype)
    n = spec.n_layers
    for i in range(n):
        w, b = params[f"l{i}.weight"], params[f"l{i}.bias"]
        x = torch.matmul(x, w.transpose(-1, -2)) + b.unsqueeze(-2)
        if i == 0 and bias0 is not None:
            x = x + bias0
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


def log_softmax_factors(spec: PolicySpec, logits: Tensor) -> list[Tensor]:
    """``log softmax(z_f)`` of every factor's logit group ``z_f`` (the shared first step
    of :func:`log_prob` and :func:`entropy`: compute it once when both are needed)."""
    return [torch.log_softmax(z, dim=-1) for z in _groups(spec, logits)]


def log_prob(spec: PolicySpec, logits: Tensor, actions: Tensor) -> Tensor:
    """``log π(a|s)``: the sum of the factors' log-probabilities."""
    return log_prob_of_factors(log_softmax_factors(spec, logits), factor_actions(spec, actions))


def log_prob_of_factors(log_probs: list[Tensor], factors: list[Tensor]) -> Tensor:
    """``log π(a|s) = Σ_f log softmax(z_f)[a_f]`` from :func:`log_softmax_factors` and the
    actions' factor indices (:func:`factor_actions`); the same operations as :func:`log_prob`."""
    lp0 = log_probs[0]
    out = torch.zeros(factors[0].shape, dtype=lp0.dtype, device=lp0.device)
    for lp, a in zip(log_probs, factors):
        out = out + lp.gather(-1, a.unsqueeze(-1)).squeeze(-1)
    return out


def entropy(spec: PolicySpec, logits: Tensor) -> Tensor:
    """Entropy of the joint action distribution (sum over independent factors)."""
    return entropy_of_factors(log_softmax_factors(spec, logits))


def entropy_of_factors(log_probs: list[Tensor]) -> Tensor:
    """``H = −Σ_f Σ_k p_fk log p_fk`` from :func:`log_softmax_factors` (the same operations
    as :func:`entropy`)."""
    lp0 = log_probs[0]
    out = torch.zeros(lp0.shape[:-1], dtype=lp0.dtype, device=lp0.device)
    for lp in log_probs:
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
    return _draw(spec, logits, generator)[0]


def sample_with_log_prob(
    spec: PolicySpec, logits: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`sample` and :func:`log_prob` of the drawn actions in one pass (the rollout
    hot path): the same draws from ``generator`` and the same values as the two calls,
    without splitting the joint actions back into factors."""
    action, factors = _draw(spec, logits, generator)
    return action, log_prob_of_factors(log_softmax_factors(spec, logits), factors)


def _draw(spec: PolicySpec, logits: Tensor, generator: torch.Generator | None) -> tuple[Tensor, list[Tensor]]:
    """Gumbel-max draws ``a_f = argmax_k(z_fk + g_fk)``, ``g = −log(−log u)``, ``u ~ U(0, 1)``
    in float64 (one ``torch.rand`` call per factor, in factor order): the joint actions
    and the factor indices."""
    action = torch.zeros(logits.shape[:-1], dtype=torch.int64, device=logits.device)
    factors = []
    for z, s in zip(_groups(spec, logits), _strides(spec)):
        u = torch.rand(z.shape, generator=generator, dtype=torch.float64, device=z.device)
        gumbel = u.clamp_min_(1e-300).log_().neg_().log_().neg_()  # in place: same values
        a = torch.argmax(z.double() + gumbel, dim=-1)
        factors.append(a)
        action = action + s * a
    return action, factors


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
