"""calibrate / simulate-log end to end: files, privacy, populations, held-out prediction."""

import json

import numpy as np
import pytest

import envs
from envs.calibration import PopulationDistribution, calibrate, population_distribution, predict
from envs.calibration.population import sibling
from meta_rl.cli import main

SG = "MetaTutor/SkillGraph-v0"
SR = "MetaTutor/SpacedRepetition-v0"


def test_auc_and_log_loss_match_definitions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.uniform(size=200), 1)  # with ties
    pairs = [(a, b) for a in p[y == 1] for b in p[y == 0]]
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert predict.auc(y, p) == pytest.approx(brute, abs=1e-12)
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    assert predict.log_loss(y, p) == pytest.approx(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)))


def test_mixture_weights_follow_each_students_own_history():
    # two components: always 0.9 and always 0.1; a student answering right shifts to the first
    p = np.array([[0.9] * 4, [0.1] * 4])
    y = np.array([1, 1, 1, 0])
    student = np.array([0, 0, 0, 1])
    out = predict.mixture(p, y, student, np.ones(4, dtype=bool))
    assert out[0] == pytest.approx(0.5)  # no history yet
    assert out[1] == pytest.approx((0.9 * 0.9 + 0.1 * 0.1) / (0.9 + 0.1))
    assert out[2] > out[1]
    assert out[3] == pytest.approx(0.5)  # a new student starts from the prior again


def run_cli(*args):
    return main([str(a) for a in args])


def test_skill_graph_end_to_end(tmp_path, capsys):
    kw = json.dumps({"prerequisites": "none", "n_skills": 4})
    log, out = tmp_path / "log.csv", tmp_path / "population.json"
    sim = [
        "--env",
        SG,
        "--n-students",
        150,
        "--split",
        "ood",
        "--seed",
        1,
        "--length",
        15,
        "--env-kwargs",
        kw,
    ]
    assert run_cli("simulate-log", *sim, "--out", log, "--truth", tmp_path / "truth.json") == 0
    assert run_cli("calibrate", "--env", SG, "--log", log, "--out", out, "--env-kwargs", kw) == 0
    printed = capsys.readouterr().out
    assert "calibrated_population" in printed
    meta = json.loads(sibling(out, "meta").read_text())
    held = meta["held_out"]
    # the shifted (ood) students are predicted better by their calibrated population
    assert held["calibrated_population"]["log_loss"] < held["default_population"]["log_loss"] - 0.01, held
    # both files load with the standard loader; no user id is written anywhere
    env_id, train = envs.load_profiles(out)
    _, test = envs.load_profiles(sibling(out, "test"))
    assert env_id == SG and len(train) == 120 and len(test) == 30
    for path in (out, sibling(out, "test"), sibling(out, "meta")):
        assert "u00" not in path.read_text()
    # the trainer's interface: a ProfileDistribution over the fitted students
    dist = population_distribution(out, SG, {"prerequisites": "none", "n_skills": 4})
    drawn = dist.sample(50, "train", seed=0)
    fitted = {json.dumps(p, sort_keys=True) for p in train}
    assert all(json.dumps(p.to_dict(), sort_keys=True) in fitted for p in drawn)
    assert dist.sample(3, "test", seed=0)[0].to_dict() in test
    with pytest.raises(ValueError, match="no ood split"):
        dist.sample(1, "ood")
    # refusing to overwrite, and a clear error when the env has another number of skills
    assert run_cli("calibrate", "--env", SG, "--log", log, "--out", out, "--env-kwargs", kw) == 2
    assert "exists" in capsys.readouterr().err
    bad = json.dumps({"prerequisites": "none", "n_skills": 8})
    assert (
        run_cli("calibrate", "--env", SG, "--log", log, "--out", tmp_path / "other.json", "--env-kwargs", bad)
        == 2
    )
    err = capsys.readouterr().err
    assert "the log has 4 skills" in err and "n_skills=8" in err
    assert not (tmp_path / "other.json").exists() and not sibling(tmp_path / "other.json", "meta").exists()
    with pytest.raises(ValueError, match="n_skills"):
        population_distribution(out, SG, {"n_skills": 8})


def test_spaced_repetition_end_to_end(tmp_path):
    kw = {"n_items": 8}
    profiles = envs.distribution(SR, **kw).sample(40, "ood", seed=2)
    from envs.calibration import simulate_log
    from envs.calibration.logs import write_csv

    header, rows = simulate_log(SR, profiles, 0, kw, 120)
    write_csv(tmp_path / "rv.csv", header, rows)
    result = calibrate(SR, tmp_path / "rv.csv", tmp_path / "pop.json", kw, test_fraction=0.25)
    held = result["held_out"]
    assert held["calibrated_population"]["log_loss"] < held["default_population"]["log_loss"], held
    assert result["n_students"] == {"train": 30, "test": 10, "dropped": 0}
    dist = population_distribution(tmp_path / "pop.json", SR, kw)
    assert len(dist.sample(5, "val", seed=1)) == 5


def test_students_with_too_few_responses_are_dropped(tmp_path):
    text = "user_id,skill_name,correct,order_id\n" + "".join(
        f"{u},s{j % 2},{(j * 7 + i) % 2},{j}\n" for i, u in enumerate(["a", "b", "c", "d"]) for j in range(12)
    )
    text += "e,s0,1,1\n"
    (tmp_path / "log.csv").write_text(text)
    result = calibrate(SG, tmp_path / "log.csv", tmp_path / "p.json", {"n_skills": 2}, test_fraction=0.25)
    assert result["n_students"] == {"train": 3, "test": 1, "dropped": 1}


def test_population_jitter_stays_in_range_and_varies():
    profs = envs.distribution(SG).sample(5, "train", seed=0)
    exact = PopulationDistribution(profs).sample(20, "train", seed=1)
    assert all(p in profs for p in exact)
    jittered = PopulationDistribution(profs, jitter=0.3).sample(200, "val", seed=1)  # validated on creation
    assert not any(p in profs for p in jittered)
    with pytest.raises(ValueError, match="held-out"):
        PopulationDistribution(profs).sample(1, "test")
