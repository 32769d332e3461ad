"""Response logs → env sessions (meta_rl/log_sessions.py), against the envs themselves.

Reference: students are stepped through the env's own Gym API; their responses are written as
a log in the calibrate formats (by ``meta-tutor simulate-log`` where it covers the family,
else by hand); the converter must give back the env's observations, actions and rewards —
bit for bit except what a log cannot carry (ZPD-v0's response time; SpacedRepetition's
elapsed times go through the log's timestamps, so they agree to float32 rounding)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_ENCODER_SETS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from envs.calibration.logs import KT_COLUMNS, REVIEW_COLUMNS, read_log
from envs.calibration.simulate import simulate_log
from meta_rl.cli import main
from meta_rl.config import load_config
from meta_rl.envspec import EnvSpec
from meta_rl.log_sessions import CONVERTERS, load_log, mapping_note, read_sessions, sessions_from_log
from meta_rl.trainer import Trainer

ZPD = "MetaTutor/ZPD-v0"
SR = "MetaTutor/SpacedRepetition-v0"
SRG = "MetaTutor/SpacedRepetitionGoals-v0"
SG = "MetaTutor/SkillGraph-v0"


def _play(env_id: str, kwargs: dict, profile, seed: int, actions) -> tuple[np.ndarray, list, list]:
    """One episode of the single Gym env: observations (L + 1, d), actions, rewards."""
    env = envs.family(env_id).load("env")(**kwargs)
    obs, _ = env.reset(seed=seed, options={"profile": profile})
    observed, acts, rewards = [obs], [], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(int(a))
        observed.append(obs)
        acts.append(int(a))
        rewards.append(r)
        if term or trunc:
            break
    return np.stack(observed), acts, rewards


def _write(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


# ------------------------------------------------------------------ ZPD-v0
@pytest.mark.parametrize("reward_mode", ["correct", "gain"])
def test_zpd_simulate_log_round_trip(tmp_path: Path, reward_mode: str) -> None:
    """simulate-log's ZPD answers (one episode per student, some quit) read back as the env's
    episodes: every column but the response time exactly, actions, and the answer rewards."""
    kw = {"n_skills": 3, "n_levels": 4, "horizon": 40, "reward_mode": reward_mode}
    profiles = envs.distribution(ZPD, n_skills=3).sample(6, "test", seed=2)
    header, rows = simulate_log(ZPD, profiles, seed=5, env_kwargs=kw, length=40)
    log = read_log(_write(tmp_path / "zpd.csv", header, rows), "kt")
    assert log.names == ("skill_00", "skill_01", "skill_02")  # every skill answered: indices agree
    spec = EnvSpec(ZPD, kw)
    histories = sessions_from_log(spec, log)
    rt = spec.probe.layout["response_time"]
    lengths = []
    for i, sessions in enumerate(histories):
        (s,) = sessions
        obs, acts, rewards = _play(ZPD, kw, profiles[i], 5 + i, s.actions)
        assert len(acts) == len(s.actions)  # the env ends (quits) where the log ends
        lengths.append(len(acts))
        keep = np.arange(obs.shape[1]) != rt
        np.testing.assert_array_equal(s.obs[:, keep], obs[:, keep])
        assert not s.obs[:, rt].any() and obs[1:, rt].all()  # a log has no response times
        np.testing.assert_array_equal(s.actions, acts)
        expected = np.asarray(rewards, dtype=np.float32) if reward_mode == "correct" else 0.0
        np.testing.assert_array_equal(s.rewards, np.zeros(len(acts), np.float32) + expected)
    assert min(lengths) < 40 or reward_mode == "gain"  # a quitting student is covered (seeded)


def test_zpd_sessions_cut_at_the_horizon_and_item_ids_placed_by_difficulty(tmp_path: Path) -> None:
    """Three episodes per student written as one log (item ids not naming levels) are read as
    three sessions, each the env's episode; the items land on their levels by the Rasch fit."""
    kw = {"n_skills": 2, "n_levels": 3, "horizon": 30, "reward_mode": "correct", "quit_threshold": 0.0}
    spec = EnvSpec(ZPD, kw)
    lay = spec.probe.layout
    profiles = envs.distribution(ZPD, n_skills=2).sample(40, "train", seed=1)
    rng = np.random.default_rng(0)
    names = {0: "q-easy", 1: "q-mid", 2: "q-hard"}  # sorted: easy, hard, mid (not level order)
    rows, played = [], []
    for i, p in enumerate(profiles):
        episodes = []
        for e in range(3):
            obs, acts, rewards = _play(ZPD, kw, p, 100 * i + e, rng.integers(0, 6, size=30))
            episodes.append((obs, acts, rewards))
            for t, a in enumerate(acts):
                ok = int(obs[t + 1][lay["last_correct"]])
                rows.append((f"u{i}", f"skill_{a // 3}", names[a % 3], ok, 30 * e + t))
        played.append(episodes)
    log = read_log(_write(tmp_path / "zpd.csv", (*KT_COLUMNS[:2], "item_id", *KT_COLUMNS[2:]), rows), "kt")
    histories = sessions_from_log(spec, log)
    keep = np.arange(spec.probe.obs_dim) != lay["response_time"]
    for sessions, episodes in zip(histories, played):
        assert len(sessions) == 3
        for s, (obs, acts, rewards) in zip(sessions, episodes):
            np.testing.assert_array_equal(s.obs[:, keep], obs[:, keep])
            np.testing.assert_array_equal(s.actions, acts)
            np.testing.assert_array_equal(s.rewards, np.asarray(rewards, dtype=np.float32))


