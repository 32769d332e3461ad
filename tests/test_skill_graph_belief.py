"""SkillGraph-v0's exact mastery filter and the belief planner built on it.

The filter is checked against a brute-force reference (every joint transition enumerated
with plain loops, from the model's equations) and against the simulator itself (the
distribution of the sampled mastery among students with the same answers, χ² test).
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import envs
from envs.skill_graph.belief import MAX_SKILLS, MasteryFilter
from envs.skill_graph.dynamics import build_prerequisites
from envs.skill_graph.tutors import BeliefPlannerTutor
from envs.tutors import make_tutor, tutor_names
from meta_rl.evaluation.heuristics import evaluate_tutor

ENV_ID = "MetaTutor/SkillGraph-v0"
KW = {"n_skills": 3, "n_content": 2, "horizon": 12, "prerequisites": "chain"}
PROFILE = {
    "learn": [0.6, 0.5, 0.4],
    "content_affinity": [0.9, 0.3],
    "slip": 0.1,
    "guess": 0.25,
    "forget": 0.15,
    "prior": [0.3, 0.2, 0.1],
}
#: teach 0, teach 0, quiz 0, teach 1 (content 1), quiz 1, teach 0, quiz 2, teach 2, quiz 0
ACTIONS = [(0, 0), (0, 0), (0, 2), (1, 1), (1, 2), (0, 0), (2, 2), (2, 0), (0, 2)]


def _arrays(profile: dict, n: int = 1) -> dict[str, np.ndarray]:
    return {k: np.repeat(np.asarray(v, dtype=np.float64)[None], n, axis=0) for k, v in profile.items()}


def _reference_posterior(
    prereq: np.ndarray, penalty: float, n_content: int, profile: dict, actions: list, answers: list
) -> np.ndarray:
    """Forward algorithm with the joint transition written state by state."""
    k = len(prereq)
    states = list(itertools.product([0, 1], repeat=k))  # tuples (M_0, …, M_{K-1})
    index = {s: sum(b << i for i, b in enumerate(s)) for s in states}
    belief = np.zeros(1 << k)
    for s in states:
        belief[index[s]] = np.prod([p if m else 1 - p for m, p in zip(s, profile["prior"])])
    answer = iter(answers)
    for skill, mode in actions:
        if mode == n_content:
            correct = next(answer)
            for s in states:
                p = 1 - profile["slip"] if s[skill] else profile["guess"]
                belief[index[s]] *= p if correct else 1 - p
            belief /= belief.sum()
        new = np.zeros_like(belief)
        for s in states:
            # bit `skill` by learning (teach only), every other mastered bit by forgetting
            ready = all(s[pre] for pre in range(k) if prereq[skill, pre])
            q = 0.0
            if mode < n_content and not s[skill]:
                q = profile["learn"][skill] * profile["content_affinity"][mode] * (1.0 if ready else penalty)
            choices = []
            for bit in range(k):
                if bit == skill:
                    choices.append([(1, q), (0, 1 - q)] if not s[bit] else [(1, 1.0)])
                elif s[bit]:
                    choices.append([(1, 1 - profile["forget"]), (0, profile["forget"])])
                else:
                    choices.append([(0, 1.0)])
            for combo in itertools.product(*choices):
                target = tuple(b for b, _ in combo)
                new[index[target]] += belief[index[s]] * np.prod([p for _, p in combo])
        belief = new
    return belief


def _filter_posterior(flt: MasteryFilter, profile: dict, actions: list, answers: list) -> np.ndarray:
    arrays = _arrays(profile)
    belief = flt.initial(arrays["prior"])
    answer = iter(answers)
    for skill, mode in actions:
        correct = next(answer) if mode == flt.n_content else False
        belief = flt.update(belief, np.array([skill]), np.array([mode]), np.array([correct]), arrays)
    return belief[0]


@pytest.mark.parametrize("graph", ["chain", "default", "none"])
def test_filter_equals_brute_force_forward_algorithm(graph: str) -> None:
    k, c = 4, 2
    prereq = build_prerequisites(k, graph, None)
    flt = MasteryFilter(prereq, 0.1, c)
    rng = np.random.default_rng(0)
    profile = {
        "learn": rng.uniform(0.2, 0.9, k).tolist(),
        "content_affinity": rng.uniform(0.1, 1.0, c).tolist(),
        "slip": 0.12,
        "guess": 0.2,
        "forget": 0.1,
        "prior": rng.uniform(0.0, 0.5, k).tolist(),
    }
    actions = [(int(rng.integers(k)), int(rng.integers(c + 1))) for _ in range(15)]
    answers = [bool(rng.random() < 0.5) for _ in actions]
    ours = _filter_posterior(flt, profile, actions, answers)
    ref = _reference_posterior(prereq, 0.1, c, profile, actions, answers)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert ours.sum() == pytest.approx(1.0, abs=1e-12)


def test_filter_matches_the_simulator() -> None:
    """20 000 copies of one student follow ACTIONS; among those with the same quiz answers the
    final sampled mastery is distributed as the filter's posterior (χ², p > 1e-4 per answer
    pattern with at least 500 students)."""
    n = 20_000
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **KW)
    venv.unwrapped.set_tasks([PROFILE] * n)
    obs, _ = venv.reset(seed=3)
    k, c = KW["n_skills"], KW["n_content"]
    answers = []
    for skill, mode in ACTIONS:
        obs, *_ = venv.step(np.full(n, skill * (c + 1) + mode))
        if mode == c:
            answers.append(obs[:, 3 * k + skill] > 0.5)
    mastered = venv.unwrapped.dynamics.mastered
    state = (mastered * (1 << np.arange(k))).sum(axis=1)
    flt = MasteryFilter(build_prerequisites(k, "chain", None), 0.1, c)
    pattern = np.stack(answers, axis=1)
    tested = 0
    for combo in {tuple(row) for row in pattern.tolist()}:
        rows = (pattern == np.asarray(combo)).all(axis=1)
        if rows.sum() < 500:
            continue
        posterior = _filter_posterior(flt, PROFILE, ACTIONS, list(combo))
        observed = np.bincount(state[rows], minlength=1 << k)
        expected = posterior * rows.sum()
        keep = expected >= 5  # χ² needs expected counts ≥ 5; the rest pooled
        f_obs = np.append(observed[keep], observed[~keep].sum())
        f_exp = np.append(expected[keep], expected[~keep].sum())
        if f_exp[-1] < 5:
            f_obs, f_exp = f_obs[:-1], f_exp[:-1]
            f_exp = f_exp * f_obs.sum() / f_exp.sum()
        assert stats.chisquare(f_obs, f_exp).pvalue > 1e-4, (combo, observed, expected.round(1))
        tested += 1
    assert tested >= 4


def test_filter_is_certain_after_noiseless_quizzes() -> None:
    profile = dict(PROFILE, slip=0.0, guess=0.0, forget=0.0)
    flt = MasteryFilter(build_prerequisites(3, "chain", None), 0.1, 2)
    for correct in (True, False):
        belief = _filter_posterior(flt, profile, [(0, 0), (0, 2)], [correct])
        assert flt.marginals(belief[None])[0, 0] == pytest.approx(1.0 if correct else 0.0, abs=1e-15)


def test_filter_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=f"1..{MAX_SKILLS}"):
        MasteryFilter(np.zeros((MAX_SKILLS + 1, MAX_SKILLS + 1), dtype=bool), 0.1, 2)
    with pytest.raises(ValueError, match="square"):
        MasteryFilter(np.zeros((2, 3), dtype=bool), 0.1, 2)
    flt = MasteryFilter(build_prerequisites(3, "chain", None), 0.1, 2)
    sure = dict(PROFILE, slip=0.0, guess=0.0, prior=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="impossible under the given profiles"):
        _filter_posterior(flt, sure, [(0, 2)], [True])  # unmastered, no guessing: cannot be right


class _NoMastery:
    """The env's dynamics with the hidden mastery taken away."""

    def __init__(self, dynamics: object) -> None:
        self._d = dynamics

    def __getattr__(self, name: str) -> object:
        if name in ("mastered_km", "mastered"):
            raise AssertionError(f"the belief planner read the hidden {name}")
        return getattr(self._d, name)


