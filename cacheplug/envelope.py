"""The envelope every stored value travels in.

An :class:`Entry` holds the payload with its expiry, creation time, compute time, the
validity tags it carries (its own tags, the tags of what it depends on, its key's tag) and
``seq``: the host-wide invalidation sequence number as of which the entry is known fresh,
and ``incarnation``: the id of the version store that ``seq`` counts in (a rebuilt store
restarts its numbers under a new id). An entry is fresh while no tag it carries was
invalidated after ``seq`` (see ``cacheplug.versions``). A miss is the :data:`MISS`
sentinel, never ``None``.

Freshness options (``stale_ttl=``, ``stale_if_error=``, ``early_refresh=``; judged by
``cacheplug.cache.judge``) cost a plain entry nothing: its ``deadline`` is its expiry, and
its stale windows are the class's ``-inf``. An entry stored under them is a
:class:`PolicyEntry`, which keeps its expiry apart (``expiry``) so that ``deadline`` can be
XFetch's ``refresh_from = expiry - 10·δ·β`` (the moment until which a hit needs no further
thought; the judge reads ``δ·β`` back as ``(expiry - deadline) / 10``), and has its stale
windows (``stale_until``, ``error_until``).

Turning entries into bytes for the shared tiers (format version, signing) is the codec's
job: see ``cacheplug.codec``.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MISS", "Entry", "PolicyEntry"]

_NEVER = float("inf")
_NO_WINDOW = float("-inf")
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

    ``stale_until`` and ``error_until``: until when the entry may be served after its
    expiry while it is refreshed (``stale_ttl``) or when recomputing it fails
    (``stale_if_error``); ``-inf`` here, set on a :class:`PolicyEntry`.
    """

    # Class attributes, not slots: a plain entry has no stale window and stores none (the
    # memory tier's bytes per entry stay what they were). PolicyEntry's slots shadow them.
    stale_until: float = _NO_WINDOW
    error_until: float = _NO_WINDOW

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
        """A detached copy (same payload and freshness windows) to place in another tier or shelf."""
        copy = type(self)(
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
        if isinstance(copy, PolicyEntry):
            copy.deadline, copy.stale_until, copy.error_until = (
                self.deadline,
                self.stale_until,
                self.error_until,
            )
        return copy

    def windows(self) -> tuple[float, float, float] | None:
        """``(deadline, stale_until, error_until)`` of an entry stored under freshness options
        (what a shared tier keeps, for another process to judge it alike), else ``None``."""
        return None

    def __repr__(self) -> str:
        return f"Entry(value={self.value!r}, expires={self.expires!r}, seq={self.seq}, tags={self.tags!r})"


class PolicyEntry(Entry):
    """An entry stored under freshness options: its ``expiry`` apart from its ``deadline``
    (``refresh_from`` with ``early_refresh``), and its stale windows ``stale_until``
    (``stale_ttl``) and ``error_until`` (``stale_if_error``), all on the cache's clock."""

    __slots__ = ("error_until", "expiry", "stale_until")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expiry = self.deadline
        self.stale_until = self.error_until = _NO_WINDOW

    @property
    def expires(self) -> float | None:
        """When the entry expires, by the cache's clock (``None``: never)."""
        expiry = self.expiry
        return None if expiry == _NEVER else expiry

    @expires.setter
    def expires(self, expires: float | None) -> None:
        self.expiry = self.deadline = _NEVER if expires is None else expires

    def windows(self) -> tuple[float, float, float] | None:
        return (self.deadline, self.stale_until, self.error_until)
