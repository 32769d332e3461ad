"""How much of an encoder tutor's student identification survives reading a response log.

``meta-tutor identify --log`` rebuilds sessions from a log (:mod:`meta_rl.log_sessions`). A log
differs from the tutor's own sessions in two ways: it lacks what the env shows but a log does
not record (hidden rewards, ZPD-v0's response times), and its practice was chosen by another
teacher (here: ``meta-tutor simulate-log``'s random schedule). This script separates the two,
on ``--n`` held-out ``test`` students (profile seed 7), from the *first* session of each:

* ``own``: one episode played by the tutor in the env (what the encoder was trained on);
* ``own_no_reward`` / ``own_no_rt`` / ``own_as_log``: the same episode with its rewards set to 0,
  its response times (ZPD-v0) set to 0, or both — exactly what the log converter would give
  for that episode;
* ``log``: the same students' ``simulate-log`` log (one episode's worth of responses)
  converted by :func:`meta_rl.log_sessions.sessions_from_log`.

For each, the decoder's R² per profile field against the population mean
(:func:`meta_rl.encoder_metrics.decoding_scores`; 0 = no better than the population mean)
and the decoder's mean reported σ (normalised units), which ``identify`` prints as ``±``.

Usage: python benchmarks/identify_from_logs.py --checkpoint RUN [--n 80] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from envs.calibration.logs import read_log, write_csv
from envs.calibration.simulate import simulate_log
from meta_rl.checkpoint import load_policy
from meta_rl.encoder import EncoderState, decode
from meta_rl.encoder_metrics import decoding_scores, embeddings_after
from meta_rl.identify import session_summaries
from meta_rl.log_sessions import converter, sessions_from_log
from meta_rl.sampler import Sampler

SR_GOALS = "MetaTutor/SpacedRepetitionGoals-v0"


def log_summaries(policy, profiles, seed: int) -> torch.Tensor:
    """Summaries ``(T, 1, h)`` of the first session of each student's simulate-log log."""
    env = policy.env
    # simulate-log has no Goals variant: its review log is SpacedRepetition-v0's (same memory)
    sim_id = "MetaTutor/SpacedRepetition-v0" if env.env_id == SR_GOALS else env.env_id
    kwargs = {k: v for k, v in env.env_kwargs.items() if not (env.env_id == SR_GOALS and k == "n_topics")}
    # SkillGraph: rounds of one answer per skill (enough for one session); else responses
    length = -(-env.horizon // env.probe.n_skills) if "SkillGraph" in env.env_id else env.horizon
    header, rows = simulate_log(sim_id, profiles, seed, kwargs, max(length, 1))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        write_csv(path, header, rows)
        histories = sessions_from_log(env, read_log(path, converter(env.env_id).kind))
    return torch.stack([session_summaries(policy, s[:1])[0] for s in histories])[:, None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--n", type=int, default=80)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    policy = load_policy(args.checkpoint)
    env = policy.env
    profiles = env.distribution().sample(args.n, "test", seed=7)
    population = env.profile_features(env.distribution().sample(2000, "train", seed=1)).astype(np.float64)
    roll = policy.collect(
        Sampler(env, policy.spec), profiles, 1, seed=99, state=EncoderState.empty(args.n, policy.espec)
    )
    rewards, obs = roll.rewards.clone(), roll.obs.clone()
    rt = env.probe.layout["response_time"] if env.env_id == "MetaTutor/ZPD-v0" else None

    def variant(zero_reward: bool, zero_rt: bool) -> torch.Tensor:
        roll.rewards.copy_(rewards * (0.0 if zero_reward else 1.0))
        roll.obs.copy_(obs)
        if zero_rt and rt is not None:
            roll.obs[..., rt] = 0.0
        return policy.summaries(roll)

    cases = {
        "own": variant(False, False),
        "own_no_reward": variant(True, False),
        "own_no_rt": variant(False, True),
        "own_as_log": variant(True, True),
        "log": log_summaries(policy, profiles, 7),
    }
    result = {"checkpoint": str(args.checkpoint), "env_id": env.env_id, "n": args.n, "cases": {}}
    for name, summ in cases.items():
        scores = decoding_scores(policy, profiles, summ, [1], population)[1]
        with torch.no_grad():
            _, logvar = decode(policy.encoder, embeddings_after(policy, summ, 1))
        result["cases"][name] = {
            "r2": {f: round(v["r2"], 3) for f, v in scores.items()},
            "mean_sigma": round(float(torch.exp(0.5 * logvar).mean()), 3),
        }
        print(name, json.dumps(result["cases"][name]))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
