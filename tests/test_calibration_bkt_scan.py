"""The parallel-scan E-step equals the time loop it replaced, on short, long and mixed sequences."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from envs.calibration import bkt
from envs.calibration.logs import read_kt_log, write_csv
from envs.calibration.simulate import simulate_skill_graph

FIELDS = ("known_first", "from0", "learned", "from1", "forgot", "in1", "slips", "in0", "guesses", "loglik")


def random_sequences(lengths, seed=0, n_skills=2):
    rng = np.random.default_rng(seed)
    answers = [(rng.random(n) < rng.uniform(0.2, 0.9)).astype(int) for n in lengths]
    n = len(lengths)
    return bkt.Sequences.from_answers(answers, np.arange(n), np.arange(n) % n_skills, n, n_skills)


def random_params(n, seed=1):
    rng = np.random.default_rng(seed)
    return bkt.BKTParams(
        rng.uniform(0.05, 0.9, n), rng.uniform(1e-4, 0.4, n), rng.uniform(1e-4, 0.3, n),
        rng.uniform(1e-4, 0.45, n), rng.uniform(1e-4, 0.45, n),
    )  # fmt: skip


@pytest.mark.parametrize(
    "lengths",
    [[1, 2, 3, 7, 40], [1] * 5, [5000], [3, 2500, 1, 700, 1025, 64, 2]],
    ids=["short", "single answers", "one long", "mixed"],
)
def test_scan_equals_loop(lengths):
    seqs = random_sequences(lengths)
    p = random_params(len(lengths))
    scan, loop = bkt._expected_stats(seqs, p, "scan"), bkt._expected_stats(seqs, p, "loop")
    for f in FIELDS:
        np.testing.assert_allclose(getattr(scan, f), getattr(loop, f), rtol=1e-9, atol=1e-9, err_msg=f)
    for a, b in zip(bkt.forward(seqs, p, "scan"), bkt.forward(seqs, p, "loop")):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_no_underflow_on_a_hundred_thousand_answers_without_forgetting():
    # forget = 0 makes the transition matrix triangular: products must stay exact, not 0/0
    seqs = random_sequences([100_000], seed=3)
    p = bkt.BKTParams(*(np.array([v]) for v in (0.2, 0.01, 0.0, 0.1, 0.2)))
    stats = bkt._expected_stats(seqs, p, "scan")
    assert all(np.all(np.isfinite(getattr(stats, f))) for f in FIELDS)
    # the chain ends known almost surely; E[# answers in state 1] + in state 0 = answers
    assert stats.in1[0] + stats.in0[0] == pytest.approx(100_000, rel=1e-12)
    # without forgetting a chain is known from the start or learns exactly once (surely, in 1e5 steps)
    assert stats.forgot[0] == 0.0
    assert stats.known_first[0] + stats.learned[0] == pytest.approx(1.0, abs=1e-9)
    _, _, c = bkt.forward(seqs, p, "scan")
    assert np.log(c).sum() == pytest.approx(stats.loglik[0], rel=1e-12)


def test_fits_equal_on_a_simulated_log(tmp_path):
    profs = envs.distribution("MetaTutor/SkillGraph-v0", prerequisites="none", n_skills=3).sample(
        40, "train", seed=5
    )
    header, rows = simulate_skill_graph(profs, 6, 0, {"prerequisites": "none", "n_skills": 3})
    write_csv(tmp_path / "log.csv", header, rows)
    seqs = bkt.sequences(read_kt_log(tmp_path / "log.csv"))
    fits = {m: bkt.fit_pooled(seqs, method=m) for m in ("scan", "loop")}
    assert fits["scan"].loglik == pytest.approx(fits["loop"].loglik, rel=1e-9, abs=1e-9)
    assert fits["scan"].n_iter == fits["loop"].n_iter
    for name in bkt.PARAMS:
        np.testing.assert_allclose(getattr(fits["scan"], name), getattr(fits["loop"], name), atol=1e-8)
    students = {m: bkt.fit_students(seqs, fits["loop"], method=m) for m in ("scan", "loop")}
    assert students["scan"].loglik == pytest.approx(students["loop"].loglik, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(students["scan"].slip, students["loop"].slip, atol=1e-8)


def test_auto_picks_the_scan_for_long_sequences_and_the_loop_for_short_ones():
    assert bkt.use_scan(random_sequences([20_000]))
    assert bkt.use_scan(random_sequences([3000] + [5] * 2000))  # padding 2000 x 3000 cells
    assert not bkt.use_scan(random_sequences([20] * 3000))
    with pytest.raises(ValueError, match="scan or loop"):
        bkt.forward(random_sequences([3]), random_params(1), "fast")


def test_progress_bar_only_on_a_tty_and_without_the_flag(monkeypatch, tmp_path):
    import sys

    import envs.calibration
    from meta_rl.cli import main

    seen = []

    def fake(*args, **kwargs):
        seen.append(kwargs["progress"])
        raise ValueError("stop here")

    monkeypatch.setattr(envs.calibration, "calibrate", fake)
    out = str(tmp_path / "p.json")
    args = ["calibrate", "--env", "MetaTutor/SkillGraph-v0", "--log", "x.csv", "--out", out]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert main(args) == 2
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(args) == 2 and main([*args, "--no-progress"]) == 2
    assert seen == [False, True, False]
    assert bkt.progress_bar(False, "x", 3, "step").disable
    assert not bkt.progress_bar(True, "x", 3, "step").disable
