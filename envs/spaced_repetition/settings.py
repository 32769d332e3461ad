"""Settings of SpacedRepetition-v0 and the published presets (one place for both).

Every keyword argument of the env is a field of :class:`SpacedRepetitionSettings`, with its
default and help text. A *preset* (``gym.make("MetaTutor/SpacedRepetition-v0",
preset="reddy2017-efc")``) is a named set of field values; keyword arguments given with
it override the preset's values, so ``preset="reddy2017-efc", horizon=50`` is the
published setting with a shorter course.

Why a ``preset`` argument rather than extra registered ids: Gymnasium 1.x expresses
variants of one environment as keyword arguments of one id (``LunarLander-v3`` with
``continuous=True``, ``FrozenLake-v1`` with ``map_name="8x8"``, ``CarRacing-v3`` with
``domain_randomize=True``) and keeps ids for the environment and its version; and a
keyword argument travels everywhere ``env_kwargs`` already travel in this package (training
configs, ``--set env_kwargs.preset=…``, profile sampling), where a second id would need its
own family record.

Presets (Reddy, Levine & Dragan 2017, "Accelerating human learning with deep reinforcement
learning", NeurIPS workshop on teaching machines, robots and humans; code:
github.com/rddy/deeptutor, ``spaced-repetition.ipynb``, classes ``StudentEnv``, ``EFCEnv``,
``HLREnv``; values below read from that notebook):

* ``"reddy2017-efc"``: 30 items, 200 steps, 5 time units between steps (``const_delay``);
  exponential forgetting ``p = exp(−θ_j·Δ/s)`` with ``s = 1 + number of reviews`` (every
  review adds 1, whatever its outcome) and ``log θ_j ~ N(log 0.077, 1)``; reward the mean
  recall probability (``reward_func='likelihood'``), measured after the step's delay with the
  reviewed card time-stamped at the end of that delay; every card seen once before the
  course. We take the time unit to be one **hour** (so ``step_gap = 5/24`` days and the
  population's ``decay = 24·0.077``): the model depends on ``θ·Δ`` only, so the unit changes
  nothing but the scale of the observed elapsed times (which saturate at 100 days).
* ``"reddy2017-hlr"``: the same course; ``p = exp(−Δ/h)`` with the log-linear half-life
  ``h = exp(1·n + 1·n⁺ + 0·n⁻ + β_j)``, ``β_j ~ N(0, 1)`` (``sample_loglinear_coeffs``:
  coefficients ``[1, 1, 0]`` on the counts of attempts, correct and incorrect reviews,
  plus one ``N(0, 1)`` coefficient per item). With ``n = n⁺ + n⁻`` and our base-2 half-life
  ``2^(−x)`` this is ``log2 S = log2(ln 2) + (2/ln 2)·n⁺ + (1/ln 2)·n⁻`` and item
  log-difficulty ``ℓ_j = −β_j``; ``decay = 24`` (hours per day).

Differences from deeptutor, all deliberate and small (``docs/spaced_repetition.md``):
deeptutor's reset stores last-review *timestamps* ``exp(N(0, 1))`` at clock 0 (so they lie
in the future; after its first, random step ~5 % of cards have recall > 1) and then takes
one step on a random card before the tutor acts; we draw the *time since* the last review,
``log Δ_j ~ N(log 1 h, 1)``, and let the tutor take all 200 steps. Log-difficulties are
clipped to ±3 (the profile's range; 0.27 % of N(0, 1) draws).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from envs.spaced_repetition.memory_models import STRENGTH_RULES

__all__ = [
    "PRESETS",
    "STRENGTH_RULES",
    "SpacedRepetitionSettings",
    "resolve_settings",
]

MINUTE = 1.0 / 1440.0
HOUR = 1.0 / 24.0

REWARD_MODES = ("recall", "exam", "correct", "likelihood", "log_likelihood")
START_STATES = ("unseen", "seen")
REWARD_TIMINGS = ("next_step", "just_reviewed")
POPULATIONS = ("default", "reddy2017-efc", "reddy2017-hlr")
#: deeptutor's ``_recall_log_likelihoods(eps=1e-9)``: the LL reward is ``log(1e-9 + p)``
LOG_EPS = 1e-9

#: deeptutor's HLR ``[1, 1, 0]`` on (attempts, correct, incorrect), natural-log half-life,
#: as (θ_b, θ⁺, θ⁻) of our ``log2 S = θ_b + θ⁺·n⁺ + θ⁻·n⁻`` with the curve ``2^(−x)``
REDDY2017_HLR_COEFFICIENTS = (math.log2(math.log(2.0)), 2.0 / math.log(2.0), 1.0 / math.log(2.0))


def _f(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class SpacedRepetitionSettings:
    """Keyword arguments of SpacedRepetition-v0 (times in days). Defaults: the package's own
    course; ``PRESETS`` holds the published ones."""

    n_items: int = _f(20, "number of cards (Reddy et al. 2017: 30)")
    horizon: int = _f(100, "presentations per course (Reddy et al. 2017: 200)")
    memory_model: str = _f(
        "exponential", "forgetting curve: exponential, hlr, power or fsrs (memory_models.py)"
    )
    strength_rule: str = _f(
        "spacing",
        "review update: 'spacing' (ln S += (1 − p)·κ from S0 = 0.8; hlr: counts weighted by "
        "1 − p under √(1 + N) features) or 'count' (Reddy et al. 2017: exponential/power "
        "S = 1 + number of reviews, each adding gain if correct, fail_effect if wrong; hlr: "
        "unweighted counts, log2 S = θ_b + θ⁺·gain·N⁺ + θ⁻·fail_effect·N⁻); not for fsrs",
    )
    hlr_coefficients: tuple | None = _f(
        None,
        "hlr only: (θ_b, θ⁺, θ⁻) of the log2 half-life; None = (−1, 5, 1.5), the package's. "
        "Reddy et al. 2017 (with strength_rule='count'): (log2 ln 2, 2/ln 2, 1/ln 2)",
    )
    step_gap: float = _f(MINUTE, "days between presentations in a session (Reddy et al. 2017: 5 h)")
    session_length: int = _f(10, "presentations per session (Reddy et al. 2017: one session, 200)")
    session_gap: float = _f(1.0, "days from the last presentation of a session to the next")
    exam_delay: float = _f(1.0, "days from the last presentation to the exam (Reddy et al. 2017: 5 h)")
    reward_mode: str = _f(
        "recall",
        "recall (change of mean recall: return = expected exam score), exam (sparse), correct, "
        "likelihood (Reddy et al.'s L: mean recall after each step) or log_likelihood (LL: "
        "mean of log(1e-9 + recall) after each step)",
    )
    reward_timing: str = _f(
        "next_step",
        "next_step: a presentation is time-stamped when it is made, and the reward measures "
        "recall at the next presentation; just_reviewed (Reddy et al. 2017): it is time-stamped "
        "at the end of the step's gap, so the step's reward counts the presented card at recall 1",
    )
    start_state: str = _f(
        "unseen",
        "unseen: no card shown yet (recall 0); seen (Reddy et al. 2017): every card presented "
        "once before the course, log(days since) ~ N(start_elapsed_log_mean, start_elapsed_log_sd²)",
    )
    start_elapsed_log_mean: float = _f(
        math.log(HOUR), "start_state='seen': mean of log(days since the pre-course presentation)"
    )
    start_elapsed_log_sd: float = _f(1.0, "start_state='seen': its standard deviation")
    population: str = _f(
        "default",
        "student population drawn at reset (SpacedRepetitionDistribution): default, "
        "reddy2017-efc (decay 24·0.077 per day, log-difficulty ~ N(0, 1)) or reddy2017-hlr "
        "(decay 24, log-difficulty ~ N(0, 1))",
    )


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SpacedRepetitionSettings))

_REDDY2017 = {
    "n_items": 30,
    "horizon": 200,
    "strength_rule": "count",
    "step_gap": 5 * HOUR,
    "session_length": 200,
    "session_gap": 5 * HOUR,
    "exam_delay": 5 * HOUR,
    "reward_mode": "likelihood",
    "reward_timing": "just_reviewed",
    "start_state": "seen",
    "start_elapsed_log_mean": math.log(HOUR),
    "start_elapsed_log_sd": 1.0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "reddy2017-efc": {**_REDDY2017, "memory_model": "exponential", "population": "reddy2017-efc"},
    "reddy2017-hlr": {
        **_REDDY2017,
        "memory_model": "hlr",
        "hlr_coefficients": REDDY2017_HLR_COEFFICIENTS,
        "population": "reddy2017-hlr",
    },
}


def resolve_settings(preset: str | None, overrides: Mapping[str, Any]) -> SpacedRepetitionSettings:
    """Defaults, then the preset's values, then ``overrides`` (clear error on unknown names)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
    unknown = sorted(set(overrides) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"unknown SpacedRepetition argument(s) {unknown}; valid: {sorted(FIELD_NAMES)}")
    values = {**(PRESETS[preset] if preset else {}), **overrides}
    if values.get("hlr_coefficients") is not None:
        coeffs = values["hlr_coefficients"]
        if isinstance(coeffs, (str, bytes)) or not hasattr(coeffs, "__len__") or len(coeffs) != 3:
            raise ValueError(f"hlr_coefficients must be None or 3 numbers (θ_b, θ⁺, θ⁻), got {coeffs!r}")
        values["hlr_coefficients"] = tuple(coeffs)
    return SpacedRepetitionSettings(**values)
