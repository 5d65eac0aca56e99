"""Dependencies between keys of the direct API: what ``depends_on=`` and ``add_dependency`` record.

A derived key is linked to its sources in the cache's version store (an edge from each
source's version tag to the derived key's tag, see :mod:`cacheplug.versions_deps`), so an
invalidation of a source makes the derived entry stale in every process of the host, in
the same invalidation, transitively. Guarantees:

* **Linked before stored.** ``set`` and ``get_or_compute`` record the edges after the
  computation's epoch snapshot and before the value exists: an invalidation before the
  edges exist is seen by the no-stale-set check (or was there before the value was
  computed), one after them reaches the derived key. A value whose edges could not be
  recorded is not stored (a counted ``versions.depend`` fault); ``add_dependency`` raises.
* **Edges expire with the value**: one second after its ttl by the wall clock, which every
  process shares. A cache with its own ``clock`` keeps them until the derived key is
  invalidated (the two clocks cannot be compared).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import invalidation as inv
from ..errors import InvalidationError
from .calls import Pending

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["add", "link", "linking"]

T = TypeVar("T")


def add(
    cache: Cache, derived_key: str, sources: tuple[str, ...], tags: tuple[str, ...], ttl: float | None
) -> None:
    """Link ``derived_key`` to source keys and tags (validated); raise when it cannot be recorded."""
    found = [inv.key_tag(cache.names.stored(key)) for key in sources]
    found += tags
    if cache.degraded is not None:
        raise InvalidationError(
            f"cannot record a dependency: {cache.degraded}; fix the cache directory, then try again"
        )
    expires = None
    if ttl is not None and cache.clock is time.time:
        expires = time.time() + ttl + 1.0  # a second after the value: never before it
    cache.versions.depend(inv.key_tag(cache.names.stored(derived_key)), found, expires)


def link(cache: Cache, skey: str, sources: tuple[str, ...], ttl: float | None) -> bool:
    """Link a value about to be stored to its sources; False (a counted fault) if that failed."""
    try:
        add(cache, skey, sources, (), ttl if ttl is not None else cache.default_ttl)
    except InvalidationError as exc:
        cache.faults.report("versions", "depend", exc)
        return False
    return True


def linking(
    cache: Cache, skey: str, sources: tuple[str, ...], ttl: float | None, compute: Callable[[], T]
) -> tuple[Callable[[], T], Callable[[Pending, Any], tuple[bool, Any]]]:
    """``compute`` that first links ``skey`` to ``sources`` (after the epoch snapshot, before
    the value exists), and the ``keep`` that stores the value only if it did."""
    linked = [False]

    def run() -> T:
        linked[0] = link(cache, skey, sources, ttl)
        return compute()

    return run, lambda _pending, value: (linked[0], value)
