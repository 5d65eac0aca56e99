"""The tier protocol: the whole contract between the coordinator and a storage."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..envelope import Entry

__all__ = ["Tier"]


@runtime_checkable
class Tier(Protocol):
    """One storage of entries under string keys.

    ``get`` returns an :class:`~cacheplug.envelope.Entry` or the ``MISS`` sentinel and never
    judges freshness (expiry and versions are the coordinator's, through its clock);
    ``set`` stores an entry, with ``expire`` as a hint for the storage's own reclamation;
    ``delete`` says whether something was removed; ``clear`` empties the whole storage.
    A tier may raise on faults: the coordinator counts them and serves from elsewhere.
    ``shared`` says whether other processes see the tier's entries. What a tier can do
    beyond this is declared by the protocols of :mod:`cacheplug.tiers.capabilities`.
    """

    name: str
    shared: bool

    def get(self, key: str) -> Entry | Any: ...

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None: ...

    def delete(self, key: str) -> bool: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...
