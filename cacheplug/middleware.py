"""The middleware chains: the plugin point around cache operations, composed once per kind.

A middleware is a callable ``(op, call_next) -> result``. ``op`` is an immutable :class:`Op`
describing the operation (``kind`` is ``"get"``, ``"set"``, ``"compute"`` or
``"invalidate"``) in the user's words: the user's key and tags; the stored key and
cacheplug's internal tags are in separate fields. ``call_next(op)`` continues down the chain
and returns the operation's result (for ``"get"`` an entry or the miss sentinel, for
``"compute"`` the computed value — an awaitable for async functions —, for ``"set"`` and
``"invalidate"`` ``None``). Once ``call_next`` has returned, the op it was given carries the
``outcome``, the ``tier`` that answered and the ``duration``.

A middleware observes every kind unless it declares ``observes`` (an iterable of kind
names, e.g. ``observes = {"compute", "set", "invalidate"}``).
The chains are composed once, when the :class:`~cacheplug.Cache` is built: one per kind,
each ending in the terminal that runs the operation. A kind no middleware observes has no
chain and builds no ``Op``; when no middleware observes ``"get"``, hits take the generated
fast path of ``@cached`` as if there were no middleware at all.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigurationError

__all__ = ["KINDS", "Chains", "Middleware", "Op", "compose"]

OpKind = Literal["get", "set", "compute", "invalidate"]
KINDS: tuple[OpKind, ...] = ("get", "compute", "set", "invalidate")
Outcome = Literal["hit", "miss", "stale", "coalesced", "error"]


@dataclass(frozen=True, slots=True)
class Op:
    """One cache operation as middleware sees it.

    ``key``: the user's key (the ``Cache.get``/``set`` key; for a cached function the call's
    ``cache_key()``; ``None`` for an invalidation). ``function``: the cached function's
    qualified name (``None`` for direct ``Cache`` calls). ``tags``: the user's tags (for
    ``"invalidate"``: the invalidated tags), ``keys``: the invalidated keys.
    ``stored_key`` and ``internal_tags`` hold cacheplug's own names, for middleware that
    needs them. Set once ``call_next`` returns: ``outcome`` (``"hit"`` or ``"miss"`` for a
    get, ``"miss"`` for a computation that returned, ``"error"`` when it raised), ``tier``
    (the name of the tier that answered a hit) and ``duration`` (seconds, by
    ``time.perf_counter``).
    """

    kind: OpKind
    key: str | None
    function: str | None = None
    tags: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    stored_key: str | None = None
    internal_tags: frozenset[str] = frozenset()
    run: Callable[[], Any] = field(default=lambda: None, repr=False, compare=False)
    outcome: Outcome | None = field(default=None, compare=False)
    tier: str | None = field(default=None, compare=False)
    duration: float | None = field(default=None, compare=False)

    def settle(self, outcome: Outcome | None, tier: str | None, duration: float) -> None:
        """Record how the operation went (the terminal does; middleware only reads it)."""
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "tier", tier)
        object.__setattr__(self, "duration", duration)


Middleware = Callable[[Op, Callable[[Op], Any]], Any]
Handler = Callable[[Op], Any]


def _terminal(op: Op) -> Any:
    start = time.perf_counter()
    try:
        result = op.run()
    except BaseException:
        op.settle("error", None, time.perf_counter() - start)
        raise
    if isinstance(result, asyncio.Future):  # the cache's own work, already running as a task
        result.add_done_callback(lambda done: _settle_done(op, done, start))
        return result
    if inspect.isawaitable(result):
        return _settle_later(op, result, start)
    _settle_now(op, result, start)
    return result


def _settle_done(op: Op, done: asyncio.Future[Any], start: float) -> None:
    if done.cancelled() or done.exception() is not None:
        op.settle("error", None, time.perf_counter() - start)
    else:
        _settle_now(op, done.result(), start)


async def _settle_later(op: Op, result: Any, start: float) -> Any:
    try:
        value = await result
    except BaseException:
        op.settle("error", None, time.perf_counter() - start)
        raise
    _settle_now(op, value, start)
    return value


def _settle_now(op: Op, result: Any, start: float) -> None:
    duration = time.perf_counter() - start
    if op.kind == "get":
        # An entry read from a shared tier names it; one served from memory has a shelf.
        tier = getattr(result, "tier", None) or (
            "memory" if getattr(result, "shelf", None) is not None else None
        )
        op.settle("hit" if result else "miss", tier if result else None, duration)
    else:
        op.settle("miss" if op.kind == "compute" else None, None, duration)


def _link(middleware: Middleware, call_next: Handler) -> Handler:
    def handler(op: Op) -> Any:
        return middleware(op, call_next)

    return handler


def _kinds_of(item: Any) -> frozenset[str]:
    kinds = getattr(item, "observes", None)
    if kinds is None:
        return frozenset(KINDS)
    if isinstance(kinds, str) or not isinstance(kinds, Iterable):
        raise ConfigurationError(
            f"middleware {item!r}: observes must be an iterable of {KINDS}, got {kinds!r}"
        )
    try:
        chosen = frozenset(kinds)
    except TypeError:
        raise ConfigurationError(f"middleware {item!r}: observes must name kinds among {KINDS}") from None
    unknown = chosen - set(KINDS)
    if unknown:
        raise ConfigurationError(
            f"middleware {item!r} declares unknown kinds {sorted(unknown)}; known: {KINDS}"
        )
    return chosen


class Chains:
    """The composed chain of each operation kind (``None`` where no middleware observes it)."""

    __slots__ = ("compute", "get", "invalidate", "misses_only", "quiet_miss", "set")

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        if (
            callable(middleware)
            or isinstance(middleware, (str, bytes))
            or not isinstance(middleware, Iterable)
        ):
            raise ConfigurationError(
                f"Cache(middleware=...) takes a list of middleware: write middleware=[{middleware!r}]"
            )
        for item in middleware:
            call = getattr(type(item), "__call__", None)  # noqa: B004 - the method, to test it is async
            if inspect.iscoroutinefunction(item) or inspect.iscoroutinefunction(call):
                raise ConfigurationError(
                    f"middleware {item!r} is an async function; a middleware is a plain callable "
                    f"(op, call_next) -> result that returns call_next's awaitable for async code"
                )
            if not callable(item):
                raise ConfigurationError(
                    f"middleware must be callables (op, call_next) -> result, got {item!r}"
                )
        observed = [(item, _kinds_of(item)) for item in middleware]
        self.get: Handler | None = compose([m for m, k in observed if "get" in k])
        self.compute: Handler | None = compose([m for m, k in observed if "compute" in k])
        self.set: Handler | None = compose([m for m, k in observed if "set" in k])
        self.invalidate: Handler | None = compose([m for m, k in observed if "invalidate" in k])
        # No middleware observes lookups: hits may take the fast path.
        self.misses_only = self.get is None
        # No middleware observes a miss's computation or store either.
        self.quiet_miss = self.get is None and self.compute is None and self.set is None


def compose(middleware: Sequence[Middleware]) -> Handler | None:
    """Compose ``middleware`` (outermost first) into one handler, or ``None`` when empty."""
    if not middleware:
        return None
    handler: Handler = _terminal
    for item in reversed(middleware):
        handler = _link(item, handler)
    return handler
