"""Single-flight: concurrent callers that miss one key wait for one computation.

This module knows nothing of caches (dogpile's lock without the storage). A :class:`Flights`
table, one per cached function in one cache, holds by key the *mark* of the computation in
flight: ``[owner, seq0, start, flight]``, that is who computes (a thread's ident, the
asyncio task, or ``None`` when the caller finds out otherwise), the invalidation epoch and
the clock's reading when it began, and the :class:`Flight` its waiters share, ``None``
until a second caller arrives. The uncontended miss makes one list and two dict
operations; no lock, event or future is created::

    mark = [owner, seq0, start, None]
    if flights.marks.setdefault(key, mark) is mark:       # claimed: compute, then store
        ...
        popped = flights.marks.pop(key, None)
        if popped is not mark or mark[FLIGHT]:
            flights.land(key, mark, popped, outcome)       # somebody joined or replaced it

A caller that meets someone else's mark either computes on its own (it is the owner itself:
a recursive call), replaces the mark (:meth:`Flights.replace`: the computation began before
an invalidation, or its owner overran the timeout), or joins it (:meth:`Flights.join`) and
waits for the :data:`Outcome`: the value, the exception, or ``RETRY`` (the owner gave up:
look again, and one of the retrying callers computes).

Ordering, without a lock on the owner's side: the owner pops its mark *then* reads
``mark[FLIGHT]``; a joiner sets ``mark[FLIGHT]`` (under the module's lock) *then* checks the
mark is still in the table. The interpreter runs those steps in one order, so either the
owner sees the flight and lands it under the lock (after the joiner registered), or the
joiner sees the mark gone and looks again. Everything but the owner's claim and pop happens
under the one lock of this module, held for a few dict operations at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Hashable
from typing import Any

__all__ = [
    "ERROR",
    "FLIGHT",
    "LANDED",
    "OWNER",
    "RETRY",
    "SEQ0",
    "START",
    "TIMEOUT",
    "VALUE",
    "Flight",
    "Flights",
    "Outcome",
    "Ticket",
    "await_",
    "wait",
]

# The fields of a mark (a list: the cheapest object to make on every miss). ``mark[OWNER]``
# may be None: not recorded (the caller that made it tells who it is otherwise), or LANDED.
OWNER, SEQ0, START, FLIGHT = 0, 1, 2, 3
Mark = list[Any]
LANDED = type("_Landed", (), {"__repr__": lambda self: "<landed>"})()

# What a waiter learns: (VALUE, what the owner produced), (ERROR, the exception it raised),
# (RETRY, None): look again, the owner gave up or was replaced; (TIMEOUT, None): the wait
# lasted the whole timeout.
VALUE, ERROR, RETRY, TIMEOUT = "value", "error", "retry", "timeout"
Outcome = tuple[str, Any]
_RETRY: Outcome = (RETRY, None)
_TIMEOUT: Outcome = (TIMEOUT, None)

# Whether new functions single-flight their misses (read when a function is decorated and
# when it binds to a cache). Only the benchmarks turn it off, to measure what it costs.
ENABLED = True

_LOCK = threading.Lock()


class Flight:
    """A computation that a second caller joined: its outcome and how to wake its waiters.

    Threads share one ``threading.Event``. Each awaiting task has its own future (so that a
    cancelled waiter cancels nobody else), resolved in its own event loop; the tasks of one
    loop share one timer, which wakes them at the timeout (every waiter of a flight times out
    when its owner has held the key for the timeout).
    """

    __slots__ = ("event", "futures", "outcome", "timers")

    def __init__(self) -> None:
        self.event: threading.Event | None = None
        self.futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.timers: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}
        self.outcome: Outcome | None = None

    def settle(self, outcome: Outcome) -> None:
        """Record the outcome and wake every waiter (under the module's lock)."""
        if self.outcome is not None:
            return  # already told (replaced by a caller that took over): the first word stands
        self.outcome = outcome
        if self.event is not None:
            self.event.set()
        running = asyncio._get_running_loop()
        for loop, future in self.futures:
            if loop is running:
                _resolve(future)
            else:
                with contextlib.suppress(RuntimeError):  # a closed loop: its waiter is gone
                    loop.call_soon_threadsafe(_resolve, future)
        for loop, timer in self.timers.items():
            if loop is running:
                timer.cancel()
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(timer.cancel)
        self.futures = []
        self.timers = {}

    def expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timeout, in ``loop``: wake its waiters (they find no outcome: TIMEOUT)."""
        with _LOCK:
            self.timers.pop(loop, None)
            waking = [future for owner, future in self.futures if owner is loop]
            self.futures = [(owner, future) for owner, future in self.futures if owner is not loop]
        for future in waking:
            _resolve(future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Ticket:
    """One waiter's place on a flight: what to wait on, for how long (seconds)."""

    __slots__ = ("flight", "future", "timeout")

    def __init__(self, flight: Flight, future: asyncio.Future[None] | None, timeout: float) -> None:
        self.flight = flight
        self.future = future
        self.timeout = timeout


class Flights:
    """The computations in flight of one function in one cache, by key (see the module doc)."""

    __slots__ = ("marks",)

    def __init__(self) -> None:
        self.marks: dict[Hashable, Mark] = {}

    def join(self, key: Hashable, held: Mark, asynchronous: bool, timeout: float) -> Ticket | Outcome:
        """Wait on ``held``'s flight: a :class:`Ticket` to wait with, or the outcome already
        known (``RETRY`` when ``held`` landed before the caller could join it).

        ``asynchronous``: the caller awaits in the running event loop (else it blocks its
        thread).
        """
        with _LOCK:
            flight: Flight | None = held[FLIGHT]
            if flight is not None and flight.outcome is not None:
                return flight.outcome
            if self.marks.get(key) is not held:
                return _RETRY  # it landed meanwhile: what it stored is there to be read
            if flight is None:
                flight = held[FLIGHT] = Flight()
            future = None
            if asynchronous:
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                flight.futures.append((loop, future))
                if loop not in flight.timers:
                    flight.timers[loop] = loop.call_later(timeout, flight.expire, loop)
            elif flight.event is None:
                flight.event = threading.Event()
            return Ticket(flight, future, timeout)

    def replace(self, key: Hashable, held: Mark, mark: Mark, *, abandon: bool) -> bool:
        """Put ``mark`` in the place of ``held``; False if ``held`` is not in flight any more.

        ``abandon``: ``held``'s waiters are told to look again (its owner overran the timeout:
        they will wait for ``mark``'s owner instead); else they keep waiting for ``held``
        (it began before an invalidation: its value is still good for them).
        """
        with _LOCK:
            if self.marks.get(key) is not held:
                return False
            self.marks[key] = mark
            if abandon and held[FLIGHT] is not None:
                held[FLIGHT].settle(_RETRY)
            return True

    def land(self, key: Hashable, mark: Mark, popped: Mark | None, outcome: Outcome) -> None:
        """End ``mark``'s flight with ``outcome``, after popping ``popped`` from the table.

        Called only when the pop did not find ``mark`` or found that someone joined it. A mark
        popped in the place of this one (a caller replaced it) is put back while its own
        owner has not landed it, so later callers still find that computation.
        """
        with _LOCK:
            mark[OWNER] = LANDED  # (a replaced mark put back checks this)
            marks = self.marks
            if marks.get(key) is mark:
                del marks[key]
            if popped is not None and popped is not mark and popped[OWNER] is not LANDED:
                marks.setdefault(key, popped)
            flight = mark[FLIGHT]
            if flight is not None:
                flight.settle(outcome)

    def after_fork(self) -> None:
        """In a forked child: the computations of the parent's other threads never land here,
        and nobody waits here for the forking thread's (their events may be locked)."""
        for mark in self.marks.values():
            mark[FLIGHT] = None
        self.marks.clear()


def wait(ticket: Ticket) -> Outcome:
    """Block this thread until the flight lands or ``ticket.timeout`` seconds pass."""
    flight = ticket.flight
    event = flight.event
    assert event is not None
    if flight.outcome is None:
        event.wait(ticket.timeout)
    return flight.outcome or _TIMEOUT


async def await_(ticket: Ticket) -> Outcome:
    """:func:`wait` for a task: awaits in the event loop, never blocks it.

    (``await`` is a keyword: the async twin of ``wait`` cannot take the usual ``a`` prefix.)
    """
    flight, future = ticket.flight, ticket.future
    assert future is not None
    if flight.outcome is None:
        await future  # resolved by the landing, or by the loop's timer (Flight.expire)
    return flight.outcome or _TIMEOUT


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # a thread that held it at the fork does not exist here


os.register_at_fork(after_in_child=_after_fork_in_child)