# ------------------------------------------------------------------ SpacedRepetition-v0
def _check_review_session(s, obs, acts, rewards, k: int) -> None:
    np.testing.assert_array_equal(s.actions, acts)
    np.testing.assert_array_equal(s.rewards, np.asarray(rewards, dtype=np.float32))
    np.testing.assert_array_equal(s.obs[:, k:], obs[:, k:])  # counts, answers, topics, time
    # elapsed times come from the log's timestamps (milliseconds): float32 rounding at most (measured
    # bit for bit on 50 simulate-log courses and 120 hand-written sessions of 100 reviews, 20 cards)
    np.testing.assert_allclose(s.obs[:, :k], obs[:, :k], rtol=0, atol=1e-6)


def test_spaced_repetition_simulate_log_round_trip(tmp_path: Path) -> None:
    """meta-tutor simulate-log's review log (one course per student, the env's clock with
    sessions and gaps) read back as the env's episode, the final exam time included."""
    kw = {"n_items": 5, "horizon": 24, "session_length": 8, "reward_mode": "correct"}
    out = tmp_path / "reviews.csv"
    cmd = ["simulate-log", "--env", SR, "--n-students", "4", "--seed", "3", "--split", "test"]
    done = _cli(*cmd, "--length", "24", "--env-kwargs", json.dumps(kw), "--out", str(out))
    assert done.returncode == 0, done.stderr
    profiles = envs.distribution(SR, n_items=5).sample(4, "test", seed=3)
    for i, (s,) in enumerate(read_sessions(EnvSpec(SR, kw), out)):
        obs, acts, rewards = _play(SR, kw, profiles[i], 3 + i, s.actions)
        _check_review_session(s, obs, acts, rewards, 5)


@pytest.mark.parametrize("timing", ["next_step", "just_reviewed"])
def test_spaced_repetition_goals_episodes_round_trip(tmp_path: Path, timing: str) -> None:
    """SpacedRepetitionGoals-v0 (not covered by simulate-log): two episodes per student
    stepped through the env, their reviews written as a review log by hand (answers read off
    the observation, times from the env's clock, a week between courses), read back."""
    kw = {"n_items": 6, "n_topics": 3, "horizon": 12, "session_length": 5, "reward_mode": "correct"}
    kw["reward_timing"] = timing
    spec = EnvSpec(SRG, kw)
    k, times = 6, spec.probe.times
    profiles = envs.distribution(SRG, n_items=6, n_topics=3).sample(3, "test", seed=4)
    rng = np.random.default_rng(1)
    rows, played = [], []
    for i, p in enumerate(profiles):
        episodes = []
        for e in range(2):
            obs, acts, rewards = _play(SRG, kw, p, 10 * i + e, rng.integers(0, k, size=12))
            episodes.append((obs, acts, rewards))
            for t, a in enumerate(acts):
                stamp = round((7.0 * e + times[t]) * 86400.0, 3)
                rows.append((f"u{i}", f"card{a}", stamp, int(obs[t + 1][2 * k + a])))
        played.append(episodes)
    path = _write(tmp_path / "goals.csv", REVIEW_COLUMNS, rows)
    for sessions, episodes in zip(read_sessions(spec, path), played):
        assert len(sessions) == 2
        for s, (obs, acts, rewards) in zip(sessions, episodes):
            _check_review_session(s, obs, acts, rewards, k)


