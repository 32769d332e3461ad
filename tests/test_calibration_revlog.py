"""The memory-model benchmark on a trimmed copy of a real learner's Anki log (tests/data, MIT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from envs.calibration import revlog_benchmark as rb
from envs.calibration.calibrate import infer_structure, load_log

TRIMMED = Path(__file__).parent / "data" / "anki_revlog_trimmed.csv"
FULL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "anki_revlog" / "review_log.csv"


def test_scored_reviews_are_repeats_at_least_a_day_apart(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text(
        "card_id,review_rating,review_time\n"
        "a,1,2024-01-01T00:00:00Z\na,3,2024-01-01T00:10:00Z\na,3,2024-01-02T00:10:00Z\n"
        "b,3,2024-01-01T00:00:00Z\nb,1,2024-01-03T00:00:00Z\n"
    )
    log = rb.read_revlog(p)
    np.testing.assert_array_equal(rb.scored_mask(log), [False, False, True, False, True])
    np.testing.assert_array_equal(log.correct, [False, True, True, True, False])


def test_fsrs_package_predictions_give_the_optimizers_own_loss():
    from fsrs import Optimizer, Rating, ReviewLog
    from fsrs.scheduler import DEFAULT_PARAMETERS

    log = rb.read_revlog(TRIMMED)
    pick = log.card < 40  # the optimizer's reference loop is slow: 40 cards
    from datetime import datetime, timezone

    reviews = [
        ReviewLog(int(c) + 1, Rating(int(r)), datetime.fromtimestamp(s, tz=timezone.utc), None)
        for c, r, s in zip(log.card[pick], log.rating[pick], log.seconds[pick])
    ]
    reference = Optimizer(reviews)._compute_batch_loss(parameters=list(DEFAULT_PARAMETERS))
    sub = rb.Revlog(log.card[pick], log.rating[pick], log.seconds[pick], 40, log.source)
    p, y, m = rb.fsrs_package_predictions(sub), sub.correct, rb.scored_mask(sub)
    ours = -np.mean(np.where(y[m], np.log(p[m]), np.log1p(-p[m])))
    assert ours == pytest.approx(reference, rel=1e-9)


def test_benchmark_on_the_trimmed_real_log():
    r = rb.run(TRIMMED, max_iter=50)
    assert r["n_reviews"] == 1558 and r["n_cards"] == 151
    assert r["n_scored"]["test"] > 100
    s = {k: v["log_loss"] for k, v in r["scores"].items()}
    assert all(np.isfinite(v) for v in s.values())
    # fitting the learner's decay/gain/fail_effect beats the env's population centre (measured:
    # 0.53 vs 0.86 exponential, 0.53 vs 1.13 hlr, 0.52 vs 0.59 power on this copy)
    for m in ("exponential", "hlr", "power"):
        assert s[f"{m} (fitted)"] < s[f"{m} (env default)"] - 0.05, s
    # FSRS-6 with the package's default weights beats always predicting the training recall rate
    assert s["fsrs_package_default"] < s["constant"], s
    assert "| model | log-loss | AUC |" in rb.table(r)


def test_calibrate_reads_the_anki_log_and_cuts_it_into_decks():
    log = load_log("MetaTutor/SpacedRepetition-v0", TRIMMED, deck_size=10)
    assert log.names == tuple(str(i) for i in range(10)) and log.n_students == 16  # ceil(151 / 10)
    kwargs, inferred = infer_structure(log, "MetaTutor/SpacedRepetition-v0", {"horizon": 50})
    assert kwargs == {"horizon": 50, "n_items": 10} and inferred == {"n_items": 10}


@pytest.mark.skipif(not FULL.is_file(), reason="the full real log lives in ../shared/data")
def test_full_real_log_reads():
    log = load_log("MetaTutor/SpacedRepetition-v0", FULL)
    assert log.n_rows == 12580 and log.n_students == 1
