"""One writer per run directory: an exclusive lock held for the life of a training.

Two processes writing one run directory (two ``meta-tutor train`` on the same ``--out``,
two ``--resume``, an evaluation caching baselines while another one does) interleave
``metrics.csv`` rows and overwrite each other's checkpoints without any error. Every
writer therefore takes :func:`run_lock` first; a second process fails at once with
:class:`RunDirectoryLocked` naming the holder (pid, host, purpose, start time).

Mechanism: ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the file ``.lock`` inside the
directory. The kernel releases a ``flock`` when its holder's file descriptor closes —
on normal exit, on an exception, and on ``kill -9`` or a crash alike — so a stale lock
can never block ``--resume``; the holder's details in the file are only for the message.
The file itself stays (deleting a lock file while another process may be opening it
would let two processes hold "the" lock on two different files).

Within one process the lock is re-entrant (a count per directory): a trainer that was
never closed, a second trainer on the same directory in a test, or an evaluation that
holds the run's lock while training a baseline in the same process do not block
themselves. Locks are per host: ``flock`` over NFS is not reliable on every system, so
runs shared over a network file system should not be written from two machines.

Usage::

    with run_lock(run_dir, "evaluation cache"):
        ...  # write into run_dir

or ``lock = RunLock(run_dir, "training")`` … ``lock.release()`` for a lock held by an
object (the :class:`~meta_rl.trainer.Trainer` releases it in ``close()``). A cache
inside a run directory (an evaluation's baselines and step sizes) takes a lock of its
own, so that writing it does not collide with a training of the run, and waits briefly
for another writer rather than failing::

    with run_lock(run / "baselines", "step-size cache", name=".step_sizes.lock", timeout=600):
        ...  # re-read the cache, add the new entry, write it atomically
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"

#: this process's held locks: resolved lock file -> [file descriptor, count]
_HELD: dict[Path, list[int]] = {}
_GUARD = threading.Lock()


class RunDirectoryLocked(FileExistsError):
    """Another process holds the run directory (the message names it)."""


class RunLock:
    """Hold the exclusive lock of ``run_dir`` until :meth:`release` (or garbage collection).

    ``create`` makes the directory if it does not exist (a new run); otherwise a missing
    directory is a ``FileNotFoundError`` (nothing there to resume or evaluate).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        purpose: str = "training",
        create: bool = True,
        name: str = LOCK_NAME,
        timeout: float = 0.0,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.purpose = purpose
        self.path = self.run_dir / name
        self.timeout = float(timeout)
        if not self.run_dir.is_dir():
            if not create:
                raise FileNotFoundError(f"{self.run_dir} does not exist")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._key = self.path.resolve()
        self._held = False
        with _GUARD:
            entry = _HELD.get(self._key)
            if entry is not None:
                entry[1] += 1
            else:
                _HELD[self._key] = [self._acquire(), 1]
        self._held = True

    def _acquire(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise RunDirectoryLocked(
                        f"{self.run_dir} is in use by another process ({holder(self.path)}); "
                        "wait for it to finish or stop it (a stopped or killed process releases the lock)"
                    ) from None
                time.sleep(0.05)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": self.purpose,
            "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return fd

    def release(self) -> None:
        """Give the lock up (idempotent); the last release in this process unlocks the file."""
        if not self._held:
            return
        self._held = False
        with _GUARD:
            entry = _HELD.get(self._key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[self._key]
                fd = entry[0]
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)  # no stale holder details once free
                os.close(fd)  # closing the descriptor releases the flock

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


@contextlib.contextmanager
def run_lock(
    run_dir: str | os.PathLike[str],
    purpose: str,
    create: bool = True,
    name: str = LOCK_NAME,
    timeout: float = 0.0,
) -> Iterator[RunLock]:
    """Hold ``run_dir``'s exclusive lock for the ``with`` block (see :class:`RunLock`).

    ``name`` picks another lock file in the directory, for a lock on one artefact rather
    than the whole directory (e.g. ``.step_sizes.lock`` around a cache's read-merge-write,
    so two baselines in one directory can be written at the same time); ``timeout``
    waits up to that many seconds for the holder instead of failing at once (for short
    critical sections such as a cache update).
    """
    lock = RunLock(run_dir, purpose, create, name, timeout)
    try:
        yield lock
    finally:
        lock.release()


def holder(lock_file: str | os.PathLike[str]) -> str:
    """The lock holder's details as written in the lock file (or a directory's ``.lock``)."""
    path = Path(lock_file)
    if path.is_dir():
        path = path / LOCK_NAME
    try:
        info = json.loads(path.read_text())
        return f"{info['purpose']} by pid {info['pid']} on {info['host']} since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown: it is just starting"