def test_unmappable_review_env_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", REVIEW_COLUMNS, [("u", "a", 0, 0), ("u", "a", 60, 1)])
    with pytest.raises(ValueError, match=r"r.csv: .*start_state='seen'.*cannot be rebuilt"):
        read_sessions(EnvSpec(SR, {"preset": "reddy2017-efc"}), path)


def test_skill_graph_quiz_rewards_and_time_cost(tmp_path: Path) -> None:
    """SkillGraph-v0 with the answer as reward (reward_mode quiz) and a time cost: the rewards
    of quiz-only episodes read back from the log equal the env's."""
    kw = {"n_skills": 3, "n_content": 2, "horizon": 10, "reward_mode": "quiz", "time_cost": 0.05}
    profiles = envs.distribution(SG, n_skills=3, n_content=2).sample(2, "test", seed=0)
    skills = np.random.default_rng(2).integers(0, 3, size=10)
    rows, played = [], []
    for i, p in enumerate(profiles):
        obs, acts, rewards = _play(SG, kw, p, i, skills * 3 + 2)
        played.append((obs, acts, rewards))
        rows += [(f"u{i}", f"s{sk}", int(obs[t + 1][9 + sk]), t) for t, sk in enumerate(skills)]
    histories = read_sessions(EnvSpec(SG, kw), _write(tmp_path / "kt.csv", KT_COLUMNS, rows))
    for (s,), (obs, acts, rewards) in zip(histories, played):
        np.testing.assert_array_equal(s.obs, obs)
        np.testing.assert_array_equal(s.actions, acts)
        np.testing.assert_array_equal(s.rewards, np.asarray(rewards, dtype=np.float32))


# ------------------------------------------------------------------ any env settings
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@PROPERTY
@given(
    k=st.integers(1, 4),
    lv=st.integers(2, 5),
    h=st.integers(1, 16),
    window=st.integers(1, 6),
    mode=st.sampled_from(["gain", "posttest", "correct"]),
    seed=st.integers(0, 2**16),
)
def test_zpd_round_trip_any_settings(k: int, lv: int, h: int, window: int, mode: str, seed: int) -> None:
    """Any ZPD-v0 settings: an episode (every skill practised first, so the log names them
    all) written as a log and read back is the env's episode (response time aside)."""
    kw = {"n_skills": k, "n_levels": lv, "horizon": max(h, k), "window": window, "reward_mode": mode}
    kw["quit_threshold"] = 0.0  # an episode runs to the horizon (quits: the simulate-log test)
    rng = np.random.default_rng(seed)
    skills = np.r_[np.arange(k), rng.integers(0, k, size=kw["horizon"] - k)]
    actions = skills * lv + rng.integers(0, lv, size=len(skills))
    profile = envs.distribution(ZPD, n_skills=k).sample(1, "train", seed=seed)[0]
    spec = EnvSpec(ZPD, kw)
    lay = spec.probe.layout
    obs, acts, rewards = _play(ZPD, kw, profile, seed, actions)
    rows = [
        ("u", f"k{a // lv:02d}", f"L{a % lv}", int(obs[t + 1][lay["last_correct"]]), t)
        for t, a in enumerate(acts)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp) / "l.csv", (*KT_COLUMNS[:2], "item_id", *KT_COLUMNS[2:]), rows)
        ((s,),) = read_sessions(spec, path)
    keep = np.arange(spec.probe.obs_dim) != lay["response_time"]
    np.testing.assert_array_equal(s.obs[:, keep], obs[:, keep])
    np.testing.assert_array_equal(s.actions, acts)
    expected = np.asarray(rewards, dtype=np.float32) if mode == "correct" else np.zeros(len(acts), np.float32)
    np.testing.assert_array_equal(s.rewards, expected)


