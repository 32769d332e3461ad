"""Profiles drawn in a batch skip the per-object re-check: they must equal checked ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import envs
from envs.spaced_repetition.goals import SpacedRepetitionGoalsDistribution


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
@pytest.mark.parametrize("split", ["train", "ood"])
def test_batch_profiles_equal_checked_construction(env_id, split):
    dist = envs.distribution(env_id)
    for p in dist.sample(50, split, seed=3):
        # the ordinary constructor runs __post_init__'s checks and coercions on the same values
        again = type(p)(**{f.name: getattr(p, f.name) for f in dataclasses.fields(p)})
        assert again == p and hash(again) == hash(p)
        assert again.to_dict() == p.to_dict()


def test_batch_checks_what_the_constructor_checks(monkeypatch):
    dist = SpacedRepetitionGoalsDistribution(8)
    draw = dist._sample_arrays

    def no_goal(rng, n, split):
        arrays = draw(rng, n, split)
        arrays["goal"] = np.zeros_like(arrays["goal"])
        return arrays

    monkeypatch.setattr(dist, "_sample_arrays", no_goal)
    with pytest.raises(ValueError, match="'goal' needs at least one positive weight"):
        dist.sample(4, "train")

    def ragged(rng, n, split):
        arrays = draw(rng, n, split)
        arrays["goal"] = arrays["goal"][:, :-1]
        return arrays

    monkeypatch.setattr(dist, "_sample_arrays", ragged)
    with pytest.raises(ValueError, match="'goal' with 7 n_items"):
        dist.sample(4, "train")
