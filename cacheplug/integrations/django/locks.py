"""Host-wide locks by key, so that the Django cache backend's writes are atomic across processes.

Django's cache API promises an atomic ``add`` and ``incr``; with a memory tier in front of
the host's disk tier, ``set`` and ``delete`` also need one order host-wide (the key is
invalidated for every process, then stored: two processes doing that for one key at once
must not interleave, or each would keep serving its own value). A :class:`KeyLocks` gives
each key one of :data:`STRIPES` stripes (by CRC-32 of the key, stable across processes); a
stripe is a ``threading.Lock`` for this process's threads and an exclusive ``flock`` on a
file ``<directory>/locks/<name>-<n>.lock`` for the other processes. Holding several keys
takes their stripes in ascending order, so two holders never deadlock.

- **Bounded waits**: a stripe is waited for at most ``timeout`` seconds, then
  :class:`LockTimeout` is raised (the write did not happen).
- **Replaced files are noticed**: after taking a file's lock the file is compared with the
  one at its path (inode and device); a lock on a deleted or replaced file is dropped and
  taken again on the file now there, so every process locks the same file.
- **Fork-safe**: a forked child closes the descriptors it inherited (the lock on them
  belongs to the open file, shared with the parent) and starts with fresh thread locks.
- Without a directory (a cache without a disk tier is private to its process) only the
  thread locks are taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import zlib
from collections.abc import Iterable, Iterator

from ...errors import CacheplugError
from ...private_files import private_makedirs, same_file

__all__ = ["STRIPES", "KeyLocks", "LockTimeout"]

STRIPES = 16
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class LockTimeout(CacheplugError, TimeoutError):
    """A key's host-wide lock was held by someone else for longer than the wait allows."""


class KeyLocks:
    """The stripes of one cache (``name``) in ``directory`` (``None``: this process only)."""

    def __init__(self, directory: str | None, name: str, timeout: float = 10.0) -> None:
        self.folder = None if directory is None else os.path.join(directory, "locks")
        self.name = name
        self.timeout = timeout
        self._fresh()

    def _fresh(self) -> None:
        self._pid = os.getpid()
        self._threads = [threading.Lock() for _ in range(STRIPES)]
        self._fds: dict[int, int] = {}

    @staticmethod
    def stripe(key: str) -> int:
        """The stripe of ``key``: the same in every process."""
        return zlib.crc32(key.encode("utf-8", "surrogatepass")) % STRIPES

    @contextlib.contextmanager
    def hold(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold the stripes of ``keys`` (in ascending order) for the block."""
        if self._pid != os.getpid():
            self._after_fork()
        with contextlib.ExitStack() as stack:
            for stripe in sorted({self.stripe(k) for k in keys}):
                stack.enter_context(self._one(stripe))
            yield

    @contextlib.contextmanager
    def _one(self, stripe: int) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout
        lock = self._threads[stripe]
        if not lock.acquire(timeout=self.timeout):
            raise self._timed_out()
        try:
            if self.folder is None:
                yield
                return
            fd = self._flock(stripe, deadline)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            lock.release()

    def _path(self, stripe: int) -> str:
        assert self.folder is not None
        return os.path.join(self.folder, f"{self.name}-{stripe}.lock")

    def _flock(self, stripe: int, deadline: float) -> int:
        """Take the stripe file's lock (under the stripe's thread lock); its descriptor."""
        path = self._path(stripe)
        delay = 0.00005
        while True:
            fd = self._fds.get(stripe)
            if fd is None:
                fd = self._fds[stripe] = self._open(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._timed_out() from None
                time.sleep(delay)  # flock has no timed wait: poll with a growing pause
                delay = min(delay * 2, 0.002)
                continue
            if same_file(fd, path):
                return fd
            # The file was deleted or replaced: others lock the one at the path now.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(self._fds.pop(stripe))

    def _open(self, path: str) -> int:
        assert self.folder is not None
        try:
            return os.open(path, _FLAGS, 0o600)
        except FileNotFoundError:
            private_makedirs(self.folder)
            return os.open(path, _FLAGS, 0o600)

    def _timed_out(self) -> LockTimeout:
        return LockTimeout(
            f"a write to the cache {self.name!r} waited over {self.timeout:g} s for the lock of its key "
            f"in {self.folder}; another process holds it (stopped, or stuck in a write). The write did "
            f"not happen: retry it, or find the process holding the lock (fuser {self.folder}/*)"
        )

    def _after_fork(self) -> None:
        # The inherited descriptors share their open file (and so its lock) with the parent.
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fresh()

    def close(self) -> None:
        """Close the lock files (locks held right now are released with them)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
