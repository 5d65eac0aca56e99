"""The one compute flow, with its sync and async drivers.

:func:`call_flow` is ``get_or_compute`` written once: probe the tiers, count the miss,
compute, check the versions, store. It is a generator that *yields* what it needs done and
receives the answers:

* ``(GET | SET | DELETE, tier, key, entry)``: one tier operation (``cacheplug.cache.tiering``);
* ``(RECORD, versions, tags, None)``: record an invalidation (the async driver, in a worker
  thread);
* ``(COMPUTE, chain, op, None)``: call the user's function (through the ``"compute"``
  middleware chain when there is one);
* ``(CHAINED, chain, (steps, awaits), op)``: run the sub-flow ``steps`` (a lookup or a
  store) as the terminal of a middleware chain; ``awaits``: the async driver must await it
  (a tier is async, or a store writes shared tiers from a worker thread), else it is driven
  synchronously and the middleware sees its result itself;
* ``(WAIT, wait, arg, await_)``: wait for what another caller holds: a computation of the
  same key in flight, or its host lease (``cacheplug.cache.stampede``);
* ``(BACKGROUND, pool, key, steps)``: run the refresh flow ``steps`` in the cache's
  background pool, once per key at a time (``cacheplug.cache.background``): on one of its
  threads with the sync driver, as a task of the running loop with the async one, calling
  the caller's own function. A computation that raises is thrown into the flow, which
  raises it again or serves a stale value in its place (``stale_if_error``).

:func:`run` and :func:`arun` are the two drivers: the same loop, one calling and one awaiting
(a tier's ``aget``/``aset``/``adelete`` where it has them; a sync tier's store in a worker
thread, so a lock wait in another process never stalls the event loop). The user's function
is called by the driver's own frame: a cached recursive function pays one frame for the
driver, none for the flow (a suspended generator is not on the stack).
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable, Coroutine, Hashable
from typing import TYPE_CHECKING, Any, cast

from .. import invalidation as inv
from ..envelope import MISS, Entry
from ..errors import SerializationError
from ..tiers.capabilities import AsyncTier
from . import stampede
from .calls import Binding, Pending, _Read
from .freshness import Freshness, retry_gap
from .judge import FALLBACK, FRESH, REFRESH
from .stampede import Guard
from .steps import BACKGROUND, CHAINED, COMPUTE, DELETE, GET, RECORD, SET, WAIT, sync_twin, with_run
from .tiering import Steps

if TYPE_CHECKING:
    from .facade import Cache

_LONG_AGO = float("-inf")
_RETRIES_MAX = 4096  # keys per binding whose failed recomputation waits for its retry

__all__ = [
    "BACKGROUND",
    "CHAINED",
    "COMPUTE",
    "arun",
    "call_flow",
    "checked_entry",
    "conclude",
    "finish_flow",
    "report",
    "run",
    "storable",
    "with_run",
]


def call_flow(
    cache: Cache,
    binding: Binding,
    fkey: Hashable,
    skey_fn: Callable[[], str],
    tags_fn: Callable[[], tuple[str, ...]],
    ttl: float | None,
    keep: Callable[[Pending, Any], tuple[bool, Any]] | None = None,
    on_hit: Callable[[Any], Any] | None = None,
    *,
    probe: bool = True,
    force: bool = False,
    guard: Guard = stampede.SYNC,
    policy: Freshness | None = None,
    retry: float | None = None,
) -> Steps:
    """Serve a call from the tiers or compute and store it; return what the caller gets.

    ``keep(pending, value)``: whether the value may be stored, and what the caller gets
    (``cache_if=``, ``copy=``). ``on_hit``: what the caller gets of a cached value.
    ``probe=False, force=True``: a refresh (compute, then replace what is stored).
    ``guard``: how a miss is protected from stampedes (``cacheplug.cache.stampede``).
    ``policy``: a direct call's freshness options (a function's are its binding's).
    ``retry``: this is a background refresh; if it raises, the key's next one waits that long.

    The judge's late verdicts: ``REFRESH`` is a hit and ``STALE`` a stale value served,
    each starting one background refresh of the key (a ``(BACKGROUND, pool, key, refresh)``
    step: the driver runs the refresh flow with the caller's function on the cache's pool);
    ``FALLBACK`` recomputes now (or waits for the key's computation in flight) and serves
    the stale value if that raises an ``Exception``. A failed recomputation is retried no
    sooner than ``retry_gap`` later: until then the stale value is served as it is.
    """
    chains = cache.chains
    mark = lease = fallback = None
    if probe:
        now = cache.clock()
        # Late verdicts are acted on for a call with freshness options; without, an entry
        # carrying windows (stored by another process's options) is served only while fresh.
        late = None if policy is None and binding.policy is None else [FRESH]
        find = cache.tiering.find(binding, fkey, skey_fn, now, late)
        if chains.get is None:
            entry = yield from find
        else:
            lookup = cache.describe("get", binding, skey_fn())
            entry = checked_entry((yield (CHAINED, chains.get, (find, cache.tiering.asynchronous), lookup)))
        if entry is not MISS:
            verdict = FRESH if late is None else late[0]
            if verdict is not FRESH:
                due = now >= binding.retries.get(fkey, _LONG_AGO)
                if verdict is FALLBACK and due:
                    fallback = entry  # recompute now; serve it if that raises
                elif verdict is not FALLBACK and due:
                    refresh = call_flow(
                        cache, binding, fkey, skey_fn, tags_fn, ttl, keep,
                        probe=False, force=True, policy=policy, retry=retry_gap(entry, verdict),
                    )  # fmt: skip
                    yield (BACKGROUND, cache.background, (binding, fkey), refresh)
            if fallback is None:
                served = verdict is FRESH or verdict is REFRESH
                value = cache.hit(binding, entry) if served else cache.stale(binding, entry)
                return value if on_hit is None else on_hit(value)
        else:
            binding.misses.add()
        # One computation per key: claim it, or wait for it (not for ttl=0: never stored, it
        # runs on every call).
        if binding.flights is not None and (ttl if ttl is not None else cache.default_ttl) != 0:
            mark = stampede.claim(cache, binding, fkey, guard)
            if mark is None:
                try:
                    boarded = yield from stampede.board(cache, binding, fkey, skey_fn, tags_fn, guard)
                except BaseException as exc:  # the computation waited for raised (or the wait did)
                    spare = _spare(cache, fallback, exc)
                    if spare is not None:
                        value = cache.stale(binding, spare)
                        return value if on_hit is None else on_hit(value)
                    _raised(binding, fallback)
                    raise
                if type(boarded) is not tuple:  # served by another caller's computation
                    return boarded.value if on_hit is None else on_hit(boarded.value)
                mark, lease = boarded
    pending = Pending(binding, fkey, None, tags_fn(), ttl, cache.epoch[0], cache.clock())
    pending.mark, pending.lease = mark, lease
    if policy is not None:
        pending.policy = policy
    op = None if chains.compute is None else cache.describe("compute", binding, skey_fn(), pending.tags)
    try:
        value = yield (COMPUTE, chains.compute, op, None)
    except BaseException as exc:
        inv.capture_end(pending.token)
        stampede.land(pending, error=exc)  # its waiters get the exception (or look again)
        if fallback is not None:
            _failed(cache, binding, fkey, retry_gap(fallback, FALLBACK))
        elif retry is not None:
            binding.meter.refreshes.add()
            _failed(cache, binding, fkey, retry)
        spare = _spare(cache, fallback, exc)
        if spare is not None:
            value = cache.stale(binding, spare)
            return value if on_hit is None else on_hit(value)
        if probe:
            _raised(binding, fallback)
        raise
    binding.meter.compute.record(cache.clock() - pending.start)
    if fallback is not None or retry is not None:
        if fallback is not None:
            binding.misses.add()
        else:
            binding.meter.refreshes.add()
        binding.retries.pop(fkey, None)
    stored, result = (True, value) if keep is None else keep(pending, value)
    if lease is not None:  # a holder whose host lease was taken over stores nothing
        stored = (yield (WAIT, stampede.fence, pending, None)) and stored
    try:
        entry = yield from finish_flow(cache, pending, value, stored, skey_fn, force)
    except BaseException as exc:
        stampede.land(pending, error=exc)
        raise
    stampede.land(pending, entry)
    return result


def _spare(cache: Cache, fallback: Entry | None, exc: BaseException) -> Entry | None:
    """The stale entry a call whose recomputation raised ``exc`` gets instead
    (``stale_if_error``), or ``None``: only for an ``Exception``, while the entry is within
    its window and was never invalidated meanwhile."""
    if fallback is None or not isinstance(exc, Exception):
        return None
    return fallback if cache.judge.verdict(fallback, cache.clock()) is FALLBACK else None


def _raised(binding: Binding, fallback: Entry | None) -> None:
    """Count a call whose computation (its own, or the one it waited for) raised: ``error``."""
    if fallback is not None:
        binding.misses.add()  # "miss" is misses - errors: the error needs its miss
    binding.meter.errors.add()  # the call's outcome: error (see cacheplug.statistics)


def _failed(cache: Cache, binding: Binding, fkey: Hashable, gap: float) -> None:
    """A recomputation that keeps a stale value in place raised: count it, retry ``gap`` later."""
    binding.meter.refresh_errors.add()
    retries = binding.retries
    if len(retries) >= _RETRIES_MAX:
        retries.clear()  # bounded: forgetting a key only lets it be retried sooner
    retries[fkey] = cache.clock() + gap


def finish_flow(
    cache: Cache, pending: Pending, value: Any, store: bool, skey_fn: Callable[[], str], force: bool = False
) -> Steps:
    """End a computation: store its value if allowed and still fresh; report it upward."""
    entry = conclude(cache, pending, value)
    if store and entry.expires != entry.created and storable(cache, pending):  # ttl=0: never stored
        chain, tiering, binding, at = cache.chains.set, cache.tiering, pending.binding, entry.created
        if chain is None:
            yield from tiering.store(binding, pending.fkey, skey_fn, entry, force, at)
        else:
            op = cache.describe("set", binding, entry.skey or skey_fn(), entry.tags)
            yield (
                CHAINED,
                chain,
                (tiering.store(binding, pending.fkey, skey_fn, entry, force, at), bool(tiering.lower)),
                op,
            )
    if inv.ACTIVE:
        report(cache, entry, skey_fn)
    return entry


# The sync twin of finish_flow (see cacheplug.cache.steps): the fast path's misses and
# refreshes end through it.
finish_now: Callable[..., Entry]


def conclude(cache: Cache, pending: Pending, value: Any) -> Entry:
    """Stop capturing the computation's reads; its entry, carrying what it depended on."""
    inv.capture_end(pending.token)
    bucket = pending.bucket
    if bucket:
        captured: dict[str, None] = dict.fromkeys(pending.tags)
        for read in bucket:
            captured.update(dict.fromkeys(read.cache.entry_tags(read.entry)))
        tags = tuple(captured)
        if pending.binding.signature is not None:
            cache.judge.unshortcut(pending.binding)
    else:
        tags = pending.tags  # shared by every entry of the function: no allocation
    now = cache.clock()
    ttl = pending.ttl if pending.ttl is not None else cache.default_ttl
    expires = None if ttl is None else now + ttl
    policy = pending.policy
    if policy is not None:  # freshness options: the windows, measured on the cache's clock
        return policy.entry(value, now, expires, pending.seq0, tags, now - pending.start, pending.skey)
    return Entry(value, now, expires, pending.seq0, tags, now - pending.start, pending.skey)


def checked_entry(found: Any) -> Any:
    """What a ``"get"`` chain answered: an entry or ``MISS``, else a clear error."""
    if found is MISS or isinstance(found, Entry):
        return found
    raise TypeError(
        f"a 'get' middleware returned {found!r}: it must return call_next(op)'s result, an Entry "
        f"or cacheplug.MISS"
    )


def storable(cache: Cache, pending: Pending) -> bool:
    """Not computed before an invalidation this process could not record (the cutoff)."""
    return pending.start >= cache.judge.cutoff


def report(cache: Cache, entry: Entry, skey_fn: Callable[[], str]) -> None:
    """Tell an enclosing computation (nested cached calls) what this one produced."""
    if inv.CAPTURE.get() is not None:
        if entry.skey is None:
            entry.skey = skey_fn()
        inv.note(_Read(cache, entry))


def run(steps: Steps, func: Callable[..., Any] = bool, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
    """The sync driver: run ``steps`` to the end, calling ``func(*args, **kwargs)`` to compute."""
    answer: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            if thrown is None:
                kind, target, key, entry = steps.send(answer)
            else:  # the computation raised: the flow cleans up, then raises or serves a fallback
                kind, target, key, entry = steps.throw(thrown)
        except StopIteration as done:
            return done.value
        thrown = None
        if kind is GET:
            answer = target.get(key)
        elif kind is SET:
            try:
                target.set(key, entry)
                answer = None
            except SerializationError as exc:
                answer = exc
        elif kind is DELETE:
            answer = target.delete(key)
        elif kind is RECORD:
            try:
                answer = target.bump(key)
            except BaseException as exc:
                steps.throw(exc)  # the flow fails closed and raises it again
                raise  # pragma: no cover - the flow always re-raises
        elif kind is COMPUTE:
            try:
                if target is None:
                    answer = func(*args, **(kwargs or {}))
                else:
                    answer = target(with_run(key, lambda: func(*args, **(kwargs or {}))))
            except BaseException as exc:
                thrown = exc
        elif kind is WAIT:
            try:
                answer = target(key)
            except BaseException as exc:  # interrupted while waiting
                thrown = exc
        elif kind is BACKGROUND:  # a refresh flow, run with the caller's function on the pool
            answer = target.submit(key, _background(entry, func, args, kwargs))
        else:  # CHAINED: the sub-flow is the terminal of a middleware chain
            answer = target(with_run(entry, _driven(key[0], run)))


async def arun(
    steps: Steps, func: Callable[..., Any] = bool, args: tuple[Any, ...] = (), kwargs: Any = None
) -> Any:
    """The async driver: :func:`run`, awaited (see the module docstring)."""
    answer: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            if thrown is None:
                kind, target, key, entry = steps.send(answer)
            else:
                kind, target, key, entry = steps.throw(thrown)
        except StopIteration as done:
            return done.value
        thrown = None
        if kind is GET:
            answer = await cast(AsyncTier, target).aget(key) if _asynchronous(target) else target.get(key)
        elif kind is SET:
            try:
                if _asynchronous(target):
                    await cast(AsyncTier, target).aset(key, entry)
                else:
                    await asyncio.to_thread(target.set, key, entry)
                answer = None
            except SerializationError as exc:
                answer = exc
        elif kind is DELETE:
            if _asynchronous(target):
                answer = await cast(AsyncTier, target).adelete(key)
            else:  # a removal may wait for another process's lock: not on the event loop
                answer = await asyncio.to_thread(target.delete, key)
        elif kind is RECORD:
            try:
                answer = await asyncio.to_thread(target.bump, key)
            except BaseException as exc:
                steps.throw(exc)
                raise  # pragma: no cover - the flow always re-raises
        elif kind is COMPUTE:
            try:
                if target is None:
                    answer = await func(*args, **(kwargs or {}))
                else:
                    answer = await target(with_run(key, lambda: func(*args, **(kwargs or {}))))
            except BaseException as exc:
                thrown = exc
        elif kind is WAIT:
            try:  # never on the event loop's thread: awaited, or waited in a worker thread
                answer = await (entry(key) if entry is not None else asyncio.to_thread(target, key))
            except BaseException as exc:
                thrown = exc
        elif kind is BACKGROUND:  # a refresh flow, run as a task of this loop
            answer = target.asubmit(key, _abackground(entry, func, args, kwargs))
        else:
            # A sub-flow that awaits nothing is driven synchronously: its middleware sees
            # the entry (or MISS) itself, not an awaitable.
            sub, awaits = key
            if not awaits:
                answer = target(with_run(entry, _driven(sub, run)))
            else:
                # The sub-flow runs as a task: the cache's own work (a store, an invalidation)
                # happens and is awaited here even if a middleware drops call_next's result.
                started: list[asyncio.Future[Any]] = []
                answer = target(with_run(entry, _scheduled(sub, started)))
                if inspect.isawaitable(answer):
                    answer = await answer
                for task in started:
                    await task


_ASYNC: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _asynchronous(tier: Any) -> bool:
    """Whether ``tier`` declares async methods (``AsyncTier``), remembered per tier."""
    found = _ASYNC.get(tier)
    if found is None:
        found = _ASYNC[tier] = isinstance(tier, AsyncTier)
    return found


def _driven(steps: Steps, driver: Callable[[Steps], Any]) -> Callable[[], Any]:
    return lambda: driver(steps)


def _background(
    steps: Steps, func: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
) -> Callable[[], Any]:
    """A background thread's job: the refresh flow ``steps``, computing with ``func``."""

    def job() -> Any:
        inv.CAPTURE.set(None)  # its reads are its own, not the submitting computation's
        return run(steps, func, args, kwargs)

    return job


def _abackground(
    steps: Steps, func: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
) -> Callable[[], Coroutine[Any, Any, Any]]:
    """A background task's coroutine factory: the refresh flow ``steps``, awaiting ``func``."""

    async def job() -> Any:
        inv.CAPTURE.set(None)  # in the task's own copy of the context
        return await arun(steps, func, args, kwargs)

    return job


def _scheduled(steps: Steps, started: list[asyncio.Future[Any]]) -> Callable[[], Any]:
    def schedule() -> asyncio.Future[Any]:
        task = asyncio.ensure_future(arun(steps))
        started.append(task)
        return task

    return schedule


finish_now = sync_twin(finish_flow)
