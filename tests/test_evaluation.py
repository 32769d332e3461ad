"""Held-out evaluation end to end on a tiny configuration, and its statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

import envs
from meta_rl.cli import main as cli_main
from meta_rl.config import MAMLPPOConfig
from meta_rl.evaluation import heuristics
from meta_rl.evaluation.report import MethodCurve, build_results
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
    expected = {"maml_ppo", "pooled_ppo", "scratch_ppo", "sb3_ppo", "oracle", "random", "round_robin",
                "mastery_threshold", "mastery_threshold_rr"}  # fmt: skip
    assert set(res["methods"]) == expected
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
    assert (out / "adaptation_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
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


def test_unknown_method_and_missing_run(run_dir, tmp_path, capsys) -> None:
    rc = cli_main(
        ["evaluate", "--checkpoint", str(run_dir), "--methods", "magic", "--out", str(tmp_path / "o")]
    )
    assert rc == 2 and "unknown method" in capsys.readouterr().err
    rc = cli_main(["evaluate", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no meta-training run" in capsys.readouterr().err


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
