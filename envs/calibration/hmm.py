"""The E-step of BKT: forward–backward over two-state chains, by a parallel scan or a time loop.

Each (student, skill) sequence is a hidden Markov chain with states ``L ∈ {0, 1}``
(unknown, known); ``envs.calibration.bkt`` has the model and the EM around this module.
Two exact ways to compute the messages, the cheaper picked per log (:func:`use_scan`):

* the **scan** (:func:`_expected_stats_scan`): the forward and backward messages are
  prefix / suffix products of 2×2 matrices, formed by a chunked parallel scan
  (:func:`_prefix_products`) on flat sequences: ``W + log₂(T / W)`` vectorised steps for
  a sequence of ``T`` answers, memory linear in the answers;
* the **time loop** (:func:`_expected_stats_loop`): one step per opportunity over
  sequences padded to the longest (the E-step used before the scan); cheaper for many
  short sequences of similar length.

They agree to rounding (``tests/test_calibration_bkt_scan.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from envs.calibration.logs import ResponseLog


@dataclass(frozen=True)
class Sequences:
    """A log cut into (student, skill) sequences, stored flat (no padding).

    The answers of sequence ``s`` are ``y[start[s] : start[s] + length[s]]`` in time order;
    for answer ``a``, ``seq[a]`` is its sequence, ``pos[a]`` its position in it (0 for the
    first) and ``row[a]`` its index in the log. Flat storage keeps memory linear in the
    number of answers, whatever the mix of short and very long sequences.
    """

    y: np.ndarray
    row: np.ndarray
    seq: np.ndarray
    pos: np.ndarray
    student: np.ndarray
    skill: np.ndarray
    length: np.ndarray
    n_students: int
    n_skills: int

    @property
    def n_seq(self) -> int:
        return len(self.length)

    @property
    def start(self) -> np.ndarray:
        """Index of the first answer of each sequence."""
        return np.concatenate([[0], np.cumsum(self.length)[:-1]]).astype(np.int64)

    @classmethod
    def from_answers(
        cls,
        answers: Sequence[Sequence[int]],
        student: np.ndarray,
        skill: np.ndarray,
        n_students: int,
        n_skills: int,
    ) -> Sequences:
        """Sequences from a list of 0/1 answer lists (rows numbered in order)."""
        length = np.array([len(a) for a in answers], dtype=np.int64)
        if np.any(length < 1):
            raise ValueError("every sequence needs at least one answer")
        y = np.concatenate([np.asarray(a, dtype=np.int8) for a in answers])
        seq = np.repeat(np.arange(len(answers)), length)
        start = np.concatenate([[0], np.cumsum(length)[:-1]])
        pos = np.arange(len(y)) - start[seq]
        return cls(
            y,
            np.arange(len(y)),
            seq,
            pos,
            np.asarray(student),
            np.asarray(skill),
            length,
            n_students,
            n_skills,
        )


def sequences(log: ResponseLog) -> Sequences:
    """Cut a knowledge-tracing log into (student, skill) sequences."""
    n_skills = len(log.names)
    key = log.student * n_skills + log.unit
    order = np.argsort(key, kind="stable")  # rows are in each student's order already
    keys, start, length = np.unique(key[order], return_index=True, return_counts=True)
    seq = np.repeat(np.arange(len(keys)), length)
    pos = np.arange(len(order)) - np.repeat(start, length)
    return Sequences(
        log.correct[order].astype(np.int8),
        order.astype(np.int64),
        seq,
        pos,
        keys // n_skills,
        keys % n_skills,
        length,
        log.n_students,
        n_skills,
    )


@dataclass
class BKTParams:
    """One value of each parameter per sequence (arrays of shape ``(n_seq,)``)."""

    prior: np.ndarray
    learn: np.ndarray
    forget: np.ndarray
    slip: np.ndarray
    guess: np.ndarray


@dataclass
class _Stats:
    """Expected sufficient statistics of each sequence, from the forward-backward pass."""

    known_first: np.ndarray  # E[L_1]
    from0: np.ndarray  # E[# transitions out of state 0]
    learned: np.ndarray  # E[# 0 → 1]
    from1: np.ndarray  # E[# transitions out of state 1]
    forgot: np.ndarray  # E[# 1 → 0]
    in1: np.ndarray  # E[# answers in state 1]
    slips: np.ndarray  # E[# wrong answers in state 1]
    in0: np.ndarray  # E[# answers in state 0]
    guesses: np.ndarray  # E[# right answers in state 0]
    loglik: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _emissions(seqs: Sequences, p: BKTParams) -> tuple[np.ndarray, np.ndarray]:
    """``P(y_a | L = 0)`` and ``P(y_a | L = 1)`` of every answer ``a``, shape ``(N,)``."""
    right = seqs.y == 1
    guess, slip = p.guess[seqs.seq], p.slip[seqs.seq]
    return np.where(right, guess, 1.0 - guess), np.where(right, 1.0 - slip, slip)


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x @ y`` for stacks of 2×2 matrices stored as their 4 entries (00, 01, 10, 11) on axis 0,
    rescaled to sum 1 (all entries are positive; only the direction is used downstream)."""
    out = np.empty(np.broadcast_shapes(x.shape, y.shape))
    out[0] = x[0] * y[0] + x[1] * y[2]
    out[1] = x[0] * y[1] + x[1] * y[3]
    out[2] = x[2] * y[0] + x[3] * y[2]
    out[3] = x[2] * y[1] + x[3] * y[3]
    out *= 1.0 / (out[0] + out[1] + out[2] + out[3])
    return out


