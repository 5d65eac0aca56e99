"""Stampede protection on the miss path: one computation per key in a process (the flight)
and, with ``lock="host"``, in every process of the host (the lease).

The compute flow (``cacheplug.cache.flow``) boards the key's flight after a miss
(:func:`board`): the first caller claims it and computes; a caller that arrives while it is
in the air waits for it (a ``WAIT`` step: the sync driver blocks its thread on an event,
the async driver awaits a future) and gets its value or its exception, counted as the
outcome ``coalesced`` (an exception as ``error``: the call raised). The algorithm is
:mod:`cacheplug.flight`'s, which knows no cache; this module adds what the cache knows:

* **Invalidations**: a caller never joins a computation that began before an invalidation
  of what it reads (the cutoff, or a tag of the key invalidated since the flight's epoch);
  it computes in its place. Waiters get the value only if it is still fresh when the owner
  lands (:func:`land`: the no-stale-set check over everything it read), else they look
  again.
* **Takeover**: an owner that is cancelled or raises a ``BaseException`` that is not an
  ``Exception`` hands over (its waiters look again and one computes); one that overruns
  ``lock_timeout`` (seconds, by the cache's clock when a caller arrives, or waited for in
  real time) is replaced by a waiter.
* **Recursion**: a computation that calls itself with the same key computes again (the
  owner of the flight is the caller itself: its thread, or its asyncio task).
* **The host lease** (``lock="host"``): the owner of the in-process flight also leases the
  key among the host's processes (:mod:`cacheplug.lease`, in ``<disk tier>/locks``). A
  caller that had to wait for another process's lease first looks in the shared tiers for
  that process's value. Before storing, the owner checks its fence: a store from a holder
  whose lease was taken over is refused, counted in ``stale_sets`` and logged. A fault of the
  lease store (a read-only, deleted or corrupt lock directory) is counted under
  ``faults["lock.<op>"]``, logged, and the call goes on as if ``lock`` were not given.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

from .. import invalidation as inv
from ..envelope import MISS, Entry
from ..errors import ConfigurationError
from ..flight import ERROR, FLIGHT, OWNER, RETRY, SEQ0, START, TIMEOUT, VALUE, Flights, Outcome, Ticket
from ..flight import await_ as flight_await
from ..flight import wait as flight_wait
from ..lease import Lease, LeaseStore
from ..tiers.disk import DiskTier
from .calls import Binding, Pending, _Read
from .steps import WAIT
from .tiering import Steps

if TYPE_CHECKING:
    from .facade import Cache

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "Guard",
    "board",
    "check_lock",
    "claim",
    "fence",
    "guard_of",
    "host_leases",
    "land",
    "land_lean",
    "require_leases",
]

log = logging.getLogger("cacheplug")

DEFAULT_LOCK_TIMEOUT = 30.0
FAST_PATH_FILE = "<cacheplug fast path>"  # the file name of the generated fast paths' code
_RETRY: Outcome = (RETRY, None)
_get_ident = threading.get_ident
_current_task = asyncio.current_task


class Guard:
    """How one function's misses are protected: its callers await (``asynchronous``), it
    leases keys among the host's processes (``host``), ``timeout``: its ``lock_timeout``."""

    __slots__ = ("asynchronous", "host", "timeout")

    def __init__(self, asynchronous: bool, host: bool, timeout: float) -> None:
        self.asynchronous = asynchronous
        self.host = host
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Guard(asynchronous={self.asynchronous}, host={self.host}, timeout={self.timeout})"


SYNC = Guard(False, False, DEFAULT_LOCK_TIMEOUT)


# -- options ---------------------------------------------------------------------------------


