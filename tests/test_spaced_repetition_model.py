"""SpacedRepetition-v0 memory models against closed forms, the ``fsrs`` library and the literature.

The references here are written from the equations in the docstrings, independently of
``envs.spaced_repetition.memory_models``; FSRS-6 is checked against the ``fsrs`` package.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import fsrs
import numpy as np
import pytest
from fsrs import scheduler as fsrs_scheduler
from helpers import assert_binomial
from scipy import optimize, stats

from envs.spaced_repetition import SpacedRepetitionDynamics
from envs.spaced_repetition import memory_models as mm

MODELS = ("exponential", "hlr", "power", "fsrs")
W = fsrs_scheduler.DEFAULT_PARAMETERS
FSRS_F = 0.9 ** (-1.0 / W[20]) - 1.0
S0 = {"exponential": 0.8, "power": 0.8, "hlr": 0.5, "fsrs": W[0]}
MEDIAN = {"decay": 1.0, "gain": 1.0, "fail_effect": 1.0}


def curve(model: str, x: float) -> float:
    """The published forgetting curves, ``x`` = effective elapsed time / strength."""
    if model == "exponential":
        return math.exp(-x)
    if model == "hlr":
        return 2.0 ** (-x)
    if model == "power":
        return (1.0 + x / 0.5) ** -0.5
    return (1.0 + FSRS_F * x) ** -W[20]


def profile(k: int, decay: float = 1.0, gain: float = 1.0, fail: float = 1.0, diff: object = 0.0) -> dict:
    d = list(diff) if isinstance(diff, (list, tuple, np.ndarray)) else [float(diff)] * k
    return {"decay": decay, "gain": gain, "fail_effect": fail, "item_difficulty": d}


def batch(n: int, prof: dict | list, seed: int = 0, **kwargs: object) -> SpacedRepetitionDynamics:
    dyn = SpacedRepetitionDynamics(n, **kwargs)
    dyn.set_profiles(np.arange(n), prof if isinstance(prof, list) else [prof] * n)
    dyn.streams.seed(np.arange(n), seed * 1_000_003 + np.arange(n))
    dyn.reset(np.arange(n))
    return dyn


# ----------------------------------------------------------------- reference (scalar, per item)
class RefItem:
    """One card of one student, updated by the equations of the docstrings."""

    def __init__(self, model: str, speed: float, gain: float, fail: float) -> None:
        self.model, self.speed, self.gain, self.fail = model, speed, gain, fail
        self.seen = False
        self.last = 0.0
        self.s = self.d = 0.0
        self.n_plus = self.n_minus = 0.0

    def recall(self, now: float) -> float:
        return curve(self.model, self.speed * (now - self.last) / self.s) if self.seen else 0.0

    def present(self, now: float, correct: bool) -> None:
        p, real = self.recall(now), now - self.last
        if not self.seen:
            self.s, self.d = S0[self.model], W[4]
        elif self.model in ("exponential", "power"):
            self.s *= math.exp((1 - p) * (2.0 * self.gain if correct else 0.5 * self.fail))
        elif self.model == "hlr":
            if correct:
                self.n_plus += 1 - p
            else:
                self.n_minus += 1 - p
            log2h = -1.0 + 5.0 * self.gain * (math.sqrt(1 + self.n_plus) - 1)
            log2h += 1.5 * self.fail * (math.sqrt(1 + self.n_minus) - 1)
            self.s = 2.0**log2h
        else:  # FSRS-6 through the library's own update rules
            sch = fsrs.Scheduler(parameters=W)
            rating = fsrs.Rating.Good if correct else fsrs.Rating.Again
            if real < 1.0:
                s = sch._short_term_stability(stability=self.s, rating=rating)
            elif correct:
                lib = sch._next_recall_stability(
                    difficulty=self.d, stability=self.s, retrievability=p, rating=rating
                )
                s = self.s * (1 + self.gain * (lib / self.s - 1))  # gain scales the library's increase
            else:
                long_term = W[11] * self.fail * self.d ** -W[12] * ((self.s + 1) ** W[13] - 1)
                s = min(long_term * math.exp((1 - p) * W[14]), self.s / math.exp(W[17] * W[18]))
            self.s = max(s, fsrs_scheduler.STABILITY_MIN)
            self.d = sch._next_difficulty(difficulty=self.d, rating=rating)
        self.seen, self.last = True, now


# ------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("model", MODELS)
def test_recall_after_one_exposure_is_the_closed_form(model: str) -> None:
    k = 4
    diff = [-0.5, 0.0, 0.7, 2.0]
    dyn = batch(1, profile(k, decay=1.7, diff=diff), memory_model=model, n_items=k, horizon=4)
    for a in range(k):
        dyn.step(np.array([a]))
    t_last = dyn.times[:k]
    for now in (t_last[-1], 0.3, 1.0, 2.5, 30.0, 4000.0):
        p = dyn.recall_matrix(np.array([float(now)]))[0]
        for j in range(k):
            elapsed = max(now - t_last[j], 0.0)
            assert p[j] == pytest.approx(
                curve(model, 1.7 * math.exp(diff[j]) * elapsed / S0[model]), rel=1e-12
            )


@pytest.mark.parametrize("model", MODELS)
def test_review_histories_match_the_reference_equations(model: str) -> None:
    n, k, h = 12, 4, 60
    rng = np.random.default_rng(5)
    profs = [
        profile(k, rng.uniform(0.3, 3), rng.uniform(0.3, 3), rng.uniform(0.2, 3), rng.normal(0, 0.6, k))
        for _ in range(n)
    ]
    dyn = batch(
        n, profs, memory_model=model, n_items=k, horizon=h, session_length=6, step_gap=0.05, session_gap=1.5
    )
    refs = [
        [
            RefItem(model, p["decay"] * math.exp(p["item_difficulty"][j]), p["gain"], p["fail_effect"])
            for j in range(k)
        ]
        for p in profs
    ]
    for t in range(h):
        a = rng.integers(0, k, size=n)
        expected = [refs[i][a[i]].recall(dyn.times[t]) for i in range(n)]
        dyn.step(a)
        obs = dyn.observe()
        for i in range(n):
            correct = bool(obs[i, 2 * k + a[i]])
            refs[i][a[i]].present(dyn.times[t], correct)
            if t > 0 and dyn.n_reviews[i, a[i]] == 1:
                assert not correct and expected[i] == 0.0  # a new card is never recalled
    for i in range(n):
        np.testing.assert_allclose(dyn.state["S"][i], [r.s for r in refs[i]], rtol=1e-9)
        p = dyn.recall_matrix(dyn.times[[h]], np.array([i]))[0]
        np.testing.assert_allclose(p, [r.recall(dyn.times[h]) for r in refs[i]], rtol=1e-9, atol=1e-15)
        if model == "fsrs":
            np.testing.assert_allclose(dyn.state["D"][i], [r.d for r in refs[i]], rtol=1e-12)


@pytest.mark.parametrize("session_length,session_gap", [(1, 1.0), (1, 3.0), (3, 2.0), (4, 1.0)])
def test_fsrs_equals_the_fsrs_scheduler_on_whole_day_histories(
    session_length: int, session_gap: float
) -> None:
    """S, D and R equal fsrs' Scheduler.review_card and get_card_retrievability."""
    n, h = 16, 12
    dyn = batch(n, profile(1), memory_model="fsrs", n_items=1, horizon=h, session_length=session_length,
                step_gap=0.125, session_gap=session_gap)  # fmt: skip
    sch = fsrs.Scheduler(enable_fuzzing=False)
    epoch = datetime(2024, 1, 1, tzinfo=timezone.utc)
    cards = [fsrs.Card(card_id=i + 1, due=epoch) for i in range(n)]
    for t in range(h):
        when = epoch + timedelta(days=float(dyn.times[t]))
        if t > 0:
            lib_r = [sch.get_card_retrievability(c, when) for c in cards]
            ours = dyn.recall_matrix(np.full(n, dyn.times[t]))[:, 0]
            whole = (dyn.times[t] - dyn.times[t - 1]) % 1.0 == 0.0
            if whole:  # the library rounds elapsed time down to whole days
                np.testing.assert_allclose(ours, lib_r, rtol=1e-12)
        dyn.step(np.zeros(n, dtype=np.int64))
        correct = dyn.observe()[:, 2] > 0.5
        for i in range(n):
            rating = fsrs.Rating.Good if correct[i] else fsrs.Rating.Again
            cards[i], _ = sch.review_card(cards[i], rating, when)
        np.testing.assert_allclose(dyn.state["S"][:, 0], [c.stability for c in cards], rtol=1e-12)
        np.testing.assert_allclose(dyn.state["D"][:, 0], [c.difficulty for c in cards], rtol=1e-12)


