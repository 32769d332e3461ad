"""Would SkillGraph's belief planner gain from quizzing? (prints JSON)

``belief_planner`` (knows the profile, tracks the mastery with the exact filter) never
quizzes: a quiz teaches nothing. This script tries the obvious information-gathering
variant — quiz the skill the planner would teach when its posterior mastery lies in a
band ``[lo, hi]``, else teach it — for 12 bands, on the evaluation's setting (4 skills in
a chain, 3 content types, horizon 30), 200 students × 10 episodes of the ``val`` and
``ood`` splits; the same students and env seeds for every variant.

Usage: python benchmarks/belief_planner_quizzing.py [--n 200] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import envs
from envs.skill_graph.tutors import BeliefPlannerTutor
from envs.tutors import register_tutor
from meta_rl.evaluation.heuristics import evaluate_tutor

ENV_ID = "MetaTutor/SkillGraph-v0"
KW = {"n_skills": 4, "n_content": 3, "horizon": 30, "prerequisites": "chain"}
BANDS = [(lo, hi) for lo in (0.2, 0.35, 0.5, 0.65) for hi in (0.8, 0.9, 0.97)]


class QuizBandPlanner(BeliefPlannerTutor):
    """The belief planner, but it quizzes its target skill while ``lo ≤ P(mastered) ≤ hi``."""

    name = "belief_planner_quiz_band"

    def __init__(self, env: Any, seed: int | None = 0, lo: float = 0.5, hi: float = 0.9) -> None:
        super().__init__(env, seed)
        self.lo, self.hi = lo, hi

    def _act(self, obs: np.ndarray) -> np.ndarray:
        action = super()._act(obs)
        skill = action // (self.c + 1)
        mastered = self.filter.marginals(self.belief)[np.arange(len(action)), skill]
        quiz = (mastered >= self.lo) & (mastered <= self.hi)
        action = np.where(quiz, skill * (self.c + 1) + self.c, action)
        self.last_action = action.astype(np.int64)
        return action


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="students per split")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    t0 = time.time()
    out: dict[str, Any] = {"env_id": ENV_ID, "env_kwargs": KW, "students": args.n, "episodes": 10}
    out["splits"] = {}
    for split in ("val", "ood"):
        profiles = envs.sample_profiles(ENV_ID, args.n, split=split, seed=5, **KW)
        row = {"no_quiz": float(evaluate_tutor("belief_planner", ENV_ID, KW, profiles, 10, 0)[0].mean())}
        for lo, hi in BANDS:
            register_tutor(ENV_ID, QuizBandPlanner.name, functools.partial(QuizBandPlanner, lo=lo, hi=hi))
            ret = evaluate_tutor(QuizBandPlanner.name, ENV_ID, KW, profiles, 10, 0)[0]
            row[f"quiz_band_{lo}_{hi}"] = float(ret.mean())
        best = max((k for k in row if k != "no_quiz"), key=row.get)
        out["splits"][split] = {
            "returns": {k: round(v, 4) for k, v in row.items()},
            "best_band": best,
            "best_band_minus_no_quiz": round(row[best] - row["no_quiz"], 4),
        }
    out["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