def check_lock(lock: Any, lock_timeout: Any, what: str) -> tuple[bool, float]:
    """``lock=`` and ``lock_timeout=`` checked: (whether to lease keys across the host, timeout)."""
    if lock == "cluster":
        raise ConfigurationError(
            f'{what} lock="cluster" needs the Redis tier, not available yet: use lock="host" (every '
            f"process of this host) or leave lock=None (every thread and task of this process)"
        )
    if lock is not None and lock != "host":
        raise ConfigurationError(
            f'{what} lock= takes None (one computation per key in this process, the default) or "host" '
            f"(one per key in every process of the host, beside the disk tier), got {lock!r}"
        )
    if (
        isinstance(lock_timeout, bool)
        or not isinstance(lock_timeout, (int, float))
        or not math.isfinite(lock_timeout)
        or lock_timeout <= 0
    ):
        raise ConfigurationError(
            f"{what} lock_timeout= must be a finite number of seconds > 0 (how long a computation may "
            f"hold its key before a waiting caller takes over), got {lock_timeout!r}"
        )
    return lock == "host", float(lock_timeout)


def guard_of(lock: Any, lock_timeout: Any, what: str) -> Guard:
    """The guard of a direct ``get_or_compute`` call (sync), its options checked."""
    if lock is None and lock_timeout == DEFAULT_LOCK_TIMEOUT:
        return SYNC
    host, timeout = check_lock(lock, lock_timeout, what)
    return Guard(False, host, timeout)


def host_leases(tiers: Sequence[Any]) -> LeaseStore | None:
    """The lease store beside the first disk tier among ``tiers`` (``None``: no disk tier)."""
    for tier in tiers:
        inner = tier
        while not isinstance(inner, DiskTier) and hasattr(inner, "tier"):
            inner = inner.tier
        if isinstance(inner, DiskTier):
            return LeaseStore(os.path.join(inner.directory, "locks"))
    return None


def require_leases(cache: Cache, what: str) -> None:
    """``lock="host"`` needs a disk tier in ``cache``: refuse it clearly otherwise."""
    if cache.leases is None:
        raise ConfigurationError(
            f'{what} lock="host" leases keys in a folder beside the disk tier, and {cache!r} has none: '
            f'give the cache a DiskTier (e.g. Cache([MemoryTier(), DiskTier()])) or drop lock="host"'
        )


# -- boarding a flight (the waiting side) -----------------------------------------------------


def claim(cache: Cache, binding: Binding, fkey: Hashable, guard: Guard) -> list[Any] | None:
    """The mark of the key's flight, claimed now; ``None`` when another caller holds the key
    or a host lease is needed (then :func:`board` it). The uncontended miss stops here."""
    if guard.host:
        return None
    mark = [_current_task() if guard.asynchronous else _get_ident(), cache.epoch[0], cache.clock(), None]
    flights = binding.flights
    assert flights is not None
    return mark if flights.marks.setdefault(fkey, mark) is mark else None


