"""BKT EM: exact E-step (against path enumeration), parameter recovery, the profile mapping."""

import itertools

import numpy as np
import pytest

import envs
from envs.calibration import bkt
from envs.calibration import skill_graph as sg
from envs.calibration.logs import read_kt_log, write_csv
from envs.calibration.simulate import simulate_skill_graph
from envs.profiles import stack_profiles

# an 8-skill course (more (skill, parameter) values to recover than the 4-skill default)
NO_PREREQ = {"prerequisites": "none", "n_skills": 8, "horizon": 50}


def brute_force(y, prior, learn, forget, slip, guess):
    """Log-likelihood and expected counts by summing over all 2^T hidden paths."""
    total, counts = 0.0, np.zeros(4)  # learned, forgot, slips, guesses
    a = np.array([[1 - learn, learn], [forget, 1 - forget]])
    for path in itertools.product([0, 1], repeat=len(y)):
        p = prior if path[0] else 1 - prior
        for j in range(1, len(y)):
            p *= a[path[j - 1], path[j]]
        for s, o in zip(path, y):
            p *= ((1 - slip) if o else slip) if s else (guess if o else 1 - guess)
        c = [
            sum(path[j - 1] == 0 and path[j] == 1 for j in range(1, len(y))),
            sum(path[j - 1] == 1 and path[j] == 0 for j in range(1, len(y))),
            sum(s == 1 and o == 0 for s, o in zip(path, y)),
            sum(s == 0 and o == 1 for s, o in zip(path, y)),
        ]
        total += p
        counts += p * np.array(c)
    return np.log(total), counts / total


def test_forward_backward_matches_path_enumeration():
    rng = np.random.default_rng(0)
    lengths = [1, 2, 5, 7]
    y = [rng.integers(0, 2, n) for n in lengths]
    n = len(lengths)
    params = bkt.BKTParams(*(rng.uniform(0.05, 0.45, n) for _ in range(5)))
    seqs = bkt.Sequences.from_answers(y, np.arange(n), np.zeros(n, int), n, 1)
    stats = bkt._expected_stats(seqs, params)
    for s in range(n):
        ll, counts = brute_force(y[s], *(getattr(params, k)[s] for k in bkt.PARAMS))
        assert stats.loglik[s] == pytest.approx(ll, rel=1e-10)
        got = [stats.learned[s], stats.forgot[s], stats.slips[s], stats.guesses[s]]
        np.testing.assert_allclose(got, counts, rtol=1e-9, atol=1e-12)


def kt_log(tmp_path, profiles, rounds, seed=0, kwargs=NO_PREREQ):
    header, rows = simulate_skill_graph(profiles, rounds, seed, kwargs)
    write_csv(tmp_path / "log.csv", header, rows)
    log = read_kt_log(tmp_path / "log.csv")
    return log, bkt.sequences(log)


def test_profile_mapping_round_trip(tmp_path):
    profs = envs.distribution("MetaTutor/SkillGraph-v0", **NO_PREREQ).sample(20, "train", seed=3)
    log, seqs = kt_log(tmp_path, profs, 3)
    between, before = sg.schedule(log, seqs)
    assert np.all(between == 2 * 7)  # round-robin over 8 skills, 2 steps per response
    np.testing.assert_array_equal(before[0], 2 * np.arange(8))
    truth = stack_profiles(profs)
    params = sg.bkt_from_profiles(truth, seqs, between, before)
    fit = bkt.StudentFit(
        prior=np.zeros((20, 8)),
        learn=np.zeros((20, 8)),
        forget=np.zeros(20),
        slip=np.zeros(20),
        guess=np.zeros(20),
        loglik=0.0,
        n_iter=0,
    )
    fit.prior[seqs.student, seqs.skill] = params.prior
    fit.learn[seqs.student, seqs.skill] = params.learn
    fit.forget[seqs.student] = params.forget
    fit.slip[seqs.student] = params.slip
    fit.guess[seqs.student] = params.guess
    back = sg.profiles_from_fit(fit, between, before, truth["content_affinity"])
    for name in ("learn", "slip", "guess", "forget", "prior"):
        np.testing.assert_allclose(back[name], truth[name], rtol=1e-9, atol=1e-12)


