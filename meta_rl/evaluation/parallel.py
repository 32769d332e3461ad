"""Independent jobs on several cores: this process plus worker processes, longest first.

The evaluation's jobs (one learned method on one run: train its baseline if missing, then
its adaptation curve) do not depend on each other: every job seeds its own students and
env streams, so the results do not depend on where or in which order a job runs (tested:
one worker and two give identical ``results.json``). :func:`run_jobs` runs them on
``workers`` slots: slot 0 is the calling process (no second copy of torch in memory for
it), the others are spawned processes that take one job at a time. Each free slot takes
the next job of the list, so a list sorted by decreasing cost is the classic
longest-processing-time-first schedule (within 4/3 of the best makespan).
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

R = TypeVar("R")


def picklable(obj: Any) -> bool:
    """Whether ``obj`` can be sent to a worker process (e.g. a method class defined inside a
    function cannot: such jobs run in the calling process)."""
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def run_jobs(fn: Callable[..., R], jobs: Sequence[tuple], workers: int) -> list[R]:
    """``[fn(*job) for job in jobs]``, computed on ``workers`` slots (see the module docstring).

    Jobs whose arguments (or ``fn``, when it is not a module-level function) cannot be
    pickled run in this process. The first exception stops the hand-out of further jobs and is raised once
    the running ones have finished.
    """
    n = len(jobs)
    if workers <= 1 or n <= 1:
        return [fn(*job) for job in jobs]
    results: list[Any] = [None] * n
    local_only = [True] * n if not picklable(fn) else [not picklable(job) for job in jobs]
    queue = list(range(n))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def take(remote: bool) -> int | None:
        with lock:
            if errors:
                return None
            for pos, i in enumerate(queue):
                if not (remote and local_only[i]):
                    return queue.pop(pos)
            return None

    def local_slot() -> None:
        while (i := take(remote=False)) is not None:
            try:
                results[i] = fn(*jobs[i])
            except BaseException as e:  # re-raised by run_jobs
                errors.append(e)

    def remote_slot(pool: ProcessPoolExecutor) -> None:
        while (i := take(remote=True)) is not None:
            try:
                results[i] = pool.submit(fn, *jobs[i]).result()
            except BaseException as e:  # re-raised by run_jobs
                errors.append(e)

    # spawn: a fresh interpreter per worker (forking a process that holds torch threads is unsafe)
    ctx = multiprocessing.get_context("spawn")
    pools = [ProcessPoolExecutor(max_workers=1, mp_context=ctx) for _ in range(min(workers, n) - 1)]
    try:
        threads = [threading.Thread(target=remote_slot, args=(p,), daemon=True) for p in pools]
        for t in threads:
            t.start()
        local_slot()
        for t in threads:
            t.join()
    finally:
        for p in pools:
            p.shutdown(cancel_futures=True)
    if errors:
        raise errors[0]
    return results