def board(
    cache: Cache,
    binding: Binding,
    fkey: Hashable,
    skey_fn: Callable[[], str],
    tags_fn: Callable[[], tuple[str, ...]],
    guard: Guard,
) -> Steps:
    """Claim the key's flight after a miss, or wait for the one in the air.

    Returns the entry another caller's computation produced (the call is served: counted as
    ``coalesced``), or ``(mark, lease)``: compute, then :func:`land` (``mark`` is ``None``
    for a recursive call of the flight's own owner, which computes on its own; ``lease`` is
    the host lease, or ``None``). Raises the owner's exception when it raised one (or what
    interrupted the wait): the flow counts the call's outcome, ``error``, or serves a stale
    value instead (``stale_if_error``).
    """
    flights = binding.flights
    assert flights is not None
    marks = flights.marks
    me = _current_task() if guard.asynchronous else _get_ident()
    while True:
        mark = [me, cache.epoch[0], cache.clock(), None]
        held = marks.setdefault(fkey, mark)
        if held is mark:
            break
        if held[OWNER] == me or (held[OWNER] is None and _computing_here(held)):
            return None, None  # a recursive call of the owner: waiting for itself would deadlock
        if not _joinable(cache, held, tags_fn, skey_fn):
            # Computed from what was invalidated since: this caller's computation replaces it
            # (later callers join this one); its own waiters keep waiting for it.
            if flights.replace(fkey, held, mark, abandon=False):
                break
            continue
        age = mark[START] - held[START]
        if age >= guard.timeout:
            if flights.replace(fkey, held, mark, abandon=True):
                break  # the owner overran lock_timeout: take over
            continue
        joined = flights.join(fkey, held, guard.asynchronous, guard.timeout - age)
        if isinstance(joined, Ticket):
            joined = yield (WAIT, flight_wait, joined, flight_await)  # interrupted: it raises
        kind, found = joined
        if kind is VALUE:
            return _served(cache, binding, found)
        if kind is ERROR:
            raise found
        if kind is TIMEOUT:
            mark = [me, cache.epoch[0], cache.clock(), None]
            if flights.replace(fkey, held, mark, abandon=True):
                break  # waited lock_timeout for it: take over
            continue
        # RETRY: the owner gave up or landed meanwhile; what it stored is found here.
        entry = yield from cache.tiering.peek(binding, fkey, skey_fn(), cache.clock())
        if entry is not MISS:
            return _served(cache, binding, entry)
    lease = None
    if guard.host and not binding.local:
        lease = yield from _lease(cache, binding, fkey, skey_fn, guard, mark)
        if isinstance(lease, Entry):
            return lease
    return mark, lease


def _lease(
    cache: Cache, binding: Binding, fkey: Hashable, skey_fn: Callable[[], str], guard: Guard, mark: list[Any]
) -> Steps:
    """The host lease of a key whose flight this caller owns; or the entry another process
    stored while this one waited for its lease (then the flight lands with it)."""
    flights = binding.flights
    assert flights is not None
    skey = skey_fn()
    try:
        lease = yield (WAIT, _acquire, (cache, skey, guard.timeout), _aacquire)
    except BaseException:
        _land_mark(flights, fkey, mark, _RETRY)  # interrupted: the in-process waiters look again
        raise
    if lease is None or not lease.waited:
        return lease
    entry = yield from cache.tiering.peek(binding, fkey, skey, cache.clock())
    if entry is MISS:
        return lease
    _release(cache, lease)
    _land_mark(flights, fkey, mark, (VALUE, entry))
    return _served(cache, binding, entry)


def _computing_here(held: list[Any]) -> bool:
    """Whether this thread is the one computing ``held``, a mark of the generated memory-only
    miss (which leaves its owner out, to stay cheap: ``cacheplug.fastpath``): its frame,
    holding the mark, is then below this one on the stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == FAST_PATH_FILE and frame.f_locals.get("__cp_mark") is held:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _joinable(
    cache: Cache, held: list[Any], tags_fn: Callable[[], tuple[str, ...]], skey_fn: Callable[[], str]
) -> bool:
    """Whether a caller arriving now may share the computation ``held``: nothing it reads was
    invalidated since the computation began (one comparison while nothing was)."""
    judge = cache.judge
    if held[START] < judge.cutoff:
        return False
    seq0 = held[SEQ0]
    if seq0 == judge.epoch[0]:
        return True
    if judge.sync() is None:
        return False
    return judge.untouched_since(seq0, tags_fn(), skey_fn() if judge.versions.keyed else None)


def _served(cache: Cache, binding: Binding, entry: Entry) -> Entry:
    """A call served by another caller's computation: counted, reported to a capture."""
    binding.meter.coalesced.add()
    if inv.ACTIVE:
        inv.note(_Read(cache, entry))
    return entry


# -- landing a flight (the computing side) -----------------------------------------------------


