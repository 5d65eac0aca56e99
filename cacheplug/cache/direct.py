"""The direct API's reads and writes: ``Cache.get``, ``set`` and ``get_or_compute``.

The direct API is one binding of the cache (``cache.direct``), whose keys are the user's
strings: ``set`` is a computation whose value is given (stored with ``force``: it replaces
what is there), ``get_or_compute`` runs the one compute flow, with the call's own freshness
options (``stale_ttl=``, ``stale_if_error=``, ``early_refresh=``). While the host's
invalidations cannot be read nothing is stored or served (``Cache.degraded``). ``refresh``
(warming a direct key) computes without looking and replaces what is stored, through the
same flow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import invalidation as inv
from ..envelope import MISS
from . import dependencies as deps
from .calls import Pending, _ttl_seconds
from .flow import call_flow, run
from .freshness import freshness
from .invalidating import check_keys, check_tags
from .stampede import SYNC, Guard

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["get", "get_or_compute", "refresh", "store"]

T = TypeVar("T")

# get_or_compute's freshness options when none is given: (stale_ttl, stale_if_error, early_refresh).
_NO_OPTIONS: tuple[Any, Any, Any] = (None, None, False)


def get(cache: Cache, key: str, default: Any) -> Any:
    skey = cache.user_key(key)
    entry = MISS if cache.blind() else cache.lookup(cache.direct, skey, lambda: skey)
    if entry is MISS:
        cache.direct.misses.add()
        return default
    return cache.hit(cache.direct, entry)


def _checked(
    cache: Cache, key: str, ttl: Any, tags: Iterable[str], depends_on: Iterable[str]
) -> tuple[str, float | None, tuple[str, ...], tuple[str, ...]]:
    """The stored key, ttl, tags and source keys of a direct write, validated."""
    skey = cache.user_key(key)
    return (
        skey,
        _ttl_seconds(ttl, "ttl"),
        cache.direct.base_tags + inv.with_rows(check_tags(tags)),
        check_keys(depends_on, "depends_on"),
    )


def store(
    cache: Cache, key: str, value: Any, ttl: Any, tags: Iterable[str], depends_on: Iterable[str]
) -> None:
    skey, seconds, tag_tuple, sources = _checked(cache, key, ttl, tags, depends_on)
    if cache.blind():
        return  # nothing stored could be judged fresh
    pending = Pending(cache.direct, skey, skey, tag_tuple, seconds, cache.epoch[0], cache.clock())
    # Linked after the epoch snapshot, before the value is stored (see cache.dependencies).
    linked = not sources or deps.link(cache, skey, sources, seconds)
    cache.finish(pending, value, linked, lambda: skey, force=True)


def get_or_compute(
    cache: Cache,
    key: str,
    compute: Callable[[], T],
    ttl: Any,
    tags: Iterable[str],
    depends_on: Iterable[str],
    guard: Guard = SYNC,
    options: tuple[Any, Any, Any] = _NO_OPTIONS,
) -> T:
    return _through_flow(cache, key, compute, ttl, tags, depends_on, options, guard=guard)


def refresh(
    cache: Cache, key: str, compute: Callable[[], T], ttl: Any, tags: Iterable[str], depends_on: Iterable[str]
) -> T:
    """``compute()`` and store it under ``key``, replacing what is there: the flow of a
    refresh (the versions are read before computing, so a value that raced an invalidation
    of its tags is not stored)."""
    return _through_flow(cache, key, compute, ttl, tags, depends_on, _NO_OPTIONS, probe=False, force=True)


def _through_flow(
    cache: Cache,
    key: str,
    compute: Callable[[], T],
    ttl: Any,
    tags: Iterable[str],
    depends_on: Iterable[str],
    options: tuple[Any, Any, Any],
    **flow_options: Any,
) -> T:
    """Run ``compute`` through the compute flow of the direct binding under ``key``, with the
    freshness ``options`` (validated against the ttl before anything else happens)."""
    skey, seconds, tag_tuple, sources = _checked(cache, key, ttl, tags, depends_on)
    policy = None if options == _NO_OPTIONS else freshness(*options, seconds, "get_or_compute")
    if cache.blind():
        return compute()
    keep = None
    if sources:
        compute, keep = deps.linking(cache, skey, sources, seconds, compute)
    binding = cache.direct
    flow = call_flow(
        cache, binding, skey, lambda: skey, lambda: tag_tuple, seconds, keep, policy=policy, **flow_options
    )
    value: T = run(flow, compute)
    return value
