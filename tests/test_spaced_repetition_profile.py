"""SpacedRepetition-v0 profiles: validation (hypothesis), JSON round trip, population, splits."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import envs
from envs.spaced_repetition import SpacedRepetitionDistribution, SpacedRepetitionProfile

ENV_ID = "MetaTutor/SpacedRepetition-v0"
VALID = {"decay": 1.0, "gain": 1.0, "fail_effect": 1.0, "item_difficulty": [0.0, -0.5, 0.5]}
UPPER = {"decay": 100.0, "gain": 10.0, "fail_effect": 10.0}


@settings(max_examples=60, deadline=None)
@given(
    decay=st.floats(0, 100),
    gain=st.floats(0, 10),
    fail_effect=st.floats(0, 10),
    item_difficulty=st.lists(st.floats(-3, 3), min_size=1, max_size=30),
)
def test_valid_profiles_round_trip_through_json(
    decay: float, gain: float, fail_effect: float, item_difficulty: list
) -> None:
    prof = SpacedRepetitionProfile(decay, gain, fail_effect, item_difficulty)
    assert SpacedRepetitionProfile.from_dict(json.loads(json.dumps(prof.to_dict()))) == prof
    assert prof.dims() == {"n_items": len(item_difficulty)}


@pytest.mark.parametrize("split", ["train", "val", "test", "ood"])
def test_sampled_profiles_round_trip_exactly(split: str) -> None:
    for prof in SpacedRepetitionDistribution(7).sample(50, split, seed=1):
        assert SpacedRepetitionProfile.from_dict(json.loads(json.dumps(prof.to_dict()))) == prof


@settings(max_examples=120, deadline=None)
@given(
    field=st.sampled_from(sorted(UPPER)),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: math.isnan(x) or x < 0 or x > 100),
        st.floats(-1e9, -1e-12),
        st.text(max_size=3),
        st.booleans(),
        st.none(),
        st.just([1.0]),
    ),
)
def test_invalid_scalar_fields_are_rejected_with_the_field_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SpacedRepetitionProfile.from_dict({**VALID, field: value})


@pytest.mark.parametrize("field", ["gain", "fail_effect"])
def test_gain_fields_stop_at_ten(field: str) -> None:
    with pytest.raises(ValueError, match=rf"{field}.*\[0, 10\]"):
        SpacedRepetitionProfile.from_dict({**VALID, field: 10.5})


@settings(max_examples=60, deadline=None)
@given(
    bad=st.one_of(
        st.just([]),
        st.just(0.3),
        st.just("abc"),
        st.lists(st.floats(3.0001, 1e9), min_size=1, max_size=3),
        st.lists(st.floats(-1e9, -3.0001), min_size=1, max_size=3),
        st.just([float("nan")]),
        st.just([0.0, None]),
    ),
)
def test_invalid_item_difficulties_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="item_difficulty"):
        SpacedRepetitionProfile.from_dict({**VALID, "item_difficulty": bad})


@settings(max_examples=40, deadline=None)
@given(
    extra=st.text(min_size=1, max_size=8).filter(lambda s: s not in VALID),
    missing=st.sampled_from(sorted(VALID)),
)
def test_unknown_and_missing_fields(extra: str, missing: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        SpacedRepetitionProfile.from_dict({**VALID, extra: 1.0})
    data = dict(VALID)
    del data[missing]
    with pytest.raises(ValueError, match=rf"missing .*{missing}"):
        SpacedRepetitionProfile.from_dict(data)


def test_item_count_must_match_the_env() -> None:
    env = gym.make(ENV_ID, n_items=4)
    with pytest.raises(ValueError, match=r"item_difficulty.*length 3.*n_items=4"):
        env.unwrapped.set_task(VALID)


def test_splits_are_reproducible_and_disjoint() -> None:
    dist = SpacedRepetitionDistribution()
    a = dist.sample(200, "train", seed=7)
    assert a == dist.sample(200, "train", seed=7)
    assert a != dist.sample(200, "train", seed=8)
    seen: dict[str, str] = {}
    for split in ("train", "val", "test", "ood"):
        for p in dist.sample(200, split, seed=7):
            key = json.dumps(p.to_dict())
            assert key not in seen, f"{split} repeats a profile of {seen.get(key)}"
            seen[key] = split


@pytest.mark.parametrize(
    "split,log_decay_mean,spread", [("test", 0.0, (0.2, 0.8)), ("ood", math.log(4), (0.8, 1.2))]
)
def test_population_is_as_documented(split: str, log_decay_mean: float, spread: tuple) -> None:
    profs = SpacedRepetitionDistribution(20).sample(3000, split, seed=0)

    def ks(values: list, mean: float, sd: float) -> float:
        return stats.kstest(np.log(values), stats.norm(mean, sd).cdf).pvalue

    assert ks([p.decay for p in profs], log_decay_mean, 0.5) > 1e-6
    assert ks([p.gain for p in profs], 0.0, 0.35) > 1e-6
    assert ks([p.fail_effect for p in profs], 0.0, 0.5) > 1e-6
    # ℓ = s·ε with s ~ U(lo, hi), ε ~ N(0, 1): mean 0, variance E[s²] = (hi³ − lo³) / (3 (hi − lo))
    ell = np.array([p.item_difficulty for p in profs])
    lo, hi = spread
    var = (hi**3 - lo**3) / (3 * (hi - lo))
    assert abs(ell.mean()) < 5 * math.sqrt(var / ell.size)
    assert ell.var() == pytest.approx(var, rel=0.05)
    # which items are hard differs between students (no item is systematically harder)
    assert np.abs(ell.mean(axis=0)).max() < 5 * math.sqrt(var / len(profs))


def test_ood_students_forget_much_faster() -> None:
    dist = SpacedRepetitionDistribution()
    test = np.array([p.decay for p in dist.sample(2000, "test", seed=1)])
    ood = np.array([p.decay for p in dist.sample(2000, "ood", seed=1)])
    assert np.median(ood) > 3 * np.median(test)


def test_profile_files_round_trip(tmp_path) -> None:
    profs = envs.sample_profiles(ENV_ID, 5, split="val", seed=2, n_items=8)
    path = tmp_path / "sr.json"
    envs.save_profiles(path, ENV_ID, profs)
    env_id, loaded = envs.load_profiles(path)
    assert env_id == ENV_ID and loaded == profs
    assert all(len(p["item_difficulty"]) == 8 for p in loaded)


def best_threshold_score(prof: dict, theta: float, n: int = 64) -> float:
    """Expected exam score of the oracle threshold schedule (true recall, review below ``theta``)."""
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point")
    venv.reset(seed=0, options={"profiles": [prof] * n})
    dyn = venv.unwrapped.dynamics
    for _ in range(dyn.horizon):
        p = np.where(dyn.seen, dyn.recall_matrix(dyn.times[dyn.t]), 2.0)
        weakest, new = p.argmin(axis=1), (~dyn.seen).argmax(axis=1)
        review = (p.min(axis=1) < theta) | dyn.seen.all(axis=1)
        _, _, _, _, info = venv.step(np.where(review, weakest, new))
    return float(info["final_mean_recall_prob"].mean())


def test_the_profile_changes_the_best_schedule() -> None:
    """A slow forgetter should be reviewed late (low threshold), a fast forgetter early."""
    slow = {"decay": 0.3, "gain": 0.5, "fail_effect": 1.0, "item_difficulty": [0.0] * 20}
    fast = {"decay": 6.0, "gain": 2.0, "fail_effect": 1.0, "item_difficulty": [0.0] * 20}
    assert best_threshold_score(slow, 0.2) > best_threshold_score(slow, 0.9) + 0.1
    assert best_threshold_score(fast, 0.9) > best_threshold_score(fast, 0.2) + 0.1
