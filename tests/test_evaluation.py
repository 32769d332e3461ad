"""Held-out evaluation end to end on a tiny configuration, and its statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

import envs
from meta_rl.cli import main as cli_main
from meta_rl.config import MAMLPPOConfig
from meta_rl.evaluation import heuristics
from meta_rl.evaluation.report import MethodCurve, build_results, summary_markdown
from meta_rl.evaluation.stats import mean_ci, paired_difference_ci
from meta_rl.trainer import Trainer

ENV_ID = "MetaTutor/SkillGraph-v0"
KW = {"n_skills": 3, "n_content": 2, "horizon": 12, "prerequisites": "chain"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = MAMLPPOConfig(
        env_kwargs=KW, n_iterations=2, meta_batch_size=3, rollouts_per_task=3, eval_every=2,
        val_tasks=3, val_episodes=2, tensorboard=False,
    )  # fmt: skip
    Trainer(cfg, out, progress=False).train()
    return out


def test_evaluate_end_to_end(run_dir, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    rc = cli_main([
        "evaluate", "--checkpoint", str(run_dir / "checkpoint.pt"), "--split", "test", "--n", "8",
        "--adapt-steps", "2", "--rollouts-per-step", "3", "--eval-episodes", "2", "--val-profiles", "2",
        "--out", str(out),
    ])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "maml_ppo" in printed and "adaptation_curve.png" in printed
    res = json.loads((out / "results.json").read_text())
    for key in ("env_id", "split", "n_profiles", "adapt_steps", "rollouts_per_step", "methods", "paired"):
        assert key in res
    assert res["env_id"] == ENV_ID and res["n_profiles"] == 8 and res["adapt_steps"] == 2
    expected = {"maml_ppo", "pooled_ppo", "scratch_ppo", "sb3_ppo", "oracle", "reptile_ppo", "mamlpp_ppo",
                "random", "round_robin", "mastery_threshold", "mastery_threshold_rr", "planner",
                "belief_planner"}  # fmt: skip
    assert set(res["methods"]) == expected
    kinds = {name: m["kind"] for name, m in res["methods"].items()}
    assert kinds["belief_planner"] == kinds["oracle"] == "oracle"
    assert kinds["mastery_threshold"] == "heuristic"
    assert kinds["planner"] == "omniscient"  # it sees the sampled mastery: never the reference
    assert kinds["maml_ppo"] == "adaptive"
    # the fractions use ONE oracle: the strongest of kind oracle at the last step
    last = {name: res["methods"][name]["mean"][-1] for name in ("belief_planner", "oracle")}
    strongest = max(last, key=last.get)
    assert res["oracle_method"] == strongest
    ref, rand = np.asarray(res["methods"][strongest]["mean"]), np.asarray(res["methods"]["random"]["mean"])
    for m in res["methods"].values():
        np.testing.assert_allclose(m["fraction_of_oracle"], np.asarray(m["mean"]) / ref)
        np.testing.assert_allclose(m["gap_closed"], (np.asarray(m["mean"]) - rand) / (ref - rand))
    assert res["methods"][strongest]["fraction_of_oracle"] == [1.0] * 3
    for name, m in res["methods"].items():
        for key in ("mean", "ci_low", "ci_high"):
            assert len(m[key]) == 3, (name, key)
        per = np.asarray(m["per_profile"])
        assert per.shape == (8, 3)
        np.testing.assert_allclose(per.mean(axis=0), m["mean"])
        assert all(lo <= mu <= hi for lo, mu, hi in zip(m["ci_low"], m["mean"], m["ci_high"]))
        assert set(m["metrics"]) == {
            "posttest",
            "learning_gain",
            "steps_to_mastery",
            "all_mastered",
            "n_quizzes",
        }
        assert set(m["subgroups"]) == {"slowest quartile", "fastest quartile"}
    summary = (out / "summary.md").read_text()
    assert "| maml_ppo |" in summary and "Paired differences" in summary
    assert f"are relative to `{strongest}` (kind oracle" in summary and "the strongest oracle" in summary
    assert "| belief_planner | oracle |" in summary and "| planner | omniscient |" in summary
    assert "`planner` (kind omniscient) sees hidden state" in summary
    assert (out / "adaptation_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # where the time went: one record per job, each learned method's curve among them
    jobs = res["details"]["jobs"]
    learned = {"maml_ppo", "pooled_ppo", "scratch_ppo", "sb3_ppo", "oracle", "reptile_ppo", "mamlpp_ppo"}
    assert {j["label"].split(" ")[1] for j in jobs if j["label"].startswith("curve ")} == learned
    assert all(0 <= j["start_s"] <= j["end_s"] and j["cpu_s"] >= 0 for j in jobs)
    assert "jobs on 2 core(s)" in printed
    # baselines are cached in the run directory
    assert (run_dir / "baselines" / "pooled_ppo" / "best.pt").is_file()
    assert (run_dir / "baselines" / "sb3_ppo.zip").is_file()


@pytest.mark.parametrize(
    "content,match",
    [
        ("{oops", "not valid JSON"),
        ('{"env_id": "MetaTutor/ZPD-v0", "profiles": [PROFILE]}', "profiles are for"),
        ('{"env_id": "MetaTutor/SkillGraph-v0", "profiles": [{"learn": [0.5]}]}', "profile 0"),
    ],
)
def test_bad_profile_files(run_dir, tmp_path, capsys, content: str, match: str) -> None:
    if "PROFILE" in content:
        zpd = envs.sample_profiles("MetaTutor/ZPD-v0", 1)[0]
        content = content.replace("PROFILE", json.dumps(zpd))
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    rc = cli_main(
        ["evaluate", "--checkpoint", str(run_dir), "--profiles", str(bad), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and match in err and str(bad) in err


def test_profiles_with_wrong_dimensions(run_dir, tmp_path, capsys) -> None:
    f = tmp_path / "eight_skills.json"
    envs.save_profiles(f, ENV_ID, envs.sample_profiles(ENV_ID, 2))  # default env: 8 skills, run has 3
    rc = cli_main(
        ["evaluate", "--checkpoint", str(run_dir), "--profiles", str(f), "--out", str(tmp_path / "o")]
    )
    assert rc == 2 and "n_skills=3" in capsys.readouterr().err


def test_sb3_cache_with_other_hidden_layers_is_refused(run_dir, tmp_path, monkeypatch) -> None:
    import shutil

    from meta_rl.checkpoint import load_checkpoint, save_checkpoint
    from meta_rl.evaluation import baselines, sb3_baseline

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    baselines.train_sb3(run, ENV_ID, KW, lambda _: None)  # cached (or trained) with the run's layers
    state = load_checkpoint(run / "checkpoint.pt")
    state["config"] = {**state["config"], "hidden_sizes": [7]}
    save_checkpoint(run / "checkpoint.pt", state)
    with pytest.raises(ValueError, match=r"hidden layers \[64, 64\] but .* asks for \[7\]"):
        baselines.train_sb3(run, ENV_ID, KW, lambda _: None)
    # a cache pre-trained with another number of students per rollout is stale too
    state["config"] = {**state["config"], "hidden_sizes": [64, 64]}
    save_checkpoint(run / "checkpoint.pt", state)
    baselines.train_sb3(run, ENV_ID, KW, lambda _: None)
    monkeypatch.setattr(sb3_baseline, "SB3_N_ENVS", sb3_baseline.SB3_N_ENVS // 4)
    with pytest.raises(ValueError, match=r"pre-trained with 256 students per rollout, this version uses 64"):
        baselines.train_sb3(run, ENV_ID, KW, lambda _: None)
    # an item-wise run compares SB3's default MLP, which SB3 has instead of an item-wise policy
    assert baselines.sb3_hidden_sizes({"architecture": "itemwise", "hidden_sizes": [7]}) == (64, 64)
    assert baselines.sb3_hidden_sizes({"hidden_sizes": [7]}) == (7,)


def test_unknown_method_and_missing_run(run_dir, tmp_path, capsys) -> None:
    rc = cli_main(
        ["evaluate", "--checkpoint", str(run_dir), "--methods", "magic", "--out", str(tmp_path / "o")]
    )
    assert rc == 2 and "unknown method" in capsys.readouterr().err
    rc = cli_main(["evaluate", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no meta-training run" in capsys.readouterr().err


def test_planner_alone(run_dir, tmp_path, capsys) -> None:
    """``--methods belief_planner planner random`` is valid and trains no baseline; the reference
    is the belief planner even though the omniscient planner is stronger."""
    out = tmp_path / "eval"
    rc = cli_main([
        "evaluate", "--checkpoint", str(run_dir), "--n", "4", "--adapt-steps", "1", "--eval-episodes", "2",
        "--methods", "belief_planner", "planner", "random", "--out", str(out),
    ])  # fmt: skip
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == {"belief_planner", "planner", "random"}
    assert res["methods"]["belief_planner"]["kind"] == "oracle"
    assert res["oracle_method"] == "belief_planner" and res["methods"]["random"]["gap_closed"] == [0.0, 0.0]
    printed = capsys.readouterr().out
    assert "privileged belief_planner" in printed and "privileged planner" in printed
    # the omniscient planner alone: no reference oracle, and the summary says why
    rc = cli_main([
        "evaluate", "--checkpoint", str(run_dir), "--n", "4", "--adapt-steps", "1", "--eval-episodes", "2",
        "--methods", "planner", "random", "--out", str(tmp_path / "alone"),
    ])  # fmt: skip
    assert rc == 0
    res = json.loads((tmp_path / "alone" / "results.json").read_text())
    assert res["oracle_method"] is None and "fraction_of_oracle" not in res["methods"]["planner"]
    summary = (tmp_path / "alone" / "summary.md").read_text()
    assert "No oracle was evaluated" in summary and "`planner` (kind omniscient)" in summary


def test_reference_oracle_is_the_strongest() -> None:
    def curves(oracle: float, planner: float) -> list[MethodCurve]:
        return [
            MethodCurve("maml_ppo", "adaptive", np.full((4, 2), 2.0)),
            MethodCurve("oracle", "oracle", np.full((4, 2), oracle)),
            MethodCurve("planner", "oracle", np.full((4, 2), planner)),
            MethodCurve("staircase", "heuristic", np.full((4, 2), 9.0)),  # not an oracle
            MethodCurve("random", "heuristic", np.full((4, 2), 1.0)),
        ]

    kw = dict(env_id=ENV_ID, split="test", adapt_steps=1, rollouts_per_step=1, eval_episodes=1, seeds=[0])
    res = build_results(curves(3.0, 5.0), command="x", **kw)
    assert res["oracle_method"] == "planner"
    assert res["methods"]["maml_ppo"]["fraction_of_oracle"] == [0.4, 0.4]
    assert res["methods"]["maml_ppo"]["gap_closed"] == [0.25, 0.25]
    assert res["methods"]["oracle"]["fraction_of_oracle"] == [0.6, 0.6]
    assert build_results(curves(6.0, 5.0), command="x", **kw)["oracle_method"] == "oracle"
    # an explicit reference is kept (as before: results of older reports stay reproducible)
    explicit = build_results(curves(3.0, 5.0), command="x", oracle_method="oracle", **kw)
    assert explicit["oracle_method"] == "oracle"
    assert explicit["methods"]["planner"]["fraction_of_oracle"] == [5 / 3, 5 / 3]
    none = build_results(curves(3.0, 5.0)[:1], command="x", **kw)
    assert none["oracle_method"] is None and "fraction_of_oracle" not in none["methods"]["maml_ppo"]
    assert "No oracle was evaluated" in summary_markdown(none)
    sentence = "relative to `planner` (kind oracle, mean return 5.00 at k = 1, the strongest oracle"
    assert sentence + "; other oracles: `oracle`)" in summary_markdown(res)


def test_heuristic_evaluation_is_deterministic() -> None:
    profs = envs.sample_profiles(ENV_ID, 5, "test", 0, **KW)
    a = heuristics.evaluate_tutor("mastery_threshold", ENV_ID, KW, profs, 4, seed=3)
    b = heuristics.evaluate_tutor("mastery_threshold", ENV_ID, KW, profs, 4, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k])


def test_bootstrap_interval_covers_the_true_mean() -> None:
    """Coverage of the 95 % interval over repeated samples is close to 95 %."""
    rng = np.random.default_rng(0)
    ci = [mean_ci(x, seed=i, n_resamples=999) for i, x in enumerate(rng.exponential(2.0, (200, 80)))]
    covered = sum(c.low <= 2.0 <= c.high for c in ci)
    assert stats.binomtest(covered, 200, 0.95).pvalue > 1e-3, covered
    assert all(c.low <= c.mean <= c.high for c in ci)


def test_paired_difference_is_narrower_than_unpaired() -> None:
    rng = np.random.default_rng(1)
    student = rng.normal(0, 3, 80)  # large between-student variation
    a, b = student + 0.5 + rng.normal(0, 0.2, 80), student + rng.normal(0, 0.2, 80)
    d = paired_difference_ci(a, b)
    assert d.low > 0.3 and d.high < 0.7
    assert mean_ci(a).low < mean_ci(b).high  # the unpaired intervals overlap


class _Scores:
    """A val score per step size that records every step tried."""

    def __init__(self, score) -> None:
        self.score, self.tried = score, []

    def __call__(self, step):
        self.tried.append(step)
        return self.score(step)


def _peaked_at(x: float):
    return lambda step: -abs(np.log(step) - np.log(x))


@pytest.mark.parametrize(
    ("peak", "expected", "extra"),
    [
        (0.4, 0.5, 0),  # inside the grid: only the grid is tried
        (6.0, 8.0, 3),  # 2.0 is the edge: 4.0 and 8.0 improve, 16.0 does not
        (1e-9, 0.05 / 2**4, 4),  # the low edge, followed at most MAX_GRID_EXTENSIONS times
        (1e9, 2.0 * 2**4, 4),
    ],
)
def test_step_size_search_follows_a_grid_edge_outwards(peak, expected, extra) -> None:
    from meta_rl.evaluation.step_sizes import LR_GRID, MAX_GRID_EXTENSIONS, best_on_val

    assert MAX_GRID_EXTENSIONS == 4
    f = _Scores(_peaked_at(peak))
    assert best_on_val(LR_GRID, f) == pytest.approx(expected)
    assert f.tried[: len(LR_GRID)] == list(LR_GRID)
    assert len(f.tried) == len(LR_GRID) + extra


def test_step_size_search_uses_the_grid_ratio_at_its_edge_and_never_extends_pairs() -> None:
    from meta_rl.evaluation.step_sizes import SB3_LR_GRID, best_on_val

    f = _Scores(_peaked_at(4e-3))
    assert best_on_val(SB3_LR_GRID, f) == pytest.approx(1e-3 * (1e-3 / 3e-4))  # 3.3e-3; 1.1e-2 is worse
    pairs = [0.05, 2.0, (0.05, 100.0)]
    f = _Scores(lambda step: 1.0 if isinstance(step, tuple) else step / 10)
    assert best_on_val(pairs, f) == (0.05, 100.0)
    assert f.tried == pairs
    f = _Scores(lambda step: 1.0)  # a tie at the edge keeps the grid's value
    assert best_on_val([0.5, 1.0], f) == 0.5
    assert f.tried == [0.5, 1.0, 0.25]
    f = _Scores(lambda step: float("nan") if step >= 1.0 else step)  # a diverging step never wins
    assert best_on_val([0.25, 0.5, 1.0], f) == 0.5
    assert f.tried == [0.25, 0.5, 1.0]
    f = _Scores(lambda step: step)  # zero or duplicates at an edge: the ratio comes from distinct steps > 0
    assert best_on_val([0.0, 0.5, 1.0, 1.0], f) == 16.0


def test_step_sizes_chosen_on_val_are_reused_across_splits_and_rechosen_when_anything_changes(
    run_dir, tmp_path, monkeypatch
) -> None:
    import shutil

    from meta_rl.evaluation import runner, step_sizes

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "baselines" / step_sizes.STEP_CACHE).unlink(missing_ok=True)  # other tests' choices
    chosen = []
    choose_lr, choose_sb3 = step_sizes.choose_lr, step_sizes.choose_sb3_lr
    monkeypatch.setattr(step_sizes, "choose_lr", lambda *a: chosen.append("ours") or choose_lr(*a))
    monkeypatch.setattr(step_sizes, "choose_sb3_lr", lambda *a: chosen.append("sb3") or choose_sb3(*a))

    def evaluate(split: str, adapt_steps: int = 1) -> dict:
        s = runner.EvaluationSettings(
            split=split, n_profiles=3, adapt_steps=adapt_steps, rollouts_per_step=2, eval_episodes=2,
            val_profiles=2, workers=1, methods=["pooled_ppo", "scratch_ppo", "sb3_ppo"], log=lambda _: None,
        )  # fmt: skip
        res = runner.evaluate([run], s)
        return res["details"]["inner_lr"]

    first = evaluate("test")
    assert sorted(chosen) == ["ours", "ours", "sb3"]
    cache = json.loads((run / "baselines" / step_sizes.STEP_CACHE).read_text())
    assert len(cache) == 3
    chosen.clear()
    assert evaluate("ood") == first  # another split: the same val choice, not recomputed
    assert chosen == []
    evaluate("ood", adapt_steps=2)  # the choice depends on K: chosen again, kept beside the first
    assert sorted(chosen) == ["ours", "ours", "sb3"]
    assert len(json.loads((run / "baselines" / step_sizes.STEP_CACHE).read_text())) == 6
    chosen.clear()
    (run / "baselines" / step_sizes.STEP_CACHE).write_text("{not json")
    with pytest.warns(UserWarning, match="not a valid step-size cache"):
        assert evaluate("test") == first
    assert sorted(chosen) == ["ours", "ours", "sb3"]
    chosen.clear()
    cache = json.loads((run / "baselines" / step_sizes.STEP_CACHE).read_text())
    (run / "baselines" / step_sizes.STEP_CACHE).write_text(json.dumps({k: "fast" for k in cache}))
    with pytest.warns(UserWarning, match="'fast' is not a step size"):
        assert evaluate("test") == first
    assert sorted(chosen) == ["ours", "ours", "sb3"]
    chosen.clear()
    # a retrained pooled baseline (other weights in the file that is loaded) is chosen afresh
    pooled = next(
        f for f in (run / "baselines" / "pooled_ppo" / n for n in ("best.pt", "checkpoint.pt")) if f.is_file()
    )
    state = torch.load(pooled, weights_only=True)
    state["params"] = {k: v + 0.01 for k, v in state["params"].items()}
    torch.save(state, pooled)
    evaluate("test")
    assert chosen == ["ours"]


def test_build_results_rejects_mismatched_students() -> None:
    with pytest.raises(ValueError, match="same students"):
        build_results(
            [MethodCurve("a", "adaptive", np.zeros((3, 2))), MethodCurve("b", "heuristic", np.zeros((4, 2)))],
            env_id=ENV_ID, split="test", adapt_steps=1, rollouts_per_step=1, eval_episodes=1,
            seeds=[0], command="x",
        )  # fmt: skip


def test_sb3_fine_tuning_and_evaluation_use_disjoint_common_seeds(monkeypatch) -> None:
    """SB3's constructor reseeds its env; the baseline must still use the protocol's seeds:
    evaluation of student i after step k on seeds[2k] + i*E + j, adaptation on seeds[1] + i*R + j."""
    from meta_rl.adaptation import _seeds
    from meta_rl.evaluation import episodes, sb3_baseline

    profs = envs.sample_profiles(ENV_ID, 3, "test", 0, **KW)
    model = sb3_baseline.train_pooled(ENV_ID, KW, 256, seed=0, n_envs=8)
    eval_seeds, adapt_seeds = [], []
    real_run = episodes.run_episodes

    def spy_run(venv, act, seed, on_reset=None):
        eval_seeds.append(seed)
        return real_run(venv, act, seed, on_reset)

    real_reset = sb3_baseline.SB3VectorEnv.reset

    def spy_reset(self):
        adapt_seeds.append(self._seeds[0])
        return real_reset(self)

    monkeypatch.setattr(sb3_baseline, "run_episodes", spy_run)
    monkeypatch.setattr(sb3_baseline.SB3VectorEnv, "reset", spy_reset)
    sb3_baseline.adaptation_curve(
        model, ENV_ID, KW, profs, steps=2, rollouts_per_step=3, eval_episodes=2, seed=5
    )
    s = _seeds(5, 2)
    assert eval_seeds == [s[0]] + [s[2 * k] + i * 2 for i in range(3) for k in (1, 2)]
    assert adapt_seeds == [s[1] + i * 3 for i in range(3)]


def test_recurrent_policy_carries_its_lstm_state_through_an_episode() -> None:
    """``_act`` threads RecurrentPPO's LSTM state: episode start on the first call only, the
    state returned by one call fed to the next (same actions as a hand-written loop)."""
    import torch

    pytest.importorskip("sb3_contrib")
    from meta_rl.evaluation import sb3_baseline

    model = sb3_baseline.train_pooled(ENV_ID, KW, 128, seed=0, n_envs=4, hidden=(16, 16), recurrent=True)
    assert type(model).__name__ == "RecurrentPPO" and sb3_baseline.is_recurrent(model)
    assert model.policy.lstm_actor.hidden_size == 16
    with torch.no_grad():  # large random weights: the actions depend strongly on the LSTM state
        gen = torch.Generator().manual_seed(0)
        for p in model.policy.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    obs = np.random.default_rng(0).random((6, 5, model.observation_space.shape[0])).astype(np.float32)
    torch.manual_seed(3)
    act = sb3_baseline._act(model)
    ours = [act(o) for o in obs]
    torch.manual_seed(3)
    state, start, ref = None, np.ones(5, dtype=bool), []
    for o in obs:
        a, state = model.predict(o, state=state, episode_start=start, deterministic=False)
        start = np.zeros(5, dtype=bool)
        ref.append(a)
    np.testing.assert_array_equal(np.stack(ours), np.stack(ref))
    # the memory matters: a policy restarted at every step acts otherwise
    torch.manual_seed(3)
    restarted = [model.predict(o, episode_start=np.ones(5, dtype=bool), deterministic=False)[0] for o in obs]
    assert not np.array_equal(np.stack(restarted), np.stack(ref))


def test_recurrent_ppo_is_evaluated_only_when_asked(run_dir, tmp_path) -> None:
    pytest.importorskip("sb3_contrib")
    import shutil

    from meta_rl.evaluation import baselines, runner, sb3_baseline

    assert "recurrent_ppo" in runner.available_methods(ENV_ID)
    assert "recurrent_ppo" not in runner.default_methods(ENV_ID)
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    out = tmp_path / "eval"
    rc = cli_main([
        "evaluate", "--checkpoint", str(run), "--n", "4", "--adapt-steps", "1", "--eval-episodes", "2",
        "--rollouts-per-step", "2", "--val-profiles", "2", "--methods", "recurrent_ppo", "random",
        "--out", str(out),
    ])  # fmt: skip
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["methods"]["recurrent_ppo"]["kind"] == "adaptive"
    assert np.asarray(res["methods"]["recurrent_ppo"]["per_profile"]).shape == (4, 2)
    cached = run / "baselines" / "recurrent_ppo.zip"
    assert cached.is_file()
    model, budget = baselines.train_sb3(run, ENV_ID, KW, lambda _: None, "recurrent_ppo")  # from the cache
    assert sb3_baseline.is_recurrent(model) and budget == res["details"]["env_steps"]["recurrent_ppo"][0] > 0


def test_recurrent_ppo_without_sb3_contrib_says_how_to_install(monkeypatch) -> None:
    import sys

    from meta_rl.evaluation import sb3_baseline

    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # makes `import sb3_contrib` fail
    with pytest.raises(ImportError, match=r"pip install 'meta-tutor\[contrib\]'"):
        sb3_baseline.algorithm(recurrent=True)


def test_methods_list_expands_the_word_default() -> None:
    from meta_rl.evaluation.runner import default_methods, expand_methods

    base = default_methods(ENV_ID)
    assert expand_methods(None, base) == base == expand_methods([], base)
    assert expand_methods(["default", "recurrent_ppo"], base) == [*base, "recurrent_ppo"]
    assert expand_methods(["random", "default"], base) == ["random", *[m for m in base if m != "random"]]
    assert expand_methods(["planner"], base) == ["planner"]


def test_tutor_that_cannot_run_is_left_out_or_refused_before_training(tmp_path, capsys) -> None:
    """belief_planner enumerates 2^n_skills states (at most 12 skills): on 13 skills the default
    methods leave it out, and asking for it fails at once, before any baseline is trained."""
    from meta_rl.evaluation.runner import default_methods, tutor_error

    big = {"n_skills": 13, "n_content": 2, "horizon": 4, "prerequisites": "chain"}
    assert "1..12" in tutor_error(ENV_ID, big, "belief_planner")
    assert tutor_error(ENV_ID, KW, "belief_planner") is None
    assert "belief_planner" not in default_methods(ENV_ID, big) and "planner" in default_methods(ENV_ID, big)
    out = tmp_path / "run"
    cfg = MAMLPPOConfig(
        env_kwargs=big, n_iterations=1, meta_batch_size=2, rollouts_per_task=2, eval_every=1,
        val_tasks=2, val_episodes=1, tensorboard=False,
    )  # fmt: skip
    Trainer(cfg, out, progress=False).train()
    rc = cli_main([
        "evaluate", "--checkpoint", str(out), "--n", "2", "--methods", "pooled_ppo", "belief_planner",
        "--out", str(tmp_path / "eval"),
    ])  # fmt: skip
    assert rc == 2 and "method belief_planner cannot run" in capsys.readouterr().err
    assert not (out / "baselines").exists()


def test_derived_config_matches_the_runs_budget_in_episodes() -> None:
    """Pooled PPO / the oracle get the run's settings and one meta-iteration's episodes per
    iteration: meta_batch_size · rollouts_per_task · (inner_steps + 1) = 4 · 5 · 3 = 60."""
    from meta_rl.config import PPOConfig
    from meta_rl.evaluation.baselines import derived_config

    run = MAMLPPOConfig(
        env_kwargs=KW, n_iterations=7, meta_batch_size=4, rollouts_per_task=5, inner_steps=2, seed=3,
        meta_sgd=True, init_from="elsewhere", hidden_sizes=[16],
    ).to_dict()  # fmt: skip
    cfg = derived_config(run, "ppo")
    assert isinstance(cfg, PPOConfig) and cfg.algo == "ppo" and cfg.episodes_per_iteration == 60
    assert (cfg.n_iterations, cfg.seed, cfg.hidden_sizes, cfg.env_kwargs) == (7, 3, [16], KW)
    assert (
        cfg.init_from == "" and not cfg.privileged and derived_config(run, "ppo", privileged=True).privileged
    )
    with pytest.raises(ValueError, match="unknown algo 'sarsa'"):
        derived_config(run, "sarsa")


def test_cached_baseline_trained_with_other_settings_is_refused(run_dir, tmp_path) -> None:
    """A cached baseline trained for another number of iterations than the run has, or whose
    config is not what the run derives today (say a shipped config changed after it was
    trained), is refused, naming the difference and the folder to delete."""
    import shutil

    from meta_rl.checkpoint import load_checkpoint, save_checkpoint
    from meta_rl.evaluation import baselines

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    baselines.train_our_baseline(run, "pooled_ppo", lambda _: None)
    baselines.our_baseline_policy(run, "pooled_ppo")  # today's settings: accepted
    out = run / "baselines" / "pooled_ppo"
    # a run that went on training after its baseline was cached: another budget
    run_state = load_checkpoint(run / "checkpoint.pt")
    save_checkpoint(run / "checkpoint.pt", {**run_state, "iteration": run_state["iteration"] + 1})
    with pytest.raises(ValueError, match=rf"trained for 2 iterations but {run} now has 3: delete {out}"):
        baselines.our_baseline_policy(run, "pooled_ppo")
    save_checkpoint(run / "checkpoint.pt", run_state)
    for f in ("checkpoint.pt", "best.pt"):
        state = load_checkpoint(out / f)
        state["config"] = {**state["config"], "clip_eps": 0.3}
        save_checkpoint(out / f, state)
    with pytest.raises(ValueError, match=rf"clip_eps: 0.3 then, 0.2 now\): delete {out}"):
        baselines.our_baseline_policy(run, "pooled_ppo")
    # the oracle is derived differently (privileged): pooled PPO's cache is not the oracle's
    state["config"] = {**state["config"], "clip_eps": 0.2}
    save_checkpoint(out / "checkpoint.pt", state)
    baselines.our_baseline_policy(run, "pooled_ppo")
    with pytest.raises(ValueError, match="privileged: False then, True now"):
        baselines.our_baseline_policy(run, "pooled_ppo", privileged=True)


def test_encoder_config_takes_the_shipped_encoder_section(monkeypatch) -> None:
    """``algorithms.encoder_ppo`` of the env's shipped config sets encoder keys; a key that makes
    runs comparable is refused by name there, and a reshaped iteration must keep the run's
    episodes per iteration."""
    from meta_rl.evaluation import encoder_method

    run = MAMLPPOConfig(env_kwargs=KW, meta_batch_size=4, rollouts_per_task=5, seed=3).to_dict()
    assert encoder_method.encoder_config(run).z_dim == 8  # SkillGraph ships no encoder section
    monkeypatch.setattr(encoder_method, "shipped_settings", lambda env, algo: {"z_dim": 32})
    cfg = encoder_method.encoder_config(run)
    assert (cfg.z_dim, cfg.meta_batch_size, cfg.rollouts_per_task, cfg.seed) == (32, 4, 5, 3)
    assert encoder_method.encoder_config(run, z_dim=4).z_dim == 4  # overrides come last
    # more rounds of context with fewer students: allowed while the episodes per iteration stay
    # the run's (4 students x 5 episodes x 2 rounds = 2 students x 5 x 4 rounds)
    monkeypatch.setattr(
        encoder_method, "shipped_settings", lambda env, algo: {"inner_steps": 3, "meta_batch_size": 2}
    )
    cfg = encoder_method.encoder_config(run)
    assert (cfg.inner_steps, cfg.meta_batch_size, cfg.pooled_episodes) == (3, 2, 40)
    monkeypatch.setattr(encoder_method, "shipped_settings", lambda env, algo: {"meta_batch_size": 9})
    with pytest.raises(ValueError, match="gives 90 episodes per iteration, the run 40"):
        encoder_method.encoder_config(run)
    monkeypatch.setattr(encoder_method, "shipped_settings", lambda env, algo: {"seed": 9})
    with pytest.raises(ValueError, match=r"sets \['seed'\]: the run decides those"):
        encoder_method.encoder_config(run)


def test_encoder_ppo_is_evaluated_end_to_end_and_a_stale_cache_is_refused(run_dir, tmp_path, capsys) -> None:
    """``--methods encoder_ppo`` trains encoder-PPO with the run's budget into
    ``baselines/encoder_ppo`` and adapts by context (no step size), ``encoder_ppo_ft`` fine-tunes
    that tutor (trained once for both) with a step size chosen on val; an encoder cached with other
    settings is refused, naming the folder to delete, instead of being evaluated silently."""
    import shutil

    from meta_rl.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    args = [
        "evaluate", "--checkpoint", str(run), "--n", "3", "--adapt-steps", "1", "--eval-episodes", "2",
        "--rollouts-per-step", "2", "--val-profiles", "2", "--workers", "1",
        "--methods", "encoder_ppo", "encoder_ppo_ft", "encoder_maml_ppo", "random",
    ]  # fmt: skip
    assert cli_main([*args, "--out", str(tmp_path / "e1")]) == 0
    res = json.loads((tmp_path / "e1" / "results.json").read_text())
    # encoder_ppo_ft fine-tunes the same cached encoder tutor: one training job, not two
    trained = sorted(j["label"] for j in res["details"]["jobs"] if j["label"].startswith("train"))
    assert trained == [f"train {m} ({tmp_path.name}/run)" for m in ("encoder_maml_ppo", "encoder_ppo")]
    # encoder-MAML-PPO: its own algorithm and budget, adapting with its learned step sizes
    maml_state = load_checkpoint(run / "baselines" / "encoder_maml_ppo" / "checkpoint.pt")
    assert maml_state["config"]["algo"] == "encoder_maml_ppo" and maml_state["iteration"] == 2
    cfg = maml_state["config"]
    own_step = "meta-sgd" if cfg["meta_sgd"] else cfg["inner_lr"]
    assert res["details"]["inner_lr"]["encoder_maml_ppo"] == [own_step]
    assert res["details"]["inner_lr"]["encoder_ppo"] == ["context"]
    assert len(res["methods"]["encoder_ppo"]["mean"]) == 2  # k = 0 and k = 1
    (step,) = res["details"]["inner_lr"]["encoder_ppo_ft"]  # chosen on val from the grid
    assert isinstance(step, float) and step > 0
    # the same tutor before any step: the same students, seeds and returns at k = 0
    assert res["methods"]["encoder_ppo_ft"]["mean"][0] == res["methods"]["encoder_ppo"]["mean"][0]
    out = run / "baselines" / "encoder_ppo"
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["config"]["algo"] == "encoder_ppo" and state["iteration"] == 2  # the run's budget
    state["config"] = {**state["config"], "z_dim": state["config"]["z_dim"] + 1}
    save_checkpoint(out / "checkpoint.pt", state)
    capsys.readouterr()
    assert cli_main([*args, "--out", str(tmp_path / "e2")]) == 2
    err = capsys.readouterr().err
    assert "z_dim" in err and f"delete {out}" in err


@pytest.mark.parametrize("recurrent", [False, True])
def test_sb3_curve_measured_in_parts_equals_the_whole_curve(recurrent) -> None:
    """Each student's SB3 fine-tuning is seeded by itself alone, so the curve measured in
    parts (in any order, part 0 with the joint k = 0 column) merges to exactly the whole."""
    if recurrent:
        pytest.importorskip("sb3_contrib")
    from meta_rl.evaluation import sb3_baseline
    from meta_rl.evaluation.methods import Curve, part_rows

    profs = envs.sample_profiles(ENV_ID, 5, "test", 0, **KW)
    model = sb3_baseline.train_pooled(ENV_ID, KW, 256, seed=0, n_envs=8, hidden=(16,), recurrent=recurrent)
    args = (model, ENV_ID, KW, profs, 2, 2, 2, 7)
    whole = Curve(*sb3_baseline.adaptation_curve(*args))
    assert not np.isnan(whole.returns).any()
    parts = {}
    for j in (2, 0, 1):  # not in order: nothing of one part reaches the next
        rows = part_rows(len(profs), j, 3).tolist()
        parts[j] = Curve(*sb3_baseline.adaptation_curve(*args, students=rows, initial=j == 0))
        assert np.isnan(parts[j].returns[[i for i in range(5) if i not in rows], 1:]).all()
    merged = Curve.merge_parts([parts[j] for j in range(3)])
    np.testing.assert_array_equal(merged.returns, whole.returns)
    assert set(merged.metrics) == set(whole.metrics)
    for m in whole.metrics:
        np.testing.assert_array_equal(merged.metrics[m], whole.metrics[m])


def test_curve_parts_partition_the_students_and_merge_only_their_cells() -> None:
    from meta_rl.evaluation.methods import Curve, part_rows

    for n, parts in ((8, 4), (5, 3), (3, 4)):
        rows = [part_rows(n, j, parts) for j in range(parts)]
        assert sorted(np.concatenate(rows).tolist()) == list(range(n))
        assert max(map(len, rows)) - min(map(len, rows)) <= 1
    with pytest.raises(ValueError, match="need 0 <= part < parts"):
        part_rows(5, 3, 3)
    truth = np.arange(15.0).reshape(5, 3)

    def part(j: int, of: int, n: int = 5, **kw) -> Curve:
        """Part j: its cells from ``truth``, every other cell garbage (never read)."""
        r = np.full((n, 3), -1.0)
        rows = part_rows(n, j, of)
        r[rows, 1:] = truth[rows, 1:]
        if j == 0:
            r[:, 0] = truth[:n, 0]
        return Curve(r, {"m": r * 2}, **{"env_steps": 10, "step_size": 0.1, **kw})

    merged = Curve.merge_parts([part(0, 2), part(1, 2)])
    np.testing.assert_array_equal(merged.returns, truth)
    np.testing.assert_array_equal(merged.metrics["m"], truth * 2)
    assert (merged.env_steps, merged.step_size) == (10, 0.1)
    with pytest.raises(ValueError, match="another step size or budget"):
        Curve.merge_parts([part(0, 2), part(1, 2, step_size=0.2)])
    with pytest.raises(ValueError, match="does not match part 0"):
        Curve.merge_parts([part(0, 2), Curve(truth[:4], {"m": truth[:4]}, env_steps=10, step_size=0.1)])
    hole = part(1, 2)
    hole.returns[4, 2] = np.nan
    with pytest.raises(ValueError, match="leave 1 returns unmeasured"):
        Curve.merge_parts([part(0, 2), hole])
    # a part with no students (3 students in 4 parts) adds nothing, even without metrics
    empty = Curve(np.full((3, 3), np.nan), {}, env_steps=10, step_size=0.1)
    merged = Curve.merge_parts([part(0, 4, n=3), part(1, 4, n=3), part(2, 4, n=3), empty])
    np.testing.assert_array_equal(merged.returns, truth[:3])


def test_sb3_curve_split_over_two_workers_gives_the_one_worker_results(run_dir, tmp_path) -> None:
    import shutil

    from meta_rl.evaluation import runner

    results = {}
    for workers in (2, 1):  # each on its own copy without a cached learning rate: both search
        run = tmp_path / f"w{workers}" / "run"
        shutil.copytree(run_dir, run)
        (run / "baselines" / "step_sizes.json").unlink(missing_ok=True)
        s = runner.EvaluationSettings(
            split="test", n_profiles=5, adapt_steps=2, rollouts_per_step=2, eval_episodes=2,
            val_profiles=2, workers=workers, methods=["sb3_ppo"], log=lambda _: None,
        )  # fmt: skip
        results[workers] = runner.evaluate([run], s)
    labels = [j["label"] for j in results[2]["details"]["jobs"]]
    assert "prepare sb3_ppo (w2/run)" in labels
    assert sum(label.startswith("curve sb3_ppo") for label in labels) == 4
    assert sum(j["label"].startswith("curve sb3_ppo") for j in results[1]["details"]["jobs"]) == 1
    one, two = results[1]["methods"]["sb3_ppo"], results[2]["methods"]["sb3_ppo"]
    assert one["per_profile"] == two["per_profile"] and one["metrics"] == two["metrics"]
    assert results[1]["details"]["inner_lr"] == results[2]["details"]["inner_lr"]


def test_split_curves_wait_for_their_prepare_job_and_split_only_what_can_be_split(tmp_path) -> None:
    from pathlib import Path

    from meta_rl.evaluation.methods import EvalContext
    from meta_rl.evaluation.registry import methods_for
    from meta_rl.evaluation.runner import _jobs
    from meta_rl.evaluation.settings import EvaluationSettings

    methods = methods_for(ENV_ID)
    learned = [methods["sb3_ppo"], methods["pooled_ppo"]]
    paths = [Path(tmp_path / "a"), Path(tmp_path / "b")]
    configs = [MAMLPPOConfig(env_kwargs=KW).to_dict()] * 2

    def jobs_for(n_students: int, adapt_steps: int, workers: int):
        ctx = EvalContext(ENV_ID, KW, [{}] * n_students, [], 2, EvaluationSettings(adapt_steps=adapt_steps))
        return _jobs(learned, paths, configs, ctx, None, workers)

    jobs, curve_jobs = jobs_for(8, 2, 2)
    assert set(curve_jobs) == {(m, p) for m in learned for p in paths}
    for p in paths:
        prepare, *parts = curve_jobs[methods["sb3_ppo"], p]
        assert jobs[prepare].label == f"prepare sb3_ppo ({p.parent.name}/{p.name})"
        assert [jobs[i].args[-2:] for i in parts] == [(j, 4) for j in range(4)]
        assert all(jobs[i].after == (prepare,) for i in parts)
        # the prepare job waits for the baseline's training job, like an unsplit curve
        name = f"{p.parent.name}/{p.name}"
        trained = next(i for i, j in enumerate(jobs) if j.label == f"train sb3_ppo ({name})")
        assert jobs[prepare].after == (trained,)
        (pooled,) = curve_jobs[methods["pooled_ppo"], p]
        assert jobs[pooled].label.startswith("curve pooled_ppo")
    # fewer students than parts: one part per student; no step or one worker: not split
    assert len(jobs_for(3, 2, 2)[1][methods["sb3_ppo"], paths[0]]) == 1 + 3
    for n, k, w in ((1, 2, 2), (8, 0, 2), (8, 2, 1)):
        jobs, curve_jobs = jobs_for(n, k, w)
        (i,) = curve_jobs[methods["sb3_ppo"], paths[0]]
        assert jobs[i].label.startswith("curve sb3_ppo") and "part" not in jobs[i].label
