"""Assertions about one cached call: served from the cache, computed, or invalidated.

Each helper says exactly what it checks, and none changes what it checks in a way that could
hide a bug:

* :func:`assert_hit` calls ``f(*args, **kwargs)`` once and asserts that this call counted
  exactly one hit and nothing else (so the function did not run);
* :func:`assert_miss` calls it once and asserts that it counted exactly one miss (the
  function ran and returned; the result is then stored as any miss's is, so an
  ``assert_hit`` right after passes);
* :func:`assert_invalidated` does not call ``f``: it asserts that no tier holds a fresh
  entry for the call, looking without promoting, counting or storing anything.

The counts are the function's own (``f.cache_info().stats``) in the cache it runs in now
(for a Streamlit ``cache_data`` function: those of the ``@cached`` function it is built on),
read just before and just after the call, so calls of ``f`` made at the same time by other
threads would be counted too: do not use the call helpers while other threads call ``f``.
The entry is looked up by the call's key in every tier of that cache, the way a call
looks, but without side effects. A failure raises :class:`AssertionError` naming the call,
its key, what the cache held before the call and the counts that moved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..envelope import MISS
from ..statistics import FunctionStats
from ..wrappers import BoundCachedFunction, CachedFunction

__all__ = ["aassert_hit", "aassert_miss", "assert_hit", "assert_invalidated", "assert_miss"]

_COUNTS = ("hits", "misses", "stale", "coalesced", "errors")


class _Call:
    """One call a helper checks: its cached function, arguments, key and what was cached."""

    def __init__(self, helper: str, f: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # An integration's function built on a @cached one (cache_data) names it so.
        cached = getattr(f, "__cacheplug_cached__", f)
        if not isinstance(cached, (CachedFunction, BoundCachedFunction)):
            raise TypeError(f"{helper}() takes a @cached function (or a bound cached method), got {f!r}")
        self.helper = helper
        self.f = cached
        self.args, self.kwargs = args, kwargs
        core = cached._self_core
        key_args = cached._key_args(args) if isinstance(cached, BoundCachedFunction) else args
        self.cache = cache = core.cache()
        binding = core.binding(cache)
        fkey, skey_fn = core.keys(cache, core.arguments(key_args, kwargs), key_args, kwargs)
        self.key = skey_fn()
        self._peek: Callable[[], Any] = lambda: cache.peek(binding, fkey, self.key)
        self.name = core.func.__qualname__

    def counts(self) -> dict[str, int]:
        stats: FunctionStats = self.f.cache_info().stats
        return {name: getattr(stats, name) for name in _COUNTS}

    def held(self) -> str:
        """What the cache holds for this call's key now, in words."""
        entry = self._peek()
        if entry is MISS:
            tiers = ", ".join(tier.name for tier in self.cache.tiers)
            return f"no fresh entry in any tier ({tiers})"
        where = getattr(entry, "tier", None) or (
            self.cache.memory.name if self.cache.memory is not None else "a tier"
        )
        now = self.cache.clock()
        expires = "never expires" if entry.expires is None else f"expires in {entry.expires - now:.3g} s"
        age = now - entry.created
        return f"a fresh entry in {where} (stored {age:.3g} s ago by the cache's clock; {expires})"

    def fresh(self) -> bool:
        return self._peek() is not MISS

    def call_text(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        text = f"{self.name}({', '.join(parts)})"
        return text if len(text) <= 200 else text[:197] + "..."

    def failure(self, wanted: str, got: str, lines: list[tuple[str, str]]) -> AssertionError:
        head = f"{self.helper}: {self.call_text()} {wanted}, but {got}."
        width = max(len(label) for label, _ in lines)
        body = "\n".join(f"  {label + ':':<{width + 1}} {text}" for label, text in lines)
        return AssertionError(f"{head}\n{body}")


def _moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in _COUNTS}


_WORDS = {
    "hits": "it was served from the cache (hit)",
    "misses": "it computed (miss)",
    "stale": "it was served a stale value (stale)",
    "coalesced": "it waited for another caller's computation (coalesced)",
    "errors": "its computation raised (error)",
}


def _outcome(moved: dict[str, int]) -> str:
    counted = [(name, n) for name, n in moved.items() if n]
    if not counted:
        return "no outcome was counted"
    if len(counted) == 1 and counted[0][1] == 1:
        return _WORDS[counted[0][0]]
    moves = ", ".join(f"{n:+d} {name}" for name, n in counted)
    return f"it counted {moves} (did other calls of the function run meanwhile?)"


