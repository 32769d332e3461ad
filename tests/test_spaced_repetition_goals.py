"""SpacedRepetitionGoals-v0: SpacedRepetition-v0's students with a goal-weighted exam.

The reference for every check is SpacedRepetition-v0 itself run on the same student (the
goal changes no memory, no answer, no observation) and the closed form of the weighted exam.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from helpers import TINY_ITEMWISE
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import envs
from envs.spaced_repetition import SpacedRepetitionGoalsEnv, SpacedRepetitionGoalsProfile
from envs.spaced_repetition.goals import card_topics, goal_topics
from envs.tutors import make_tutor, tutor_names
from meta_rl.envspec import EnvSpec

SR = "MetaTutor/SpacedRepetition-v0"
GOALS = "MetaTutor/SpacedRepetitionGoals-v0"


def make_vec(env_id: str, n: int, **kw: object) -> gym.vector.VectorEnv:
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kw)


def draw(n: int, split: str = "test", seed: int = 0, k: int = 20) -> list[SpacedRepetitionGoalsProfile]:
    return envs.distribution(GOALS, n_items=k).sample(n, split, seed)


def without_goal(profile: SpacedRepetitionGoalsProfile) -> dict:
    return {k: v for k, v in profile.to_dict().items() if k != "goal"}


def run_both(profiles: list, actions: np.ndarray, **kw: object) -> tuple[list, list]:
    """Step SpacedRepetition-v0 and the goal variant with the same students, seed and actions."""
    out = []
    for env_id, profs in ((SR, [without_goal(p) for p in profiles]), (GOALS, profiles)):
        venv = make_vec(env_id, len(profiles), **kw)
        venv.unwrapped.set_tasks(profs)
        obs, _ = venv.reset(seed=5)
        d = venv.unwrapped.dynamics
        steps = [(obs, None, None, d.recall_matrix(d.times[d.t]))]
        for a in actions:
            obs, r, _, _, info = venv.step(a)
            d = venv.unwrapped.dynamics
            steps.append((obs, r, info, d.recall_matrix(d.times[np.minimum(d.t, d.horizon)])))
        out.append(steps)
    return out[0], out[1]


@pytest.mark.parametrize("reward_mode", ["recall", "exam", "correct"])
def test_check_env_and_docstring(reward_mode: str) -> None:
    from meta_rl.config import default_config_path

    assert default_config_path(GOALS).name == "spaced_repetition_goals.yaml"
    env = gym.make(GOALS, reward_mode=reward_mode, horizon=30)
    check_env(env.unwrapped, skip_render_check=True)
    assert isinstance(env.unwrapped, SpacedRepetitionGoalsEnv)
    for section in ("Description", "Action Space", "Observation Space", "Rewards",
                    "Starting State", "Episode End", "Arguments"):  # fmt: skip
        assert f"## {section}" in SpacedRepetitionGoalsEnv.__doc__


def test_same_memory_and_observations_as_spaced_repetition_and_weighted_reward() -> None:
    n, k, h = 24, 8, 40
    profs = draw(n, "test", 3, k)
    actions = np.random.default_rng(0).integers(0, k, size=(h, n))
    base, goals = run_both(profs, actions, n_items=k, horizon=h, session_length=8)
    w = np.array([p.goal for p in profs])
    w = w / w.sum(axis=1, keepdims=True)
    topic_blocks = (card_topics(k, 4)[None, :] == np.arange(4)[:, None]).reshape(-1)
    for (obs_b, _, _, p_b), (obs_g, _, _, p_g) in zip(base, goals):
        # same answers, nothing of the goal shown: SpacedRepetition-v0's columns, then the topics
        np.testing.assert_array_equal(obs_g[:, : 4 * k], obs_b[:, : 4 * k])
        np.testing.assert_array_equal(obs_g[:, -1], obs_b[:, -1])
        np.testing.assert_array_equal(obs_g[:, 4 * k : -1], np.broadcast_to(topic_blocks, (n, 4 * k)))
        np.testing.assert_array_equal(p_b, p_g)
    # reward = change of the goal-weighted mean recall, computed from the base env's recall
    weighted = np.array([(p * w).sum(axis=1) for *_, p in base])
    for t in range(h):
        np.testing.assert_allclose(goals[t + 1][1], weighted[t + 1] - weighted[t], atol=1e-12)
    info = goals[-1][2]
    total = sum(step[1] for step in goals[1:])
    np.testing.assert_allclose(total, info["final_mean_recall_prob"], atol=1e-12)
    np.testing.assert_allclose(info["final_mean_recall_prob"], weighted[-1], atol=1e-12)
    # the share of presentations spent on goal cards, counted from the actions
    on_goal = (np.take_along_axis(w, actions.T, axis=1) > 0).mean(axis=1)
    np.testing.assert_allclose(info["goal_review_share"], on_goal)
    for name in ("items_never_reviewed", "accuracy"):  # goal-free metrics are SpacedRepetition-v0's
        np.testing.assert_array_equal(info[name], base[-1][2][name])


def test_a_goal_of_every_card_is_spaced_repetition_exactly() -> None:
    n, k, h = 16, 6, 30
    profs = [SpacedRepetitionGoalsProfile(**{**p.to_dict(), "goal": [1.0] * k}) for p in draw(n, "val", 1, k)]
    actions = np.random.default_rng(1).integers(0, k, size=(h, n))
    for mode in ("recall", "exam"):
        base, goals = run_both(profs, actions, n_items=k, horizon=h, session_length=5, reward_mode=mode)
        for b, g in zip(base[1:], goals[1:]):
            np.testing.assert_allclose(g[1], b[1], atol=1e-12)
        for name in envs.family(SR).load("dynamics").metric_names:
            np.testing.assert_allclose(goals[-1][2][name], base[-1][2][name], atol=1e-12)


def test_exam_of_a_single_goal_card_is_bernoulli_with_its_recall() -> None:
    n, k = 4000, 4
    prof = draw(1, "train", 0, k)[0]
    prof = SpacedRepetitionGoalsProfile(**{**prof.to_dict(), "goal": [0.0, 0.0, 1.0, 0.0]})
    venv = make_vec(GOALS, n, n_items=k, horizon=6, session_length=3, reward_mode="exam")
    venv.unwrapped.set_tasks([prof] * n)
    venv.reset(seed=2)
    for a in (0, 2, 1, 2, 3, 0):
        _, r, term, _, info = venv.step(np.full(n, a))
    assert term.all()
    d = venv.unwrapped.dynamics
    # the second presentation's answer is random, so each copy has its own recall p
    p = d.recall_matrix(d.times[d.t])[:, 2]
    assert set(np.unique(r)) <= {0.0, 1.0}
    np.testing.assert_array_equal(r, info["exam_recall"])
    z = (r.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())  # Poisson-binomial count
    assert abs(z) < 4.5 and p.std() > 0.01


def test_population_goals_are_whole_topics_chosen_uniformly() -> None:
    k, n_topics = 20, 4
    dist = envs.distribution(GOALS, n_items=k, n_topics=n_topics)
    topics = card_topics(k, n_topics)
    assert np.bincount(topics).tolist() == [5, 5, 5, 5]
    for split in ("train", "test", "ood"):
        goal = np.array([p.goal for p in dist.sample(3000, split, seed=0)])
        assert set(np.unique(goal)) == {0.0, 1.0}
        per_topic = np.stack([goal[:, topics == c] for c in range(n_topics)], axis=1)  # (n, topic, card)
        assert (per_topic.min(axis=2) == per_topic.max(axis=2)).all()  # a topic is needed whole or not
        chosen = per_topic[:, :, 0]
        assert (chosen.sum(axis=1) == goal_topics(n_topics, split)).all()
        counts = chosen.sum(axis=0)
        assert stats.chisquare(counts, np.full(n_topics, counts.sum() / n_topics)).pvalue > 1e-4
    assert goal_topics(4, "test") == 1 and goal_topics(4, "ood") == 2 and goal_topics(1, "train") == 1
    assert card_topics(7, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="n_topics"):
        gym.make(GOALS, n_items=4, n_topics=5)
    # the memory parameters are SpacedRepetition-v0's population, draw for draw
    sr = envs.distribution(SR, n_items=k).sample(50, "val", seed=4)
    g = dist.sample(50, "val", seed=4)
    assert [without_goal(p) for p in g] == [p.to_dict() for p in sr]


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=6),
        st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),  # mostly valid goals
    )
)
def test_goal_validation(goal: list[float]) -> None:
    base = without_goal(draw(1, "test", 0, len(goal))[0])
    ok = all(0.0 <= g <= 1.0 for g in goal) and sum(goal) > 0.0
    if ok:
        assert SpacedRepetitionGoalsProfile(**base, goal=goal).goal == tuple(goal)
    else:
        with pytest.raises(ValueError, match="goal"):
            SpacedRepetitionGoalsProfile(**base, goal=goal)


def test_bad_profiles_are_refused_with_the_field_named() -> None:
    env = gym.make(GOALS, n_items=4)
    base = without_goal(draw(1, "test", 0, 4)[0])
    with pytest.raises(ValueError, match="goal"):
        env.reset(options={"profile": base})  # a SpacedRepetition-v0 profile: no goal
    with pytest.raises(ValueError, match="goal"):
        env.reset(options={"profile": {**base, "goal": [1.0, 0.0]}})
    with pytest.raises(ValueError, match="at least one positive"):
        env.reset(options={"profile": {**base, "goal": [0.0] * 4}})
    env.reset(options={"profile": {**base, "goal": [0.0, 1.0, 0.0, 0.0]}})
    d = env.unwrapped.dynamics
    arrays = {name: np.asarray([v]) for name, v in {**base, "decay": 7.0, "goal": [0.0] * 4}.items()}
    with pytest.raises(ValueError, match="at least one positive"):
        d.set_profile_arrays(np.array([0]), arrays)
    for bad in ([np.nan, 1.0, 0.0, 0.0], [-0.5, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [np.inf, 0, 0, 0]):
        with pytest.raises(ValueError, match=r"goal' must lie in \[0, 1\]"):
            d.set_profile_arrays(np.array([0]), {**arrays, "goal": np.asarray([bad])})
    # refused as a whole: the student is unchanged
    assert d.p["goal"][0].tolist() == [0.0, 1.0, 0.0, 0.0] and d.p["decay"][0] == base["decay"]
    np.testing.assert_array_equal(d.exam_weights()[0], [0.0, 1.0, 0.0, 0.0])


def test_planner_spends_reviews_on_the_goal_and_beats_goal_blind_tutors() -> None:
    n = 60
    profs = draw(n, "val", 7)
    returns, share = {}, {}
    blind = [name for name in tutor_names(GOALS) if name != "planner"]
    assert set(blind) == {"random", "round_robin", "leitner", "sm2", "threshold", "fsrs"}
    for name in ("planner", *blind):
        venv = make_vec(GOALS, n)
        venv.unwrapped.set_tasks(profs)
        tutor = make_tutor(name, venv, seed=0)
        obs, _ = venv.reset(seed=0)
        total = np.zeros(n)
        for _ in range(100):
            obs, r, term, _, info = venv.step(tutor.act(obs))
            total += r
        assert term.all()
        returns[name], share[name] = total, info["goal_review_share"]
    assert (share["planner"] == 1.0).all()
    for name in blind:
        assert share[name].mean() < 0.4, name
        diff = returns["planner"] - returns[name]
        assert stats.ttest_1samp(diff, 0.0, alternative="greater").pvalue < 1e-6, name
    assert set(tutor_names(GOALS)) == set(tutor_names(SR))


def _actions_on_both(name: str, profs, steps: int, tutor_seed: int, reset_seed: int, **kwargs) -> list:
    """Tutor ``name``'s actions over ``steps`` steps with the same students on SpacedRepetition-v0
    (goals dropped) and on the goal variant."""
    acts = []
    for env_id, ps in ((SR, [without_goal(p) for p in profs]), (GOALS, profs)):
        venv = make_vec(env_id, len(profs), **kwargs)
        venv.unwrapped.set_tasks(ps)
        tutor = make_tutor(name, venv, seed=tutor_seed)
        obs, _ = venv.reset(seed=reset_seed)
        seq = []
        for _ in range(steps):
            a = tutor.act(obs)
            seq.append(a)
            obs, *_ = venv.step(a)
        acts.append(np.array(seq))
    return acts


def test_goal_blind_tutors_act_as_on_spaced_repetition_across_autoresets() -> None:
    """The tutors read only SpacedRepetition-v0's columns of the wider observation."""
    n, k, h = 6, 10, 25
    profs = draw(n, "val", 5, k)
    for name in (t for t in tutor_names(GOALS) if t != "planner"):
        # three episodes, NEXT_STEP autoresets in between
        acts = _actions_on_both(name, profs, 3 * h, 3, 1, n_items=k, horizon=h, session_length=5)
        np.testing.assert_array_equal(acts[0], acts[1], err_msg=name)


