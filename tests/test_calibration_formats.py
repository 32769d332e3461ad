"""Log formats of real exports read to the same ``ResponseLog``; the log defines the env's structure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs.calibration import calibrate
from envs.calibration.logs import (
    group_decks,
    read_anki_log,
    read_kt_log,
    read_log,
    read_review_log,
    read_seq3_log,
    select_units,
)
from envs.calibration.population import sibling

SG = "MetaTutor/SkillGraph-v0"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def assert_same_log(a, b):
    for field in ("student", "unit", "correct", "time"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.names == b.names and a.n_students == b.n_students


def test_three_line_format_equals_the_kt_csv(tmp_path):
    seq3 = "3\n7,12,7\n0,1,1\n2\n12,3,\n1,0,\n"  # a trailing comma, as some releases have
    csv = "user_id,skill_name,correct,order_id\n" + "".join(
        f"s{u},{k},{y},{j}\n"
        for u, ks, ys in ((0, "7 12 7", "0 1 1"), (1, "12 3", "1 0"))
        for j, (k, y) in enumerate(zip(ks.split(), ys.split()))
    )
    a = read_seq3_log(write(tmp_path, "log.txt", seq3))
    assert_same_log(a, read_kt_log(write(tmp_path, "log.csv", csv)))
    assert a.names == ("3", "7", "12")
    assert_same_log(a, read_log(tmp_path / "log.txt", "kt"))  # auto-detected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("3\n1,2\n0,1,1\n", r"line 2: 2 skill ids, but line 1 says 3"),
        ("2\n1,2\n0,1,1\n", r"line 3: 3 correctness values, but line 1 says 2"),
        ("2\n1,2\n0,2\n", r"line 3: correct must be 0 or 1, got '2'"),
        ("x\n1\n0\n", r"line 1: the number of answers must be an integer"),
        ("1\n1\n", r"not a multiple of 3"),
    ],
)
def test_three_line_errors_name_the_line(tmp_path, text, match):
    p = write(tmp_path, "bad.txt", text)
    with pytest.raises(ValueError, match=match) as e:
        read_seq3_log(p)
    assert str(p) in str(e.value)


def test_anki_log_equals_the_review_csv_and_iso_equals_unix_seconds(tmp_path):
    anki = (
        "card_id,review_rating,review_time,review_duration\n"
        "c1,1,2024-03-29T20:32:32.250000+00:00,100\n"
        "c2,3,2024-03-29T22:32:32.250000+02:00,100\n"  # = 20:32:32.25 UTC
        "c1,4,2024-03-30T20:32:32.250Z,100\n"
        "c2,2,2024-04-01T08:00:00,100\n"  # no zone: UTC
    )
    t0 = 1711744352.25  # 2024-03-29T20:32:32.25Z in Unix seconds
    unix = [t0, t0, t0 + 86400, 1711958400.0]
    review = "user_id,item_id,timestamp,correct\n" + "".join(
        f"learner,{c},{t!r},{y}\n" for c, t, y in zip(["c1", "c2", "c1", "c2"], unix, [0, 1, 1, 1])
    )
    a = read_anki_log(write(tmp_path, "revlog.csv", anki))
    b = read_review_log(write(tmp_path, "reviews.csv", review))
    assert_same_log(a, b)
    np.testing.assert_allclose(a.time, [0.0, 0.0, 1.0, (1711958400.0 - t0) / 86400], rtol=0, atol=1e-9)
    assert_same_log(a, read_log(tmp_path / "revlog.csv", "review"))  # auto-detected
    # ISO strings are accepted in the review CSV's timestamp column too
    iso = review.replace(repr(unix[2]), "2024-03-30T21:32:32.25+01:00")
    assert_same_log(read_review_log(write(tmp_path, "iso.csv", iso)), b)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("c1,0,2024-03-29T20:32:32Z", r"line 2: review_rating must be 1, 2, 3 or 4, got '0'"),
        ("c1,3,yesterday", r"line 2: review_time must be a number or an ISO-8601 time, got 'yesterday'"),
        (",3,2024-03-29T20:32:32Z", r"line 2: empty card_id"),
    ],
)
def test_anki_errors_name_file_line_and_problem(tmp_path, row, match):
    p = write(tmp_path, "revlog.csv", "card_id,review_rating,review_time\n" + row + "\n")
    with pytest.raises(ValueError, match=match) as e:
        read_anki_log(p)
    assert str(p) in str(e.value)


def test_non_utf8_log_names_file_and_line(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes("user_id,skill_name,correct,order_id\na,x,1,1\nb,Fläche,0,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv: line 3: not UTF-8 text") as e:
        read_kt_log(p)
    assert "codec" not in str(e.value)
    seq3 = tmp_path / "s.txt"
    seq3.write_bytes(b"1\n\xff\n1\n")
    with pytest.raises(ValueError, match=r"s.txt: line 2: not UTF-8"):
        read_seq3_log(seq3)


def test_select_units_by_name_and_by_count(tmp_path):
    csv = "user_id,skill_name,correct,order_id\n" + "".join(
        f"u,{k},1,{j}\n" for j, k in enumerate("a b b c c c".split())
    )
    log = read_kt_log(write(tmp_path, "log.csv", csv))
    top = select_units(log, top=2)
    assert top.names == ("b", "c") and top.n_rows == 5
    np.testing.assert_array_equal(top.unit, [0, 0, 1, 1, 1])
    assert select_units(log, names=["c", "a"]).names == ("a", "c")
    with pytest.raises(ValueError, match=r"unknown skill/item name\(s\) \['z'\]"):
        select_units(log, names=["z"])
    with pytest.raises(ValueError, match="not both"):
        select_units(log, names=["a"], top=1)


def test_group_decks_cuts_a_learner_into_students(tmp_path):
    rows = [("c9", 0.0), ("c5", 1.0), ("c9", 2.0), ("c7", 3.0), ("c5", 4.0), ("c7", 5.0)]
    text = "user_id,item_id,timestamp,correct\n" + "".join(f"me,{c},{t * 86400},1\n" for c, t in rows)
    decks = group_decks(read_review_log(write(tmp_path, "r.csv", text)), 2)
    # cards by first review: c9, c5 -> deck 0 (items 0, 1); c7 -> deck 1 (item 0)
    assert decks.n_students == 2 and decks.names == ("0", "1")
    np.testing.assert_array_equal(decks.student, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(decks.unit, [0, 1, 0, 1, 0, 0])
    np.testing.assert_allclose(decks.time, [0, 1, 2, 4, 0, 2])  # each deck from its own day 0


def _three_skill_log(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["user_id,skill_name,correct,order_id"]
    for u in range(30):
        for j in range(24):
            lines.append(f"u{u},k{j % 3},{int(rng.random() < 0.3 + 0.02 * j)},{j}")
    return write(tmp_path, "three.csv", "\n".join(lines) + "\n")


def test_structure_comes_from_the_log(tmp_path):
    log = _three_skill_log(tmp_path)
    out = tmp_path / "pop.json"
    meta = calibrate(SG, log, out, {"prerequisites": "none"})
    assert meta["env_kwargs"] == {"prerequisites": "none", "n_skills": 3}
    assert meta["inferred_from_log"] == {"n_skills": 3} and meta["skills"] == ["k0", "k1", "k2"]
    stored = json.loads(sibling(out, "meta").read_text())
    assert stored["env_kwargs"]["n_skills"] == 3
    prof = json.loads(out.read_text())["profiles"][0]
    assert len(prof["learn"]) == 3
    with pytest.raises(ValueError, match=r"the log has 3 skills .* sets n_skills=5"):
        calibrate(SG, log, tmp_path / "bad.json", {"n_skills": 5})
    assert not (tmp_path / "bad.json").exists() and not sibling(tmp_path / "bad.json", "meta").exists()
    two = calibrate(SG, log, tmp_path / "two.json", top_skills=2)
    assert two["env_kwargs"]["n_skills"] == 2 and two["skills"] == ["k0", "k1"]
    picked = calibrate(SG, log, tmp_path / "picked.json", skills=["k2"], min_responses=5)
    assert picked["skills"] == ["k2"] and picked["env_kwargs"]["n_skills"] == 1


def test_min_gap_days_scores_only_spaced_reviews(tmp_path):
    from envs.calibration.memory import reviews

    text = "user_id,item_id,timestamp,correct\n" + "".join(
        f"me,{c},{t},1\n" for c, t in [("a", 0), ("a", 600), ("b", 700), ("a", 90000), ("b", 200000)]
    )
    log = read_review_log(write(tmp_path, "r.csv", text))
    data = reviews(log, 2, min_gap_days=1.0)
    # a@0 first, a@600 same day, b@700 first, a@90000 (1.03 days after a@600), b@200000
    np.testing.assert_array_equal(data.scored[0], [False, False, False, True, True])
    assert reviews(log, 2).scored is None


@pytest.mark.parametrize("kind", ["kt", "review"])
def test_any_bytes_give_a_log_or_a_value_error(tmp_path_factory, kind):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    headers = [
        b"user_id,skill_name,correct,order_id\n",
        b"user_id,item_id,timestamp,correct\n",
        b"card_id,review_rating,review_time\n",
        b"3\n",
        b"",
    ]
    cell = st.sampled_from(
        [b"a", b"1", b"0", b"2", b"", b"x\xff", b"1e400", b"2024-03-29T20:32:32Z", b'"', b"\x00"]
    )
    line = st.lists(cell, min_size=0, max_size=5).map(lambda c: b",".join(c) + b"\n")
    body = st.tuples(st.sampled_from(headers), st.lists(line, max_size=6)).map(
        lambda t: t[0] + b"".join(t[1])
    )
    d = tmp_path_factory.mktemp("fuzz")

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body)
    def check(data):
        p = d / "log.csv"
        p.write_bytes(data)
        try:
            log = read_log(p, kind)
        except ValueError as e:
            assert str(p) in str(e)  # every error names the file
        else:
            assert log.n_rows > 0

    check()
