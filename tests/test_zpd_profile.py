"""ZPD-v0 profiles (validation, JSON) and population splits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import envs
from envs.zpd import ZPDDistribution, ZPDProfile

ENV_ID = "MetaTutor/ZPD-v0"
VALID = {
    "ability0": [-1.0, 0.5],
    "learn_rate": 0.2,
    "sweet_spot": 0.7,
    "zpd_width": 1.0,
    "frustration": 0.04,
    "boredom": 0.01,
    "recovery": 0.2,
    "engagement0": 0.9,
}
#: (low, high, low_open, high_open) written out independently of the FieldSpecs
RANGES = {
    "ability0": (-6.0, 6.0, False, False),
    "learn_rate": (0.0, 1.0, False, False),
    "sweet_spot": (0.0, 1.0, True, True),
    "zpd_width": (0.0, 5.0, True, False),
    "frustration": (0.0, 1.0, False, False),
    "boredom": (0.0, 1.0, False, False),
    "recovery": (0.0, 1.0, False, False),
    "engagement0": (0.0, 1.0, False, False),
}
SCALARS = [f for f in RANGES if f != "ability0"]


def inside(field: str, x: float) -> bool:
    lo, hi, lo_open, hi_open = RANGES[field]
    return (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)


def in_range(field: str) -> st.SearchStrategy[float]:
    lo, hi, lo_open, hi_open = RANGES[field]
    return st.floats(lo, hi, exclude_min=lo_open, exclude_max=hi_open)


@settings(max_examples=80, deadline=None)
@given(
    ability0=st.lists(in_range("ability0"), min_size=1, max_size=8),
    scalars=st.fixed_dictionaries({f: in_range(f) for f in SCALARS}),
)
def test_valid_profiles_round_trip_through_json(ability0: list, scalars: dict) -> None:
    prof = ZPDProfile(ability0=ability0, **scalars)
    again = ZPDProfile.from_dict(json.loads(json.dumps(prof.to_dict())))
    assert again == prof
    assert prof.dims() == {"n_skills": len(ability0)}


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(SCALARS),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=3),
        st.booleans(),
        st.none(),
        st.lists(st.floats(0, 1), max_size=2),
    ),
)
def test_invalid_scalar_fields_are_rejected_with_the_field_name(field: str, value: object) -> None:
    if isinstance(value, float) and not math.isnan(value) and inside(field, value):
        # a valid value is accepted as it is (so the strategy cannot only make errors)
        assert getattr(ZPDProfile.from_dict({**VALID, field: value}), field) == value
        return
    with pytest.raises(ValueError, match=field):
        ZPDProfile.from_dict({**VALID, field: value})


@settings(max_examples=80, deadline=None)
@given(
    bad=st.one_of(
        st.just([]),
        st.just(0.3),
        st.just("ab"),
        st.just(None),
        st.lists(st.one_of(st.floats(6.0001, 1e9), st.floats(-1e9, -6.0001), st.just(math.nan)), min_size=1),
        st.lists(st.sampled_from(["x", None, True]), min_size=1, max_size=3),
    ),
    good=st.lists(st.floats(-6, 6), max_size=3),
)
def test_invalid_abilities_are_rejected_with_the_field_name(bad: object, good: list) -> None:
    value = [*good, *bad] if isinstance(bad, list) and bad else bad
    with pytest.raises(ValueError, match="ability0"):
        ZPDProfile.from_dict({**VALID, "ability0": value})


@settings(max_examples=40, deadline=None)
@given(
    missing=st.sets(st.sampled_from(sorted(VALID)), min_size=1),
    extra=st.text(st.characters(categories=["Ll"]), min_size=1, max_size=8).filter(lambda s: s not in VALID),
)
def test_missing_and_unknown_fields_are_named(missing: set, extra: str) -> None:
    data = {k: v for k, v in VALID.items() if k not in missing}
    with pytest.raises(ValueError, match="missing") as err:
        ZPDProfile.from_dict(data)
    assert all(name in str(err.value) for name in missing)
    with pytest.raises(ValueError, match=f"unknown.*{extra}"):
        ZPDProfile.from_dict({**VALID, extra: 0.1})


def test_profile_must_match_the_env_skills() -> None:
    import gymnasium as gym

    env = gym.make(ENV_ID, n_skills=3)
    with pytest.raises(ValueError, match=r"ability0.*length 2.*n_skills=3"):
        env.reset(options={"profile": VALID})


def test_splits_are_valid_reproducible_and_disjoint() -> None:
    dist = ZPDDistribution(n_skills=3)
    a = dist.sample(50, "train", seed=1)
    assert a == dist.sample(50, "train", seed=1)
    assert a != dist.sample(50, "train", seed=2)
    drawn = {
        split: {json.dumps(p.to_dict()) for p in dist.sample(50, split, seed=1)} for split in envs.SPLITS
    }
    for s1 in envs.SPLITS:
        for s2 in envs.SPLITS:
            if s1 < s2:
                assert not drawn[s1] & drawn[s2]
    assert all(p.dims() == {"n_skills": 3} for p in a)


def test_population_matches_its_docstring() -> None:
    n = 2000
    arr = {k: np.array([getattr(p, k) for p in ZPDDistribution(4).sample(n, "train", seed=0)]) for k in VALID}
    assert stats.kstest(arr["sweet_spot"], stats.uniform(0.5, 0.35).cdf).pvalue > 1e-6
    assert stats.kstest(arr["learn_rate"], stats.uniform(0.1, 0.2).cdf).pvalue > 1e-6
    assert stats.kstest(arr["frustration"], stats.uniform(0.02, 0.04).cdf).pvalue > 1e-6
    # ability0 = μ + 0.5 ε with μ ~ N(−1, 0.7²): the student mean has variance 0.49 + 0.25 / 4
    means = arr["ability0"].mean(axis=1)
    assert stats.kstest(means, stats.norm(-1.0, math.sqrt(0.49 + 0.0625)).cdf).pvalue > 1e-6
    within = arr["ability0"] - means[:, None]
    assert within.var(ddof=0) * 4 / 3 == pytest.approx(0.25, rel=0.05)


def test_ood_split_is_fragile_or_challenge_seeking() -> None:
    n = 2000
    ood = ZPDDistribution(4).sample(n, "ood", seed=0)
    fragile = np.array([p.frustration >= 0.12 for p in ood])
    seeking = np.array([p.sweet_spot <= 0.4 for p in ood])
    assert not (fragile & seeking).any() and (fragile | seeking).all()
    assert stats.binomtest(int(fragile.sum()), n, 0.5).pvalue > 1e-6
    train = ZPDDistribution(4).sample(n, "train", seed=0)
    assert all(p.frustration <= 0.06 and p.sweet_spot >= 0.5 for p in train)


def test_sample_profiles_and_files_round_trip(tmp_path: object) -> None:
    profs = envs.sample_profiles(ENV_ID, 5, split="ood", seed=3, n_skills=2)
    path = tmp_path / "zpd.json"  # type: ignore[operator]
    envs.save_profiles(path, ENV_ID, profs)
    env_id, loaded = envs.load_profiles(path)
    assert env_id == ENV_ID and loaded == profs
