"""Invalidation as one cache applies it: record, fail closed, drop, tell.

An invalidation is a set of tags and keys. Inside ``batch()`` it is collected and applied
when the block exits; with ``Cache(debounce=...)`` it waits for the window; otherwise it is
applied now: the version store records it for every process of the host (one bump: O(tags
+ keys), whatever the number of entries), the keys are removed from every tier, and the
``invalidated`` signal is sent with the user's tags and keys.

Fails closed: when the bump cannot be recorded, this process stops serving anything older
than now (memory is emptied; older entries read from a shared tier are stale), then
:class:`~cacheplug.errors.InvalidationError` is raised.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from .. import invalidation as inv
from .. import signals, state
from ..envelope import MISS
from ..errors import ConfigurationError, InvalidationError
from . import lifecycle
from .calls import Binding, Tally
from .flow import arun
from .naming import split_tags
from .steps import CHAINED, RECORD, sync_twin
from .tiering import Steps

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["Invalidator", "check_keys", "check_tags", "split_tags"]


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise ConfigurationError(
            f"tags must be a list of strings, not the string {tags!r}: write tags=[{tags!r}]"
        )
    out = tuple(tags)
    for tag in out:
        if not isinstance(tag, str) or not tag or tag.startswith("\x00"):
            raise ConfigurationError(f"a tag must be a non-empty str not starting with NUL, got {tag!r}")
    return out


def check_keys(keys: Iterable[str], what: str = "keys") -> tuple[str, ...]:
    if isinstance(keys, str):
        raise ConfigurationError(
            f"{what} must be a list of strings, not the string {keys!r}: write {what}=[{keys!r}]"
        )
    if not isinstance(keys, Iterable):
        raise ConfigurationError(f"{what} must be a list of strings, got {keys!r}")
    out = tuple(keys)
    for key in out:
        if not isinstance(key, str):
            raise ConfigurationError(f"a key must be a str, got {key!r}")
    return out


class Invalidator:
    """How one cache applies invalidations (see the module docstring).

    :meth:`record` and :meth:`apply_steps` are step generators (the async driver runs them);
    their sync twins ``record_now`` and ``apply_steps_now`` are generated from their text.
    """

    apply_steps_now: Callable[..., None]
    record_now: Callable[..., None]

    def __init__(self, cache: Cache, debounce: float | None) -> None:
        self._cache = cache
        self.debouncer = None if debounce is None else inv.Debouncer(debounce, self.apply)
        self.count = Tally()
        self.rules: list[inv.InvalidationRule] = []

    def add_rule(self, rule: inv.InvalidationRule) -> None:
        if not isinstance(rule, inv.InvalidationRule):
            raise ConfigurationError("add_rule takes an InvalidationRule(entity, tags=...)")
        self.rules.append(rule)

    def write_tags(self, entity: str, id: Any = None) -> list[str]:
        return inv.write_tags(entity, id, [*state.RULES, *self.rules])

    def request(self, tags: builtins.set[str], keys: builtins.set[str]) -> bool:
        """Apply an invalidation now, or hand it to the enclosing batch or the debouncer.

        Returns True when it was applied now.
        """
        if self._deferred(tags, keys):
            return False
        self.apply(tags, keys)
        return True

    async def arequest(self, tags: builtins.set[str], keys: builtins.set[str]) -> None:
        """:meth:`request` for async callers: recorded by the async driver, off the event loop."""
        if not self._deferred(tags, keys):
            await arun(self.apply_steps(tags, keys))

    def _deferred(self, tags: builtins.set[str], keys: builtins.set[str]) -> bool:
        bucket = inv.pending_for(self._cache)
        if bucket is not None:
            bucket[0].update(tags)
            bucket[1].update(keys)
            return True
        if self.debouncer is not None:
            self.debouncer.add(tags, keys)
            return True
        return False

    def apply(self, tags: builtins.set[str], keys: builtins.set[str], *, record: bool = True) -> None:
        """Apply an invalidation now (the sync twin of :meth:`apply_steps`)."""
        self.apply_steps_now(tags, keys, record)

    def apply_steps(self, tags: builtins.set[str], keys: builtins.set[str], record: bool = True) -> Steps:
        """An invalidation applied now, through the ``"invalidate"`` middleware chain if any."""
        chain = self._cache.chains.invalidate
        if chain is None:
            yield from self.record(tags, keys, record)
        else:
            op = self._cache.describe("invalidate", None, None, tags, keys)
            yield (CHAINED, chain, (self.record(tags, keys, record), True), op)

    def record(self, tags: builtins.set[str], keys: builtins.set[str], record: bool) -> Steps:
        """Record the invalidation for the host (fail closed), remove the keys, send the signal."""
        cache = self._cache
        version_tags = inv.expand(tags)
        version_tags.update(inv.key_tag(k) for k in keys)
        if record:
            try:
                if cache.degraded is not None:
                    raise InvalidationError(
                        f"cannot record an invalidation: {cache.degraded}; other processes may still "
                        f"serve the old values — fix the cache directory, then invalidate again"
                    )
                yield (RECORD, cache.versions, version_tags, None)
            except InvalidationError:
                self.drop_locally(keys)
                raise
        self.count.add()
        direct = cache.direct
        for skey in keys:
            yield from cache.tiering.forget(direct, skey, (skey,))
        # In the user's words: their tags (not cacheplug's internal ones) and keys.
        signals.invalidated.send(
            cache, tags=split_tags(tags)[0], keys=frozenset(cache.user_facing(k) for k in keys)
        )

    def clear_function(self, binding: Binding) -> None:
        """Drop every entry of one function in every tier and process (``cache_clear``)."""
        cache = self._cache
        if self.request({binding.fn_tag, binding.fa_tag}, set()) and cache.memory is not None:
            cache.memory.drop(binding.shelf)

    def invalidate_call(self, binding: Binding, fkey: Hashable, skey: str) -> bool:
        """Invalidate one call's entry everywhere; True if a fresh one existed."""
        cache = self._cache
        existed = cache.peek(binding, fkey, skey) is not MISS
        # Inside batch() (or a debounce window) nothing is applied before it closes.
        if self.request({binding.fa_tag}, {skey}):
            cache.tiering.forget_now(binding, fkey, ())
        return existed

    def drop_locally(self, keys: builtins.set[str]) -> None:
        """Fail closed in this process when an invalidation could not be recorded for the others.

        Every open cache of the process over the same version store stops serving anything
        created (or computed from reads made) before now: its memory is emptied and older
        entries read from a shared tier are stale.
        """
        cache = self._cache
        for other in {cache, *(c for c in lifecycle.open_caches() if c.versions is cache.versions)}:
            other.judge.cutoff = other.clock()
            other.bindings.drop_shelves()
        for skey in keys:
            cache.tiering.forget_now(cache.direct, skey, (skey,))


for _name in ("apply_steps", "record"):
    setattr(Invalidator, f"{_name}_now", sync_twin(getattr(Invalidator, _name)))