def test_belief_planner_never_reads_the_mastery() -> None:
    venv = gym.make_vec(ENV_ID, num_envs=6, vectorization_mode="vector_entry_point", **KW)
    venv.unwrapped.set_tasks(envs.sample_profiles(ENV_ID, 6, seed=1, **KW))
    tutor = make_tutor("belief_planner", venv)
    assert tutor.privileged and not tutor.omniscient and make_tutor("planner", venv).omniscient
    tutor.dynamics = _NoMastery(tutor.dynamics)
    obs, _ = venv.reset(seed=0)
    for _ in range(2 * KW["horizon"] + 1):  # across an autoreset
        obs, *_ = venv.step(tutor.act(obs))


def test_belief_planner_teaches_the_likely_unlearned_ready_skill() -> None:
    """A student known to master skill 0 at the start (prior 1, no forgetting): teach skill 1
    with the preferred content; one who cannot have skill 0: teach skill 0."""
    env = gym.make(ENV_ID, **KW)
    tutor = make_tutor("belief_planner", env)
    for prior, skill in (([1.0, 0.0, 0.0], 1), ([0.0, 0.0, 0.0], 0)):
        profile = dict(PROFILE, prior=prior, forget=0.0)
        obs, _ = env.reset(seed=0, options={"profile": profile})
        tutor.reset()
        assert tutor.act(obs) == skill * 3 + 0  # content 0 has the larger affinity


