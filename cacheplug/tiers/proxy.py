"""Proxy tiers: behaviour around a storage by composition, one wrapper per concern.

A :class:`ProxyTier` wraps a tier and passes every call on; a subclass overrides what it
changes. Proxies stack: ``FaultTolerant(CircuitBreaker(DiskTier()), ledger)`` stops
calling a failing disk for a while, and answers its faults as misses.

Guarantees:

- **Capabilities pass through exactly.** A proxy has an optional capability
  (:mod:`cacheplug.tiers.capabilities`: ``keys()``, ``check()``, ``versions()``, the
  damage counters, the async methods) if and only if the tier it wraps has it, whatever
  the proxy class defines (``withheld`` names the ones a proxy deliberately hides). So
  ``hasattr`` and ``isinstance(proxy, KeyListing)`` tell the truth through any stack.
  ``ProxyTier.__init__`` gives each instance a class made for the capabilities of its
  tier (a subclass of the proxy class, cached per capability set); ``isinstance`` works
  as usual, ``type(proxy) is FaultTolerant`` does not. A member a proxy class defines for an
  optional capability reaches its tier through ``self.tier``, not ``super()``.
- **The hit path stays cheap**: ``get`` is a plain method (``FaultTolerant.get`` adds one
  ``try`` and one call).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, ClassVar, cast

from ..envelope import MISS, Entry
from ..errors import ConfigurationError, SerializationError
from ..faults import FaultLedger
from ..versions import Versions
from .base import Tier
from .capabilities import (
    OPTIONAL_MEMBERS,
    AsyncTier,
    CountsDamage,
    HasVersions,
    KeyListing,
    Measured,
    SelfChecking,
)

__all__ = ["FaultTolerant", "ProxyTier"]


class ProxyTier:
    """A tier that passes every call on to ``tier``; subclass it and override what changes.

    ``name`` and ``shared`` are the wrapped tier's. The optional capabilities of the
    wrapped tier (and only those) are passed on too, except the names in ``withheld``.
    """

    withheld: ClassVar[frozenset[str]] = frozenset()
    # Members for optional capabilities, by name: taken out of each proxy class's body and
    # given only to the classes made for tiers that have them (see _shape).
    _own_optional: ClassVar[dict[str, Any]] = {}
    _optional: ClassVar[dict[str, Any]] = {}
    _shapes: ClassVar[dict[frozenset[str], type[ProxyTier]]] = {}

    tier: Tier
    name: str
    shared: bool

    def __init__(self, tier: Tier) -> None:
        if not isinstance(tier, Tier):
            raise ConfigurationError(
                f"{type(self).__name__} wraps a tier (get/set/delete/clear), got {tier!r}"
            )
        # Same layout, one more level: the class that has exactly this tier's capabilities.
        self.__class__ = _shape(type(self), tier)
        self.tier = tier
        self.name = tier.name
        self.shared = tier.shared

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_shape_of" not in cls.__dict__:
            _collect(cls)

    # -- the tier protocol ------------------------------------------------------------------

    def get(self, key: str) -> Entry | Any:
        return self.tier.get(key)

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        self.tier.set(key, entry, expire)

    def delete(self, key: str) -> bool:
        return self.tier.delete(key)

    def clear(self) -> None:
        self.tier.clear()

    def close(self) -> None:
        self.tier.close()

    # -- optional capabilities: present only when the wrapped tier has them -----------------

    def versions(self) -> Versions:
        return cast(HasVersions, self.tier).versions()

    def check(self) -> bool:
        return cast(SelfChecking, self.tier).check()

    def keys(self) -> Iterable[str]:
        return cast(KeyListing, self.tier).keys()

    @property
    def corrupt(self) -> int:
        return cast(CountsDamage, self.tier).corrupt

    @property
    def tampered(self) -> int:
        return cast(CountsDamage, self.tier).tampered

    @property
    def foreign(self) -> int:
        return cast(CountsDamage, self.tier).foreign

    def measure(self) -> tuple[int | None, int | None]:
        return cast(Measured, self.tier).measure()

    async def aget(self, key: str) -> Entry | Any:
        return await cast(AsyncTier, self.tier).aget(key)

    async def aset(self, key: str, entry: Entry, expire: float | None = None) -> None:
        await cast(AsyncTier, self.tier).aset(key, entry, expire)

    async def adelete(self, key: str) -> bool:
        return await cast(AsyncTier, self.tier).adelete(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.tier!r})"


def _collect(cls: type[ProxyTier]) -> None:
    """Take the optional-capability members out of ``cls``'s body, into its tables."""
    own = {name: cls.__dict__[name] for name in OPTIONAL_MEMBERS if name in cls.__dict__}
    for name in own:
        delattr(cls, name)
    cls._own_optional = own
    merged: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        merged.update(klass.__dict__.get("_own_optional", {}))
    cls._optional = merged
    cls._shapes = {}