@PROPERTY
@given(
    k=st.integers(1, 6),
    h=st.integers(1, 16),
    session_length=st.integers(1, 6),
    step_gap=st.sampled_from([0.0, 1 / 1440, 0.01]),
    session_gap=st.sampled_from([0.0, 0.5, 3.0]),
    exam_delay=st.sampled_from([0.0, 1.0, 40.0]),
    timing=st.sampled_from(["next_step", "just_reviewed"]),
    topics=st.sampled_from([None, 1, 2]),
    seed=st.integers(0, 2**16),
)
def test_review_round_trip_any_settings(
    k: int, h: int, session_length: int, step_gap, session_gap, exam_delay, timing, topics, seed
) -> None:
    """Any SpacedRepetition-v0 / -Goals-v0 clock and deck: an episode (every card shown first)
    written as a review log (times in days) and read back is the env's episode."""
    env_id = SR if topics is None else SRG
    h = max(h, k)
    kw = {"n_items": k, "horizon": h, "session_length": session_length, "step_gap": step_gap}
    kw |= {"session_gap": session_gap, "exam_delay": exam_delay, "reward_timing": timing}
    kw |= {"reward_mode": "correct"} | ({} if topics is None else {"n_topics": min(topics, k)})
    rng = np.random.default_rng(seed)
    actions = np.r_[rng.permutation(k), rng.integers(0, k, size=h - k)]
    spec = EnvSpec(env_id, kw)
    profile = spec.distribution().sample(1, "train", seed=seed)[0]
    obs, acts, rewards = _play(env_id, kw, profile, seed, actions)
    times = spec.probe.times
    rows = [("u", f"c{a:02d}", repr(float(times[t])), int(obs[t + 1][2 * k + a])) for t, a in enumerate(acts)]
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp) / "r.csv", REVIEW_COLUMNS, rows)
        ((s,),) = read_sessions(spec, path, time_unit="days")
    _check_review_session(s, obs, acts, rewards, k)


# ------------------------------------------------------------------ the CLI, end to end
TINY = [*TINY_ENCODER_SETS, "n_iterations=2"]
FAMILIES = {
    ZPD: ["env_kwargs.n_skills=2", "env_kwargs.n_levels=3", "env_kwargs.horizon=8"],
    SR: ["env_kwargs.n_items=4", "env_kwargs.horizon=8"],
    SRG: ["env_kwargs.n_items=4", "env_kwargs.n_topics=2", "env_kwargs.horizon=8"],
}


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (exit code, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "meta_rl.cli", *args], capture_output=True, text=True, timeout=300
    )


def _main(capsys, *args: str) -> subprocess.CompletedProcess:
    """The CLI's ``main`` in this process (faster), with its output, like :func:`_cli`."""
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out, err)