def homogeneous(n):
    """n copies of one student (so the pooled BKT is the exact model)."""
    p = envs.distribution("MetaTutor/SkillGraph-v0", **NO_PREREQ).sample(1, "train", seed=0)[0]
    p = type(p)(
        learn=(0.3,) * 8, content_affinity=(1.0, 0.5, 0.3), slip=0.1, guess=0.2, forget=0.01, prior=(0.2,) * 8
    )
    return [p] * n


def test_pooled_fit_recovers_a_homogeneous_population_better_with_more_students(tmp_path):
    errors = []
    for n in (40, 640):
        log, seqs = kt_log(tmp_path, homogeneous(n), 8, seed=n)
        between, before = sg.schedule(log, seqs)
        truth = sg.bkt_from_profiles(stack_profiles(homogeneous(n)), seqs, between, before)
        pooled = bkt.fit_pooled(seqs).per_sequence(seqs)
        # the true L_1 differs by skill (forgetting before the first opportunity): compare per skill
        err = {k: np.abs(getattr(pooled, k) - getattr(truth, k)).max() for k in bkt.PARAMS}
        errors.append(err)
    # stated tolerance with 640 students x 64 answers: all 40 (skill, parameter) values within 0.06
    assert max(errors[1].values()) < 0.06, errors[1]
    assert sum(errors[1].values()) < 0.5 * sum(errors[0].values()), errors


def test_student_fits_improve_with_data_and_beat_the_pooled_fit(tmp_path):
    profs = envs.distribution("MetaTutor/SkillGraph-v0", **NO_PREREQ).sample(150, "train", seed=1)
    truth_arrays = stack_profiles(profs)
    mae = {}
    for rounds in (5, 40):
        log, seqs = kt_log(tmp_path, profs, rounds)
        between, before = sg.schedule(log, seqs)
        truth = sg.bkt_from_profiles(truth_arrays, seqs, between, before)
        pooled = bkt.fit_pooled(seqs)
        est = bkt.fit_students(seqs, pooled).per_sequence(seqs)
        pool = pooled.per_sequence(seqs)
        mae[rounds] = {
            k: np.abs(getattr(est, k) - getattr(truth, k)).mean() for k in ("forget", "slip", "guess")
        }
        mae[f"pooled{rounds}"] = {
            k: np.abs(getattr(pool, k) - getattr(truth, k)).mean() for k in ("forget", "slip", "guess")
        }
    for k in ("forget", "slip", "guess"):
        assert mae[40][k] < mae[5][k], mae
        assert mae[40][k] < mae["pooled40"][k], mae
    # stated tolerances at 40 rounds (320 answers per student)
    assert mae[40]["forget"] < 0.06 and mae[40]["slip"] < 0.045 and mae[40]["guess"] < 0.045, mae


def test_shrinkage_pulls_sparse_students_to_the_population(tmp_path):
    profs = envs.distribution("MetaTutor/SkillGraph-v0", **NO_PREREQ).sample(60, "train", seed=2)
    _, seqs = kt_log(tmp_path, profs, 4)
    pooled = bkt.fit_pooled(seqs)
    centre = bkt.shared_centre(pooled, seqs, "slip")
    loose = bkt.fit_students(seqs, pooled, {"slip": 0.0})
    tight = bkt.fit_students(seqs, pooled, {"slip": 1e6})
    np.testing.assert_allclose(tight.slip, centre, atol=1e-3)
    assert np.std(loose.slip) > 5 * np.std(tight.slip)
    with pytest.raises(ValueError, match="shrinkage"):
        bkt.fit_students(seqs, pooled, {"slipp": 1.0})