_collect(ProxyTier)
_shapes_lock = threading.Lock()


def _shape(cls: type[ProxyTier], tier: Any) -> type[ProxyTier]:
    """The subclass of ``cls`` with exactly the optional members that ``tier`` has."""
    cls = cls.__dict__.get("_shape_of", cls)
    present = frozenset(name for name in cls._optional if name not in cls.withheld and hasattr(tier, name))
    shape = cls._shapes.get(present)
    if shape is None:
        namespace: dict[str, Any] = {name: cls._optional[name] for name in present}
        namespace.update(
            __module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__, _shape_of=cls
        )
        made = type(cls.__name__, (cls,), namespace)
        with _shapes_lock:
            shape = cls._shapes.setdefault(present, made)
    return shape


class FaultTolerant(ProxyTier):
    """Answers every fault of ``tier`` as "nothing here", after reporting it to ``ledger``.

    Any ``Exception`` from the wrapped tier is counted and logged by the
    :class:`~cacheplug.faults.FaultLedger` (as ``"<tier name>.<operation>"``; the async
    methods count as their sync twins) and answered: ``get`` -> ``MISS``, ``set`` -> nothing
    stored, ``delete`` -> ``False``, ``keys`` -> no keys, ``check`` -> ``False``. A
    :class:`~cacheplug.errors.SerializationError` from ``set`` is not a fault of the tier
    (the value cannot be stored anywhere shared) and propagates. ``clear``, ``close`` and
    ``versions`` propagate their errors: they are explicit operations whose caller must
    know that they failed.
    """

    def __init__(self, tier: Tier, ledger: FaultLedger) -> None:
        super().__init__(tier)
        if not isinstance(ledger, FaultLedger):
            raise ConfigurationError(f"FaultTolerant(tier, ledger) takes a FaultLedger, got {ledger!r}")
        self.ledger = ledger

    def get(self, key: str) -> Entry | Any:
        try:
            return self.tier.get(key)
        except Exception as exc:
            self.ledger.report(self.name, "get", exc)
            return MISS

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        try:
            self.tier.set(key, entry, expire)
        except SerializationError:
            raise
        except Exception as exc:
            self.ledger.report(self.name, "set", exc)

    def delete(self, key: str) -> bool:
        try:
            return self.tier.delete(key)
        except Exception as exc:
            self.ledger.report(self.name, "delete", exc)
            return False

    def keys(self) -> Iterable[str]:
        try:
            # Listed here, so that a fault met while iterating is answered too.
            return list(cast(KeyListing, self.tier).keys())
        except Exception as exc:
            self.ledger.report(self.name, "keys", exc)
            return []

    def check(self) -> bool:
        try:
            return cast(SelfChecking, self.tier).check()
        except Exception as exc:
            self.ledger.report(self.name, "check", exc)
            return False

    def measure(self) -> tuple[int | None, int | None]:
        try:
            return cast(Measured, self.tier).measure()
        except Exception as exc:
            self.ledger.report(self.name, "measure", exc)
            return None, None

    async def aget(self, key: str) -> Entry | Any:
        try:
            return await cast(AsyncTier, self.tier).aget(key)
        except Exception as exc:
            self.ledger.report(self.name, "get", exc)
            return MISS

    async def aset(self, key: str, entry: Entry, expire: float | None = None) -> None:
        try:
            await cast(AsyncTier, self.tier).aset(key, entry, expire)
        except SerializationError:
            raise
        except Exception as exc:
            self.ledger.report(self.name, "set", exc)

    async def adelete(self, key: str) -> bool:
        try:
            return await cast(AsyncTier, self.tier).adelete(key)
        except Exception as exc:
            self.ledger.report(self.name, "delete", exc)
            return False

    def __repr__(self) -> str:
        return f"FaultTolerant({self.tier!r}, {self.ledger!r})"
