"""Does knowing the student change the best SpacedRepetition schedule? (prints JSON)

Meta-learning can only pay off where the best policy differs between students. This
script measures, for the default SpacedRepetition-v0 population and for variants with
larger differences between students, how much a schedule tuned to *each* student
gains over the best schedule for the whole population:

* ``threshold_fixed`` / ``threshold_per_student``: the observable ``threshold`` tutor
  with its threshold chosen once for the population, or per student;
* ``planner_fixed`` / ``planner_per_student``: the privileged ``planner`` (true memory
  state and profile) with (threshold, final sessions) chosen once, or per student;
* ``threshold`` / ``planner``: their defaults; ``random`` for scale.

Per-student choices are cross-fitted: chosen on ``--select-episodes`` episodes (env
seed 1) and scored on 2 fresh episodes (env seed 2), so the max over the grid does not
inflate them; a choice made from few noisy episodes can miss a student's best setting,
so the per-student figures are what such a choice achieves, a little below what the
student's truly best setting would.
Returns are expected exam scores (the env's default ``recall`` reward).

Usage: python benchmarks/sr_schedule_sensitivity.py [--n 120] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from envs.spaced_repetition.profile import SpacedRepetitionProfile
from envs.tutors import make_tutor
from meta_rl.evaluation.episodes import make_task_env, per_task_mean, run_episodes

ENV = "MetaTutor/SpacedRepetition-v0"
K = 20
EPISODES = 2

#: population variants: standard deviations of the log-multipliers, the per-student item
#: difficulty spread, and optional card types (card i has type i mod T; each student has
#: one log-difficulty per type, plus ``noise`` per card)
VARIANTS = {
    "default": {},
    "decay_sd_1.0": {"decay_sd": 1.0},
    "fail_effect_sd_1.0": {"fail_sd": 1.0},
    "decay_1.0_gain_0.7_fail_1.0": {"decay_sd": 1.0, "gain_sd": 0.7, "fail_sd": 1.0},
    "card_types_2_sd_1.5": {"types": 2, "type_sd": 1.5},
}


def population(seed: int, n: int, decay_sd=0.5, gain_sd=0.35, fail_sd=0.5, types=0, type_sd=0.0):
    """Profiles like ``SpacedRepetitionDistribution`` (train split) with other spreads."""
    rng = np.random.default_rng(seed)
    decay, gain = np.exp(rng.normal(0, decay_sd, n)), np.exp(rng.normal(0, gain_sd, n))
    fail = np.exp(rng.normal(0, fail_sd, n))
    if types:
        tau = rng.normal(0, type_sd, size=(n, types))
        diff = tau[:, np.arange(K) % types] + 0.2 * rng.normal(size=(n, K))
    else:
        diff = rng.uniform(0.2, 0.8, size=(n, 1)) * rng.normal(size=(n, K))
    diff = np.clip(diff, -3.0, 3.0)
    return [
        SpacedRepetitionProfile(
            decay=float(np.clip(decay[i], 0, 100)),
            gain=float(np.clip(gain[i], 0, 10)),
            fail_effect=float(np.clip(fail[i], 0, 10)),
            item_difficulty=tuple(float(x) for x in diff[i]),
        )
        for i in range(n)
    ]


def returns(profiles, tutor: str, env_seed: int, episodes: int = EPISODES, **kwargs) -> np.ndarray:
    """Mean return per student over ``episodes`` episodes."""
    venv = make_task_env(ENV, {}, profiles, episodes)
    t = make_tutor(tutor, venv, seed=0, **kwargs)
    ret, _ = run_episodes(venv, t.act, seed=env_seed, on_reset=t.reset)
    return per_task_mean(ret, len(profiles))


def tuned(profiles, tutor: str, grid: list[dict], select: int) -> tuple[float, float]:
    """(best fixed setting, per-student setting): chosen on env seed 1, scored on seed 2."""
    choose = np.stack([returns(profiles, tutor, 1, select, **g) for g in grid])  # (G, n)
    score = np.stack([returns(profiles, tutor, 2, **g) for g in grid])
    fixed = score[choose.mean(1).argmax()].mean()
    per_student = score[choose.argmax(0), np.arange(len(profiles))].mean()
    return float(fixed), float(per_student)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120, help="students per population")
    ap.add_argument("--select-episodes", type=int, default=10, help="episodes per student to choose on")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    thresholds = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    planner_grid = [
        {"threshold": t, "final_sessions": f} for t, f in itertools.product(thresholds, (1, 2, 3))
    ]
    out = {
        "env_id": ENV,
        "students": args.n,
        "select_episodes": args.select_episodes,
        "score_episodes": EPISODES,
        "variants": {},
    }
    start = time.perf_counter()
    for name, kw in VARIANTS.items():
        profiles = population(0, args.n, **kw)
        row = {t: float(returns(profiles, t, 2).mean()) for t in ("random", "threshold", "planner")}
        row["threshold_fixed"], row["threshold_per_student"] = tuned(
            profiles, "threshold", [{"threshold": t} for t in thresholds], args.select_episodes
        )
        row["planner_fixed"], row["planner_per_student"] = tuned(
            profiles, "planner", planner_grid, args.select_episodes
        )
        out["variants"][name] = {"spreads": kw, **{k: round(v, 4) for k, v in row.items()}}
    out["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