def test_planner_on_spaced_repetition_is_the_goal_free_rule() -> None:
    """On SpacedRepetition-v0 the planner's rule is the one written before goals existed:
    threshold rule over every card, then the largest exam gain over every card."""
    n = 16
    venv = make_vec(SR, n, horizon=60)
    venv.unwrapped.set_tasks(envs.distribution(SR).sample(n, "test", seed=9))
    tutor = make_tutor("planner", venv, seed=0)
    d = venv.unwrapped.dynamics
    obs, _ = venv.reset(seed=0)
    for _ in range(150):  # across NEXT_STEP autoresets
        t = np.minimum(d.t, d.horizon - 1)
        gain, recall = tutor.exam_gain(d.times[t])
        weakest = np.where(d.seen, recall, np.inf).argmin(axis=1)
        due = (d.seen & (recall < tutor.threshold)).any(axis=1)
        new = (~d.seen).any(axis=1)
        rule = np.where(due | ~new, weakest, (~d.seen).argmax(axis=1))
        final = t >= d.horizon - tutor.final_sessions * d.session_length
        expected = np.where(final, gain.argmax(axis=1), rule)
        a = tutor.act(obs)
        np.testing.assert_array_equal(a, expected)
        obs, *_ = venv.step(a)


def test_planner_with_every_card_on_the_goal_acts_as_on_spaced_repetition() -> None:
    n, k = 12, 8
    profs = [SpacedRepetitionGoalsProfile(**{**p.to_dict(), "goal": [1.0] * k}) for p in draw(n, "val", 2, k)]
    acts = _actions_on_both("planner", profs, 40, 0, 0, n_items=k, horizon=40)
    np.testing.assert_array_equal(acts[0], acts[1])