@pytest.fixture(scope="module")
def tutors(tmp_path_factory) -> dict[str, Path]:
    """A tiny encoder tutor per family (2 iterations: seconds each)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    for env_id, kw in FAMILIES.items():
        run = tmp_path_factory.mktemp("tutor") / "run"
        t = Trainer(load_config(None, [f"env={env_id}", *TINY, *kw]), run, progress=False)
        t.train()
        t.close()
        out[env_id] = run
    torch.set_num_threads(n)
    return out


@pytest.mark.parametrize("env_id", list(CONVERTERS))
def test_a_log_naming_fewer_units_gets_a_note(env_id: str, tmp_path: Path) -> None:
    kt = CONVERTERS[env_id].kind == "kt"
    rows = [("u", "a", "L0", 1, 0) if kt else ("u", "a", 0, 1)]
    header = (*KT_COLUMNS[:2], "item_id", *KT_COLUMNS[2:]) if kt else REVIEW_COLUMNS
    spec = EnvSpec(env_id, {})
    log = load_log(spec, _write(tmp_path / "one.csv", header, rows))
    dim = CONVERTERS[env_id].unit_dim
    assert mapping_note(spec, log).startswith(f"the log names 1 of the env's {dim}=")
    ((s,),) = sessions_from_log(spec, log)
    assert s.obs.shape == (2, spec.env_obs_dim) and s.actions.shape == (1,)


def test_every_calibrated_family_has_a_converter() -> None:
    from envs.calibration.calibrate import SUPPORTED

    assert set(SUPPORTED) <= set(CONVERTERS) and set(CONVERTERS) <= set(envs.ENV_IDS)


@pytest.mark.parametrize("env_id", list(FAMILIES))
def test_identify_cli_per_family(tutors: dict[str, Path], tmp_path: Path, env_id: str, capsys) -> None:
    sim = SR if env_id == SRG else env_id  # a review log fits the Goals variant as well
    kw = {"n_skills": 2, "n_levels": 3} if env_id == ZPD else {"n_items": 4}
    log = tmp_path / "log.csv"
    cmd = ["simulate-log", "--env", sim, "--n-students", "2", "--length", "12", "--seed", "1"]
    assert _main(capsys, *cmd, "--env-kwargs", json.dumps(kw), "--out", str(log)).returncode == 0
    who = tmp_path / "who.json"
    args = ["--checkpoint", str(tutors[env_id]), "--log", str(log), "--reference", "6", "--neighbours", "2"]
    out = _main(capsys, "identify", *args, "--json", str(who))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("nearest training student") == 2 * 2
    got = json.loads(who.read_text())["students"]
    fields = [s.name for s in EnvSpec(env_id, {}).probe.profile_cls.FIELDS]
    assert len(got) == 2 and all(list(s["estimate"]) == fields for s in got)
    # 12 answers, horizon 8: two sessions each (a ZPD student who quits early may have one)
    assert all(s["sessions"] == 2 or (env_id == ZPD and s["sessions"] == 1) for s in got)


def _one_error(out: subprocess.CompletedProcess, *parts: str) -> None:
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def test_identify_cli_bad_logs(tutors: dict[str, Path], tmp_path: Path, capsys) -> None:
    zpd, sr = str(tutors[ZPD]), str(tutors[SR])
    kt = (*KT_COLUMNS[:2], "item_id", *KT_COLUMNS[2:])
    cases = [
        # ZPD: no item column; more skills than the env; a level beyond the env's; bad answer
        (zpd, _write(tmp_path / "a.csv", KT_COLUMNS, [("u", "s0", 1, 0)]), ["a.csv", "item_id column"]),
        (zpd, _write(tmp_path / "b.csv", kt, [("u", f"s{j}", "L0", 1, j) for j in range(3)]),
         ["b.csv", "3 skills", "n_skills=2"]),
        (zpd, _write(tmp_path / "c.csv", kt, [("u", "s0", "L3", 1, 0)]), ["c.csv", "level 3", "n_levels=3"]),
        (zpd, _write(tmp_path / "d.csv", kt, [("u", "s0", "L0", 1, 0), ("u", "s0", "L1", "yes", 1)]),
         ["d.csv: line 3: correct must be 0 or 1"]),
        # SpacedRepetition: more items than the env; an unreadable time; a knowledge-tracing log
        (sr, _write(tmp_path / "e.csv", REVIEW_COLUMNS, [("u", f"i{j}", j, 1) for j in range(5)]),
         ["e.csv", "5 items", "n_items=4"]),
        (sr, _write(tmp_path / "f.csv", REVIEW_COLUMNS, [("u", "i0", 0, 1), ("u", "i0", "noon", 1)]),
         ["f.csv: line 3: timestamp"]),
        (sr, _write(tmp_path / "g.csv", KT_COLUMNS, [("u", "s0", 1, 0)]), ["g.csv: line 1: missing column"]),
        (zpd, tmp_path / "missing.csv", ["missing.csv: no such log file"]),
    ]  # fmt: skip
    for run, path, parts in cases:
        args = ("identify", "--checkpoint", run, "--log", str(path), "--neighbours", "0")
        _one_error(_main(capsys, *args), *parts)
    # and once in a process of its own: the exit status a shell sees
    run, path, parts = cases[4]
    _one_error(_cli("identify", "--checkpoint", run, "--log", str(path)), *parts)


def test_identify_cli_keeps_chosen_skills(tutors: dict[str, Path], tmp_path: Path, capsys) -> None:
    """A log with more skills than the env: --top-skills / --skills keep some, as calibrate does."""
    kt = (*KT_COLUMNS[:2], "item_id", *KT_COLUMNS[2:])
    rows = [("u", f"s{j % 2}", f"L{j % 3}", j % 2, j) for j in range(8)]
    rows += [("u", "s2", "L1", 0, 8), ("v", "s2", "L0", 1, 0)]  # s2: the least answered
    log = _write(tmp_path / "three.csv", kt, rows)
    base = ("identify", "--checkpoint", str(tutors[ZPD]), "--log", str(log), "--neighbours", "0")
    out = _main(capsys, *base, "--top-skills", "2", "--json", str(tmp_path / "who.json"))
    assert out.returncode == 0, out.stderr
    got = json.loads((tmp_path / "who.json").read_text())["students"]
    assert [s["sessions"] for s in got] == [1, 0]  # u: 8 answers of s0, s1; v only answered s2
    assert "note:" not in out.stdout  # as many skills as the env
    out = _main(capsys, *base, "--skills", "s2")
    assert out.returncode == 0 and "note: the log names 1 of the env's n_skills=2 (s2)" in out.stdout
    _one_error(_main(capsys, *base, "--skills", "s0,zz"), "three.csv", "unknown skill/item name(s) ['zz']")
    _one_error(_main(capsys, *base), "three.csv", "3 skills", "--top-skills")
