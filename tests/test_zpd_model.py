"""ZPD-v0 student model against its closed-form equations and the literature it encodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import assert_binomial
from scipy import stats

from envs.zpd import ZPDDistribution, ZPDDynamics

#: default difficulties written out independently of the module: linspace(−2.5, 2.5, 5)
B = [-2.5, -1.25, 0.0, 1.25, 2.5]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def profile(k: int = 4, **over: object) -> dict:
    """A student that neither learns nor loses engagement unless a test says so."""
    base = {
        "ability0": [0.0] * k,
        "learn_rate": 0.0,
        "sweet_spot": 0.7,
        "zpd_width": 1.0,
        "frustration": 0.0,
        "boredom": 0.0,
        "recovery": 0.0,
        "engagement0": 1.0,
    }
    base.update(over)
    return base


def batch(profiles: list[dict] | dict, n: int | None = None, seed: int = 0, **kwargs: object) -> ZPDDynamics:
    profs = profiles if isinstance(profiles, list) else [profiles] * int(n or 1)
    dyn = ZPDDynamics(len(profs), **kwargs)
    idx = np.arange(len(profs))
    dyn.set_profiles(idx, profs)
    dyn.streams.seed(idx, seed * 1_000_003 + idx)
    dyn.reset(idx)
    return dyn


# ----------------------------------------------------------------------------- answers
def test_p_correct_follows_the_rasch_model() -> None:
    n = 20_000
    abilities = [-1.5, 0.0, 0.7, 2.0]
    dyn = batch(profile(ability0=abilities), n, reward_mode="correct")
    lay = dyn.layout
    for skill, level in [(0, 0), (0, 1), (1, 2), (2, 2), (2, 3), (3, 4), (1, 0)]:
        reward, term, _ = dyn.step(np.full(n, skill * 5 + level))
        assert not term.any()
        assert_binomial(reward.sum(), n, sigmoid(abilities[skill] - B[level]))
        obs = dyn.observe()
        np.testing.assert_array_equal(obs[:, lay["last_correct"]], reward)
        assert np.all(obs[:, lay["last_skill"]].argmax(axis=1) == skill)
        assert np.allclose(obs[:, lay["last_level"]], level / 4)


def test_custom_difficulties_are_used() -> None:
    n = 20_000
    dyn = batch(
        profile(ability0=[0.3] * 2, k=2),
        n,
        n_skills=2,
        n_levels=3,
        difficulties=[-4, 1.0, 3],
        reward_mode="correct",
    )
    reward, _, _ = dyn.step(np.full(n, 1 * 3 + 1))
    assert_binomial(reward.sum(), n, sigmoid(0.3 - 1.0))


# ----------------------------------------------------------------------------- learning
def closed_form_gain(theta: float, b: float, rate: float, sweet: float, width: float) -> float:
    d = theta - b - math.log(sweet / (1 - sweet))
    return rate * math.exp(-(d**2) / (2 * width**2))


@pytest.mark.parametrize("sweet,width", [(0.5, 1.0), (0.75, 0.6), (0.3, 1.8)])
def test_gain_matches_closed_form_and_peaks_at_the_sweet_spot(sweet: float, width: float) -> None:
    grid = np.linspace(-5.0, 5.0, 1001)  # abilities; level 2 has b = 0, so p = σ(θ)
    profs = [
        profile(k=1, ability0=[float(t)], learn_rate=0.2, sweet_spot=sweet, zpd_width=width) for t in grid
    ]
    dyn = batch(profs, n_skills=1, reward_mode="gain")
    reward, _, _ = dyn.step(np.full(len(grid), 2))
    expected = np.array([closed_form_gain(t, 0.0, 0.2, sweet, width) for t in grid])
    np.testing.assert_allclose(reward, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dyn.theta[:, 0], grid + expected, rtol=0, atol=1e-12)
    # the peak is where P(correct) equals the sweet spot (up to the grid step)
    p_at_peak = sigmoid(grid[np.argmax(reward)])
    assert abs(math.log(p_at_peak / (1 - p_at_peak)) - math.log(sweet / (1 - sweet))) <= 0.01 + 1e-9
    # far too easy (p > 0.99) and far too hard (p < 0.01) items teach little
    p = 1.0 / (1.0 + np.exp(-grid))
    assert reward[(p > 0.99) | (p < 0.01)].max() < 0.2 * 0.2


def test_best_level_depends_on_the_students_sweet_spot() -> None:
    # same ability, different sweet spots → a different level teaches most
    dyn = batch(
        [profile(k=1, ability0=[0.0], learn_rate=0.2, sweet_spot=s) for s in (0.25, 0.5, 0.8)], n_skills=1
    )
    gains = np.stack([dyn.expected_gain(dyn.theta[:, 0], np.full(3, lv)) for lv in range(5)], axis=1)
    assert gains.argmax(axis=1).tolist() == [3, 2, 1]


def test_learning_only_changes_the_practised_skill_and_accumulates() -> None:
    dyn = batch(profile(ability0=[-1.0, 0.0, 1.0, 2.0], learn_rate=0.3, sweet_spot=0.6, zpd_width=1.2), 3)
    theta = -1.0
    for _ in range(6):
        dyn.step(np.full(3, 0 * 5 + 1))  # skill 0, level 1
        theta += closed_form_gain(theta, B[1], 0.3, 0.6, 1.2)
    np.testing.assert_allclose(dyn.theta[:, 0], theta, rtol=1e-12)
    np.testing.assert_array_equal(dyn.theta[:, 1:], np.tile([0.0, 1.0, 2.0], (3, 1)))


# ----------------------------------------------------------------------------- engagement
def reference_episode(prof: dict, actions: np.ndarray, outcomes: np.ndarray, quit_threshold: float) -> tuple:
    """Independent scalar replay of the documented equations.

    Returns the engagement after each step (up to the quit) and the quit step (−1 if none).
    """
    theta = list(prof["ability0"])
    e, fail_run, easy_run, trace = prof["engagement0"], 0, 0, []
    for t, (a, ok) in enumerate(zip(actions.tolist(), outcomes.tolist())):
        k, lv = divmod(a, 5)
        p = sigmoid(theta[k] - B[lv])
        theta[k] += closed_form_gain(
            theta[k], B[lv], prof["learn_rate"], prof["sweet_spot"], prof["zpd_width"]
        )
        easy = p >= 0.9
        fail_run = 0 if ok else fail_run + 1
        easy_run = easy_run + 1 if easy else 0
        delta = -prof["frustration"] * fail_run - prof["boredom"] * easy_run * easy
        delta += prof["recovery"] * (1 - e) * (ok and not easy)
        e = min(max(e + delta, 0.0), 1.0)
        trace.append(e)
        if e < quit_threshold:
            return trace, t
    return trace, -1


def test_engagement_and_quitting_follow_their_equations() -> None:
    profs = [p.to_dict() for p in ZPDDistribution(4).sample(64, "ood", seed=2)]
    n, horizon = len(profs), 60
    dyn = batch(profs, seed=4, horizon=horizon)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 20, size=(horizon, n))
    # mostly easy or mostly hard items, so both boredom and frustration are exercised
    actions[:, : n // 2] = actions[:, : n // 2] // 5 * 5 + rng.integers(0, 2, size=(horizon, n // 2))
    outcomes, engagement, done = [], [], []
    for t in range(horizon):
        dyn.step(actions[t])
        outcomes.append(dyn.observe()[:, 0] > 0.5)
        engagement.append(dyn.engagement.copy())
        done.append(dyn.done.copy())
    outcomes, engagement, done = np.array(outcomes), np.array(engagement), np.array(done)
    quits = 0
    for i in range(n):
        trace, quit_step = reference_episode(profs[i], actions[:, i], outcomes[:, i], 0.3)
        m = len(trace)
        np.testing.assert_allclose(engagement[:m, i], trace, rtol=0, atol=1e-12)
        assert dyn.quit_step[i] == quit_step
        # the episode ends at the quit (or at the horizon) and not before
        assert np.argmax(done[:, i]) == (quit_step if quit_step >= 0 else horizon - 1)
        if quit_step >= 0:  # frozen after quitting
            quits += 1
            assert np.all(engagement[m:, i] == trace[-1])
    assert 5 < quits < n  # the check covered students who quit and students who stayed


def test_quit_threshold_zero_never_quits() -> None:
    dyn = batch(profile(ability0=[-6.0] * 4, frustration=1.0, engagement0=0.5), 50, quit_threshold=0.0)
    for _ in range(50):
        _, term, _ = dyn.step(np.full(50, 4))
    assert not dyn.quit.any() and np.all(dyn.engagement == 0.0)
    assert term.all()  # the horizon ends every episode


def test_response_time_distribution() -> None:
    levels, per_level = np.linspace(0.35, 1.0, 66), 300
    e0 = np.repeat(levels, per_level)
    # frustration makes the engagement after a failure differ from the one during the attempt;
    # one dict object per level (repeated) so the profiles are validated once each
    distinct = [profile(ability0=[0.5] * 4, engagement0=float(e), frustration=0.2) for e in levels]
    profs = [d for d in distinct for _ in range(per_level)]
    n = len(profs)
    dyn = batch(profs, quit_threshold=0.0)
    dyn.step(np.full(n, 1 * 5 + 3))  # p = σ(0.5 − 1.25)
    assert 0 < dyn.fail_run.sum() < n
    p = sigmoid(0.5 - 1.25)
    z = (np.log(dyn.last_rt) - math.log(10.0) - (1 - p) + 1.5 * (1 - e0)) / 0.3
    assert stats.kstest(z, "norm").pvalue > 1e-6
    # the observed (normalised) response time rises with engagement
    rt_obs = dyn.observe()[:, dyn.layout["response_time"]]
    assert stats.spearmanr(rt_obs, e0).statistic > 0.5


def shifted_population(target: float | str, n: int) -> list[dict]:
    """Training students moved so that the middle level (b = 0) has P(correct) = target."""
    out = []
    for p in ZPDDistribution(4).sample(n, "train", seed=7):
        d = p.to_dict()
        t = p.sweet_spot if target == "matched" else target
        a = np.asarray(d["ability0"])
        d["ability0"] = (a - a.mean() + math.log(t / (1 - t))).tolist()
        out.append(d)
    return out


def early_quits(target: float | str, n: int = 1000, before: int = 25) -> int:
    dyn = batch(shifted_population(target, n), seed=1)
    for t in range(before):
        dyn.step(np.full(n, (t % 4) * 5 + 2))  # a fixed level, skills in turn
    return int(dyn.quit.sum())


def test_mismatched_difficulty_causes_early_quitting() -> None:
    # Flow / ZPD literature: items far beyond (frustration) or below (boredom) the learner's
    # level make them disengage; items at their level keep them practising.
    n = 1000
    matched = early_quits("matched", n)
    for target in (0.15, 0.97):
        other = early_quits(target, n)
        table = [[other, n - other], [matched, n - matched]]
        assert other > matched and stats.fisher_exact(table, alternative="greater").pvalue < 1e-10, (
            target,
            other,
            matched,
        )


# ----------------------------------------------------------------------------- posttest, metrics
def test_posttest_reward_and_episode_metrics() -> None:
    prof = profile(ability0=[-1.0, 0.0, 0.5, 1.0], learn_rate=0.25, sweet_spot=0.6)
    dyn = batch(prof, 1, reward_mode="posttest", horizon=8)
    rewards = []
    for t in range(8):
        r, term, _ = dyn.step(np.array([(t % 2) * 5 + 1]))
        rewards.append(float(r[0]))
    assert term[0] and rewards[:7] == [0.0] * 7
    theta = dyn.theta[0]
    expected = np.mean([sigmoid(th - b) for th in theta for b in B])
    assert rewards[7] == pytest.approx(expected, rel=1e-12)
    m = dyn.episode_metrics(np.array([0]))
    assert m["posttest"][0] == pytest.approx(expected, rel=1e-12)
    assert m["ability_gain"][0] == pytest.approx(np.mean(theta - np.array(prof["ability0"])), rel=1e-12)
    assert m["quit"][0] == 0.0 and np.isnan(m["quit_step"][0]) and m["final_engagement"][0] == 1.0
    assert 0.0 <= m["success_rate"][0] <= 1.0


def test_quit_penalty_and_quit_metrics() -> None:
    # certain failure: E = 0.5 − 0.3 = 0.2 < 0.3 after the first attempt
    prof = profile(ability0=[-6.0] * 4, frustration=0.3, engagement0=0.5)
    dyn = batch(prof, 2, reward_mode="correct", quit_penalty=2.5)
    r, term, _ = dyn.step(np.full(2, 4))
    assert term.all() and np.all(r == -2.5)
    m = dyn.episode_metrics(np.arange(2))
    assert np.all(m["quit"] == 1.0) and np.all(m["quit_step"] == 0.0)
    assert m["final_engagement"] == pytest.approx([0.2, 0.2])


def test_finished_students_are_frozen_and_finite() -> None:
    profs = [p.to_dict() for p in ZPDDistribution(4).sample(256, "ood", seed=9)]
    profs += [profile(ability0=[6.0] * 4, learn_rate=1.0, zpd_width=5.0), profile(ability0=[-6.0] * 4)]
    n = len(profs)
    dyn = batch(profs, horizon=30)
    space = dyn.single_observation_space
    rng = np.random.default_rng(3)
    for _ in range(30):
        dyn.step(rng.integers(0, 20, size=n))
    assert dyn.done.all()
    frozen = (dyn.theta.copy(), dyn.engagement.copy(), dyn.observe()[:, :-1].copy())
    for _ in range(40):  # a vector env steps finished sub-envs before their autoreset
        r, term, _ = dyn.step(rng.integers(0, 20, size=n))
        obs = dyn.observe()
        assert np.all(r == 0.0) and not term.any()
        assert np.isfinite(obs).all() and all(space.contains(o) for o in obs)
    np.testing.assert_array_equal(dyn.theta, frozen[0])
    np.testing.assert_array_equal(dyn.engagement, frozen[1])
    np.testing.assert_array_equal(dyn.observe()[:, :-1], frozen[2])
    metrics = dyn.episode_metrics(np.arange(n))
    assert all(np.isfinite(v).all() for k, v in metrics.items() if k != "quit_step")
    # quit_step is NaN exactly for the students who did not quit
    np.testing.assert_array_equal(np.isnan(metrics["quit_step"]), metrics["quit"] == 0.0)
    assert 0 < metrics["quit"].sum() < n


def test_observations_document_the_window_success_rate() -> None:
    n = 4
    dyn = batch(profile(ability0=[6.0, -6.0, 0.0, 0.0]), n, window=3)
    lay = dyn.layout
    obs = dyn.observe()
    assert np.all(obs[:, lay["success_rate"]] == 0.5) and np.all(obs[:, lay["time"]] == 0.0)
    # skill 0 at level 0 is right and skill 1 at level 4 wrong with probability 1 − 2e-4
    for a in (0, 0, 9, 0, 0, 9):
        dyn.step(np.full(n, a))
    obs = dyn.observe()
    rates = obs[:, lay["success_rate"]]
    assert np.all(rates[:, 0] == 1.0) and np.all(rates[:, 1] == 0.0) and np.all(rates[:, 2:] == 0.5)
    np.testing.assert_allclose(obs[:, lay["attempts"]], [[4 / 50, 2 / 50, 0, 0]] * n)
    assert np.allclose(obs[:, lay["streak"]], -0.1)  # one failure in a row
    assert np.allclose(obs[:, lay["time"]], 6 / 50)


def test_recent_success_rate_is_a_sliding_window() -> None:
    n, window, horizon = 32, 3, 40
    dyn = batch(profile(k=2, ability0=[0.0, 1.0]), n, n_skills=2, window=window, horizon=horizon)
    lay = dyn.layout
    rng = np.random.default_rng(5)
    history: list[list[list[float]]] = [[[], []] for _ in range(n)]
    for _ in range(horizon):
        a = rng.integers(0, 10, size=n)
        dyn.step(a)
        obs = dyn.observe()
        for i in range(n):
            history[i][a[i] // 5].append(float(obs[i, lay["last_correct"]]))
            expected = [np.mean(h[-window:]) if h else 0.5 for h in history[i]]
            np.testing.assert_allclose(obs[i, lay["success_rate"]], expected, rtol=1e-6)
