"""Test doubles for tiers, each a small proxy over a real tier (on :class:`cacheplug.ProxyTier`).

- :class:`BrokenTier`: the chosen operations raise (a broken disk, a dead server);
- :class:`CountingTier`: counts the calls made on each operation;
- :class:`GatedTier`: stops a chosen operation on a :class:`Gate` until the test lets it go;
- :class:`TierOnly`: the tier without any optional capability (no ``versions()``...).

:class:`FailingStore` is not a tier: it stands in for a ``DiskTier``'s diskcache store whose
database went away, so that the real tier meets real SQLite errors.

Being proxies, the doubles have the optional capabilities of the tier they wrap, and only
those (``TierOnly`` withholds them all).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from cacheplug import MemoryTier, ProxyTier, Tier
from cacheplug.envelope import Entry
from cacheplug.tiers.capabilities import OPTIONAL_MEMBERS, KeyListing, SelfChecking

WAIT = 30.0  # seconds a gate may take before a test gives up (never reached when correct)
OPS = ("get", "set", "delete", "clear", "keys")


class BrokenTier(ProxyTier):
    """Raises ``error`` on the operations in ``ops``; the other operations reach ``tier``.

    ``ops`` defaults to every operation but ``check``; ``tier`` to a fresh :class:`MemoryTier`;
    ``name`` replaces the tier's name.
    ``attempts`` counts the calls that raised. ``error`` may be changed at any time.
    """

    def __init__(
        self,
        tier: Tier | None = None,
        *,
        ops: Iterable[str] = OPS,
        error: Exception | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(tier if tier is not None else MemoryTier())
        if name is not None:
            self.name = name
        self.ops = frozenset(ops)
        self.error: Exception = error if error is not None else OSError("storage unreachable")
        self.attempts = 0

    def _maybe_fail(self, op: str) -> None:
        if op in self.ops:
            self.attempts += 1
            raise self.error

    def get(self, key: str) -> Entry | Any:
        self._maybe_fail("get")
        return self.tier.get(key)

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        self._maybe_fail("set")
        self.tier.set(key, entry, expire)

    def delete(self, key: str) -> bool:
        self._maybe_fail("delete")
        return self.tier.delete(key)

    def clear(self) -> None:
        self._maybe_fail("clear")
        self.tier.clear()

    def keys(self) -> Iterable[str]:
        self._maybe_fail("keys")
        assert isinstance(self.tier, KeyListing)
        return self.tier.keys()

    def check(self) -> bool:
        self._maybe_fail("check")
        assert isinstance(self.tier, SelfChecking)
        return self.tier.check()


class CountingTier(ProxyTier):
    """Counts every call made on ``tier``, per operation, in ``calls``."""

    def __init__(self, tier: Tier) -> None:
        super().__init__(tier)
        self.calls: dict[str, int] = dict.fromkeys(OPS, 0)

    def reset(self) -> None:
        for op in self.calls:
            self.calls[op] = 0

    def get(self, key: str) -> Entry | Any:
        self.calls["get"] += 1
        return self.tier.get(key)

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        self.calls["set"] += 1
        self.tier.set(key, entry, expire)

    def delete(self, key: str) -> bool:
        self.calls["delete"] += 1
        return bool(self.tier.delete(key))

    def clear(self) -> None:
        self.calls["clear"] += 1
        self.tier.clear()

    def keys(self) -> Iterable[str]:
        self.calls["keys"] += 1
        assert isinstance(self.tier, KeyListing)
        return list(self.tier.keys())


def wait(event: threading.Event, what: str) -> None:
    """Wait for ``event`` or fail the test (a deadlock must not hang the suite)."""
    if not event.wait(WAIT):
        raise AssertionError(f"timed out waiting for {what}")


class Gate:
    """Stops one thread at a chosen point until the test lets it go."""

    def __init__(self) -> None:
        self.armed: Any = None
        self.reached = threading.Event()
        self.release = threading.Event()

    def arm(self, key: Any) -> None:
        self.reached.clear()
        self.release.clear()
        self.armed = key

    def check(self, key: Any) -> None:
        if self.armed is not None and self.armed == key:
            self.armed = None
            self.reached.set()
            wait(self.release, "the test to release the gate")


class GatedTier(ProxyTier):
    """Stops an operation in ``ops`` on ``gate`` (armed with ``(op, key)``) before it reaches ``tier``."""

    def __init__(self, tier: Tier, gate: Gate, ops: Iterable[str] = ("set",)) -> None:
        super().__init__(tier)
        self.gate = gate
        self.ops = frozenset(ops)

    def _pass(self, op: str, key: str) -> None:
        if op in self.ops:
            self.gate.check((op, key))

    def get(self, key: str) -> Entry | Any:
        self._pass("get", key)
        return self.tier.get(key)

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        self._pass("set", key)
        self.tier.set(key, entry, expire)

    def delete(self, key: str) -> bool:
        self._pass("delete", key)
        return self.tier.delete(key)


class TierOnly(ProxyTier):
    """The wrapped tier's storage without its optional capabilities.

    Without ``versions()`` a cache over it keeps process-local versions.
    """

    withheld = frozenset(OPTIONAL_MEMBERS)


class FailingStore:
    """Stands in for a DiskTier's diskcache store whose database went away."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

        return fail
