"""Module-level operations over every open cache of the process, and the signal receivers.

``invalidate``, ``invalidate_by_write`` and friends act on every open
:class:`~cacheplug.Cache` (building the default one if none is open, so that the
invalidation is recorded for the other processes of the host). Caches that share a
version store record the invalidation once. The receiver of
:data:`cacheplug.signals.written` lives here (connected when cacheplug is imported), so the
signals themselves know nothing of the caches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from . import invalidation as inv
from . import signals, state
from .cache import Cache, open_caches
from .defaults import get_cache
from .errors import ConfigurationError

__all__ = ["add_dependency", "add_rule", "ainvalidate", "get_or_compute", "invalidate", "invalidate_by_write"]

T = TypeVar("T")


def add_rule(rule: inv.InvalidationRule) -> None:
    """Register a write rule for every cache: see :func:`invalidate_by_write`."""
    if not isinstance(rule, inv.InvalidationRule):
        raise ConfigurationError("add_rule takes an InvalidationRule(entity, tags=...)")
    with state.RULES_LOCK:
        state.RULES.append(rule)


def _targets() -> list[Cache]:
    caches = open_caches()
    return caches if caches else [get_cache()]


def invalidate(tags: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
    """Make entries carrying ``tags`` or stored under ``keys`` stale in every open cache.

    O(tags + keys), whatever the number of entries. Raises
    :class:`~cacheplug.errors.InvalidationError` (fail closed) if it cannot be recorded.
    """
    tags, keys = (
        tuple(tags) if not isinstance(tags, str) else tags,
        tuple(keys) if not isinstance(keys, str) else keys,
    )
    recorded: set[int] = set()
    for cache in _targets():
        bucket = inv.pending_for(cache)
        if bucket is not None:
            cache.invalidate(tags=tags, keys=keys)
            continue
        if id(cache.versions) in recorded and not keys:
            # Same version store: the bump is already recorded; only this cache's signal.
            cache.invalidator.apply(set(tags), set(), record=False)
            continue
        cache.invalidate(tags=tags, keys=keys)
        if not cache.debounced:
            recorded.add(id(cache.versions))


async def ainvalidate(tags: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
    """Async twin of :func:`invalidate`: recorded in a worker thread, never on the event loop."""
    await asyncio.to_thread(invalidate, tags, keys)


def invalidate_by_write(entity: str, id: Any = None) -> None:
    """Invalidate what a write of ``entity`` (row ``id``) makes stale, in every open cache.

    The tags are ``entity`` and ``f"{entity}:{id}"`` plus whatever registered
    :class:`InvalidationRule` objects add. This is what ORM save hooks call.
    """
    if not isinstance(entity, str) or not entity:
        raise ConfigurationError(
            "invalidate_by_write needs an entity name, e.g. invalidate_by_write('user', 42)"
        )
    for cache in _targets():
        cache.invalidate_by_write(entity, id)


def get_or_compute(
    key: str,
    compute: Callable[[], T],
    ttl: Any = None,
    tags: Iterable[str] = (),
    depends_on: Iterable[str] = (),
    *,
    lock: str | None = None,
    lock_timeout: float = 30.0,
    stale_ttl: Any = None,
    stale_if_error: Any = None,
    early_refresh: bool | float = False,
) -> T:
    """:meth:`Cache.get_or_compute` on the default cache (the freshness options included)."""
    return get_cache().get_or_compute(
        key,
        compute,
        ttl=ttl,
        tags=tags,
        depends_on=depends_on,
        lock=lock,
        lock_timeout=lock_timeout,
        stale_ttl=stale_ttl,
        stale_if_error=stale_if_error,
        early_refresh=early_refresh,
    )


def add_dependency(
    derived_key: str,
    sources: Iterable[str] = (),
    *,
    tags: Iterable[str] = (),
    ttl: Any = None,
    cache: Cache | None = None,
) -> None:
    """Make the entry under ``derived_key`` stale whenever a source key or tag is invalidated.

    ``sources`` are keys of the same cache (``cache``, default: the default cache), ``tags``
    are tags. Invalidating any of them, in any process of the host, makes ``derived_key``
    stale, and transitively everything that depends on it; cycles are fine. The link lasts
    until ``derived_key`` is invalidated or ``ttl`` seconds pass. Each invalidation costs
    O(tags + dependents reached). See :meth:`Cache.add_dependency`; to link a value as it is
    stored, use ``Cache.set(..., depends_on=...)``. Raises
    :class:`~cacheplug.errors.InvalidationError` when the link cannot be recorded.
    """
    (cache if cache is not None else get_cache()).add_dependency(derived_key, sources, tags=tags, ttl=ttl)


def _on_written(sender: Any, **kwargs: Any) -> None:
    """Receiver of :data:`cacheplug.signals.written`: the write's rules, on every open cache."""
    if "entity" not in kwargs:
        raise TypeError("cacheplug.signals.written needs entity= (and usually id=)")
    invalidate_by_write(kwargs["entity"], kwargs.get("id"))


signals.written.connect(_on_written, weak=False)
