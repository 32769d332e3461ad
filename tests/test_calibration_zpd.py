"""ZPD-v0 calibration: Rasch MAP fit (gradient, parameter recovery) and the pipeline end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

import envs
from envs.calibration import calibrate, population_distribution, zpd
from envs.calibration.logs import read_kt_log, write_csv
from envs.calibration.population import population_settings
from envs.calibration.simulate import simulate_zpd

ZPD = "MetaTutor/ZPD-v0"


def static_students(n, seed):
    """Default-population students who neither learn nor lose engagement (the Rasch model holds)."""
    profs = [p.to_dict() for p in envs.distribution(ZPD).sample(n, "train", seed=seed)]
    for p in profs:
        p.update(learn_rate=0.0, frustration=0.0, boredom=0.0)
    return profs


def zpd_log(tmp_path, profs, n_answers, seed=0, name="log.csv"):
    header, rows = simulate_zpd(profs, n_answers, seed)
    write_csv(tmp_path / name, header, rows)
    return read_kt_log(tmp_path / name)


def test_gradient_matches_finite_differences(tmp_path):
    log = zpd_log(tmp_path, static_students(6, 0), 30)
    n, k, j = log.n_students, len(log.names), len(log.item_names)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, n * k + j)
    mu = rng.normal(0, 1, n * k)

    def f(z):
        return zpd.rasch_objective(z, log, mu, 0.8, 2.0)[0]

    g = zpd.rasch_objective(x, log, mu, 0.8, 2.0)[1]
    h = 1e-6
    for i in rng.choice(len(x), 12, replace=False):
        e = np.zeros_like(x)
        e[i] = h
        fd = (f(x + e) - f(x - e)) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_parameter_recovery_improves_with_answers(tmp_path):
    profs = static_students(150, 1)
    truth = np.array([p["ability0"] for p in profs])
    true_b = np.linspace(-2.5, 2.5, 5)
    err = {}
    for n_answers in (40, 240):
        log = zpd_log(tmp_path, profs, n_answers, name=f"log{n_answers}.csv")
        fit = zpd.fit_rasch(log)
        err[n_answers] = (np.abs(fit.ability() - truth).mean(), np.abs(fit.b - true_b).max())
    # measured: ability MAE 0.49 -> 0.25, level difficulties within 0.07 at 240 answers (60 per skill)
    assert err[240][0] < 0.3 and err[240][0] < 0.7 * err[40][0], err
    assert err[240][1] < 0.15, err


def test_calibrate_zpd_end_to_end(tmp_path):
    profs = [p.to_dict() for p in envs.distribution(ZPD).sample(150, "ood", seed=2)]
    header, rows = simulate_zpd(profs, 80, 2)
    write_csv(tmp_path / "log.csv", header, rows)
    out = tmp_path / "pop.json"
    meta = calibrate(ZPD, tmp_path / "log.csv", out, {"horizon": 40})
    assert meta["inferred_from_log"]["n_skills"] == 4
    levels = meta["inferred_from_log"]["difficulties"]
    assert len(levels) == 5 and np.all(np.diff(levels) > 0)
    assert meta["population_fields"] == list(zpd.POPULATION_FIELDS)
    held = meta["held_out"]
    assert held["calibrated_population"]["log_loss"] < held["default_population"]["log_loss"], held
    env_id, kwargs = population_settings(out)
    assert env_id == ZPD and kwargs["horizon"] == 40 and kwargs["difficulties"] == levels
    dist = population_distribution(out, ZPD, kwargs)
    assert len(dist.sample(3, "train", seed=0)) == 3 and json.loads(out.read_text())["env_id"] == ZPD


def test_zpd_needs_items(tmp_path):
    (tmp_path / "log.csv").write_text(
        "user_id,skill_name,correct,order_id\n" + "".join(f"u,s,{j % 2},{j}\n" for j in range(20))
    )
    with pytest.raises(ValueError, match="needs an item_id column"):
        calibrate(ZPD, tmp_path / "log.csv", tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()
