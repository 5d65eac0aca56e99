"""The envelope every stored value travels in.

An :class:`Entry` holds the payload with its expiry, creation time, compute time, the
validity tags it carries (its own tags, the tags of what it depends on, its key's tag) and
``seq``: the host-wide invalidation sequence number as of which the entry is known fresh,
and ``incarnation``: the id of the version store that ``seq`` counts in (a rebuilt store
restarts its numbers under a new id). An entry is fresh while no tag it carries was
invalidated after ``seq`` (see ``cacheplug.versions``). A miss is the :data:`MISS`
sentinel, never ``None``.

Turning entries into bytes for the shared tiers (format version, signing) is the codec's
job: see ``cacheplug.codec``.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MISS", "Entry"]

_NEVER = float("inf")
_EMPTY: tuple[str, ...] = ()


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"

    def __bool__(self) -> bool:
        return False


MISS: Final[Any] = _Miss()


class Entry:
    """A cached value with its metadata.

    Memory-tier entries are kept by reference and also carry their place in the tier
    (``shelf``, ``fkey``), the second-chance bit ``ref`` of the eviction clock and ``hits``,
    the hits counted since the usage learner last read them (only a cache that learns,
    ``Cache(learn=True)``, counts them). An entry just read from a shared tier names it in
    ``tier`` (unset otherwise).
    """

    # ``expires`` is derived from ``deadline`` (a property, not a slot): one slot fewer pays
    # for ``hits``, so an entry costs the same bytes as before it had one.
    __slots__ = (
        "cost",
        "created",
        "deadline",
        "fkey",
        "hits",
        "incarnation",
        "ref",
        "seq",
        "shelf",
        "skey",
        "tags",
        "tier",
        "value",
    )

    def __init__(
        self,
        value: Any,
        created: float,
        expires: float | None,
        seq: int,
        tags: tuple[str, ...] = _EMPTY,
        cost: float = 0.0,
        skey: str | None = None,
        incarnation: str = "",
    ) -> None:
        self.value = value
        self.created = created
        # The expiry for the hit path: one comparison, no test for None.
        self.deadline = _NEVER if expires is None else expires
        self.seq = seq
        self.tags = tags
        # Compute time in whole milliseconds: small ints are shared objects in CPython, so
        # recording it allocates nothing for computations under a quarter of a second. The
        # test skips int() (a tenth of this constructor) for the many that take under 1 ms.
        self.cost = int(cost * 1000) if cost >= 0.001 else 0
        self.skey = skey
        self.incarnation = incarnation
        self.shelf: Any = None
        self.fkey: Any = None
        self.ref = False
        self.hits = 0

    @property
    def expires(self) -> float | None:
        """When the entry expires, by the cache's clock (``None``: never)."""
        deadline = self.deadline
        return None if deadline == _NEVER else deadline

    @expires.setter
    def expires(self, expires: float | None) -> None:
        self.deadline = _NEVER if expires is None else expires

    @property
    def cost_seconds(self) -> float:
        """How long the value took to compute, in seconds (millisecond resolution)."""
        return self.cost / 1000

    def remaining(self, now: float) -> float | None:
        """Seconds left before expiry (``None`` when the entry never expires)."""
        return None if self.expires is None else self.expires - now

    def copy_for(self, skey: str | None = None) -> Entry:
        """A detached copy (same payload) to place in another tier or shelf."""
        copy = Entry(
            self.value,
            self.created,
            self.expires,
            self.seq,
            self.tags,
            0.0,
            skey or self.skey,
            self.incarnation,
        )
        copy.cost = self.cost
        return copy

    def __repr__(self) -> str:
        return f"Entry(value={self.value!r}, expires={self.expires!r}, seq={self.seq}, tags={self.tags!r})"