def test_privileged_item_layout_gives_each_card_its_goal_weight() -> None:
    k = 5
    spec = EnvSpec(GOALS, {"n_items": k, "n_topics": 2}, privileged=True)
    items, shared = spec.item_layout
    base = 6 * k + 1  # the observation (4 + 2 topic blocks, time), then decay, gain, fail_effect,
    for i in range(k):  # the cards' difficulties and goals
        assert items[i] == (*(b * k + i for b in range(6)), base + 3 + i, base + 3 + k + i)
    assert shared == (6 * k, base, base + 1, base + 2)
    prof = draw(1, "test", 0, k)[0]
    feats = spec.profile_features([prof])[0]
    np.testing.assert_allclose(feats[3 + k :], prof.goal)


# ---------------------------------------------------------------- per-item inner step sizes
TINY = {
    **TINY_ITEMWISE,
    "env": GOALS,
    "item_bias": True,
    "meta_sgd": True,
    "inner_lr": 0.5,
    "item_bias_lr": 40.0,
}


@pytest.fixture(scope="module")
def goals_run(tmp_path_factory):
    from meta_rl.config import make_config
    from meta_rl.trainer import Trainer

    out = tmp_path_factory.mktemp("goals_run")
    trainer = Trainer(make_config(TINY), out, progress=False)
    for k, v in trainer.algo.inner.lr.items():  # Meta-SGD starts from item_bias_lr for the offsets only
        assert torch.all(v == (40.0 if k == "item_bias" else 0.5)), k
    trainer.train()
    return out


