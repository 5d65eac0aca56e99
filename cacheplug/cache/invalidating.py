"""Invalidation as one cache applies it: record, fail closed, drop, tell.

An invalidation is a set of tags and keys. Inside ``batch()`` it is collected and applied
when the block exits; with ``Cache(debounce=...)`` it waits for the window; otherwise it is
applied now: the version store records it for every process of the host (one bump: O(tags
+ keys), whatever the number of entries), the keys are removed from every tier, and the
``invalidated`` signal is sent with the user's tags and keys.

Fails closed: when the bump cannot be recorded, this process stops serving anything older
than now (memory is emptied) and reads no shared tier until the bump is recorded (other
processes never heard of it, and may store values computed from what it made stale there),
then :class:`~cacheplug.errors.InvalidationError` is raised. The bump is *owed*: the next
invalidation of any cache over the same version store records it too, and the store's
watcher retries it every ``RETRY_INTERVAL`` seconds (:meth:`Invalidator.settle`); once it is
recorded every process of the host has seen it, and the shared tiers are read again.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from .. import invalidation as inv
from .. import signals, state
from ..envelope import MISS
from ..errors import ConfigurationError, InvalidationError
from . import lifecycle
from .calls import Binding, Tally
from .flow import arun
from .health import RETRY_INTERVAL
from .naming import split_tags
from .steps import CHAINED, RECORD, sync_twin
from .tiering import Steps

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["Invalidator", "check_keys", "check_tags", "split_tags"]

log = logging.getLogger("cacheplug")


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
        rules = state.RULES
        return inv.write_tags(entity, id, [*rules, *self.rules] if self.rules else rules)

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
            owed = frozenset(cache.judge.owed)
            try:
                if cache.degraded is not None:
                    raise InvalidationError(
                        f"cannot record an invalidation: {cache.degraded}; other processes may still "
                        f"serve the old values — fix the cache directory, then invalidate again"
                    )
                yield (RECORD, cache.versions, version_tags | owed, None)
            except InvalidationError:
                self.drop_locally(keys, version_tags)
                raise
            if owed:
                self.settled(owed)
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

    def drop_locally(self, keys: builtins.set[str], version_tags: Iterable[str] = ()) -> None:
        """Fail closed in this process when an invalidation could not be recorded for the others.

        Every open cache of the process over the same version store stops serving anything
        created (or computed from reads made) before now: its memory is emptied, and it reads
        no shared tier until ``version_tags`` are recorded (it owes them; see :meth:`settle`).
        """
        cache = self._cache
        version_tags = builtins.set(version_tags)
        if version_tags and not cache.judge.owed and cache.tiering.lower:
            log.error(
                "cacheplug: an invalidation could not be recorded for the other processes; this "
                "process reads no shared tier until it is (retried at the next invalidation and "
                "every %.0f s)",
                RETRY_INTERVAL,
            )
        for other in self._same_store():
            other.judge.cutoff = other.clock()
            other.judge.owed.update(version_tags)
            other.bindings.drop_shelves()
        for skey in keys:
            cache.tiering.forget_now(cache.direct, skey, (skey,))

    def settle(self) -> bool:
        """Record the invalidations this process owes the host; True once none is owed.

        Called by the version store's watcher (``cacheplug.cache.health``) every
        ``RETRY_INTERVAL`` seconds while some are owed; any later invalidation records them too.
        """
        cache = self._cache
        owed = frozenset(cache.judge.owed)
        if not owed:
            return True
        try:
            cache.versions.bump(owed)
        except InvalidationError:
            return False
        self.settled(owed)
        return not cache.judge.owed

    def settled(self, owed: frozenset[str]) -> None:
        """``owed`` is recorded for the host: the caches over this store read shared tiers again."""
        for other in self._same_store():
            other.judge.owed.difference_update(owed)
        if not self._cache.judge.owed:
            log.warning("cacheplug: the owed invalidations are recorded; reading shared tiers again")

    def _same_store(self) -> builtins.set[Cache]:
        cache = self._cache
        return {cache, *(c for c in lifecycle.open_caches() if c.versions is cache.versions)}


for _name in ("apply_steps", "record"):
    setattr(Invalidator, f"{_name}_now", sync_twin(getattr(Invalidator, _name)))
