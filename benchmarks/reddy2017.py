"""Reddy, Levine & Dragan (2017) heuristics table on SpacedRepetition-v0's presets (prints JSON).

Reproduces the comparison of "Accelerating human learning with deep reinforcement learning"
(code: github.com/rddy/deeptutor, ``spaced-repetition.ipynb``) on the presets
``reddy2017-efc`` and ``reddy2017-hlr`` with both rewards, L (``likelihood``) and LL
(``log_likelihood``). As there, each *rep* is one student (a fresh set of 30 item
difficulties) taught for ``--episodes`` episodes of 200 steps by every tutor; an episode's
score is its mean reward per step (deeptutor's ``run_ep``), and a tutor's score in episode
``e`` of rep ``r`` is ``100 · (R − R_random) / |R_random|`` against the random tutor's episode
``e`` of the same rep (deeptutor's "percent better than random"). We report the mean over
all reps × episodes, the standard deviation over them (what deeptutor prints) and the
standard error over reps (each rep's mean is one independent draw).

Tutors (``envs.spaced_repetition.tutors``): ``random``; ``leitner`` and ``sm2`` (day-based
intervals; their interval unit ``day`` is tuned, see below); ``threshold`` (ours: review the
weakest card by the population-median estimate; its threshold has no effect here, every
card being seen); ``threshold_closest`` (deeptutor's rule, the card whose *estimated* recall
is closest to the threshold); ``threshold_oracle`` (deeptutor's tutor proper: the same rule
on the *true* recall, which deeptutor's ``ThresholdTutor`` reads from a copy of the student
model). Like deeptutor, which tunes Leitner's arrival rate and the threshold on the env
before reporting, we tune ``day`` (Leitner, SM-2) and the threshold per preset and reward,
but on separate ``val`` students (``--tune-reps`` × ``--tune-episodes``), not on the
reported episodes. Learned tutors (``--policy NAME=RUN_DIR``, e.g. our MAML-PPO and pooled
PPO runs) are run unadapted (their ``best.pt``, sampling actions) on the same episodes.

Usage (the committed ``benchmarks/results/reddy2017.json``; ~10 min on 2 cores)::

    python benchmarks/reddy2017.py --out benchmarks/results/reddy2017.json \\
        --policy maml_ppo=RUN_DIR --policy pooled_ppo=RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import envs
from envs.spaced_repetition.tutors import OracleThresholdTutor, ThresholdTutor
from envs.tutors import make_tutor
from meta_rl.evaluation.episodes import make_task_env, run_episodes

ENV = "MetaTutor/SpacedRepetition-v0"
PRESETS = ("reddy2017-efc", "reddy2017-hlr")
REWARDS = ("likelihood", "log_likelihood")
HOUR = 1.0 / 24.0
#: tuning grids: interval unit of Leitner / SM-2 (days), thresholds of the threshold rules
DAY_GRID = tuple(5 * HOUR * 2.0**k for k in range(-2, 8))
THRESHOLD_GRID = (0.0, *np.round(np.arange(0.05, 1.0, 0.1), 2).tolist())
#: heuristic tutors and the grid their setting is tuned on ((None,): not tuned)
HEURISTICS = (
    ("leitner", DAY_GRID),
    ("sm2", DAY_GRID),
    ("threshold", (None,)),
    ("threshold_closest", THRESHOLD_GRID),
    ("threshold_oracle", THRESHOLD_GRID),
)


def _tutor(name: str, venv: Any, seed: int, setting: float | None) -> Any:
    if name in ("leitner", "sm2"):
        return make_tutor(name, venv, seed=seed, day=setting)
    if name == "threshold_closest":
        return ThresholdTutor(venv, seed=seed, threshold=setting, rule="closest")
    if name == "threshold_oracle":
        return OracleThresholdTutor(venv, seed=seed, threshold=setting, rule="closest")
    return make_tutor(name, venv, seed=seed)


def scores(
    name: str, kw: dict, profiles: list, episodes: int, seed: int, setting: float | None = None, policy=None
) -> np.ndarray:
    """Mean reward per step of every episode, shape ``(len(profiles), episodes)``."""
    venv = make_task_env(ENV, kw, profiles, episodes)
    if policy is not None:
        policy.seed(seed)
        total, _ = run_episodes(venv, policy.act, seed=seed)
    else:
        tutor = _tutor(name, venv, seed, setting)
        total, _ = run_episodes(venv, tutor.act, seed=seed, on_reset=tutor.reset)
    return total.reshape(len(profiles), episodes) / venv.dynamics.horizon


def tune(name: str, kw: dict, grid: tuple, profiles: list, episodes: int) -> tuple[float, dict]:
    """The grid value of best mean score on the tuning students (seed 1)."""
    means = {float(g): float(scores(name, kw, profiles, episodes, seed=1, setting=g).mean()) for g in grid}
    return max(means, key=means.get), means


def better_than_random(r: np.ndarray, rand: np.ndarray) -> dict[str, float]:
    pct = 100.0 * (r - rand) / np.abs(rand)
    per_rep = pct.mean(axis=1)
    return {
        "mean": float(pct.mean()),
        "sd": float(pct.std()),
        "se_reps": float(per_rep.std(ddof=1) / np.sqrt(len(per_rep))),
        "score": float(r.mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=10, help="students (item sets), deeptutor's n_reps")
    ap.add_argument("--episodes", type=int, default=100, help="episodes per student, deeptutor's n_eps")
    ap.add_argument("--tune-reps", type=int, default=5, help="val students for tuning")
    ap.add_argument("--tune-episodes", type=int, default=10, help="episodes per tuning student")
    ap.add_argument("--policy", action="append", default=[], help="NAME=RUN_DIR of a learned tutor (EFC)")
    ap.add_argument("--out", default="", help="also write the JSON here")
    ap.add_argument(
        "--policies-only",
        action="store_true",
        help="only run the --policy tutors (and random, to pair with) and add them to the --out JSON",
    )
    args = ap.parse_args()
    from meta_rl.checkpoint import load_policy

    policies = {}
    for item in args.policy:
        name, _, path = item.partition("=")
        if not name or not path:
            raise SystemExit(f"--policy must be NAME=RUN_DIR, got {item!r}")
        policies[name] = (path, load_policy(path))
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "command": "python benchmarks/reddy2017.py " + " ".join(f"--policy {p}" for p in args.policy),
        "reps": args.reps,
        "episodes": args.episodes,
        "tune_reps": args.tune_reps,
        "tune_episodes": args.tune_episodes,
        "results": {},
    }
    if args.policies_only:
        if not args.out or not Path(args.out).is_file():
            raise SystemExit("--policies-only needs an existing --out JSON to add to")
        out = json.loads(Path(args.out).read_text())
        if (out["reps"], out["episodes"]) != (args.reps, args.episodes):
            raise SystemExit(f"{args.out} has reps/episodes {out['reps']}/{out['episodes']}")
        out["policy_command"] = "python benchmarks/reddy2017.py --policies-only " + " ".join(
            f"--policy {p}" for p in args.policy
        )
    for preset in PRESETS:
        test = envs.sample_profiles(ENV, args.reps, "test", seed=0, preset=preset)
        val = envs.sample_profiles(ENV, args.tune_reps, "val", seed=0, preset=preset)
        for reward in REWARDS:
            kw = {"preset": preset, "reward_mode": reward}
            rand = scores("random", kw, test, args.episodes, seed=0)
            key = f"{preset}/{reward}"
            if args.policies_only:
                res = out["results"][key]["tutors"]
                tuned = out["results"][key]["tuning"]
            else:
                res = {"random": {"score": float(rand.mean())}}
                tuned = {}
            for name, grid in () if args.policies_only else HEURISTICS:
                setting = None
                if grid != (None,):
                    setting, curve = tune(name, kw, grid, val, args.tune_episodes)
                    tuned[name] = {"chosen": setting, "val_scores": curve}
                r = scores(name, kw, test, args.episodes, seed=0, setting=setting)
                res[name] = better_than_random(r, rand)
            if preset == "reddy2017-efc" and reward == "likelihood":
                for name, (path, pol) in policies.items():
                    r = scores(name, kw, test, args.episodes, seed=0, policy=pol)
                    res[name] = {**better_than_random(r, rand), "run": path}
            out["results"][key] = {"tutors": res, "tuning": tuned}
            print(
                f"{preset} {reward}: " + ", ".join(f"{k} {v.get('mean', 0):+.1f}%" for k, v in res.items()),
                flush=True,
            )
    out["wall_time_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(path)


if __name__ == "__main__":
    main()