#: longest chunk of a sequence scanned by the loop of :func:`_prefix_products`
MAX_CHUNK = 1024
#: cost model of the chunked scan, in µs: per vectorised step, per matrix product of one cell
_STEP_US, _CELL_US = 20.0, 0.05


def _chunk_width(length: np.ndarray) -> int:
    """The power-of-two chunk width (≤ ``MAX_CHUNK``) of least modelled cost.

    Width ``w`` costs ``w`` loop steps over ``w × n_chunks`` cells (padding included) plus
    ``r = ⌈log₂ (chunks of the longest sequence)⌉`` doubling rounds over the chunks.
    """
    best, best_cost = 1, np.inf
    w = 1
    while w <= MAX_CHUNK:
        chunks = -(-length // w)
        rounds = int(np.ceil(np.log2(chunks.max()))) if chunks.max() > 1 else 0
        n_chunks = int(chunks.sum())
        cost = _STEP_US * (w + rounds) + _CELL_US * n_chunks * (w + rounds)
        if cost < best_cost:
            best, best_cost = w, cost
        if w >= int(length.max()):
            break
        w *= 2
    return best


def _prefix_products(m: np.ndarray, seq: np.ndarray, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``m_first ⋯ m_a`` for every answer ``a`` (product from the start of its sequence).

    ``m`` has shape ``(4, N)``: one 2×2 matrix per answer, answers grouped by sequence in
    order. The sequences are cut into chunks of ``W`` answers (:func:`_chunk_width`) laid out
    as a matrix ``(W, n_chunks)``: a loop of ``W`` steps, vectorised over all chunks of all
    sequences, forms the products inside every chunk; a Hillis–Steele doubling scan over the
    chunk totals (``⌈log₂(T / W)⌉`` vectorised rounds) gives each chunk the product of the
    chunks before it in its sequence; one more product joins the two. So a sequence of
    ``T`` answers costs ``W + log₂(T / W)`` Python steps instead of ``T``, and the work is
    linear in the answers. Every product is rescaled to sum 1 (see :func:`_matmul`).
    """
    w = _chunk_width(length)
    per_seq = -(-length // w)
    first_chunk = np.concatenate([[0], np.cumsum(per_seq)[:-1]])
    n_chunks = int(per_seq.sum())
    cid = first_chunk[seq] + pos // w
    cell = (pos % w) * n_chunks + cid  # the answer's place in the (w, n_chunks) layout
    block = np.zeros((4, w * n_chunks))
    block[0] = block[3] = 1.0  # identity padding after a sequence's end
    for r in range(4):  # (row by row: NumPy's 2-D fancy indexing is several times slower)
        block[r, cell] = m[r]
    block = block.reshape(4, w, n_chunks)
    for k in range(1, w):
        block[:, k] = _matmul(block[:, k - 1], block[:, k])
    # inclusive scan of the chunk totals within each sequence, by doubling
    total = block[:, w - 1].copy()
    chunk_pos = np.arange(n_chunks) - np.repeat(first_chunk, per_seq)
    d = 1
    while d < int(per_seq.max()):
        sel = np.flatnonzero(chunk_pos >= d)
        total[:, sel] = _matmul(total.take(sel - d, axis=1), total.take(sel, axis=1))
        d *= 2
    out = block.reshape(4, -1).take(cell, axis=1)
    if per_seq.max() > 1:
        later = np.flatnonzero(cid > first_chunk[seq])  # answers after their sequence's first chunk
        out[:, later] = _matmul(total.take(cid[later] - 1, axis=1), out.take(later, axis=1))
    return out


def _suffix_products(m: np.ndarray, seq: np.ndarray, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``m_a ⋯ m_last`` for every answer: prefix products of the reversed, transposed matrices."""
    swap = [0, 2, 1, 3]  # transpose
    n_seq = len(length)
    dist = length[seq] - 1 - pos
    rev = _prefix_products(m[swap, ::-1], (n_seq - 1 - seq)[::-1], dist[::-1], length[::-1])
    return rev[swap, ::-1]


def _filter(seqs: Sequences, p: BKTParams, e0: np.ndarray, e1: np.ndarray):
    """Predicted ``P(L_a = 1 | y_<a)``, scaling ``c_a = P(y_a | y_<a)`` and filtered ``P(L_a = 1 | y_≤a)``.

    With ``M_a = diag(e0_a, e1_a) · A`` (emission of answer ``a`` then the transition
    ``A = [[1 − learn, learn], [forget, 1 − forget]]``), the unnormalised predicted state
    before answer ``a`` is ``π · M_first ⋯ M_{a−1}`` with ``π = (1 − prior, prior)``: a
    prefix product, computed by :func:`_prefix_products` over all sequences at once.
    """
    learn, forget, prior = p.learn[seqs.seq], p.forget[seqs.seq], p.prior[seqs.seq]
    m = np.empty((4, len(e0)))
    m[0], m[1], m[2], m[3] = e0 * (1.0 - learn), e0 * learn, e1 * forget, e1 * (1.0 - forget)
    prefix = _prefix_products(m, seqs.seq, seqs.pos, seqs.length)
    known = prior.copy()
    r, v1 = prefix[:, :-1], prior[1:]  # the product up to the answer before, each answer's prior
    a0, a1 = (1.0 - v1) * r[0] + v1 * r[2], (1.0 - v1) * r[1] + v1 * r[3]
    known[1:] = np.where(seqs.pos[1:] > 0, a1 / (a0 + a1), v1)
    k1 = known * e1
    c = (1.0 - known) * e0 + k1
    return known, c, k1 / c


def forward(seqs: Sequences, p: BKTParams, method: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filtered ``P(L_a = 1 | y_≤a)``, predicted ``P(correct_a | y_<a)`` and scaling ``c_a``, per answer.

    ``method``: ``"scan"``, ``"loop"`` or ``"auto"`` (the cheaper, :func:`use_scan`); both are exact.
    """
    if not _scan_method(seqs, method):
        y, _ = _padded(seqs)
        return tuple(a[seqs.seq, seqs.pos] for a in _forward_loop(y, p))  # type: ignore[return-value]
    e0, e1 = _emissions(seqs, p)
    known, c, post = _filter(seqs, p, e0, e1)
    slip, guess = p.slip[seqs.seq], p.guess[seqs.seq]
    return post, known * (1.0 - slip) + (1.0 - known) * guess, c


def _expected_stats(seqs: Sequences, p: BKTParams, method: str = "auto") -> _Stats:
    """Expected sufficient statistics of every sequence (``method`` as in :func:`forward`)."""
    if _scan_method(seqs, method):
        return _expected_stats_scan(seqs, p)
    return _expected_stats_loop(seqs, p)


def _expected_stats_scan(seqs: Sequences, p: BKTParams) -> _Stats:
    """Forward–backward over every sequence at once; sums of the posteriors per sequence.

    Backward: ``b_a ∝ N_{a+1} ⋯ N_last · 1`` with ``N_a = A · diag(e0_a, e1_a)`` (a suffix
    product by :func:`_suffix_products`), ``b_last = 1``. Then ``γ_a(s) ∝ post_a(s) b_a(s)`` and
    ``ξ_a(s, s') ∝ post_a(s) A(s, s') e_{a+1}(s') b_{a+1}(s')``, each normalised to sum 1,
    and the log-likelihood of a sequence is ``Σ_a log c_a``.
    """
    e0, e1 = _emissions(seqs, p)
    _, c, post = _filter(seqs, p, e0, e1)
    learn, forget = p.learn[seqs.seq], p.forget[seqs.seq]
    n_ = np.empty((4, len(e0)))
    n_[0], n_[1], n_[2], n_[3] = (1.0 - learn) * e0, learn * e1, forget * e0, (1.0 - forget) * e1
    suffix = _suffix_products(n_, seqs.seq, seqs.pos, seqs.length)
    # answer a + 1 is the next one of a's sequence unless a is its sequence's last
    link = (seqs.seq[1:] == seqs.seq[:-1]).astype(np.float64)
    b0, b1 = np.ones(len(c)), np.ones(len(c))
    b0[:-1] = np.where(link > 0, suffix[0, 1:] + suffix[1, 1:], 1.0)
    b1[:-1] = np.where(link > 0, suffix[2, 1:] + suffix[3, 1:], 1.0)
    g1, g0 = post * b1, (1.0 - post) * b0
    tot = g0 + g1
    g1, g0 = g1 / tot, g0 / tot
    # two-slice posteriors of the transitions a → a + 1 inside a sequence
    w0, w1 = e0[1:] * b0[1:], e1[1:] * b1[1:]
    q1, q0 = post[:-1], 1.0 - post[:-1]
    x00, x01 = q0 * (1.0 - learn[:-1]) * w0, q0 * learn[:-1] * w1
    x10, x11 = q1 * forget[:-1] * w0, q1 * (1.0 - forget[:-1]) * w1
    n, head = seqs.n_seq, seqs.seq[:-1]

    def total(values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(seqs.seq if where is None else where, values, minlength=n)

    with np.errstate(divide="ignore"):  # z = inf where a → a + 1 is no transition: weight 0
        z = (x00 + x01 + x10 + x11) / link
    return _Stats(
        known_first=g1[seqs.start],
        from0=total(g0[:-1] * link, head),
        learned=total(x01 / z, head),
        from1=total(g1[:-1] * link, head),
        forgot=total(x10 / z, head),
        in1=total(g1),
        slips=total(g1 * (seqs.y == 0)),
        in0=total(g0),
        guesses=total(g0 * (seqs.y == 1)),
        loglik=total(np.log(c)),
    )


#: cost model of the two E-steps, in µs, measured side by side on the 2 shared cores of the
#: development machine (benchmarks/bkt_long_sequences.py): the time loop pays a fixed cost
#: per step of the longest sequence plus a cost per padded cell; the scan a cost per answer
LOOP_US_PER_STEP, LOOP_US_PER_CELL, SCAN_US_PER_ANSWER = 40.0, 0.3, 1.0


def use_scan(seqs: Sequences) -> bool:
    """Whether the scan is the cheaper E-step for these sequences (both give the same numbers).

    The loop wins for many short sequences of similar length (few Python steps, little
    padding); the scan for long sequences (a loop of ``T`` steps) and for a long tail of
    lengths (padding every sequence to the longest one).
    """
    t_max = int(seqs.length.max())
    loop = t_max * (LOOP_US_PER_STEP + LOOP_US_PER_CELL * seqs.n_seq)
    return SCAN_US_PER_ANSWER * len(seqs.y) < loop


def _scan_method(seqs: Sequences, method: str) -> bool:
    if method not in ("auto", "scan", "loop"):
        raise ValueError(f"E-step method must be auto, scan or loop, got {method!r}")
    return method == "scan" or (method == "auto" and use_scan(seqs))


# The time loop: the E-step this module used before the scan, unchanged in its arithmetic.
# Sequences are padded into a matrix (n_seq, T) and the recursions run one step j at a
# time, vectorised over sequences: forward P(L_{j+1} = 1 | y_≤j) = post_j (1 − forget) +
# (1 − post_j) learn scaled by c_j = P(y_j | y_<j), backward b_j = A diag(e_{j+1}) b_{j+1} / c_{j+1}.


def _padded(seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """Answers ``(n_seq, T)`` (−1 after each sequence's end) and the mask of real answers."""
    y = np.full((seqs.n_seq, int(seqs.length.max())), -1, dtype=np.int8)
    y[seqs.seq, seqs.pos] = seqs.y
    return y, y >= 0


def _emissions_padded(y: np.ndarray, p: BKTParams) -> tuple[np.ndarray, np.ndarray]:
    right = y == 1
    wrong = y == 0
    e0 = np.where(right, p.guess[:, None], np.where(wrong, 1.0 - p.guess[:, None], 1.0))
    e1 = np.where(right, 1.0 - p.slip[:, None], np.where(wrong, p.slip[:, None], 1.0))
    return e0, e1


def _forward_loop(y: np.ndarray, p: BKTParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filtered ``P(L_j = 1 | y_≤j)``, predicted ``P(correct_j | y_<j)`` and ``c_j``, padded."""
    n, t_max = y.shape
    e0, e1 = _emissions_padded(y, p)
    post = np.empty((n, t_max))
    pred = np.empty((n, t_max))
    c = np.empty((n, t_max))
    known = p.prior.copy()
    for j in range(t_max):
        pred[:, j] = known * (1.0 - p.slip) + (1.0 - known) * p.guess
        a1 = known * e1[:, j]
        a0 = (1.0 - known) * e0[:, j]
        c[:, j] = a0 + a1
        post[:, j] = a1 / c[:, j]
        known = post[:, j] * (1.0 - p.forget) + (1.0 - post[:, j]) * p.learn
    return post, pred, c


def _expected_stats_loop(seqs: Sequences, p: BKTParams) -> _Stats:
    """The expected sufficient statistics of every sequence, by the time loop."""
    y, mask = _padded(seqs)
    n, t_max = y.shape
    e0, e1 = _emissions_padded(y, p)
    post, _, c = _forward_loop(y, p)
    b0 = np.ones((n, t_max))
    b1 = np.ones((n, t_max))
    for j in range(t_max - 2, -1, -1):
        n0 = e0[:, j + 1] * b0[:, j + 1] / c[:, j + 1]
        n1 = e1[:, j + 1] * b1[:, j + 1] / c[:, j + 1]
        b0[:, j] = (1.0 - p.learn) * n0 + p.learn * n1
        b1[:, j] = p.forget * n0 + (1.0 - p.forget) * n1
    g1 = post * b1
    g0 = (1.0 - post) * b0
    has_next = mask[:, 1:]
    nxt0 = e0[:, 1:] * b0[:, 1:] / c[:, 1:]
    nxt1 = e1[:, 1:] * b1[:, 1:] / c[:, 1:]
    xi01 = (1.0 - post[:, :-1]) * p.learn[:, None] * nxt1 * has_next
    xi10 = post[:, :-1] * p.forget[:, None] * nxt0 * has_next
    g0m, g1m = g0 * mask, g1 * mask
    return _Stats(
        known_first=g1[:, 0],
        from0=(g0[:, :-1] * has_next).sum(axis=1),
        learned=xi01.sum(axis=1),
        from1=(g1[:, :-1] * has_next).sum(axis=1),
        forgot=xi10.sum(axis=1),
        in1=g1m.sum(axis=1),
        slips=(g1m * (y == 0)).sum(axis=1),
        in0=g0m.sum(axis=1),
        guesses=(g0m * (y == 1)).sum(axis=1),
        loglik=(np.log(c) * mask).sum(axis=1),
    )