def test_item_bias_lr_is_checked() -> None:
    from meta_rl.config import make_config

    with pytest.raises(ValueError, match="needs meta_sgd: true and item_bias: true"):
        make_config({**TINY, "meta_sgd": False})
    with pytest.raises(ValueError, match="needs meta_sgd: true and item_bias: true"):
        make_config({**TINY, "item_bias": False})
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number >= 0"):
            make_config({**TINY, "item_bias_lr": bad})
    assert make_config({**TINY, "item_bias_lr": 0.0}).item_bias_lr == 0.0  # 0: inner_lr


def test_fine_tuning_with_a_pair_of_step_sizes_scales_each_gradient(goals_run) -> None:
    """Pooled / scratch fine-tuning may give the per-item offsets their own step: one
    update with (0.5, 40) moves every shared weight 0.5x and the offsets 40x the
    gradient step of a plain lr = 1 update on the same rollouts."""
    from meta_rl.adaptation import adaptation_curve
    from meta_rl.checkpoint import load_policy
    from meta_rl.evaluation.step_sizes import LR_GRID, fine_tuning_grid, with_step_size

    policy = load_policy(goals_run).with_inner_lr(0.5)  # as a pooled policy
    profs = draw(3, "val", 0, 4)
    theta = {k: v.detach().clone() for k, v in policy.params.items()}
    unit_pol, unit_lr = with_step_size(policy, 1.0)
    pair_pol, pair_lr = with_step_size(policy, (0.5, 40.0))
    assert unit_lr == 1.0 and pair_lr is None and unit_pol.inner_lrs is None
    unit = adaptation_curve(unit_pol, profs, 1, 2, eval_episodes=0, seed=3, lr=unit_lr).params
    pair = adaptation_curve(pair_pol, profs, 1, 2, eval_episodes=0, seed=3, lr=pair_lr).params
    moved = False
    for k, v in theta.items():
        scale = 40.0 if k == "item_bias" else 0.5
        torch.testing.assert_close(pair[k] - v, scale * (unit[k] - v), rtol=1e-4, atol=1e-6)
        moved |= bool((unit[k] - v).abs().max() > 0)
    assert moved
    assert fine_tuning_grid({"item_bias_lr": 0.0}) == list(LR_GRID)
    grid = fine_tuning_grid({"item_bias_lr": 30.0})
    assert grid[: len(LR_GRID)] == list(LR_GRID)
    assert sorted({item for _, item in grid[len(LR_GRID) :]}) == pytest.approx([10.0, 30.0, 90.0])
    assert len(grid) == len(LR_GRID) + 6