def land(pending: Pending, entry: Entry | None = None, error: BaseException | None = None) -> None:
    """The owner of ``pending``'s flight is done: release its lease, tell its waiters.

    ``entry``: what it produced (stored or not); ``error``: what it raised instead. Waiters
    get an ``Exception``, or the entry while it is still fresh; otherwise (a ``BaseException``
    such as a cancellation, a value made stale by an invalidation) they look again.
    """
    lease = pending.lease
    if lease is not None:
        pending.lease = None
        _release(pending.binding.cache, lease)
    mark = pending.mark
    if mark is None:
        return
    pending.mark = None
    flights = pending.binding.flights
    assert flights is not None
    popped = flights.marks.pop(pending.fkey, None)
    if popped is not mark or mark[FLIGHT] is not None:
        flights.land(pending.fkey, mark, popped, _outcome(pending.binding.cache, entry, error, mark))


def land_lean(
    cache: Cache, binding: Binding, args: tuple[Any, ...], mark: list[Any], popped: Any, error: Any
) -> None:
    """:func:`land` for the generated memory-only miss, which found its mark joined or replaced."""
    flights = binding.flights
    assert flights is not None
    entry = None if error is not None else binding.shelf.get(args)
    flights.land(args, mark, popped, _outcome(cache, entry, error, mark))


def _land_mark(flights: Flights, fkey: Hashable, mark: list[Any], outcome: Outcome) -> None:
    popped = flights.marks.pop(fkey, None)
    if popped is not mark or mark[FLIGHT] is not None:
        flights.land(fkey, mark, popped, outcome)


def _outcome(cache: Cache, entry: Entry | None, error: BaseException | None, mark: list[Any]) -> Outcome:
    """What the waiters of a landing flight get (see :func:`land`)."""
    if error is not None:
        return (ERROR, error) if isinstance(error, Exception) else _RETRY
    if entry is None:
        return _RETRY
    judge = cache.judge
    if mark[START] < judge.cutoff or entry.created < judge.cutoff:
        return _RETRY
    if entry.seq == judge.epoch[0]:
        return VALUE, entry
    keyed = judge.versions.keyed
    if judge.sync() is None or (keyed and entry.skey is None):
        return _RETRY
    return (VALUE, entry) if judge.untouched_since(entry.seq, entry.tags, entry.skey) else _RETRY


# -- the host lease ------------------------------------------------------------------------------


def fence(pending: Pending) -> bool:
    """Whether the owner may store: its lease was not taken over (then the fence is held
    until :func:`land`). A refused store is counted in ``stale_sets`` and logged."""
    lease = pending.lease
    if lease is None:
        return True
    cache = pending.binding.cache
    try:
        if lease.fence():
            return True
    except Exception as exc:
        _fault(cache, "fence", exc)
        return True  # the lock is broken: store as if there were none
    cache.tiering.stale_sets.add()
    log.warning(
        "cacheplug: a computation of %s outlived its host lease (token %d) and another process "
        "took the key over; its value was returned to its caller but not stored. Raise lock_timeout "
        "above the computation's duration",
        pending.binding.ident or "Cache.get_or_compute",
        lease.token,
    )
    return False


def _acquire(arguments: tuple[Cache, str, float]) -> Lease | None:
    cache, skey, timeout = arguments
    store = cache.leases
    assert store is not None
    try:
        return store.acquire(skey, timeout)
    except Exception as exc:
        _fault(cache, "acquire", exc)
        return None


async def _aacquire(arguments: tuple[Cache, str, float]) -> Lease | None:
    cache, skey, timeout = arguments
    store = cache.leases
    assert store is not None
    try:
        return await store.aacquire(skey, timeout)
    except Exception as exc:
        _fault(cache, "acquire", exc)
        return None


def _release(cache: Cache, lease: Lease) -> None:
    try:
        lease.release()
    except Exception as exc:
        _fault(cache, "release", exc)


def _fault(cache: Cache, op: str, exc: Exception) -> None:
    """A fault of the lease store: counted and logged; the call goes on without the lease."""
    cache.faults.report("lock", op, exc)
