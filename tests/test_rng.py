"""The raw words behind the uniforms, and integer thresholds that decide exactly like them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.rng import StudentStreams, threshold32


def streams(n: int = 64) -> StudentStreams:
    s = StudentStreams(n)
    s.seed(np.arange(n), np.arange(n) * 7 + 3)
    for _ in range(4):
        s.advance()
    return s


def test_uniforms_are_the_halves_of_the_words() -> None:
    s = streams()
    for n_draws, salt in ((1, 0), (6, 0), (7, 5)):
        u = s.uniform_t(n_draws, salt=salt)
        w = s.words_t((n_draws + 1) // 2, salt=salt)
        halves = np.stack([w & np.uint64(0xFFFFFFFF), w >> np.uint64(32)], axis=1).reshape(-1, w.shape[1])
        np.testing.assert_array_equal(u, halves[:n_draws] * 2.0**-32)
    idx = np.array([5, 2, 40])
    np.testing.assert_array_equal(s.words_t(3, idx), s.words_t(3)[:, idx])


@settings(max_examples=300, deadline=None)
@given(
    p=st.one_of(
        st.floats(0.0, 1.0),
        st.integers(0, 2**32).map(lambda k: k / 2**32),  # exactly on the 2^-32 grid
        st.integers(1, 2**32).map(lambda k: np.nextafter(k / 2**32, 0.0)),  # just below it
    ),
    offsets=st.lists(st.integers(-3, 3), min_size=1, max_size=7),
)
def test_threshold_decides_exactly_like_the_uniform(p: float, offsets: list[int]) -> None:
    t = int(threshold32(p))
    # the 32-bit values around the threshold, and the ends of the range
    xs = np.array(sorted({min(max(t + o, 0), 2**32 - 1) for o in offsets} | {0, 2**32 - 1}), dtype=np.uint64)
    np.testing.assert_array_equal(xs < np.uint64(t), xs * 2.0**-32 < p)
    np.testing.assert_array_equal(xs >= np.uint64(t), xs * 2.0**-32 >= p)


def test_threshold_of_arrays_and_ends() -> None:
    np.testing.assert_array_equal(
        threshold32(np.array([0.0, 1.0, 0.5])), np.array([0, 2**32, 2**31], dtype=np.uint64)
    )
