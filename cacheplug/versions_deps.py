"""Dependency edges of a version store: bumping a source bumps what was derived from it.

An edge ``source -> derived`` (both version tags) says: whenever ``source`` is bumped,
bump ``derived`` too, in the same invalidation (same sequence number, same record, same
transaction). The walk is transitive and visits each tag once, so cycles end; it costs one
indexed lookup per tag bumped and per dependent reached, never a scan. The edges are
indexed by source: a dict in a process (:class:`MemoryEdges`), an indexed SQLite table in
the journal of a host store (:meth:`cacheplug.journal.Journal.reach`), so that every
process of the host walks the same edges.

An edge lives until its derived tag is bumped (the derived value is stale then; storing it
again records its edges again) or until it expires (``expires``, wall-clock seconds). An
expired edge is never followed; it is deleted when a walk meets it, and the rest are
reclaimed without a scan (a heap of expiries here, an index on ``expires`` in the journal,
pruned with every snapshot). Recording the same edge again keeps the later expiry, so an
edge outlives every value it was recorded for.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable

__all__ = ["MemoryEdges", "checked_edges", "closure", "later"]

Dependents = Callable[[list[str]], Iterable[tuple[str, float | None]]]


def checked_edges(
    derived: str, sources: Iterable[str], expires: float | None
) -> tuple[tuple[str, ...], float | None]:
    """The sources (deduplicated, without ``derived`` itself) and the expiry, validated.

    Raises :class:`TypeError` or :class:`ValueError`: a store holds plain strings and numbers.
    """
    if type(derived) is not str:
        raise TypeError(f"a derived tag is a str, got {derived!r}")
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, (int, float)) or math.isnan(expires):
            raise ValueError(f"expires is None or wall-clock seconds, got {expires!r}")
        expires = float(expires)
    out = dict.fromkeys(sources)
    for source in out:
        if type(source) is not str:
            raise TypeError(f"a source tag is a str, got {source!r}")
    out.pop(derived, None)  # a value never needs to be bumped because it was bumped
    return tuple(out), expires


def later(a: float | None, b: float | None) -> float | None:
    """The later of two expiries (``None``: never)."""
    return None if a is None or b is None else max(a, b)


def closure(tags: Iterable[str], dependents: Dependents, now: float) -> tuple[dict[str, None], bool]:
    """``tags`` and every tag reached from them through unexpired edges, in the order reached.

    ``dependents(frontier)`` yields ``(derived, expires)`` for each edge out of the tags in
    ``frontier``. Each tag is visited once, so a cycle ends. Also says whether an expired
    edge was met (the caller deletes it).
    """
    reached = dict.fromkeys(tags)
    frontier = list(reached)
    expired = False
    while frontier:
        found = []
        for derived, expires in dependents(frontier):
            if expires is not None and expires <= now:
                expired = True
            elif derived not in reached:
                reached[derived] = None
                found.append(derived)
        frontier = found
    return reached, expired


class MemoryEdges:
    """The dependency edges of one process's version store (guarded by the store's lock)."""

    def __init__(self) -> None:
        self._out: dict[str, dict[str, float | None]] = {}  # source -> {derived: expires}
        self._in: dict[str, set[str]] = {}  # derived -> sources
        self._count = 0
        # (expires, source, derived) of every expiring edge recorded; an item whose edge has
        # gone or has a later expiry by now is skipped when popped.
        self._expiring: list[tuple[float, str, str]] = []

    def __len__(self) -> int:
        return self._count

    def add(self, derived: str, sources: tuple[str, ...], expires: float | None, now: float) -> None:
        """Record an edge from each of ``sources`` to ``derived``."""
        self._prune(now)
        for source in sources:
            out = self._out.setdefault(source, {})
            if derived in out:
                expires_now = out[derived] = later(out[derived], expires)
            else:
                expires_now = out[derived] = expires
                self._in.setdefault(derived, set()).add(source)
                self._count += 1
            if expires_now is not None:
                heapq.heappush(self._expiring, (expires_now, source, derived))
        if len(self._expiring) > 2 * self._count + 64:  # items of gone edges: compact
            self._expiring = [
                (e, s, d) for s, out in self._out.items() for d, e in out.items() if e is not None
            ]
            heapq.heapify(self._expiring)

    def reach(self, tags: Iterable[str], now: float) -> tuple[str, ...]:
        """``tags`` and what is derived from them; the edges into every tag reached are dropped."""
        if not self._count:
            return tuple(tags)
        reached, _ = closure(tags, self._dependents, now)
        self._prune(now)
        for tag in reached:
            self._drop(tag)
        return tuple(reached)

    def _dependents(self, frontier: list[str]) -> Iterable[tuple[str, float | None]]:
        out = self._out
        for source in frontier:
            edges = out.get(source)
            if edges:
                yield from edges.items()

    def _remove(self, source: str, derived: str) -> None:
        out = self._out[source]
        del out[derived]
        if not out:
            del self._out[source]
        sources = self._in[derived]
        sources.discard(source)
        if not sources:
            del self._in[derived]
        self._count -= 1

    def _drop(self, derived: str) -> None:
        for source in list(self._in.get(derived, ())):
            self._remove(source, derived)

    def _prune(self, now: float) -> None:
        expiring = self._expiring
        while expiring and expiring[0][0] <= now:
            expires, source, derived = heapq.heappop(expiring)
            if self._out.get(source, {}).get(derived, -math.inf) == expires:
                self._remove(source, derived)