def test_fsrs_constants_are_those_of_the_installed_package() -> None:
    assert mm.FSRS_DEFAULT_PARAMETERS == tuple(fsrs_scheduler.DEFAULT_PARAMETERS)
    assert mm.S_MIN == fsrs_scheduler.STABILITY_MIN
    assert (mm.FSRS_MIN_DIFFICULTY, mm.FSRS_MAX_DIFFICULTY) == (
        fsrs_scheduler.MIN_DIFFICULTY,
        fsrs_scheduler.MAX_DIFFICULTY,
    )
    fsrs.Scheduler(parameters=mm.FSRS_DEFAULT_PARAMETERS)  # validates against the published bounds


@pytest.mark.parametrize("model", MODELS)
def test_curves_are_valid_probabilities(model: str) -> None:
    m = mm.make_model(model)
    x = np.r_[0.0, np.logspace(-12, 12, 200), np.inf]
    p = m.curve(x)
    assert p[0] == 1.0 and np.all(np.diff(p) <= 0) and np.all((p >= 0) & (p <= 1))
    s = np.r_[0.0, mm.S_MIN, 1.0, 1e9]
    p = m.recall(s[:, None], np.array([[0.0, 1e-9, 1.0, 1e9]]))
    assert np.isfinite(p).all() and (p[:, 0] == 1.0).all() and ((p >= 0) & (p <= 1)).all()