def _expect(call: _Call, wanted: str, before: dict[str, int], held_before: str) -> None:
    """Raise unless the call counted exactly one ``wanted`` (``"hits"`` or ``"misses"``)."""
    __tracebackhide__ = True
    moved = _moved(before, call.counts())
    if moved == {name: int(name == wanted) for name in _COUNTS}:
        return
    if wanted == "hits":
        expectation = "was expected to be served from the cache without computing"
    else:
        expectation = "was expected to compute (a miss)"
    got = _outcome(moved)
    if not any(moved.values()) and not call.cache.enabled:
        why = call.cache.degraded
        got += (
            " — caching is off for this cache"
            + (f" (degraded: {why})" if why else " (enabled=False, or the cacheplug(enabled=False) marker)")
            + ", so the function ran plainly"
        )
    counted = ", ".join(f"{name} {moved[name]:+d}" for name in _COUNTS)
    raise call.failure(
        expectation,
        got,
        [
            ("key", call.key),
            ("before the call", held_before),
            ("after the call", call.held()),
            ("counted", counted),
        ],
    )


def assert_hit(f: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``f(*args, **kwargs)`` and assert it was served from the cache without computing.

    Passes when the call counted exactly one hit (from any tier) and no other outcome: a
    computation, a stale value served, or waiting for another caller's computation fail it.
    Returns what the call returned. Raises :class:`AssertionError` saying what happened
    instead, the call's key and what the cache held for it before and after the call.
    """
    __tracebackhide__ = True
    call = _Call("assert_hit", f, args, kwargs)
    before, held = call.counts(), call.held()
    value = f(*args, **kwargs)
    _expect(call, "hits", before, held)
    return value


def assert_miss(f: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Call ``f(*args, **kwargs)`` and assert it computed: exactly one miss counted.

    The function ran and returned (a call that raises propagates its exception). Its
    result is stored as any miss's is (unless ``ttl=0`` or ``cache_if`` refuse it), so this
    changes the cache the way the call would have anyway. Returns what the call returned.
    """
    __tracebackhide__ = True
    call = _Call("assert_miss", f, args, kwargs)
    before, held = call.counts(), call.held()
    value = f(*args, **kwargs)
    _expect(call, "misses", before, held)
    return value


async def aassert_hit(f: Any, /, *args: Any, **kwargs: Any) -> Any:
    """:func:`assert_hit` for an async cached function: awaits the call."""
    __tracebackhide__ = True
    call = _Call("aassert_hit", f, args, kwargs)
    before, held = call.counts(), call.held()
    value = await _awaitable(f(*args, **kwargs), call)
    _expect(call, "hits", before, held)
    return value


async def aassert_miss(f: Any, /, *args: Any, **kwargs: Any) -> Any:
    """:func:`assert_miss` for an async cached function: awaits the call."""
    __tracebackhide__ = True
    call = _Call("aassert_miss", f, args, kwargs)
    before, held = call.counts(), call.held()
    value = await _awaitable(f(*args, **kwargs), call)
    _expect(call, "misses", before, held)
    return value


def _awaitable(result: Any, call: _Call) -> Awaitable[Any]:
    if not hasattr(result, "__await__"):
        raise TypeError(
            f"{call.helper}() awaits the call, but {call.name} is not async: use {call.helper[1:]}()"
        )
    awaitable: Awaitable[Any] = result
    return awaitable


def assert_invalidated(f: Any, /, *args: Any, **kwargs: Any) -> None:
    """Assert that no tier holds a fresh entry for ``f(*args, **kwargs)``: the next call computes.

    Does not call ``f``: nothing is computed, stored, promoted or counted. It looks up the
    call's key in every tier of the cache ``f`` runs in now, judging freshness as a call
    would (expiry, tag and key versions). Passes as well when the call was never cached:
    to check that an invalidation removed something, assert the hit first
    (``assert_hit(f, 1); write(); assert_invalidated(f, 1)``).
    """
    __tracebackhide__ = True
    call = _Call("assert_invalidated", f, args, kwargs)
    if call.fresh():
        raise call.failure(
            "was expected to have no fresh entry (invalidated)",
            "the cache still serves one",
            [("key", call.key), ("held", call.held())],
        )
