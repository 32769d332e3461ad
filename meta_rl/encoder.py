"""A metric-based student encoder: what a tutor has seen of one student → an embedding ``z``.

Functional like :mod:`meta_rl.policy`: the parameters are a plain dict of tensors and every
function is a pure, batched function of ``(params, data)`` (any leading batch dims: students,
sessions, episodes). It never reads the student's profile: its only inputs are what a real
tutor observes — observations, its own teaching actions and the rewards (answers).

Per step ``s`` of a session (an episode) the transition
``x_s = [o_s, onehot(a_s), r_s · onehot(a_s), r_s, o_{s+1}]`` (the action one-hot per factor
of the env's ``action_nvec``; the product says which action earned the reward, e.g. which
content type taught a skill, without the MLP having to learn the product) is encoded by a
small MLP, and the raw transition is kept beside it,
``φ(x_s) = [x_s, tanh(W₂ tanh(W₁ x_s + b₁) + b₂)]``: the means of the raw features are simple
sufficient statistics (e.g. the rate at which each content type was followed by a gain), which
a freshly initialised MLP otherwise buries under noise. Then

* the **current session** is summarised causally by the running mean of the transitions seen
  so far, ``m_t = (1/t) Σ_{s<t} φ(x_s)`` (``m_0 = 0``): before acting at step ``t`` the tutor
  knows exactly the transitions ``s < t``;
* an **earlier session** ``j`` is summarised by the mean over its ``L_j`` steps,
  ``e_j = (1/L_j) Σ_s φ(x_s)``, and earlier sessions are pooled order-invariantly by their
  mean ``c = (1/n) Σ_j e_j`` (``c = 0`` when ``n = 0``);
* ``z = ρ([ĉ, m̂_t, n/(n + N₀), t/(t + N₀)])``, ``ρ`` a one-hidden-layer MLP and ``N₀ = 10``
  (bounded count features, so that more context than seen in training extrapolates gently),
  where ``ĉ = (c − μ)/σ`` (0 when ``n = 0``) and ``m̂_t`` likewise are standardised with the
  mean and standard deviation of single-session summaries, fitted once on the initial tutor's
  sessions (:func:`fit_normaliser`; fixed afterwards, stored with the parameters as
  ``norm.mean`` and ``norm.std``). What tells students apart is a small between-student
  part of each summary, buried under session-to-session noise; unstandardised, ``ρ`` would
  need weights far larger than its initialisation to see it.

So ``z`` exists from the first step of the first session (``n = 0, t = 0``: the population
prior) and sharpens with every step and every session, at a constant cost per step online
(a running sum and a count per student; :class:`EncoderState`).

The tutor acts on ``(o_t, z)``: ``z`` enters the policy network's first layer as an offset
``W_z z`` (:func:`meta_rl.policy.mlp`'s ``bias0``, the same network as one over ``[o_t, z]``);
an item-wise policy can add the item term ``x_jᵀ U z`` to each item's logit
(``z_item_logits``, :func:`conditioned_logits`).
The decoder head ``(μ, log σ²) = D(z)`` predicts the normalised profile
(:meth:`meta_rl.envspec.EnvSpec.profile_features`) with a per-field uncertainty; it is trained
with the simulator's profiles (training only) and read by :mod:`meta_rl.identify`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from meta_rl.policy import PolicySpec, factor_actions, item_inputs, mlp

Params = dict[str, Tensor]

#: scale of the bounded count features ``n / (n + N₀)`` and ``t / (t + N₀)``
COUNT_SCALE = 10.0
#: the decoder's log-variance is kept in this range (σ from 0.007 to 7 on [0, 1] features)
LOGVAR_RANGE = (-10.0, 4.0)


@dataclass(frozen=True)
class EncoderSpec:
    """Architecture of a student encoder (everything needed to rebuild it)."""

    obs_dim: int
    action_nvec: tuple[int, ...]
    #: width of the normalised profile the decoder predicts (``EnvSpec.profile_dim``)
    profile_dim: int
    #: width of the policy's first hidden layer, which ``z`` offsets
    cond_dim: int
    hidden: int = 64
    z_dim: int = 8
    #: the transition includes the reward (``False``: ``r`` is replaced by 0 everywhere in
    #: ``x``, for tutors whose deployment sees answers but not the simulator's reward)
    reads_reward: bool = True
    #: item-wise policies: width ``F`` of one item's own observation features; ``> 0`` adds
    #: the item term ``x_jᵀ U z`` to item ``j``'s logit (``U`` = ``cond.item``, ``(F, z_dim)``,
    #: zero at the start; :func:`conditioned_logits`). 0: no item term
    item_features: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "action_nvec", tuple(int(n) for n in self.action_nvec))
        for name in ("obs_dim", "profile_dim", "cond_dim", "hidden", "z_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"encoder {name} must be >= 1, got {getattr(self, name)}")
        if not self.action_nvec or min(self.action_nvec) < 1:
            raise ValueError(f"invalid encoder action_nvec {self.action_nvec}")
        if int(self.item_features) < 0:
            raise ValueError(f"encoder item_features must be >= 0, got {self.item_features}")

    @property
    def summary_dim(self) -> int:
        """Width of ``φ(x)`` (raw transition and its MLP encoding) and of every pooled summary."""
        return self.feature_dim + self.hidden

    @property
    def feature_dim(self) -> int:
        """Width of one transition ``[o_s, onehot(a_s), r_s · onehot(a_s), r_s, o_{s+1}]``."""
        return 2 * self.obs_dim + 2 * sum(self.action_nvec) + 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["action_nvec"] = list(self.action_nvec)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EncoderSpec:
        return cls(
            obs_dim=int(d["obs_dim"]),
            action_nvec=tuple(d["action_nvec"]),
            profile_dim=int(d["profile_dim"]),
            cond_dim=int(d["cond_dim"]),
            hidden=int(d["hidden"]),
            z_dim=int(d["z_dim"]),
            reads_reward=bool(d.get("reads_reward", True)),
            # absent in encoders saved before the item term existed
            item_features=int(d.get("item_features", 0)),
        )


def encoder_spec(
    policy: PolicySpec,
    profile_dim: int,
    hidden: int = 64,
    z_dim: int = 8,
    reads_reward: bool = True,
    item_logits: bool = False,
) -> EncoderSpec:
    """The encoder for a policy of spec ``policy`` (its observation, actions, first layer);
    ``item_logits`` adds the item term of :func:`conditioned_logits` (item-wise policies)."""
    if item_logits and not policy.itemwise:
        raise ValueError("the encoder's item term (z_item_logits) needs an item-wise policy")
    item_features = len(policy.item_cols[0]) if item_logits else 0
    return EncoderSpec(
        policy.obs_dim,
        policy.action_nvec,
        profile_dim,
        policy.hidden_sizes[0],
        hidden,
        z_dim,
        reads_reward,
        item_features,
    )


def _layers(spec: EncoderSpec) -> dict[str, tuple[int, int, float]]:
    """``name -> (out, in, orthogonal gain)`` of every weight matrix."""
    h, z = spec.hidden, spec.z_dim
    return {
        "phi.l0": (h, spec.feature_dim, math.sqrt(2.0)),
        "phi.l1": (h, h, math.sqrt(2.0)),
        "rho.l0": (h, 2 * spec.summary_dim + 2, math.sqrt(2.0)),
        "rho.l1": (z, h, 1.0),
        "cond": (spec.cond_dim, z, 1.0),
        "dec.l0": (h, z, math.sqrt(2.0)),
        "dec.l1": (2 * spec.profile_dim, h, 1.0),
    }


def init_encoder(spec: EncoderSpec, generator: torch.Generator | None = None) -> Params:
    """Orthogonal weights (gain √2 before a tanh), zero biases; ``cond`` has no bias (the
    policy's own first-layer bias plays that role). The item term ``cond.item`` starts at
    zero, so the initial tutor is the one without it (and the other weights are drawn
    exactly as without it)."""
    params: Params = {
        "norm.mean": torch.zeros(spec.summary_dim),
        "norm.std": torch.ones(spec.summary_dim),
    }
    for name, (n_out, n_in, gain) in _layers(spec).items():
        w = torch.empty(n_out, n_in)
        torch.nn.init.orthogonal_(w, gain=gain, generator=generator)
        params[f"{name}.weight"] = w
        if name != "cond":
            params[f"{name}.bias"] = torch.zeros(n_out)
    if spec.item_features:
        params["cond.item"] = torch.zeros(spec.item_features, spec.z_dim)
    return params


def param_shapes(spec: EncoderSpec) -> dict[str, tuple[int, ...]]:
    """The name and shape of every encoder parameter (without allocating them)."""
    out: dict[str, tuple[int, ...]] = {"norm.mean": (spec.summary_dim,), "norm.std": (spec.summary_dim,)}
    for name, (n_out, n_in, _) in _layers(spec).items():
        out[f"{name}.weight"] = (n_out, n_in)
        if name != "cond":
            out[f"{name}.bias"] = (n_out,)
    if spec.item_features:
        out["cond.item"] = (spec.item_features, spec.z_dim)
    return out


def check_params(spec: EncoderSpec, params: Mapping[str, Any]) -> None:
    """``ValueError`` naming the first encoder tensor that is missing, extra, ill-shaped or not finite."""
    expected = param_shapes(spec)
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(
            f"encoder parameters do not match the encoder spec: missing {missing}, unexpected {extra}"
        )
    for k, shape in expected.items():
        v = params[k]
        if not isinstance(v, Tensor) or not v.is_floating_point():
            raise ValueError(f"encoder[{k!r}] must be a floating-point tensor, got {type(v).__name__}")
        if tuple(v.shape) != shape:
            raise ValueError(f"encoder[{k!r}] has shape {list(v.shape)}, expected {list(shape)}")
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"encoder[{k!r}] holds NaN or infinite values")


def _linear(params: Mapping[str, Tensor], name: str, x: Tensor) -> Tensor:
    out = x @ params[f"{name}.weight"].T
    bias = params.get(f"{name}.bias")
    return out if bias is None else out + bias


# ------------------------------------------------------------------ transitions
def transition_features(
    spec: EncoderSpec, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor
) -> Tensor:
    """``x_s = [o_s, onehot(a_s), r_s · onehot(a_s), r_s, o_{s+1}]`` (one-hot per action factor),
    shape ``(..., feature_dim)``."""
    r = rewards.float().unsqueeze(-1)
    if not spec.reads_reward:
        r = torch.zeros_like(r)
    hot = [
        torch.nn.functional.one_hot(a, n).float()
        for a, n in zip(factor_actions(spec, actions.long()), spec.action_nvec)  # type: ignore[arg-type]
    ]
    parts = [obs.float(), *hot, *(h * r for h in hot), r, next_obs.float()]
    return torch.cat(parts, dim=-1)


def phi(params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Per-transition encoding ``φ(x) = [x, tanh(W₂ tanh(W₁ x + b₁) + b₂)]``, shape ``(..., f + h)``."""
    return torch.cat([x, torch.tanh(_linear(params, "phi.l1", torch.tanh(_linear(params, "phi.l0", x))))], -1)


def episode_encodings(
    spec: EncoderSpec, params: Mapping[str, Tensor], obs: Tensor, actions: Tensor, rewards: Tensor
) -> Tensor:
    """``φ(x_s)`` of every step of padded episodes: ``obs (..., H + 1, d)``, ``actions`` and
    ``rewards (..., H)`` → ``(..., H, f + h)`` (padding steps are encoded too; mask them)."""
    x = transition_features(spec, obs[..., :-1, :], actions, rewards, obs[..., 1:, :])
    return phi(params, x)


def session_summary(enc: Tensor, mask: Tensor) -> Tensor:
    """``e = (1/L) Σ_s φ(x_s)`` over the valid steps of each session: ``(..., H, h) → (..., h)``."""
    m = mask.to(enc.dtype).unsqueeze(-1)
    return (enc * m).sum(-2) / m.sum(-2).clamp_min(1.0)


def causal_mean(enc: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Running mean of the steps *before* ``t``, ``m_t = (1/t) Σ_{s<t} φ(x_s)`` (``m_0 = 0``), and
    the count ``t`` of valid steps before ``t``: ``(..., H, f + h)``, ``(..., H)``."""
    m = mask.to(enc.dtype)
    sums = torch.cumsum(enc * m.unsqueeze(-1), dim=-2) - enc * m.unsqueeze(-1)
    counts = torch.cumsum(m, dim=-1) - m
    return sums / counts.clamp_min(1.0).unsqueeze(-1), counts


def pool(summaries: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Order-invariant pooling of earlier sessions: the mean ``c`` of the session summaries
    ``(..., S, h)`` over the valid ones (``valid (..., S)``, default all) and their count ``n``."""
    if valid is None:
        valid = torch.ones(summaries.shape[:-1], dtype=torch.bool)
    v = valid.to(summaries.dtype)
    n = v.sum(-1)
    return (summaries * v.unsqueeze(-1)).sum(-2) / n.clamp_min(1.0).unsqueeze(-1), n


def embed(params: Mapping[str, Tensor], ctx: Tensor, n_ctx: Tensor, cur: Tensor, n_cur: Tensor) -> Tensor:
    """``z = ρ([c, m_t, n/(n + N₀), t/(t + N₀)])`` (module docstring); broadcasts over leading dims."""
    n_ctx, n_cur = n_ctx.to(ctx.dtype), n_cur.to(ctx.dtype)
    mean, std = params["norm.mean"], params["norm.std"]
    ctx = torch.where(n_ctx.unsqueeze(-1) > 0, (ctx - mean) / std, 0.0)
    cur = torch.where(n_cur.unsqueeze(-1) > 0, (cur - mean) / std, 0.0)
    shape = torch.broadcast_shapes(ctx.shape[:-1], cur.shape[:-1], n_ctx.shape, n_cur.shape)
    parts = [
        ctx.expand(*shape, ctx.shape[-1]),
        cur.expand(*shape, cur.shape[-1]),
        (n_ctx / (n_ctx + COUNT_SCALE)).expand(shape).unsqueeze(-1),
        (n_cur / (n_cur + COUNT_SCALE)).expand(shape).unsqueeze(-1),
    ]
    return _linear(params, "rho.l1", torch.tanh(_linear(params, "rho.l0", torch.cat(parts, dim=-1))))


#: smallest standard deviation :func:`fit_normaliser` divides by (a feature that never moved
#: while fitting must not blow up once the tutor's behaviour changes)
MIN_STD = 1e-2


def fit_normaliser(params: Params, summaries: Tensor) -> None:
    """Set ``norm.mean`` and ``norm.std`` (in place) to the mean and standard deviation, per
    feature, of the session summaries ``(..., summary_dim)`` (std at least :data:`MIN_STD`)."""
    flat = summaries.reshape(-1, summaries.shape[-1]).detach()
    with torch.no_grad():
        params["norm.mean"].copy_(flat.mean(0))
        params["norm.std"].copy_(flat.std(0, correction=0).clamp_min(MIN_STD))


def decode(params: Mapping[str, Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    """The profile estimate from ``z``: mean ``μ`` and log-variance ``log σ²`` of every
    normalised profile feature, each ``(..., profile_dim)``."""
    out = _linear(params, "dec.l1", torch.tanh(_linear(params, "dec.l0", z)))
    mu, logvar = out.chunk(2, dim=-1)
    return mu, logvar.clamp(*LOGVAR_RANGE)


def gaussian_nll(mu: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """``½ (log σ² + (y − μ)² / σ²)`` per feature (the constant ``½ log 2π`` dropped)."""
    return 0.5 * (logvar + (target - mu) ** 2 * torch.exp(-logvar))


def decoder_loss(mu: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """``(y − μ)² + NLL(sg(μ), log σ²; y)`` per feature: the mean is fitted by squared error and
    the variance by the Gaussian NLL around the (stopped-gradient) mean. Fitting both by the
    NLL alone scales the mean's gradient by ``1/σ²``, which early in training (large ``σ``)
    lets the encoder collapse ``z`` to a constant before it carries anything."""
    return (target - mu) ** 2 + gaussian_nll(mu.detach(), logvar, target)


def metric_distance(a: Tensor, b: Tensor) -> Tensor:
    """Squared distance of the L2-normalised embeddings, ``‖â − b̂‖² = 2 − 2 cos(a, b)``: the
    metric the prototypical loss trains (scale-free, so shrinking ``z`` cannot lower the loss)."""
    na = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    nb = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return ((na - nb) ** 2).sum(-1)


def conditioned_logits(
    policy: PolicySpec, theta: Mapping[str, Tensor], params: Mapping[str, Tensor], obs: Tensor, z: Tensor
) -> Tensor:
    """Logits of the tutor on ``(o_t, z)``: the policy network with ``W_z z`` added to its first
    layer's pre-activation. ``obs (..., M, d)`` and ``z (..., M, z_dim)``.

    With the item term (``cond.item`` = ``U``, an item-wise policy) item ``j``'s logit also
    gains ``x_jᵀ U z``, ``x_j`` the item's own observation features: the offset ``W_z z`` is
    the same for every item, so without this term the network can favour particular items
    (say, the cards of the student's goal chapter, which ``x_j`` names) only through the
    nonlinear interplay of that offset with each item's features in the hidden units.
    """
    bias0, offset = conditioning(policy, params, obs, z)
    logits = mlp(policy, theta, obs, bias0=bias0)
    return logits if offset is None else logits + offset


def conditioning(
    policy: PolicySpec, params: Mapping[str, Tensor], obs: Tensor, z: Tensor
) -> tuple[Tensor, Tensor | None]:
    """What ``z`` adds to the policy network ``θ`` in :func:`conditioned_logits`: the first
    layer's offset ``W_z z`` ``(..., M, hidden)`` and, with the item term, the logits' offset
    ``x_jᵀ U z`` ``(..., M, K)`` (else ``None``). Neither depends on ``θ``: a gradient step on
    ``θ`` with ``z`` fixed treats them as constants (:class:`meta_rl.maml.StepData`)."""
    bias0 = z @ params["cond.weight"].T
    if "cond.item" not in params:
        return bias0, None
    u_z = params["cond.item"] @ z.unsqueeze(-1)  # (..., M, F, 1)
    return bias0, (item_inputs(policy, obs) @ u_z).squeeze(-1)


def prototypical_loss(queries: Tensor, prototypes: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Prototypical (InfoNCE) loss of ``queries (T, Q, z)`` against one prototype per student
    ``(T, z)``: ``−log softmax_j(−‖q_i − p_j‖² / τ)[i]`` averaged over queries, and the accuracy
    of the nearest prototype. Two stretches of the same student are positives, every other
    student of the batch a negative."""
    d2 = ((queries.unsqueeze(-2) - prototypes) ** 2).sum(-1)  # (T, Q, T)
    logits = -d2 / temperature
    target = torch.arange(queries.shape[0]).unsqueeze(1).expand(queries.shape[:2])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    acc = (logits.argmax(-1) == target).float().mean()
    return loss, acc


# ------------------------------------------------------------------ online state
@dataclass
class EncoderState:
    """What the encoder keeps per student online: the sum and count of earlier sessions'
    summaries, and the running sum and count of the current session's transitions.
    Every field has a leading batch dim ``(N, …)``; updates cost the same at every step."""

    ctx_sum: Tensor  # (N, h)
    n_ctx: Tensor  # (N,)
    cur_sum: Tensor  # (N, h)
    n_cur: Tensor  # (N,)

    @classmethod
    def empty(cls, n: int, spec: EncoderSpec) -> EncoderState:
        w = spec.summary_dim
        return cls(torch.zeros(n, w), torch.zeros(n), torch.zeros(n, w), torch.zeros(n))

    def z(self, params: Mapping[str, Tensor]) -> Tensor:
        """The current embedding ``(N, z_dim)``."""
        ctx = self.ctx_sum / self.n_ctx.clamp_min(1.0).unsqueeze(-1)
        cur = self.cur_sum / self.n_cur.clamp_min(1.0).unsqueeze(-1)
        return embed(params, ctx, self.n_ctx, cur, self.n_cur)

    def add_steps(self, enc: Tensor, active: Tensor) -> None:
        """Add one transition's ``φ (N, h)`` to the current session of the ``active`` students."""
        a = active.to(enc.dtype)
        self.cur_sum = self.cur_sum + enc * a.unsqueeze(-1)
        self.n_cur = self.n_cur + a

    def end_session(self) -> None:
        """Pool the current session (if it has a step) into the earlier sessions; start a new one."""
        had = (self.n_cur > 0).to(self.cur_sum.dtype)
        self.ctx_sum = self.ctx_sum + had.unsqueeze(-1) * self.cur_sum / self.n_cur.clamp_min(1.0).unsqueeze(
            -1
        )
        self.n_ctx = self.n_ctx + had
        self.cur_sum = torch.zeros_like(self.cur_sum)
        self.n_cur = torch.zeros_like(self.n_cur)

    def add_sessions(self, summaries: Tensor, valid: Tensor | None = None) -> None:
        """Pool finished sessions ``(N, S, h)`` (their summaries :func:`session_summary`) at once."""
        if valid is None:
            valid = torch.ones(summaries.shape[:-1], dtype=torch.bool)
        v = valid.to(summaries.dtype)
        self.ctx_sum = self.ctx_sum + (summaries * v.unsqueeze(-1)).sum(-2)
        self.n_ctx = self.n_ctx + v.sum(-1)

    def expand_to(self, per: int) -> EncoderState:
        """Each student's state repeated for ``per`` parallel sessions (rows ``i·per + j``),
        with an empty current session."""
        h = self.ctx_sum.shape[-1]
        n = self.ctx_sum.shape[0] * per
        return EncoderState(
            self.ctx_sum.repeat_interleave(per, 0),
            self.n_ctx.repeat_interleave(per, 0),
            torch.zeros(n, h),
            torch.zeros(n),
        )
