"""Optional tier capabilities, each declared by one small runtime-checkable Protocol.

The :class:`~cacheplug.tiers.Tier` protocol is all a storage must offer. A tier that can do
more says so by having the members of one of these protocols, and the coordinator asks
with ``isinstance(tier, KeyListing)`` rather than probing with ``getattr``. A proxy tier
(:class:`~cacheplug.tiers.proxy.ProxyTier`) has a capability exactly when the tier it
wraps has it, so wrapping never adds or hides one by accident.

``isinstance`` against a runtime-checkable protocol checks that the members exist, not
their signatures; the static types are checked by mypy where a tier is used as one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from ..envelope import Entry
from ..versions import Versions

__all__ = [
    "OPTIONAL_MEMBERS",
    "AsyncTier",
    "CountsDamage",
    "HasVersions",
    "KeyListing",
    "Measured",
    "SelfChecking",
]


@runtime_checkable
class HasVersions(Protocol):
    """A tier that keeps a version store beside its entries (the host's, for ``DiskTier``).

    A cache over such a tier judges entries against this store, so that every cache and
    process using the tier sees the same invalidations.
    """

    def versions(self) -> Versions:
        """The version store kept with this tier's entries."""
        ...


@runtime_checkable
class SelfChecking(Protocol):
    """A tier that can notice its storage was deleted or replaced, and reopen it."""

    def check(self) -> bool:
        """Reopen the storage if it was deleted or replaced; True if it did.

        Cheap enough for a background watcher to call about once a second.
        """
        ...


@runtime_checkable
class KeyListing(Protocol):
    """A tier that can list its keys (for sweeps and tools; O(entries), never on a call)."""

    def keys(self) -> Iterable[str]:
        """Every key stored in the tier."""
        ...


@runtime_checkable
class CountsDamage(Protocol):
    """A tier that counts the rows it could not read back, by kind.

    ``corrupt``: unreadable bytes; ``tampered``: a signature that did not verify;
    ``foreign``: a format another release wrote (left alone for it).
    """

    @property
    def corrupt(self) -> int: ...

    @property
    def tampered(self) -> int: ...

    @property
    def foreign(self) -> int: ...


@runtime_checkable
class Measured(Protocol):
    """A tier that can tell how many entries and bytes it holds, cheaply (for stats)."""

    def measure(self) -> tuple[int | None, int | None]:
        """``(entries, bytes)``; ``None`` for what it does not know."""
        ...


@runtime_checkable
class AsyncTier(Protocol):
    """A tier with native async operations, awaited by the async drivers instead of the sync ones."""

    async def aget(self, key: str) -> Entry | Any:
        """As ``get``: an :class:`~cacheplug.envelope.Entry` or ``MISS``."""
        ...

    async def aset(self, key: str, entry: Entry, expire: float | None = None) -> None:
        """As ``set``."""
        ...

    async def adelete(self, key: str) -> bool:
        """As ``delete``."""
        ...


# Every member of the protocols above, in one place: what a proxy passes on exactly when
# the tier it wraps has it (a test checks this list against the protocols).
OPTIONAL_MEMBERS: tuple[str, ...] = (
    "versions",
    "check",
    "keys",
    "corrupt",
    "tampered",
    "foreign",
    "measure",
    "aget",
    "aset",
    "adelete",
)
