"""The fork gate: SQLite calls run concurrently, and a fork waits until none is under way.

A thread inside SQLite at the moment of a ``fork`` may hold one of SQLite's process-wide
mutexes, which the child would inherit locked: it hangs at its first query. Every SQLite
call of cacheplug (disk tier and version store) runs inside :data:`GATE`; before a fork the
gate closes and waits for the calls under way to leave, and it reopens in both processes
after. Unlike a plain lock, the gate never makes two threads' calls wait for each other:
a store waiting (boundedly) for another process's lock does not hold up this process's
reads. Its cost is two uncontended lock round trips per call.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

__all__ = ["GATE", "ForkGate"]


class ForkGate:
    """Counts the SQLite calls under way; :meth:`close` waits for them to leave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._inside = 0
        self._closed = False

    # Entering and leaving take the plain lock (a C-level context manager); only a call
    # that meets a closed gate, and close() itself, use the condition built on that lock.
    def __enter__(self) -> None:
        with self._lock:
            if not self._closed:
                self._inside += 1
                return
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._inside += 1

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self._inside -= 1
            if not self._inside and self._closed:
                self._cond.notify_all()

    def close(self) -> None:
        """Wait until no call is inside, and keep new ones out (until :meth:`reopen`)."""
        with self._cond:
            self._closed = True
            while self._inside:
                self._cond.wait()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        # Only the forking thread lives on: no call is inside, and the condition's lock may
        # have been held by a thread that no longer exists.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._inside = 0
        self._closed = False


GATE = ForkGate()
_INSTALLED: list[bool] = []


def install() -> None:
    """Register the gate's fork hooks, once, after every other module of cacheplug did.

    ``os.register_at_fork`` runs *before* hooks in the reverse order of registration, so the
    gate, registered last (by the package's ``__init__``), closes first: the other modules'
    before-fork hooks (taking the version stores' locks, listing the disk tier's
    connections) then run with no SQLite call under way or starting.
    """
    if not _INSTALLED:
        _INSTALLED.append(True)
        os.register_at_fork(
            before=GATE.close, after_in_parent=GATE.reopen, after_in_child=GATE.after_fork_in_child
        )