@pytest.mark.parametrize("split", ["test", "ood"])
def test_belief_planner_between_the_heuristics_and_the_omniscient_planner(split: str) -> None:
    """On the evaluation's setting (60 students × 4 episodes, paired): above every heuristic
    (one-sided paired t-test vs the best, p < 1e-4), below the planner that sees the mastery."""
    kw = {"n_skills": 4, "n_content": 3, "horizon": 30, "prerequisites": "chain"}
    profs = envs.sample_profiles(ENV_ID, 60, split=split, seed=7, **kw)
    ret = {name: evaluate_tutor(name, ENV_ID, kw, profs, 4, seed=3)[0] for name in tutor_names(ENV_ID)}
    belief, planner = ret.pop("belief_planner"), ret.pop("planner")
    best = max(ret, key=lambda name: ret[name].mean())
    assert stats.ttest_rel(belief, ret[best], alternative="greater").pvalue < 1e-4
    assert stats.ttest_rel(planner, belief, alternative="greater").pvalue < 1e-4


class _RandomBeliefPlanner(BeliefPlannerTutor):
    """The belief planner's bookkeeping with random actions (quizzes included) instead of its rule."""

    def _act(self, obs: np.ndarray) -> np.ndarray:
        super()._act(obs)  # updates the belief with the previous action and its answer
        self.last_action = self.rng.integers(0, self.n_actions, size=len(obs))
        return self.last_action


def test_belief_tracking_reads_quiz_answers_across_autoresets() -> None:
    """Over three episodes per sub-env (NEXT_STEP autoreset), the tutor's belief equals an
    independent filter fed the same actions and the answers read from the observations."""
    n = 6
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **KW)
    profiles = envs.sample_profiles(ENV_ID, n, seed=4, **KW)
    venv.unwrapped.set_tasks(profiles)
    tutor = _RandomBeliefPlanner(venv, seed=1)
    flt = MasteryFilter(build_prerequisites(3, "chain", None), 0.1, KW["n_content"])
    arrays = {k: np.stack([np.asarray(p[k], dtype=np.float64) for p in profiles]) for k in profiles[0]}
    k, c = KW["n_skills"], KW["n_content"]
    obs, _ = venv.reset(seed=0)
    ref, quizzes = None, 0
    for _ in range(3 * (KW["horizon"] + 1)):
        action = tutor.act(obs)
        if obs[0, -1] == 0.0:  # every sub-env starts its episodes together here
            ref = flt.initial(arrays["prior"])
        np.testing.assert_allclose(tutor.belief, ref, atol=1e-12)
        obs, *_ = venv.step(action)
        skill, mode = np.divmod(action, c + 1)
        quizzes += int((mode == c).sum())
        ref = flt.update(ref, skill, mode, obs[np.arange(n), 3 * k + skill] > 0.5, arrays)
    assert quizzes > 50


def test_belief_planner_refuses_to_start_mid_episode() -> None:
    env = gym.make(ENV_ID, **KW)
    obs, _ = env.reset(seed=0, options={"profile": PROFILE})
    obs, *_ = env.step(0)
    with pytest.raises(ValueError, match="mid-episode"):
        make_tutor("belief_planner", env).act(obs)
