"""Jobs on several cores: this process plus worker processes, longest first.

The evaluation's jobs (one learned method on one run: train its baseline if missing, then
its adaptation curve) do not depend on each other: every job seeds its own students and
env streams, so the results do not depend on where or in which order a job runs (tested:
one worker and two give identical ``results.json``). :func:`run_jobs` runs them on
``workers`` slots: slot 0 is the calling process (no second copy of torch in memory for
it), the others are spawned processes that take one job at a time. Each free slot takes
the next job of the list, so a list sorted by decreasing cost is the classic
longest-processing-time-first schedule (within 4/3 of the best makespan). A job may name
jobs it must wait for (``Job.after``: e.g. a baseline's curve after the meta-training run
it is compared with); a free slot then takes the first job whose predecessors are done.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """``fn(*args)``, after the jobs at positions ``after`` of the same list have finished;
    ``local``: only in the calling process (e.g. a training run that draws a progress bar);
    ``label``: what it is, for the timeline."""

    fn: Callable[..., Any]
    args: tuple = ()
    after: tuple[int, ...] = ()
    local: bool = False
    label: str = ""

    def __call__(self) -> Any:
        return self.fn(*self.args)


def picklable(obj: Any) -> bool:
    """Whether ``obj`` can be sent to a worker process (e.g. a method class defined inside a
    function cannot: such jobs run in the calling process)."""
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def _timed(fn: Callable[..., Any], args: tuple) -> tuple[Any, float, float, float]:
    """``fn(*args)`` with its wall-clock start and end (``time.time()``: comparable between
    the processes of one machine) and the CPU seconds of the process that ran it."""
    start, cpu = time.time(), time.process_time()
    out = fn(*args)
    return out, start, time.time(), time.process_time() - cpu


def run_jobs(jobs: Sequence[Job], workers: int, timeline: list[dict[str, Any]] | None = None) -> list[Any]:
    """Every job's result, in the order of ``jobs``, computed on ``workers`` slots (see the
    module docstring). A job that is ``local`` or cannot be pickled (a function or argument
    defined inside a function) runs in this process. The first exception stops the hand-out
    of further jobs, stops the workers' running jobs and is raised; so does an interrupt.

    ``timeline``: a list that receives, in the order of ``jobs``, one record per job:
    ``label``, ``slot`` (0 = this process), ``start_s`` and ``end_s`` (seconds since
    ``run_jobs`` was called) and ``cpu_s`` (CPU seconds of the process that ran it, which
    for slot 0 includes this process's waiting threads: a fraction of a second)."""
    n = len(jobs)
    for i, job in enumerate(jobs):
        if any(not 0 <= j < i for j in job.after):
            raise ValueError(f"job {i} waits for {job.after}: only earlier jobs can be waited for")
    t0 = time.time()
    records: list[dict[str, Any]] = [{} for _ in range(n)]

    def run(i: int, slot_id: int, pool: ProcessPoolExecutor | None) -> Any:
        job = jobs[i]
        if pool is None:
            out, start, end, cpu = _timed(job.fn, job.args)
        else:
            out, start, end, cpu = pool.submit(_timed, job.fn, job.args).result()
        records[i] = {
            "label": job.label or getattr(job.fn, "__name__", "job"),
            "slot": slot_id,
            "start_s": round(start - t0, 3),
            "end_s": round(end - t0, 3),
            "cpu_s": round(cpu, 3),
        }
        return out

    if workers <= 1 or n <= 1:
        serial = [run(i, 0, None) for i in range(n)]
        if timeline is not None:
            timeline.extend(records)
        return serial
    results: list[Any] = [None] * n
    local_only = [job.local or not picklable((job.fn, job.args)) for job in jobs]
    queue, finished = list(range(n)), [False] * n
    changed = threading.Condition()
    errors: list[BaseException] = []

    def take(remote: bool) -> int | None:
        with changed:
            while not errors:
                mine = [i for i in queue if not (remote and local_only[i])]
                if not mine:
                    return None
                ready = [i for i in mine if all(finished[j] for j in jobs[i].after)]
                if ready:
                    queue.remove(ready[0])
                    return ready[0]
                changed.wait()  # until a running job finishes
            return None

    def slot(slot_id: int, pool: ProcessPoolExecutor | None) -> None:
        while (i := take(remote=pool is not None)) is not None:
            try:
                results[i] = run(i, slot_id, pool)
            except Exception as e:  # re-raised by run_jobs
                with changed:
                    errors.append(e)
                    changed.notify_all()
                return
            with changed:
                finished[i] = True
                changed.notify_all()

    # spawn: a fresh interpreter per worker (forking a process that holds torch threads is unsafe)
    ctx = multiprocessing.get_context("spawn")
    pools = [ProcessPoolExecutor(max_workers=1, mp_context=ctx) for _ in range(min(workers, n) - 1)]
    try:
        threads = [threading.Thread(target=slot, args=(k + 1, p), daemon=True) for k, p in enumerate(pools)]
        for t in threads:
            t.start()
        slot(0, None)
        while not errors and any(t.is_alive() for t in threads):
            with changed:
                changed.wait(timeout=1.0)
    except BaseException:  # Ctrl-C or SIGTERM's SystemExit in this process: stop the workers too
        _terminate(pools)
        raise
    finally:
        if errors:  # do not wait for the others' running jobs: one failure fails the evaluation
            _terminate(pools)
        for p in pools:
            p.shutdown(wait=not errors, cancel_futures=True)
    if errors:
        raise errors[0]
    if timeline is not None:
        timeline.extend(records)
    return results


def _terminate(pools: Sequence[ProcessPoolExecutor]) -> None:
    """Kill the workers' processes at once. Safe for the evaluation's jobs: checkpoints are
    written atomically and run locks are released by the kernel with their holder."""
    for pool in pools:
        # the executor has no public way to stop a running job; its processes are kept here
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