def test_unknown_memory_model() -> None:
    with pytest.raises(ValueError, match="memory_model"):
        mm.make_model("ebbinghaus")


# ------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("model", MODELS)
def test_answers_are_bernoulli_with_the_model_probability(model: str) -> None:
    """Empirical correctness over many students matches the model within a binomial test."""
    n, gap = 30_000, (3.0 if model == "fsrs" else 0.7)
    prof = profile(1, decay=1.3, gain=0.8, fail=1.5, diff=0.4)
    dyn = batch(n, prof, memory_model=model, n_items=1, horizon=3, session_length=1, session_gap=gap,
                reward_mode="correct")  # fmt: skip
    zero = np.zeros(n, dtype=np.int64)
    r0, _, _ = dyn.step(zero)
    assert (r0 == 0).all()  # first exposure
    r1, _, _ = dyn.step(zero)
    speed = 1.3 * math.exp(0.4)
    p1 = curve(model, speed * gap / S0[model])
    assert_binomial(r1.sum(), n, p1)
    r2, _, _ = dyn.step(zero)
    # second review: mixture over the first answer, each branch by the reference equations
    branch = []
    for ok in (True, False):
        ref = RefItem(model, speed, 0.8, 1.5)
        ref.present(0.0, False)
        ref.present(gap, ok)
        branch.append(ref.recall(2 * gap))
    assert_binomial(r2[r1 == 1].sum(), int((r1 == 1).sum()), branch[0])
    assert_binomial(r2[r1 == 0].sum(), int((r1 == 0).sum()), branch[1])


@pytest.mark.parametrize("model", MODELS)
def test_exam_is_sampled_with_the_recall_probabilities(model: str) -> None:
    n, k = 5_000, 5
    dyn = batch(
        n, profile(k, diff=[-1, -0.5, 0, 0.5, 1]), memory_model=model, n_items=k, horizon=k, exam_delay=2.0
    )
    for a in range(k):
        dyn.step(np.full(n, a))
    p = dyn.recall_matrix(dyn.times[dyn.t])
    np.testing.assert_allclose(p, p[:1].repeat(n, axis=0))  # same student, same history
    metrics = dyn.episode_metrics(np.arange(n))
    recalled = np.rint(metrics["exam_recall"] * k).astype(np.int64)
    assert_binomial(recalled.sum(), n * k, p[0].mean())
    # cards are sampled independently: the number recalled is Poisson-binomial(p_1 … p_k)
    pmf = np.array([1.0])
    for q in p[0]:
        pmf = np.convolve(pmf, [1 - q, q])
    observed = np.bincount(recalled, minlength=k + 1)
    expected = pmf * n
    keep = expected > 5
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert observed[~keep].sum() <= max(5, 3 * expected[~keep].sum())
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-6


# ----------------------------------------------------------------------------- literature
@pytest.mark.parametrize("model", MODELS)
def test_spacing_beats_massing(model: str) -> None:
    """Same four presentations, same retention interval after the last one (Cepeda et al. 2006)."""
    n, h, delay = 4_000, 4, 3.0

    def final_recall(**schedule: object) -> np.ndarray:
        dyn = batch(n, profile(1), memory_model=model, n_items=1, horizon=h, exam_delay=delay, **schedule)
        for _ in range(h):
            dyn.step(np.zeros(n, dtype=np.int64))
        return dyn.episode_metrics(np.arange(n))["final_mean_recall_prob"]

    massed = final_recall(session_length=h, step_gap=1 / 1440)
    spaced = final_recall(session_length=1, session_gap=1.0)
    diff = spaced.mean() - massed.mean()
    se = math.sqrt(spaced.var() / n + massed.var() / n)
    assert diff > 0.1 and diff > 6 * se, (spaced.mean(), massed.mean())


