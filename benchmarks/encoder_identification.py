"""An encoder tutor (algo encoder_ppo) in the evaluation protocol, and how well it identifies students.

Measures, on the held-out students ``meta-tutor evaluate`` uses (``--split test --n N``,
profile seed 0, evaluation seed 0, ``rollouts_per_step`` episodes per adaptation step, 10
evaluation episodes; the same students and env seeds as every evaluated method):

* the adaptation curve: mean return after ``k = 0 … K`` steps of context (no gradient step),
  and the same curve with every student's context taken from another student (if it does not
  drop, the tutor does not act on what the context says about the student; on
  SpacedRepetitionGoals-v0 split by whether the other student has the same goal);
* the ranking AUC of same-student vs different-student pairs (:func:`meta_rl.encoder_metrics.pair_auc`)
  for single episodes and for blocks of ``rollouts_per_step`` episodes (one adaptation step);
* profile decoding (:func:`meta_rl.encoder_metrics.decoding_scores`): R² per field against the
  population mean, and arg-max accuracy of vector fields (SkillGraph's preferred content type),
  after 1 episode and after 1 and 3 adaptation steps;
* whether the data carry it at all: SkillGraph's preferred content type from a hand-made
  statistic of the same sessions (per content type, the rate of gains after teaching with it);
* the probe "does z carry it but the policy ignore it?": a ridge regression from the pooled
  session summaries (the encoder's input to ``ρ``) to the profile, fitted on ``train`` students,
  gives the decodability of the same data by a linear read-out.

Usage: python benchmarks/encoder_identification.py --checkpoint RUN [--n 80] [--steps 3] [--split test]
       [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
from meta_rl.adaptation import adaptation_curve
from meta_rl.checkpoint import load_policy
from meta_rl.encoder import embed
from meta_rl.encoder_metrics import decoding_scores, pair_auc, play_sessions, single_session_embeddings
from meta_rl.encoder_tutor import EncoderTutor


def block_embeddings(policy: EncoderTutor, summaries: torch.Tensor, block: int) -> np.ndarray:
    """``z`` of consecutive blocks of ``block`` sessions, each pooled alone: ``(T, S // block, z)``."""
    t, s, w = summaries.shape
    b = summaries[:, : s // block * block].reshape(t, s // block, block, w).mean(2)
    with torch.no_grad():
        n = torch.full(b.shape[:2], float(block))
        return embed(policy.encoder, b, n, torch.zeros_like(b), torch.zeros_like(n)).numpy()


def ridge_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, lam: float = 1e-3
) -> np.ndarray:
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a = np.c_[(x_train - mu) / sd, np.ones(len(x_train))]
    w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ y_train)
    return np.c_[(x_test - mu) / sd, np.ones(len(x_test))] @ w


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--n", type=int, default=80)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument(
        "--split", default="test", choices=["val", "test", "ood"], help="held-out students (default: test)"
    )
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    pol = load_policy(args.checkpoint)
    if not isinstance(pol, EncoderTutor):
        raise SystemExit(f"{args.checkpoint} is not an encoder tutor")
    env, e = pol.env, pol.rollouts_per_step
    profiles = envs.sample_profiles(env.env_id, args.n, split=args.split, seed=0, **dict(env.env_kwargs))
    res = adaptation_curve(pol, profiles, args.steps, e, eval_episodes=10, seed=0)
    out: dict[str, Any] = {"checkpoint": str(args.checkpoint), "n": args.n, "rollouts_per_step": e}
    out["return"] = [float(x) for x in res.mean_returns()]
    # does the tutor act on the context? the same curve with every student's earlier sessions
    # taken from the next student (its running session stays its own)
    next_student = np.roll(np.arange(args.n), -1)
    swapped = pol.context_adaptation_curve(
        profiles, args.steps, e, eval_episodes=10, seed=0, context_from=next_student
    )
    out["return_context_of_next_student"] = [float(x) for x in swapped.mean_returns()]
    profs = env.coerce(profiles)
    if all(hasattr(pr, "goal") for pr in profs):  # SpacedRepetitionGoals: does it act on the goal?
        goals = np.array([np.asarray(pr.goal, dtype=float) for pr in profs])
        same = (goals == goals[next_student]).all(1)
        share = "goal_review_share"
        out["context_swap_by_goal"] = {
            name: {
                "students": int(m.sum()),
                "return_own_context": [float(x) for x in res.returns[m].mean(0)],
                "return_swapped_context": [float(x) for x in swapped.returns[m].mean(0)],
                f"{share}_own_context": [float(x) for x in res.metrics[share][m].mean(0)],
                f"{share}_swapped_context": [float(x) for x in swapped.metrics[share][m].mean(0)],
            }
            for name, m in (("same_goal", same), ("other_goal", ~same))
        }
    summ = play_sessions(pol, profs, args.steps * e, seed=1)
    out["auc_single_episode"] = pair_auc(single_session_embeddings(pol, summ))
    out["auc_one_step_blocks"] = pair_auc(block_embeddings(pol, summ, e))
    population = env.profile_features(env.distribution().sample(5000, "train", seed=11))
    counts = [1, e, args.steps * e]
    out["decoding"] = {str(k): v for k, v in decoding_scores(pol, profs, summ, counts, population).items()}
    # linear probe of the same pooled summaries (fitted on train students, scored on the test ones)
    train = env.distribution().sample(300, "train", seed=12)
    s_train = play_sessions(pol, train, e, seed=2).mean(1).numpy()
    pred = ridge_probe(s_train, env.profile_features(train), summ[:, :e].mean(1).numpy())
    y = env.profile_features(profs)
    sst = ((y - population.mean(0)) ** 2).sum(0)
    out["ridge_probe_one_step_r2_per_feature"] = [float(v) for v in 1 - ((pred - y) ** 2).sum(0) / sst]
    c = env.probe.n_content if hasattr(env.probe, "n_content") else None
    if c is not None:
        k = env.probe.n_skills
        sl = slice(k, k + c)  # content_affinity follows learn (n_skills columns)
        out["ridge_probe_one_step_content_argmax_acc"] = float(
            (pred[:, sl].argmax(1) == y[:, sl].argmax(1)).mean()
        )
        # a hand-made statistic of the same sessions: per content type, the rate at which teaching
        # with it was followed by a gain (raw transition features are the first columns of the
        # summaries: [o, onehot(skill), onehot(mode), r*onehot(skill), r*onehot(mode), r, o'])
        d = env.obs_dim
        hot = slice(d + k, d + k + c)
        rew = slice(d + 2 * k + c + 1, d + 2 * k + 2 * c + 1)
        for name, n in (("one_episode", 1), ("one_step", e), ("all_steps", args.steps * e)):
            m = summ[:, :n].mean(1).numpy()
            rate = m[:, rew] / np.maximum(m[:, hot], 1e-9)
            out[f"hand_statistic_content_argmax_acc_{name}"] = float(
                (rate.argmax(1) == y[:, sl].argmax(1)).mean()
            )
    out["seconds"] = time.time() - t0
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
