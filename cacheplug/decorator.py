"""``@cached``: the decorator's entry point, its typed overloads and the wrapping of a function.

Everything about a function is decided once, at decoration time: sync or async, which
parameters make the key, whether the fast path applies, the tag templates. Bad arguments
raise :class:`~cacheplug.errors.ConfigurationError` there and then.

Each decorated function gets its own small ``wrapt.FunctionWrapper`` subclass whose
``__call__`` is generated for it (``cacheplug.fastpath``); every call that path cannot
serve goes through ``_Core`` and the coordinator.

The parts, one job each: ``core`` (what is decided at decoration time: options, keys,
tags, binding to a cache), ``drivers`` (how a call runs: the general sync and async paths,
the fast path's miss), ``identity`` (closure keying, argument normalisation, what cannot be
decorated), ``wrappers`` (``CachedFunction``, ``BoundCachedFunction`` and their helpers).
The names other modules use stay importable from here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, Protocol, TypeVar, overload

from . import state
from .cache import Cache
from .cache.calls import _ttl_seconds
from .cache.freshness import freshness
from .cache.stampede import check_lock
from .drivers import _Core as _Core
from .fastpath import make_call
from .wrappers import BoundCachedFunction as BoundCachedFunction
from .wrappers import CachedFunction, CacheInfo

__all__ = ["CacheInfo", "CachedFunction", "cached"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# What ``warm=`` takes (see cacheplug.warmcalls).
WarmSpec = bool | Iterable[tuple[Any, ...] | Mapping[str, Any]] | Callable[[], Iterable[Any]]


if TYPE_CHECKING:

    class CachedClassMethod(CachedFunction[Concatenate[type[T], P], R]):
        """``@cached`` above ``@classmethod`` (as mypy sees it: a function of ``cls: type[T]``).

        Called directly it takes every parameter (a plain function whose first parameter is
        a class stays usable); bound through the class or an instance, ``P``.
        """

        def __get__(  # type: ignore[override]
            self, instance: object, owner: type[Any] | None = None, /
        ) -> BoundCachedFunction[P, R]: ...

    class _Decorator(Protocol):
        """What ``cached(...)`` with options returns: a decorator for each kind of function."""

        @overload
        def __call__(self, func: Callable[Concatenate[type[T], P], R], /) -> CachedClassMethod[T, P, R]: ...
        @overload
        def __call__(self, func: Callable[P, R], /) -> CachedFunction[P, R]: ...


def _wrap(func: Any, options: dict[str, Any]) -> Any:
    core = _Core(func, **options)
    cls = type(
        "CachedFunction",
        (CachedFunction,),
        {
            "__call__": make_call(core),
            "__module__": CachedFunction.__module__,
            "__qualname__": CachedFunction.__qualname__,
        },
    )
    # Bound calls (methods, classmethods, staticmethods) arrive through wrapt's wrapper.
    proxy = cls(func, core.call_wrapped)
    proxy._self_core = core
    core.proxy = weakref.ref(proxy)
    state.register_function(proxy)  # weakly: cacheplug.registry enumerates them
    return proxy


@overload
def cached(func: Callable[Concatenate[type[T], P], R], /) -> CachedClassMethod[T, P, R]: ...


@overload
def cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...


@overload
def cached(
    ttl: float | Any = None,
    *,
    tags: Iterable[str] | Callable[..., Iterable[str]] = (),
    depends_on: Iterable[Any] = (),
    warm: WarmSpec = False,
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    namespace: str | None = None,
    version: str | int | None = None,
    cache: Cache | None = None,
    typed: bool = True,
    cache_if: Callable[[Any], bool] | None = None,
    copy: bool = False,
    lock: Literal["host"] | None = None,
    lock_timeout: float = 30.0,
    stale_ttl: float | timedelta | None = None,
    stale_if_error: float | timedelta | None = None,
    early_refresh: bool | float = False,
) -> _Decorator: ...


def cached(
    ttl: Any = None,
    *,
    tags: Iterable[str] | Callable[..., Iterable[str]] = (),
    depends_on: Iterable[Any] = (),
    warm: WarmSpec = False,
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    namespace: str | None = None,
    version: str | int | None = None,
    cache: Cache | None = None,
    typed: bool = True,
    cache_if: Callable[[Any], bool] | None = None,
    copy: bool = False,
    lock: Literal["host"] | None = None,
    lock_timeout: float = 30.0,
    stale_ttl: float | timedelta | None = None,
    stale_if_error: float | timedelta | None = None,
    early_refresh: bool | float = False,
) -> Any:
    """Cache a function's results: ``@cached`` or ``@cached(ttl, tags=..., ...)``.

    Works on functions, async functions (the awaited result is cached), methods,
    classmethods and staticmethods (write ``@cached`` above ``@classmethod``).

    Args:
        ttl: seconds or ``timedelta``; ``None`` uses the cache's ``default_ttl``; ``0``
            does not store.
        tags: templates formatted from the call's arguments (``"user:{user_id}"``,
            ``"org:{user.org_id}"``) or one callable returning tags.
        depends_on: cached functions and tag strings this function's results depend on.
        warm: what :func:`~cacheplug.warm_now` computes ahead of demand: ``True`` (the
            function called without arguments), an iterable of argument tuples or dicts
            (``[(1,), (2,)]``, ``[{"user_id": 7}]``), or a callable returning one (called at
            each warming). Decoration only registers the task: nothing runs at import.
        key: a callable of the call's arguments returning the key material.
        ignore: parameter names left out of the key (``ignore=("self",)``).
        namespace: a prefix for this function's identity in keys.
        version: mixed into every key; default: a fingerprint of the function's code.
        cache: a :class:`Cache`; default: :func:`get_cache` at call time.
        typed: ``f(1)``, ``f(1.0)`` and ``f(True)`` are distinct entries (default).
        cache_if: predicate on the result; ``False`` returns it without storing.
        copy: return a deep copy of cached values to callers that mutate results.
        lock: concurrent misses of one key always wait for one computation in the process;
            ``"host"``: in every process of the host too (a lease beside the disk tier).
        lock_timeout: seconds a computation may hold its key (default 30) before a waiting
            caller takes over; with ``lock="host"``, the lease.
        stale_ttl: seconds after expiry during which the stale value is served, without
            waiting, while one background refresh recomputes it.
        stale_if_error: seconds after expiry during which the stale value is served when
            recomputing it raises an ``Exception`` (retried at most every
            ``min(1 s, stale_if_error / 10)``, not on every call); after them it raises.
        early_refresh: ``True`` (β = 1) or a number β > 0: recompute a hot entry in the
            background before it expires, by XFetch (``now - δ·β·ln(rand()) >= expiry``,
            δ: the computation's duration on the cache's clock).

    An invalidated entry is never served stale: ``stale_ttl`` and ``stale_if_error`` cover
    expiry and errors, not invalidation. See docs/guide/freshness.md.
    """
    options = dict(
        ttl=None,
        tags=tags,
        depends_on=depends_on,
        warm=warm,
        key=key,
        ignore=ignore,
        namespace=namespace,
        version=version,
        cache=cache,
        typed=typed,
        cache_if=cache_if,
        copy=copy,
        lock=lock,
        lock_timeout=lock_timeout,
        stale_ttl=stale_ttl,
        stale_if_error=stale_if_error,
        early_refresh=early_refresh,
    )
    if (callable(ttl) and not isinstance(ttl, (int, float))) or isinstance(ttl, (classmethod, staticmethod)):
        return _wrap(ttl, options)
    options["ttl"] = ttl
    # Fail at decoration time, before the function exists.
    freshness(stale_ttl, stale_if_error, early_refresh, _ttl_seconds(ttl, "@cached ttl"), "@cached")
    check_lock(lock, lock_timeout, "@cached")

    def decorate(func: Any) -> Any:
        return _wrap(func, options)

    return decorate
