"""Memory models of SpacedRepetition-v0: forgetting curves and review updates, vectorised.

All times are in **days**. Every model keeps, per item, a *strength* ``S`` (days): the
time scale of its forgetting curve. The recall probability after an *effective*
elapsed time ``e ≥ 0`` (real elapsed time × the student's ``decay`` × the item's
difficulty ``exp(ℓ_i)``, see ``dynamics.py``) is ``p = curve(e / S)``:

=============  ==========================================  ==============================
model          curve ``p(x)``, ``x = e / S``                 reference
=============  ==========================================  ==============================
exponential    ``exp(−x)``                                 Ebbinghaus 1885; Reddy et al. 2016
hlr            ``2^(−x)`` (``S`` is the half-life)          Settles & Meeder 2016
power          ``(1 + x / ψ)^(−ψ)``, ``ψ = 0.5``            Wickelgren 1974; Wixted & Ebbesen 1991
fsrs           ``(1 + F·x)^(−w20)``, ``F = 0.9^(−1/w20) − 1``  FSRS-6 (``fsrs`` 6.3.2)
=============  ==========================================  ==============================

Every curve gives ``p = 1`` at ``x = 0`` and ``0 < p ≤ 1`` for every finite ``x ≥ 0``;
``S`` is kept in ``[S_MIN, S_MAX]`` (``S_MAX_COUNT`` under the count rule) so ``x`` is
never a division by zero. (An item never seen has ``p = 0``; the dynamics handle that,
the curves are only evaluated for seen items.)

**First exposure.** The first presentation of an item is a test the student must fail
(``p = 0``) followed by the answer, which sets the initial strength ``S0`` of the model
(FSRS: the library's first review rated *Again*: ``S = w0``, ``D = D0(1) = w4``).

**Reviews** (later presentations, answered correctly with probability ``p``). A review
strengthens memory more the more has been forgotten (retrieval difficulty ``1 − p``):
the spacing effect. FSRS has this built in (``e^{w10(1−R)} − 1``); for the other three
models we weight each review by ``1 − p`` (the "study-phase retrieval" / desirable
difficulty account, Bjork & Bjork 1992; cf. Pavlik & Anderson 2005). This is our one
deliberate change to the published exponential and HLR models: as published they
count reviews regardless of their timing, so massed drilling (``p ≈ 1``) would be as
good as spacing, contradicting the most robust finding of the memory literature.

* exponential / power: ``ln S ← ln S + (1 − p) · (K · gain if correct else K_FAIL · fail_effect)``.
* hlr: weighted counts ``N⁺ += (1 − p)`` if correct, ``N⁻ += (1 − p)`` if wrong, and
  ``log2 S = θ_b + θ⁺ · gain · (√(1 + N⁺) − 1) + θ⁻ · fail_effect · (√(1 + N⁻) − 1)``
  (the ``√(1 + count)`` features of Settles & Meeder's released code; half-life grows
  with successful and, more slowly, with failed reviews).
* fsrs (rating *Good* if correct, *Again* if wrong; ``R = p``; ``G`` the rating):
  reviews less than one (real) day after the previous one use the short-term
  stability ``S·e^{w17(G − 3 + w18)}·S^{−w19}`` (factor ≥ 1 if correct); later reviews use
  ``S·(1 + gain·e^{w8}·(11 − D)·S^{−w9}·(e^{w10(1−R)} − 1))`` if correct and
  ``min(fail_effect·w11·D^{−w12}·((S + 1)^{w13} − 1)·e^{w14(1−R)}, S / e^{w17·w18})`` if wrong;
  difficulty ``D ← clip(w7·D0(4) + (1 − w7)·(D + (10 − D)·(−w6(G − 3))/9), 1, 10)`` with
  ``D0(G) = w4 − e^{w5(G−1)} + 1``. With ``gain = fail_effect = 1`` this is exactly
  ``fsrs.Scheduler.review_card`` of fsrs 6.3.2 except that ``R`` is evaluated at the
  exact elapsed time (the library rounds down to whole days); the tests check the
  equality on whole-day histories.

``gain`` and ``fail_effect`` are the student's multipliers (population median 1) of the
success and failure effects; in FSRS they scale ``e^{w8}`` and ``w11``.

**Count rule** (``strength_rule="count"``, Reddy, Levine & Dragan 2017, the ``deeptutor``
code): the published models without the spacing weight. exponential / power: ``S0 = 1`` and
``S ← S + (gain if correct else fail_effect)``, i.e. ``S = 1 + number of reviews`` for the
median student (deeptutor's ``EFCEnv``: ``strengths[item] += 1``); hlr: unweighted counts
``N± += 1`` and linear features ``log2 S = θ_b + θ⁺·gain·N⁺ + θ⁻·fail_effect·N⁻`` (deeptutor's
``HLREnv``, see ``settings.REDDY2017_HLR_COEFFICIENTS``). Not defined for fsrs.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

#: bounds of the strength (days); S_MIN equals fsrs.scheduler.STABILITY_MIN
S_MIN = 1e-3
S_MAX = 36500.0
#: upper bound of the strength under strength_rule="count": deeptutor's HLR half-life grows as
#: e^(2·N⁺) unbounded, and with the hour as its time unit S_MAX would cut it after ~6 correct
#: reviews; 1e12 keeps x = e / S away from 0/0 without binding within any course
S_MAX_COUNT = 1e12

#: FSRS-6 default weights w0 … w20, copied from fsrs 6.3.2 (fsrs/scheduler.py, DEFAULT_PARAMETERS);
#: a test checks them against the installed package.
FSRS_VERSION = "6.3.2"
FSRS_DEFAULT_PARAMETERS: tuple[float, ...] = (
    0.212, 1.2931, 2.3065, 8.2956, 6.4133, 0.8334, 3.0194, 0.001, 1.8722, 0.1666, 0.796,
    1.4835, 0.0614, 0.2629, 1.6483, 0.6014, 1.8729, 0.5425, 0.0912, 0.0658, 0.1542,
)  # fmt: skip
FSRS_MIN_DIFFICULTY = 1.0
FSRS_MAX_DIFFICULTY = 10.0

State = dict[str, np.ndarray]
#: per-item state arrays every model carries (unused ones stay at their initial value)
STATE_FIELDS = ("S", "D", "n_plus", "n_minus")


class MemoryModel(ABC):
    """One memory model: a forgetting curve and the review update, on arrays of items."""

    name: ClassVar[str]
    #: strength after the first exposure (days)
    s0: ClassVar[float]
    #: upper bound of the strength (days)
    s_max: float = S_MAX
    #: the state fields :meth:`review` reads or changes; the others keep their initial value
    #: (so a simulator gathers and scatters only these per review)
    fields: ClassVar[tuple[str, ...]] = STATE_FIELDS

    @abstractmethod
    def curve(self, x: np.ndarray) -> np.ndarray:
        """Recall probability at ``x = effective elapsed / S ≥ 0``; in (0, 1], 1 at 0."""

    def curve_of_negated_into(self, y: np.ndarray) -> None:
        """``y ← curve(−y)`` in place, for ``y = −x ≤ 0``: the operations of :meth:`curve` with
        the sign folded in exactly (``exp(−x)`` is ``exp(y)``, ``1 + x/ψ`` is ``1 − y/ψ``), so
        the values are bit-identical to ``curve(x)``; subclasses avoid the temporaries."""
        y[...] = self.curve(-y)

    def recall(self, strength: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
        """Recall probability of seen items after ``elapsed`` effective days (clipped at 0)."""
        x = np.maximum(elapsed, 0.0) / np.clip(strength, S_MIN, self.s_max)
        return np.clip(self.curve(x), 0.0, 1.0)

    def recall_into(
        self, neg_elapsed: np.ndarray, clipped_strength: np.ndarray, upper: np.ndarray
    ) -> np.ndarray:
        """``min(recall(S, e), upper)`` computed in place in ``neg_elapsed = −e`` (which it
        returns), bit-identical to :meth:`recall` for ``upper = 1`` and to ``recall · upper`` for a
        0/1 ``upper`` (``upper = 0``: a card never seen has recall 0). The simulator's recall of
        every card at every step, without temporaries.

        Preconditions, which make the two passes of :meth:`recall` that this skips exact no-ops:
        ``e ≥ 0`` (so ``maximum(e, 0) = e``), and ``clipped_strength`` already clipped to
        ``[S_MIN, s_max]``. Every curve is ≥ 0 and never NaN for ``x ≥ 0``, so ``clip(curve, 0,
        1)`` is ``min(curve, 1)``, and ``min(curve, upper)`` folds in the 0/1 mask.
        """
        np.divide(neg_elapsed, clipped_strength, out=neg_elapsed)  # −x = −e / S exactly
        self.curve_of_negated_into(neg_elapsed)
        return np.minimum(neg_elapsed, upper, out=neg_elapsed)

    def clip_strength(self, strength: np.ndarray) -> np.ndarray:
        """``S`` clipped to ``[S_MIN, s_max]``, as :meth:`recall` uses it."""
        return np.clip(strength, S_MIN, self.s_max)

    def initial_state(self, shape: tuple[int, ...]) -> State:
        """Placeholder state of never-seen items (valid numbers, never used for recall)."""
        return {
            "S": np.full(shape, self.s0),
            "D": np.full(shape, FSRS_DEFAULT_PARAMETERS[4]),
            "n_plus": np.zeros(shape),
            "n_minus": np.zeros(shape),
        }

    def learn(self, shape: tuple[int, ...]) -> State:
        """State right after the first exposure of items."""
        return self.initial_state(shape)

    @abstractmethod
    def review(
        self,
        state: State,
        p: np.ndarray,
        correct: np.ndarray,
        real_elapsed: np.ndarray,
        gain: np.ndarray,
        fail_effect: np.ndarray,
    ) -> State:
        """New state of reviewed items (1-D arrays, one entry per review).

        ``p`` is the recall probability at the review, ``correct`` the answer,
        ``real_elapsed`` the real days since the previous presentation.
        """


STRENGTH_RULES = ("spacing", "count")


def _check_rule(strength_rule: str) -> str:
    if strength_rule not in STRENGTH_RULES:
        raise ValueError(f"strength_rule must be one of {list(STRENGTH_RULES)}, got {strength_rule!r}")
    return strength_rule


class _LogStrengthModel(MemoryModel):
    """Exponential and power models: ``ln S`` grows by ``(1 − p)·κ`` per review (``"spacing"``),
    or ``S`` by ``gain`` / ``fail_effect`` (``"count"``: ``S = 1 + reviews``, Reddy et al. 2017)."""

    s0 = 0.8  # a first exposure alone: p(1 day) = e^(−1/0.8) ≈ 0.29 on the exponential curve
    K = 2.0  # success: reviewing at p = 0.5 multiplies S by e^1
    K_FAIL = 0.5  # a failed review (answer shown) still strengthens, a quarter as much
    #: the count rule's strength after the first exposure (deeptutor: ``strengths = ones``)
    COUNT_S0 = 1.0
    fields = ("S",)

    def __init__(self, strength_rule: str = "spacing") -> None:
        self.strength_rule = _check_rule(strength_rule)
        if strength_rule == "count":
            self.s0 = self.COUNT_S0  # type: ignore[misc]
            self.s_max = S_MAX_COUNT

    def review(
        self,
        state: State,
        p: np.ndarray,
        correct: np.ndarray,
        real_elapsed: np.ndarray,
        gain: np.ndarray,
        fail_effect: np.ndarray,
    ) -> State:
        out = dict(state)
        if self.strength_rule == "count":
            out["S"] = np.clip(state["S"] + np.where(correct, gain, fail_effect), S_MIN, self.s_max)
            return out
        kappa = np.where(correct, self.K * gain, self.K_FAIL * fail_effect)
        log_s = np.log(np.clip(state["S"], S_MIN, S_MAX)) + kappa * (1.0 - p)
        out["S"] = np.exp(np.clip(log_s, math.log(S_MIN), math.log(S_MAX)))
        return out


class ExponentialModel(_LogStrengthModel):
    """``p = exp(−e / S)``."""

    name = "exponential"

    def curve(self, x: np.ndarray) -> np.ndarray:
        return np.exp(-x)

    def curve_of_negated_into(self, y: np.ndarray) -> None:
        np.exp(y, out=y)


class PowerModel(_LogStrengthModel):
    """``p = (1 + e / (ψ S))^(−ψ)``: heavier tail than the exponential (→ it as ψ → ∞)."""

    name = "power"
    PSI = 0.5

    def curve(self, x: np.ndarray) -> np.ndarray:
        return (1.0 + x / self.PSI) ** (-self.PSI)

    def curve_of_negated_into(self, y: np.ndarray) -> None:
        np.divide(y, self.PSI, out=y)  # −x/ψ
        np.subtract(1.0, y, out=y)  # 1 + x/ψ
        np.power(y, -self.PSI, out=y)


class HalfLifeRegressionModel(MemoryModel):
    """``p = 2^(−e / h)`` with the half-life ``h = S`` a log-linear function of review counts.

    ``coefficients=(θ_b, θ⁺, θ⁻)`` replaces the class constants below; ``strength_rule="count"``
    uses unweighted counts and linear features (see the module docstring).
    """

    name = "hlr"
    THETA_B = -1.0  # log2 of the half-life after the first exposure: 0.5 days
    THETA_PLUS = 5.0  # log2 half-life per unit of √(1 + N⁺) (three full successes: ×32)
    THETA_MINUS = 1.5  # failed reviews grow the half-life less than a third as fast
    s0 = 2.0**THETA_B
    fields = ("S", "n_plus", "n_minus")  # S is recomputed from the counts

    def __init__(
        self, strength_rule: str = "spacing", coefficients: tuple[float, float, float] | None = None
    ) -> None:
        self.strength_rule = _check_rule(strength_rule)
        if strength_rule == "count":
            self.s_max = S_MAX_COUNT
        if coefficients is not None:
            vals = tuple(float(c) for c in coefficients)
            if len(vals) != 3 or not all(math.isfinite(c) for c in vals):
                raise ValueError(f"hlr_coefficients must be 3 finite numbers, got {coefficients!r}")
            self.THETA_B, self.THETA_PLUS, self.THETA_MINUS = vals  # type: ignore[misc]
            self.s0 = float(np.clip(2.0**self.THETA_B, S_MIN, self.s_max))  # type: ignore[misc]

    def _feature(self, count: np.ndarray) -> np.ndarray:
        return count if self.strength_rule == "count" else np.sqrt(1.0 + count) - 1.0

    def curve(self, x: np.ndarray) -> np.ndarray:
        return np.exp2(-x)

    def curve_of_negated_into(self, y: np.ndarray) -> None:
        np.exp2(y, out=y)

    def half_life(
        self, n_plus: np.ndarray, n_minus: np.ndarray, gain: np.ndarray, fail: np.ndarray
    ) -> np.ndarray:
        """``h = 2^(θ_b + θ⁺·gain·f(N⁺) + θ⁻·fail·f(N⁻))``, clipped to [S_MIN, s_max], with
        ``f(N) = √(1 + N) − 1`` (``"spacing"``) or ``f(N) = N`` (``"count"``)."""
        log2_h = (
            self.THETA_B
            + self.THETA_PLUS * gain * self._feature(n_plus)
            + self.THETA_MINUS * fail * self._feature(n_minus)
        )
        return np.exp2(np.clip(log2_h, math.log2(S_MIN), math.log2(self.s_max)))

    def review(
        self,
        state: State,
        p: np.ndarray,
        correct: np.ndarray,
        real_elapsed: np.ndarray,
        gain: np.ndarray,
        fail_effect: np.ndarray,
    ) -> State:
        w = np.ones_like(p) if self.strength_rule == "count" else 1.0 - p
        out = dict(state)
        out["n_plus"] = state["n_plus"] + np.where(correct, w, 0.0)
        out["n_minus"] = state["n_minus"] + np.where(correct, 0.0, w)
        out["S"] = self.half_life(out["n_plus"], out["n_minus"], gain, fail_effect)
        return out


class FSRSModel(MemoryModel):
    """FSRS-6 (Ye et al.; open-spaced-repetition), default weights of fsrs 6.3.2."""

    name = "fsrs"
    fields = ("S", "D")

    def __init__(self, parameters: tuple[float, ...] = FSRS_DEFAULT_PARAMETERS) -> None:
        self.w = w = tuple(float(x) for x in parameters)
        self.decay = -w[20]
        self.factor = 0.9 ** (1.0 / self.decay) - 1.0

    @property
    def s0(self) -> float:  # type: ignore[override]
        return self.w[0]

    def curve(self, x: np.ndarray) -> np.ndarray:
        return (1.0 + self.factor * x) ** self.decay

    def curve_of_negated_into(self, y: np.ndarray) -> None:
        np.multiply(self.factor, y, out=y)  # −F·x
        np.subtract(1.0, y, out=y)  # 1 + F·x
        np.power(y, self.decay, out=y)

    def initial_difficulty(self, rating: int | np.ndarray) -> np.ndarray | float:
        """``D0(G) = w4 − e^{w5(G − 1)} + 1`` (unclamped)."""
        return self.w[4] - np.exp(self.w[5] * (np.asarray(rating, dtype=np.float64) - 1.0)) + 1.0

    def learn(self, shape: tuple[int, ...]) -> State:
        state = self.initial_state(shape)
        state["S"] = np.full(shape, max(self.w[0], S_MIN))  # first review rated Again: S = w0
        state["D"] = np.full(
            shape, np.clip(self.initial_difficulty(1), FSRS_MIN_DIFFICULTY, FSRS_MAX_DIFFICULTY)
        )
        return state

    def review(
        self,
        state: State,
        p: np.ndarray,
        correct: np.ndarray,
        real_elapsed: np.ndarray,
        gain: np.ndarray,
        fail_effect: np.ndarray,
    ) -> State:
        w = self.w
        s = np.clip(state["S"], S_MIN, S_MAX)
        d = state["D"]
        r = p
        g = np.where(correct, 3.0, 1.0)  # Good / Again

        short = s * np.exp(w[17] * (g - 3.0 + w[18])) * s ** (-w[19])
        short = np.where(correct, np.maximum(short, s), short)  # library: increase ≥ 1 for G ≥ 2
        recall_s = s * (1.0 + gain * math.exp(w[8]) * (11.0 - d) * s ** (-w[9]) * np.expm1(w[10] * (1.0 - r)))
        forget_s = np.minimum(
            fail_effect * w[11] * d ** (-w[12]) * ((s + 1.0) ** w[13] - 1.0) * np.exp(w[14] * (1.0 - r)),
            s / math.exp(w[17] * w[18]),
        )
        long = np.where(correct, recall_s, forget_s)
        new_s = np.where(real_elapsed < 1.0, short, long)

        delta = -w[6] * (g - 3.0)
        d_damped = d + (10.0 - d) * delta / 9.0
        new_d = w[7] * self.initial_difficulty(4) + (1.0 - w[7]) * d_damped

        out = dict(state)
        out["S"] = np.clip(new_s, S_MIN, S_MAX)
        out["D"] = np.clip(new_d, FSRS_MIN_DIFFICULTY, FSRS_MAX_DIFFICULTY)
        return out


MODELS: dict[str, type[MemoryModel]] = {
    m.name: m for m in (ExponentialModel, HalfLifeRegressionModel, PowerModel, FSRSModel)
}
MEMORY_MODELS: tuple[str, ...] = tuple(MODELS)


def make_model(
    name: str, strength_rule: str = "spacing", hlr_coefficients: tuple[float, float, float] | None = None
) -> MemoryModel:
    """The memory model called ``name`` (one of :data:`MEMORY_MODELS`), with the review rule
    ``strength_rule`` (``"spacing"``, the default, or ``"count"``) and, for ``"hlr"``, the
    coefficients ``(θ_b, θ⁺, θ⁻)`` (``None``: the class constants)."""
    if name not in MODELS:
        raise ValueError(f"memory_model must be one of {list(MEMORY_MODELS)}, got {name!r}")
    _check_rule(strength_rule)
    if hlr_coefficients is not None and name != "hlr":
        raise ValueError(f"hlr_coefficients apply to memory_model='hlr' only, got memory_model={name!r}")
    if name == "fsrs":
        if strength_rule != "spacing":
            raise ValueError("strength_rule='count' is not defined for memory_model='fsrs'")
        return FSRSModel()
    if name == "hlr":
        return HalfLifeRegressionModel(strength_rule, hlr_coefficients)
    return MODELS[name](strength_rule)
