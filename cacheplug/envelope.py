"""The envelope every stored value travels in, and its serialized form.

An :class:`Entry` holds the payload with its expiry, creation time, compute time, the
validity tags it carries (its own tags, the tags of what it depends on, its key's tag) and
``seq``: the host-wide invalidation sequence number as of which the entry is known fresh.
An entry is fresh while no tag it carries was invalidated after ``seq`` (see
``cacheplug.versions``). A miss is the :data:`MISS` sentinel, never ``None``.

Serialized entries start with a format version so that a later release can read, or
cleanly refuse, what an older one wrote.
"""

from __future__ import annotations

import pickle
from typing import Any, Final

from .errors import SerializationError

__all__ = ["FORMAT", "MISS", "Entry", "dumps", "loads"]

FORMAT: Final = 1
_NEVER = float("inf")
_new_entry = object.__new__
_PICKLE_PROTOCOL: Final = 5
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
    (``shelf``, ``fkey``) and the second-chance bit ``ref`` of the eviction clock.
    """

    __slots__ = (
        "cost",
        "created",
        "deadline",
        "expires",
        "fkey",
        "ref",
        "seq",
        "shelf",
        "skey",
        "tags",
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
    ) -> None:
        self.value = value
        self.created = created
        self.expires = expires
        # ``expires`` for the hit path: one comparison, no test for None.
        self.deadline = _NEVER if expires is None else expires
        self.seq = seq
        self.tags = tags
        # Compute time in whole milliseconds: small ints are shared objects in CPython, so
        # recording it allocates nothing for computations under a quarter of a second.
        self.cost = int(cost * 1000)
        self.skey = skey
        self.shelf: Any = None
        self.fkey: Any = None
        self.ref = False

    @property
    def cost_seconds(self) -> float:
        """How long the value took to compute, in seconds (millisecond resolution)."""
        return self.cost / 1000

    def remaining(self, now: float) -> float | None:
        """Seconds left before expiry (``None`` when the entry never expires)."""
        return None if self.expires is None else self.expires - now

    def copy_for(self, skey: str | None = None) -> Entry:
        """A detached copy (same payload) to place in another tier or shelf."""
        copy = Entry(self.value, self.created, self.expires, self.seq, self.tags, 0.0, skey or self.skey)
        copy.cost = self.cost
        return copy

    def __repr__(self) -> str:
        return f"Entry(value={self.value!r}, expires={self.expires!r}, seq={self.seq}, tags={self.tags!r})"


def dumps(entry: Entry) -> bytes:
    """Serialize ``entry`` for a shared tier; raise :class:`SerializationError` if it can't be."""
    record = (FORMAT, entry.value, entry.created, entry.expires, entry.seq, entry.tags, entry.cost)
    try:
        return pickle.dumps(record, protocol=_PICKLE_PROTOCOL)
    except Exception as exc:
        raise SerializationError(
            f"value of type {type(entry.value).__qualname__} cannot be pickled: {exc}"
        ) from exc


def loads(data: bytes, skey: str | None = None) -> Entry:
    """Rebuild an entry; raise :class:`SerializationError` for corrupt or foreign data."""
    try:
        fmt, value, created, expires, seq, tags, cost = pickle.loads(data)
    except Exception as exc:
        raise SerializationError(f"stored entry cannot be read back: {exc!r}") from exc
    if fmt != FORMAT:
        raise SerializationError(f"stored entry has format {fmt!r}, this release reads {FORMAT}")
    # Built field by field: this runs on every read from a shared tier.
    entry = _new_entry(Entry)
    entry.value, entry.created, entry.expires, entry.seq, entry.tags = value, created, expires, seq, tags
    entry.deadline = _NEVER if expires is None else expires
    entry.cost, entry.skey, entry.shelf, entry.fkey, entry.ref = cost, skey, None, None, False
    return entry
