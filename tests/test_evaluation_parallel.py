"""Evaluation jobs on several cores (meta_rl.evaluation.parallel)."""

from __future__ import annotations

import os
import time

import pytest

from meta_rl.evaluation.parallel import Job, picklable, run_jobs


def square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("job 3 failed")
    return x


def test_results_in_job_order_from_both_slots():
    jobs = [(i,) for i in range(6)]
    out = run_jobs([Job(square_and_pid, j) for j in jobs], workers=2)
    assert [v for v, _ in out] == [i * i for i in range(6)]
    # slot 0 is this process, slot 1 a spawned worker: both took jobs
    assert {pid == os.getpid() for _, pid in out} == {True, False}


def test_one_worker_runs_everything_here():
    out = run_jobs([Job(square_and_pid, (i,)) for i in range(3)], workers=1)
    assert out == [(i * i, os.getpid()) for i in range(3)]


def first_and_pid(x: int, *_: object) -> tuple[int, int]:
    return x, os.getpid()


def test_unpicklable_jobs_run_in_this_process():
    local = lambda: None  # noqa: E731 - a lambda cannot be pickled
    assert not picklable(local) and picklable(3)
    # a job with an unpicklable argument stays here; the others may go to the worker
    out = run_jobs([Job(first_and_pid, (i, local if i == 0 else None)) for i in range(4)], workers=2)
    assert [v for v, _ in out] == list(range(4)) and out[0][1] == os.getpid()

    def tag(x: int) -> tuple[int, int]:
        return x, os.getpid()

    # a function defined here cannot go to a worker: every job stays here, and all finish
    assert run_jobs([Job(tag, (i,)) for i in range(4)], workers=2) == [(i, os.getpid()) for i in range(4)]


def test_first_error_is_raised():
    with pytest.raises(ValueError, match="job 3 failed"):
        run_jobs([Job(fail_on_three, (i,)) for i in range(5)], workers=2)


def stamp(x: int, pause: float) -> tuple[int, float, float]:
    start = time.monotonic()
    time.sleep(pause)
    return x, start, time.monotonic()


def wait_for_file(path: str) -> bool:
    """Whether ``path`` appears within a minute (another job creates it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False


def touch(path: str) -> float:
    open(path, "w").close()
    return time.monotonic()


def test_a_job_starts_after_the_jobs_it_waits_for(tmp_path):
    marker = str(tmp_path / "job1_ran")
    # job 0 (here) runs until job 1 (free to start: the worker) has run; job 2 waits for job 0
    jobs = [
        Job(wait_for_file, (marker,), local=True),
        Job(touch, (marker,)),
        Job(stamp, (2, 0.0), after=(0,)),
    ]
    seen, touched, (_, started, _) = run_jobs(jobs, workers=2)
    assert seen  # job 1 did not wait for job 0
    assert started >= touched  # job 2 started after job 0, which ended after job 1


def test_only_earlier_jobs_can_be_waited_for():
    with pytest.raises(ValueError, match="only earlier jobs"):
        run_jobs([Job(stamp, (0, 0.0), after=(1,)), Job(stamp, (1, 0.0))], workers=2)


def touch_then_sleep(path: str, pause: float) -> None:
    touch(path)
    time.sleep(pause)


def fail_when_file(path: str) -> None:
    assert wait_for_file(path)
    raise RuntimeError("failed while the worker was busy")


def test_a_failure_stops_the_workers_running_job(tmp_path):
    marker = str(tmp_path / "worker_busy")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="while the worker was busy"):
        run_jobs(
            [Job(fail_when_file, (marker,), local=True), Job(touch_then_sleep, (marker, 120.0))], workers=2
        )
    assert time.monotonic() - t0 < 60  # the worker's two-minute job was not waited for


def spin(seconds: float) -> None:
    """Busy for ``seconds`` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.parametrize("workers", [1, 2])
def test_timeline_records_each_job_where_and_when_it_ran(tmp_path, workers):
    marker = str(tmp_path / "job1_ran")
    jobs = [
        Job(wait_for_file, (marker,), local=True, label="waits"),
        Job(touch, (marker,)),  # unlabelled: named after its function
        Job(spin, (0.3,), after=(0,), label="spins"),
        Job(time.sleep, (0.3,), label="sleeps"),
    ]
    if workers == 1:  # job 0 would wait for job 1 forever: run job 1 first
        jobs = [
            jobs[1],
            Job(wait_for_file, (marker,), label="waits"),
            Job(spin, (0.3,), after=(1,), label="spins"),
            jobs[3],
        ]
    timeline: list[dict] = []
    run_jobs(jobs, workers=workers, timeline=timeline)
    assert [t["label"] for t in timeline] == [j.label or j.fn.__name__ for j in jobs]
    by = {t["label"]: t for t in timeline}
    for t in timeline:
        assert 0 <= t["start_s"] <= t["end_s"] and t["slot"] in range(workers)
    assert by["waits"]["slot"] == 0  # a local job runs in this process
    assert by["spins"]["start_s"] >= by["waits"]["end_s"]  # after the job it waits for
    assert by["spins"]["cpu_s"] >= 0.29  # CPU seconds of the process that ran it ...
    assert (
        by["sleeps"]["cpu_s"] < 0.2 and by["sleeps"]["end_s"] - by["sleeps"]["start_s"] >= 0.29
    )  # ... not wall
    if workers == 2:
        assert {t["slot"] for t in timeline} == {0, 1}