def test_evaluation_end_to_end_on_the_goal_variant(goals_run, tmp_path) -> None:
    from meta_rl.cli import main as cli_main

    out = tmp_path / "eval"
    rc = cli_main([
        "evaluate", "--checkpoint", str(goals_run), "--split", "test", "--n", "6", "--adapt-steps", "1",
        "--rollouts-per-step", "2", "--eval-episodes", "2", "--val-profiles", "2", "--workers", "1",
        "--methods", "maml_ppo", "pooled_ppo", "scratch_ppo", "planner", "threshold", "--out", str(out),
    ])  # fmt: skip
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["env_id"] == GOALS
    assert set(res["methods"]) == {"maml_ppo", "pooled_ppo", "scratch_ppo", "planner", "threshold"}
    assert "goal_review_share" in res["methods"]["planner"]["metrics"]
    assert res["methods"]["planner"]["metrics"]["goal_review_share"]["mean"] == [1.0, 1.0]
    from meta_rl.evaluation.step_sizes import LR_GRID, MAX_GRID_EXTENSIONS, fine_tuning_grid

    # the grid, or its scalar edge followed outwards (ratio 2 at the top, 1/2 at the bottom)
    edges = [max(LR_GRID) * 2**j for j in range(1, MAX_GRID_EXTENSIONS + 1)]
    edges += [min(LR_GRID) / 2**j for j in range(1, MAX_GRID_EXTENSIONS + 1)]
    for name in ("pooled_ppo", "scratch_ppo"):
        chosen = res["details"]["inner_lr"][name][0]
        assert (tuple(chosen) if isinstance(chosen, list) else chosen) in fine_tuning_grid(TINY) + edges
    assert res["details"]["inner_lr"]["maml_ppo"] == ["meta-sgd"]
