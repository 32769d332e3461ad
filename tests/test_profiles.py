"""Profiles, populations and profile files (generic API, exercised on SkillGraph-v0)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.skill_graph import SkillGraphDistribution, SkillGraphProfile
from meta_rl.cli import main as cli_main

ENV_ID = "MetaTutor/SkillGraph-v0"
VALID = {
    "learn": [0.3, 0.4],
    "content_affinity": [1.0, 0.2, 0.2],
    "slip": 0.1,
    "guess": 0.2,
    "forget": 0.01,
    "prior": [0.0, 0.1],
}


def test_round_trip_through_json_is_exact() -> None:
    for prof in SkillGraphDistribution().sample(20, "test", seed=1):
        again = SkillGraphProfile.from_dict(json.loads(json.dumps(prof.to_dict())))
        assert again == prof


@settings(max_examples=60, deadline=None)
@given(
    learn=st.lists(st.floats(0, 1), min_size=1, max_size=6),
    slip=st.floats(0, 0.5),
    guess=st.floats(0, 0.5),
    forget=st.floats(0, 1),
    c=st.integers(1, 4),
)
def test_valid_profiles_round_trip(learn: list, slip: float, guess: float, forget: float, c: int) -> None:
    prof = SkillGraphProfile(
        learn=learn,
        content_affinity=[0.5] * c,
        slip=slip,
        guess=guess,
        forget=forget,
        prior=[0.0] * len(learn),
    )
    assert SkillGraphProfile.from_dict(json.loads(json.dumps(prof.to_dict()))) == prof
    assert prof.dims() == {"n_skills": len(learn), "n_content": c}


@settings(max_examples=80, deadline=None)
@given(
    field=st.sampled_from(["slip", "guess", "forget"]),
    value=st.one_of(
        st.floats(allow_nan=True).filter(lambda x: math.isnan(x) or x < 0 or x > 0.5),
        st.text(max_size=3),
        st.booleans(),
        st.none(),
    ),
)
def test_invalid_scalar_fields_are_rejected_with_the_field_name(field: str, value: object) -> None:
    if field == "forget" and isinstance(value, float) and 0.5 < value <= 1.0:
        return  # forget allows up to 1
    data = {**VALID, field: value}
    with pytest.raises(ValueError, match=field):
        SkillGraphProfile.from_dict(data)


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(["learn", "content_affinity", "prior"]),
    bad=st.one_of(
        st.just([]),
        st.just(0.3),
        st.just("abc"),
        st.lists(st.floats(1.0001, 1e9), min_size=1, max_size=3),
        st.lists(st.floats(-1e9, -1e-9), min_size=1, max_size=3),
        st.just([float("nan")]),
    ),
)
def test_invalid_vector_fields_are_rejected(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=field):
        SkillGraphProfile.from_dict({**VALID, field: bad})


def test_unknown_missing_and_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown .*'speed'"):
        SkillGraphProfile.from_dict({**VALID, "speed": 1.0})
    data = dict(VALID)
    del data["slip"]
    with pytest.raises(ValueError, match=r"missing .*slip"):
        SkillGraphProfile.from_dict(data)
    with pytest.raises(ValueError, match=r"prior.*length 3.*n_skills"):
        SkillGraphProfile.from_dict({**VALID, "prior": [0.0, 0.0, 0.0]})
    with pytest.raises(ValueError, match=r"slip.*\[0, 0.5\]"):
        SkillGraphProfile.from_dict({**VALID, "slip": 0.7})


def test_profiles_are_immutable() -> None:
    prof = SkillGraphProfile.from_dict(VALID)
    with pytest.raises(AttributeError):
        prof.slip = 0.2  # type: ignore[misc]


def test_splits_are_reproducible_and_disjoint() -> None:
    dist = SkillGraphDistribution()
    a = dist.sample(200, "train", seed=7)
    assert a == dist.sample(200, "train", seed=7)
    assert a != dist.sample(200, "train", seed=8)
    seen = {}
    for split in ("train", "val", "test", "ood"):
        for p in dist.sample(200, split, seed=7):
            key = json.dumps(p.to_dict())
            assert key not in seen, f"{split} repeats a profile of {seen.get(key)}"
            seen[key] = split


def test_ood_split_is_shifted_as_documented() -> None:
    dist = SkillGraphDistribution()
    test = dist.sample(2000, "test", seed=0)
    ood = dist.sample(2000, "ood", seed=0)
    mean_learn = lambda ps: np.mean([np.mean(p.learn) for p in ps])  # noqa: E731
    mean_forget = lambda ps: np.mean([p.forget for p in ps])  # noqa: E731
    assert mean_learn(ood) < 0.6 * mean_learn(test)
    assert min(p.forget for p in ood) >= 0.03 > max(p.forget for p in test)
    assert mean_forget(ood) > 3 * mean_forget(test)


def test_learning_speed_of_each_family() -> None:
    """The evaluation's subgroup tables split students by their distribution's learning speed:
    hand-computed on one profile per family, ``None`` for a distribution that defines none,
    and lower on the documented slower ``ood`` populations (SkillGraph, SpacedRepetition)."""
    from envs.profiles import ProfileDistribution

    assert SkillGraphDistribution.learning_speed(VALID) == pytest.approx(0.35 * 1.0)
    sr = envs.family("MetaTutor/SpacedRepetition-v0").load("distribution")
    goals = envs.family("MetaTutor/SpacedRepetitionGoals-v0").load("distribution")
    zpd = envs.family("MetaTutor/ZPD-v0").load("distribution")
    assert sr.learning_speed({"decay": 2.5}) == goals.learning_speed({"decay": 2.5}) == -2.5
    assert zpd.learning_speed({"learn_rate": 0.2}) == 0.2
    assert ProfileDistribution.learning_speed(VALID) is None
    for env_id in ("MetaTutor/SkillGraph-v0", "MetaTutor/SpacedRepetition-v0"):
        dist = envs.family(env_id).load("distribution")
        speed = {
            s: np.mean([dist.learning_speed(p) for p in envs.sample_profiles(env_id, 500, s)])
            for s in ("test", "ood")
        }
        assert speed["ood"] < speed["test"], (env_id, speed)


def test_each_student_has_one_preferred_content() -> None:
    for p in SkillGraphDistribution().sample(300, "train", seed=0):
        aff = np.asarray(p.content_affinity)
        assert (aff >= 0.8).sum() == 1 and (aff <= 0.4).sum() == len(aff) - 1


def test_sample_save_load(tmp_path) -> None:
    profs = envs.sample_profiles(ENV_ID, 5, split="val", seed=2)
    path = tmp_path / "p.json"
    envs.save_profiles(path, ENV_ID, profs)
    env_id, loaded = envs.load_profiles(path)
    assert env_id == ENV_ID and loaded == profs
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "not valid JSON"),
        ('{"env_id": "MetaTutor/SkillGraph-v0"}', "exactly the keys"),
        ('{"env_id": "Nope-v0", "profiles": [{}]}', "unknown env id"),
        ('{"env_id": "MetaTutor/SkillGraph-v0", "profiles": []}', "non-empty"),
        ('{"env_id": "MetaTutor/SkillGraph-v0", "profiles": [{"learn": [2]}]}', "profile 0"),
    ],
)
def test_malformed_profile_files_name_the_file(tmp_path, content: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as err:
        envs.load_profiles(path)
    assert str(path) in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(ValueError, match="no such profile file"):
        envs.load_profiles("/nonexistent/profiles.json")


def test_sample_profiles_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        envs.sample_profiles(ENV_ID, 3, split="holdout")
    with pytest.raises(ValueError, match="n must be"):
        envs.sample_profiles(ENV_ID, 0)
    with pytest.raises(ValueError, match="seed"):
        envs.sample_profiles(ENV_ID, 2, seed=-1)
    with pytest.raises(ValueError, match="unknown env id"):
        envs.sample_profiles("CartPole-v1", 2)


def test_profiles_cli(tmp_path, capsys) -> None:
    out = tmp_path / "test.json"
    rc = cli_main(
        ["profiles", "--env", ENV_ID, "--split", "test", "--n", "4", "--seed", "1", "--out", str(out)]
    )
    assert rc == 0
    env_id, profs = envs.load_profiles(out)
    assert env_id == ENV_ID and profs == envs.sample_profiles(ENV_ID, 4, "test", 1)
    rc = cli_main(["profiles", "--env", ENV_ID, "--split", "nope", "--n", "4", "--out", str(out)])
    assert rc == 2 and "unknown split" in capsys.readouterr().err
