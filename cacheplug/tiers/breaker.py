"""The circuit breaker: stop calling a tier that keeps failing, then try it again.

A tier that is down often fails slowly (a lock timeout, a network timeout): calling it on
every request makes every request pay that wait. :class:`CircuitBreaker` counts
consecutive failures; after ``failures`` of them it *opens* and answers every call with
:class:`~cacheplug.errors.TierUnavailable` at once, without calling the tier, for
``reset_after`` seconds. Then it is *half-open*: one trial call goes through (the others
still fail at once); its success closes the breaker, its failure opens it again.

It raises rather than answering a miss, so that it composes: wrapped in
:class:`~cacheplug.tiers.proxy.FaultTolerant`, its refusals are counted and logged as
faults like any other, and the call is served from another tier or computed.

A :class:`~cacheplug.errors.SerializationError` is a fault of the value, not of the tier:
it neither counts as a failure nor as a success. ``check()``, ``versions()`` and
``close()`` are passed on untouched.

Thread-safe: state changes take a lock; a call while the tier is healthy (closed, no
failure since the last success) takes none and costs one flag test over the tier's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from ..envelope import Entry
from ..errors import ConfigurationError, SerializationError, TierUnavailable
from .base import Tier
from .capabilities import AsyncTier, KeyListing
from .proxy import ProxyTier

__all__ = ["CircuitBreaker"]

T = TypeVar("T")


class CircuitBreaker(ProxyTier):
    """Opens after ``failures`` consecutive failures of ``tier``; tries again after ``reset_after`` s.

    ``clock``: monotonic seconds. :attr:`state` is ``"closed"``, ``"open"`` or
    ``"half-open"``; :attr:`opened` counts how many times the breaker opened.
    """

    def __init__(
        self,
        tier: Tier,
        failures: int = 5,
        reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(tier)
        if not isinstance(failures, int) or isinstance(failures, bool) or failures < 1:
            raise ConfigurationError(f"CircuitBreaker failures must be an int >= 1, got {failures!r}")
        if not isinstance(reset_after, int | float) or isinstance(reset_after, bool) or reset_after <= 0:
            raise ConfigurationError(
                f"CircuitBreaker reset_after must be positive seconds, got {reset_after!r}"
            )
        self.failures = failures
        self.reset_after = float(reset_after)
        self.opened = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0  # consecutive failures
        self._open_until: float | None = None  # None: closed
        self._healthy = True  # closed with no failure since the last success: calls go straight through
        self._trial = False  # a half-open trial call is in flight
        self._last: BaseException | None = None

    @property
    def state(self) -> str:
        """``"closed"`` (calls go through), ``"open"`` (refused) or ``"half-open"`` (one trial)."""
        until = self._open_until
        if until is None:
            return "closed"
        return "open" if self._clock() < until else "half-open"

    # -- the state machine ------------------------------------------------------------------

    def _admit(self) -> bool:
        """Called while not closed: True for the one trial call, False if closed meanwhile."""
        with self._lock:
            until = self._open_until
            if until is None:
                return False
            if self._trial or self._clock() < until:
                raise TierUnavailable(
                    f"the {self.name} tier failed {self.failures} times in a row (last: {self._last!r}); "
                    f"its circuit breaker refuses calls for {self.reset_after:g} s, then tries one. "
                    f"Calls are served from the other tiers or computed meanwhile; fix the cause above"
                )
            self._trial = True
            return True

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._last = exc
            self._count += 1
            self._trial = False
            # A failed trial (or a late failure while open) opens again for a full period.
            self._healthy = False
            if self._open_until is not None or self._count >= self.failures:
                if self._open_until is None:
                    self.opened += 1
                self._open_until = self._clock() + self.reset_after

    def _succeeded(self) -> None:
        with self._lock:
            self._count = 0
            self._open_until = None
            self._trial = False
            self._healthy = True

    def _end_trial(self, trial: bool) -> None:
        if trial:
            with self._lock:
                self._trial = False

    def _call(self, call: Callable[..., T], *args: Any) -> T:
        trial = not self._healthy and self._open_until is not None and self._admit()
        try:
            result = call(*args)
        except SerializationError:
            self._end_trial(trial)
            raise
        except Exception as exc:
            self._failed(exc)
            raise
        if not self._healthy:
            self._succeeded()
        return result

    async def _acall(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        trial = not self._healthy and self._open_until is not None and self._admit()
        try:
            result = await call(*args)
        except SerializationError:
            self._end_trial(trial)
            raise
        except Exception as exc:
            self._failed(exc)
            raise
        if not self._healthy:
            self._succeeded()
        return result

    # -- the tier protocol, through the breaker ---------------------------------------------

    def get(self, key: str) -> Entry | Any:
        if not self._healthy:
            return self._call(self.tier.get, key)
        # The healthy path of _call(), inlined: this is every lower-tier read.
        try:
            return self.tier.get(key)
        except Exception as exc:
            self._failed(exc)
            raise

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        self._call(self.tier.set, key, entry, expire)

    def delete(self, key: str) -> bool:
        return self._call(self.tier.delete, key)

    def clear(self) -> None:
        self._call(self.tier.clear)

    def keys(self) -> Iterable[str]:
        return self._call(lambda: list(cast(KeyListing, self.tier).keys()))

    async def aget(self, key: str) -> Entry | Any:
        return await self._acall(cast(AsyncTier, self.tier).aget, key)

    async def aset(self, key: str, entry: Entry, expire: float | None = None) -> None:
        await self._acall(cast(AsyncTier, self.tier).aset, key, entry, expire)

    async def adelete(self, key: str) -> bool:
        return await self._acall(cast(AsyncTier, self.tier).adelete, key)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.tier!r}, state={self.state!r})"
