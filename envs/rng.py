"""Counter-based random numbers, one independent stream per student.

Why not one ``numpy.random.Generator`` for the whole batch? Because then the
random numbers a student sees depend on how many other students share the
batch, and a single env could never reproduce sub-env ``i`` of a vector env.
Here every student owns a 64-bit key; the ``j``-th uniform of step ``t`` of
episode ``e`` is a pure function ``hash(key, e, t, j)``. Draws stay vectorised
(a handful of NumPy integer ops over the whole batch) and a student's
trajectory is independent of the batch it runs in: sub-env ``i`` of a vector
env reset with ``seed=s`` equals a single env reset with ``seed=s + i`` when both
are given the same student profile.

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
_SALT_MUL_INT = 0xA0761D6478BD642F
_MASK64 = (1 << 64) - 1
_TWO_M32 = 1.0 / float(1 << 32)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser applied element-wise to a ``uint64`` array."""
    # unsigned array arithmetic wraps modulo 2**64 silently, as the mixer requires; in place on
    # one result and one scratch array (the same operations, without a temporary per operation)
    z = x + _GOLDEN
    t = z >> _S30
    z ^= t
    z *= _M1
    np.right_shift(z, _S27, out=t)
    z ^= t
    z *= _M2
    np.right_shift(z, _S31, out=t)
    z ^= t
    return z


def threshold32(p: np.ndarray) -> np.ndarray:
    """``ceil(p · 2³²)`` as ``uint64``, for ``p`` in [0, 1]: for a 32-bit integer ``x``,
    ``x · 2⁻³² < p`` if and only if ``x < threshold32(p)`` (both scalings by 2³² are exact
    in float64, and ``x < y`` for an integer ``x`` is ``x < ceil(y)``)."""
    return np.ceil(np.asarray(p, dtype=np.float64) * 4294967296.0).astype(np.uint64)


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

    The draws of step ``t`` are SplitMix64 outputs of the counters
    ``k_e + t·S + salt·Q + j·G`` (``j`` = 0, 1, …), where ``k_e = mix(key ⊕ e·E)``
    is the student's key for episode ``e``. Each 64-bit output yields two 32-bit
    uniforms (half the hashing; a resolution of 2⁻³² is ample for probabilities).
    """

    def __init__(self, n: int) -> None:
        self.keys = np.zeros(n, dtype=np.uint64)
        self.episode = np.zeros(n, dtype=np.uint64)
        self.step = np.zeros(n, dtype=np.uint64)
        self.episode_keys = mix64(self.keys)

    def seed(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        self.keys[idx] = seed_to_key(seeds)
        self.episode[idx] = 0
        self.step[idx] = 0
        self._rekey(idx)

    def new_episode(self, idx: np.ndarray) -> None:
        self.episode[idx] += np.uint64(1)
        self.step[idx] = 0
        self._rekey(idx)

    def _rekey(self, idx: np.ndarray) -> None:
        self.episode_keys[idx] = mix64(self.keys[idx] ^ (self.episode[idx] * _EPISODE_MUL))

    def advance(self) -> None:
        self.step += np.uint64(1)

    def uniform_t(self, n_draws: int, idx: np.ndarray | None = None, salt: int = 0) -> np.ndarray:
        """Uniforms in [0, 1) of shape ``(n_draws, len(idx))`` for the current step.

        Draw-major layout: row ``j`` is a contiguous vector over students, which is
        what vectorised models want. ``uniform_t(...)[j, i] == uniform(...)[i, j]``.
        Calling it twice in the same step with the same ``salt`` returns the same
        numbers, so a model asks once for all its draws and slices; a different
        ``salt`` (e.g. ``RESET_SALT`` for the draws of a reset) gives an independent set.
        """
        n_words = (n_draws + 1) // 2
        words = self.words_t(n_words, idx, salt)
        halves = words.view(np.uint32).reshape(n_words, words.shape[1], 2)
        # (word, half, student) -> rows 2w and 2w+1 are the low and high halves of word w; written
        # straight into that layout (out=), so the reshape below is a view, not a second copy
        out = np.empty((n_words, 2, words.shape[1]), dtype=np.float64)
        np.multiply(halves.transpose(0, 2, 1), _TWO_M32, out=out)
        return out.reshape(2 * n_words, words.shape[1])[:n_draws]

    def words_t(self, n_words: int, idx: np.ndarray | None = None, salt: int = 0) -> np.ndarray:
        """The 64-bit words behind :meth:`uniform_t`, ``uint64`` of shape ``(n_words, len(idx))``.

        Uniform ``2w`` is ``(word_w mod 2³²) · 2⁻³²`` and uniform ``2w + 1`` is
        ``(word_w >> 32) · 2⁻³²`` (on the little-endian machines NumPy runs on). A model may
        compare a 32-bit half ``x`` with a threshold instead: ``x · 2⁻³² < p`` exactly when
        ``x < ceil(p · 2³²)`` (:func:`threshold32`), the same decision without the float
        conversion.
        """
        ek, st = (self.episode_keys, self.step) if idx is None else (self.episode_keys[idx], self.step[idx])
        base = ek + st * _STEP_MUL + np.uint64((salt * _SALT_MUL_INT) & _MASK64)
        ctr = base[None, :] + (np.arange(n_words, dtype=np.uint64) * _GOLDEN)[:, None]
        return mix64(ctr)

    def uniform(self, n_draws: int, idx: np.ndarray | None = None, salt: int = 0) -> np.ndarray:
        """The same numbers as :meth:`uniform_t`, shaped ``(len(idx), n_draws)`` (a view)."""
        return self.uniform_t(n_draws, idx, salt).T
