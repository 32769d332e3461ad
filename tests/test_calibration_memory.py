"""Memory-model MLE: the replay is the simulator, and fits recover the truth better with more data."""

import numpy as np
import pytest

import envs
from envs.calibration import memory
from envs.calibration.logs import read_review_log, write_csv
from envs.calibration.simulate import simulate_spaced_repetition
from envs.profiles import stack_profiles
from envs.spaced_repetition.dynamics import SpacedRepetitionDynamics


def review_data(tmp_path, profiles, n_reviews, kwargs=None):
    header, rows = simulate_spaced_repetition(profiles, n_reviews, 0, kwargs)
    write_csv(tmp_path / "rv.csv", header, rows)
    return memory.reviews(read_review_log(tmp_path / "rv.csv"))


@pytest.mark.parametrize("model", ["exponential", "hlr", "power", "fsrs"])
def test_replay_reproduces_the_envs_recall_probabilities(tmp_path, model):
    """Recall probabilities of the replay equal those the dynamics used when answering."""
    kwargs = {"n_items": 6, "memory_model": model, "session_length": 5}
    profs = envs.distribution("MetaTutor/SpacedRepetition-v0", n_items=6).sample(5, "train", seed=4)
    n_reviews = 60
    # the dynamics' own p of each presented item, just before each step
    dyn = SpacedRepetitionDynamics(5, **{**kwargs, "horizon": n_reviews})
    idx = np.arange(5)
    dyn.set_profiles(idx, profs)
    dyn.streams.seed(idx, idx)
    dyn.reset(idx)
    rng = np.random.default_rng([0, 2])  # the simulator's schedule stream
    expected = []
    for t in range(n_reviews):
        a = rng.integers(0, 6, size=5)
        expected.append(dyn.recall_matrix(np.full(5, dyn.times[t]))[idx, a])
        dyn.step(a)
    data = review_data(tmp_path, profs, n_reviews, kwargs)
    arr = stack_profiles(profs)
    p, counted = memory.replay(
        memory.make_model(model), data, arr["decay"], arr["gain"], arr["fail_effect"], arr["item_difficulty"]
    )
    expected = np.array(expected).T
    # timestamps are written in seconds with millisecond precision: allow that rounding
    np.testing.assert_allclose(p[counted], expected[counted], atol=1e-6)
    assert np.all(expected[~counted] == 0.0)  # first exposures: p = 0, not evidence


def test_fits_recover_the_truth_better_with_more_reviews(tmp_path):
    profs = envs.distribution("MetaTutor/SpacedRepetition-v0").sample(30, "train", seed=5)
    truth = stack_profiles(profs)
    err = {}
    for n_reviews in (60, 400):
        data = review_data(tmp_path, profs, n_reviews)
        pooled = memory.fit_pooled(data)
        fit = memory.fit_students(data, pooled, fit_items=False)
        err[n_reviews] = {
            k: float(np.mean(np.abs(np.log(getattr(fit, k)) - np.log(truth[k]))))
            for k in ("decay", "gain", "fail_effect")
        }
    for k in ("decay", "gain", "fail_effect"):
        assert err[400][k] < err[60][k], err
    # stated tolerances with 400 reviews per student: mean |log error| (log 1.3 = 0.26, log 1.5 = 0.41)
    assert err[400]["decay"] < 0.26 and err[400]["gain"] < 0.26 and err[400]["fail_effect"] < 0.41, err


def test_pooled_fit_recovers_a_homogeneous_population(tmp_path):
    p = envs.distribution("MetaTutor/SpacedRepetition-v0", n_items=10).sample(1, "train", seed=0)[0]
    p = type(p)(decay=2.0, gain=0.7, fail_effect=1.5, item_difficulty=(0.0,) * 10)
    data = review_data(tmp_path, [p] * 60, 200, {"n_items": 10})
    fit = memory.fit_pooled(data)
    assert fit.decay[0] == pytest.approx(2.0, rel=0.15)
    assert fit.gain[0] == pytest.approx(0.7, rel=0.15)
    assert fit.fail_effect[0] == pytest.approx(1.5, rel=0.3)


def test_item_difficulties_are_fitted_with_shrinkage(tmp_path):
    profs = envs.distribution("MetaTutor/SpacedRepetition-v0", n_items=5).sample(15, "train", seed=6)
    data = review_data(tmp_path, profs, 150, {"n_items": 5})
    pooled = memory.fit_pooled(data)
    fit = memory.fit_students(data, pooled, fit_items=True)
    truth = stack_profiles(profs)["item_difficulty"]
    corr = np.corrcoef(fit.item_difficulty.ravel(), truth.ravel())[0, 1]
    assert corr > 0.3, corr
    assert np.all(np.abs(fit.item_difficulty) <= memory.ITEM_BOUND)


def test_fits_at_the_upper_bounds_stay_valid_profiles():
    # exp(log 10) = 10.000000000000002: the profile arrays must still be inside the ranges
    import math

    from envs.calibration.memory import LOG_BOUNDS, MemoryFit

    top = {k: np.array([math.exp(hi)]) for k, (_, hi) in LOG_BOUNDS.items()}
    fit = MemoryFit(top["decay"], top["gain"], top["fail_effect"], np.zeros((1, 3)), 0.0, True)
    arrays = fit.arrays()
    profile = {k: (v[0].tolist() if v.ndim == 2 else float(v[0])) for k, v in arrays.items()}
    SpacedRepetitionDynamics(1, n_items=3).coerce_profile(profile)