def simulate_histories(
    model: str, truth: dict, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random review schedules of ``n`` identical students: (actions, answers, step times)."""
    k, h = 5, 60
    dyn = batch(n, profile(k, **truth), seed=seed, memory_model=model, n_items=k, horizon=h,
                session_length=5, session_gap=1.0, step_gap=0.02)  # fmt: skip
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, k, size=(h, n))
    answers = np.zeros((h, n), dtype=bool)
    for t in range(h):
        dyn.step(actions[t])
        answers[t] = dyn.observe()[np.arange(n), 2 * k + actions[t]] > 0.5
    return actions, answers, dyn.times


def negative_log_likelihood(log_params: np.ndarray, model: str, actions, answers, times) -> float:
    """Vectorised replay of the histories with the reference equations; NLL of the answers."""
    decay, gain, fail = np.exp(log_params)
    h, n = actions.shape
    rows = np.arange(n)
    s = np.ones((n, 5))
    n_plus, n_minus = np.zeros((n, 5)), np.zeros((n, 5))
    last = np.zeros((n, 5))
    seen = np.zeros((n, 5), dtype=bool)
    nll = 0.0
    for t in range(h):
        a, y = actions[t], answers[t]
        x = decay * (times[t] - last[rows, a]) / s[rows, a]
        p = np.exp(-x) if model == "exponential" else 2.0**-x
        old = seen[rows, a]
        q = np.clip(p[old], 1e-12, 1 - 1e-12)
        nll -= np.sum(np.where(y[old], np.log(q), np.log1p(-q)))
        w = 1.0 - np.where(old, p, 0.0)
        if model == "exponential":
            new_s = s[rows, a] * np.exp(w * np.where(y, 2.0 * gain, 0.5 * fail))
            s[rows, a] = np.where(old, new_s, 0.8)
        else:
            n_plus[rows, a] += np.where(old & y, w, 0.0)
            n_minus[rows, a] += np.where(old & ~y, w, 0.0)
            log2h = (
                -1
                + 5 * gain * (np.sqrt(1 + n_plus[rows, a]) - 1)
                + 1.5 * fail * (np.sqrt(1 + n_minus[rows, a]) - 1)
            )
            s[rows, a] = 2.0**log2h
        last[rows, a] = times[t]
        seen[rows, a] = True
    return float(nll)


@pytest.mark.parametrize("model", ["exponential", "hlr"])
def test_parameters_are_recovered_by_maximum_likelihood(model: str) -> None:
    """Fit decay, gain and failure effect back from 500 simulated students (scipy, Nelder–Mead).

    Tolerance 15 % (relative): the Fisher-information standard errors at this sample size
    (observed information at the truth) are about 2.5 % for each parameter, so 15 % is ~6 SE;
    refits on seeds 3–6 landed within 6 % of the truth.
    """
    truth = {"decay": 1.6, "gain": 0.7, "fail": 1.5}
    data = simulate_histories(model, truth, n=500, seed=3)
    res = optimize.minimize(
        negative_log_likelihood, np.zeros(3), args=(model, *data), method="Nelder-Mead",
        options={"xatol": 1e-4, "fatol": 1e-4, "maxiter": 2000},
    )  # fmt: skip
    assert res.success
    fitted = np.exp(res.x)
    np.testing.assert_allclose(fitted, [truth["decay"], truth["gain"], truth["fail"]], rtol=0.15)
    # and the likelihood clearly prefers the truth to the population median
    truth_nll = negative_log_likelihood(np.log([1.6, 0.7, 1.5]), model, *data)
    assert negative_log_likelihood(np.zeros(3), model, *data) - truth_nll > 20


def test_forgetting_speed_is_identifiable_from_three_rollouts() -> None:
    """Three 60-step rollouts of one student pin down their decay to within a factor 2.

    (Over ten seeds the estimates ranged over ×0.6 – ×1.6 of the truth, never overlapping
    between decay 0.4, 1 and 2.5.) This is what a meta-learner has to infer.
    """
    estimates = []
    for decay in (0.4, 1.0, 2.5):
        data = simulate_histories("exponential", {"decay": decay, "gain": 1.0, "fail": 1.0}, n=3, seed=0)
        res = optimize.minimize_scalar(
            lambda x, d=data: negative_log_likelihood(np.array([x, 0.0, 0.0]), "exponential", *d),
            bounds=(-4, 4),
            method="bounded",
        )
        estimates.append(math.exp(res.x))
        assert decay / 2 < estimates[-1] < decay * 2
    assert estimates == sorted(estimates)
