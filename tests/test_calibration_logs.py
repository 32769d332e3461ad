"""Log reading and validation: every error names the file, the line and the problem."""

import numpy as np
import pytest

from envs.calibration.logs import read_kt_log, read_review_log, sorted_names

HEADER = "user_id,skill_name,correct,order_id\n"


def write(tmp_path, text, name="log.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("user_id,skill_name,correct\na,s,1\n", r"line 1: missing column\(s\) \['order_id'\]"),
        (HEADER + "a,s,1,1\na,s,2,2\n", r"line 3: correct must be 0 or 1, got '2'"),
        (HEADER + "a,s,1,1\na,s,yes,2\n", r"line 3: correct must be 0 or 1"),
        (HEADER + "a,s,1,x\n", r"line 2: order_id must be a number, got 'x'"),
        (HEADER + "a,s,1,1\n,s,1,2\n", r"line 3: empty user_id"),
        (HEADER + "a,,1,1\n", r"line 2: empty skill_name"),
        (HEADER + "a,s,1,1\nb,s,1,1\na,t,0,1\n", r"line 4: duplicate order_id '1' .*line 2"),
        (HEADER, r"no data rows"),
        (HEADER + "a,s,1,nan\n", r"line 2: order_id must be finite"),
    ],
)
def test_kt_log_errors_name_file_line_and_problem(tmp_path, body, match):
    p = write(tmp_path, body)
    with pytest.raises(ValueError, match=match) as e:
        read_kt_log(p)
    assert str(p) in str(e.value)


def test_kt_log_groups_sorts_and_forgets_user_ids(tmp_path):
    # rows out of order, extra columns ignored, tab-separated
    text = (
        "order_id\tuser_id\tskill_name\tcorrect\textra\n"
        "5\tbob\t10\t1\tz\n1\tbob\t2\t0\tz\n3\tann\t2\t1.0\tz\n"
    )
    log = read_kt_log(write(tmp_path, text, "log.tsv"))
    assert log.names == ("2", "10")  # numeric names sort as numbers
    np.testing.assert_array_equal(log.student, [0, 0, 1])  # bob first seen first
    np.testing.assert_array_equal(log.time, [1, 5, 3])
    np.testing.assert_array_equal(log.unit, [0, 1, 0])
    np.testing.assert_array_equal(log.correct, [0, 1, 1])
    assert "bob" not in repr(log) and "ann" not in repr(log)


def test_review_log_times_in_days_from_each_students_start(tmp_path):
    text = "user_id,item_id,timestamp,correct\na,x,86400,0\na,y,172800,1\nb,x,1000,0\n"
    log = read_review_log(write(tmp_path, text))
    np.testing.assert_allclose(log.time, [0.0, 1.0, 0.0])
    log_ms = read_review_log(write(tmp_path, text.replace("86400,", "86400000,"), "b.csv"), time_unit="ms")
    assert log_ms.time[0] == 0.0
    with pytest.raises(ValueError, match="line 2: timestamp must be a number"):
        read_review_log(write(tmp_path, "user_id,item_id,timestamp,correct\na,x,soon,0\n", "c.csv"))
    with pytest.raises(ValueError, match="time_unit"):
        read_review_log(write(tmp_path, text, "d.csv"), time_unit="h")


def test_sorted_names_falls_back_to_strings():
    assert sorted_names(["b", "a10", "a2"]) == ("a10", "a2", "b")
    assert sorted_names(["10", "9", "1.5"]) == ("1.5", "9", "10")


def test_subset_renumbers_students(tmp_path):
    text = HEADER + "a,s,1,1\nb,s,0,1\nc,s,1,1\nc,s,0,2\n"
    log = read_kt_log(write(tmp_path, text))
    sub = log.subset([2, 0])
    np.testing.assert_array_equal(sub.student, [0, 0, 1])
    np.testing.assert_array_equal(sub.correct, [1, 0, 1])
    assert sub.n_students == 2
