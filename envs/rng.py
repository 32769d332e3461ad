"""Counter-based random numbers, one independent stream per student.

Why not one ``numpy.random.Generator`` for the whole batch? Because then the
random numbers a student sees depend on how many other students share the
batch, and a single env could never reproduce sub-env ``i`` of a vector env.
Here every student owns a 64-bit key; the ``j``-th uniform of step ``t`` of
episode ``e`` is a pure function ``hash(key, e, t, j)``. Draws stay vectorised
(a handful of NumPy integer ops over the whole batch) and a student's
trajectory is independent of the batch it runs in: sub-env ``i`` of a vector
env reset with ``seed=s`` equals a single env reset with ``seed=s + i``.

The mixer is SplitMix64's finaliser (Steele, Lea & Flood 2014), which passes
BigCrush when applied to a counter; we feed it a counter made unique per
(key, episode, step, draw).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_EPISODE_MUL = np.uint64(0xD1B54A32D192ED03)
_STEP_MUL = np.uint64(0x8CB92BA72F3D8DD7)
_TWO_M32 = 1.0 / float(1 << 32)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser applied element-wise to a ``uint64`` array."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def seed_to_key(seed: int | np.ndarray) -> np.ndarray:
    """Turn integer seeds (any size, non-negative) into well-mixed 64-bit keys."""
    s = np.asarray(seed)
    if s.dtype.kind not in "iu":
        raise TypeError(f"seeds must be integers, got dtype {s.dtype}")
    if np.any(s < 0):
        raise ValueError("seeds must be non-negative")
    return mix64(mix64(s.astype(np.uint64)))


class StudentStreams:
    """Per-student random streams for a batch of ``n`` students.

    Each student has a key (set by :meth:`seed`), an episode counter (advanced by
    :meth:`new_episode`) and a step counter (advanced by :meth:`advance`).
    :meth:`uniform` returns the draws for the current step.
    """

    def __init__(self, n: int) -> None:
        self.keys = np.zeros(n, dtype=np.uint64)
        self.episode = np.zeros(n, dtype=np.uint64)
        self.step = np.zeros(n, dtype=np.uint64)

    def seed(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        self.keys[idx] = seed_to_key(seeds)
        self.episode[idx] = 0
        self.step[idx] = 0

    def new_episode(self, idx: np.ndarray) -> None:
        with np.errstate(over="ignore"):
            self.episode[idx] += np.uint64(1)
        self.step[idx] = 0

    def advance(self) -> None:
        with np.errstate(over="ignore"):
            self.step += np.uint64(1)

    def uniform(self, n_draws: int, idx: np.ndarray | None = None, salt: int = 0) -> np.ndarray:
        """Uniforms in [0, 1) of shape ``(len(idx), n_draws)`` for the current step.

        Calling it twice in the same step with the same ``salt`` returns the same
        numbers, so a model asks once for all its draws and slices; a different
        ``salt`` (e.g. 1 for the draws of a reset) gives an independent set.
        """
        keys, ep, st = (self.keys, self.episode, self.step)
        if idx is not None:
            keys, ep, st = keys[idx], ep[idx], st[idx]
        n_words = (n_draws + 1) // 2
        with np.errstate(over="ignore"):
            base = mix64(keys ^ mix64(ep * _EPISODE_MUL + st * _STEP_MUL + np.uint64(salt)))
            ctr = base[:, None] + np.arange(n_words, dtype=np.uint64)[None, :] * _GOLDEN
        # each 64-bit hash gives two 32-bit uniforms: half the hashing, 2^-32 resolution
        words = mix64(ctr).view(np.uint32).reshape(len(keys), 2 * n_words)[:, :n_draws]
        return words * _TWO_M32
