"""How a cache names things: stored keys, the user's keys, and the ops middleware sees.

A direct ``Cache.get``/``set`` key ``k`` is stored as ``"<namespace>|k:k"``; a cached
function's call as ``"<namespace>|fn:<name>(<arguments>)"`` (its ``cache_key()``). What
user code receives (middleware ops, the ``invalidated`` signal) is the user's key and the
user's tags; cacheplug's internal tags start with NUL and travel in separate fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import invalidation as inv
from ..envelope import Entry
from ..middleware import Op
from ..tiers.memory import MemoryTier
from .calls import Binding

__all__ = ["Names", "split_tags"]


def split_tags(tags: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The user's tags and cacheplug's internal ones (they start with NUL)."""
    every = frozenset(tags)
    user = frozenset(t for t in every if not t.startswith("\x00"))
    return user, every - user


class Names:
    """The naming rules of one cache namespace."""

    def __init__(self, namespace: str, memory: MemoryTier | None) -> None:
        self.prefix = namespace + "|"
        self._direct = self.prefix + "k:"
        self._memory = memory

    def user_key(self, key: str) -> str:
        """The stored form of a direct ``get``/``set`` key."""
        if not isinstance(key, str):
            raise TypeError(f"Cache keys are str (build them with CacheKeys), got {type(key).__name__}")
        return self._direct + key

    def function_key(self, ident: str, body: str) -> str:
        """The stored form of a cached function's key."""
        return f"{self.prefix}fn:{ident}({body})"

    def user_facing(self, skey: str) -> str:
        """The key as the user wrote it: the direct key, or a function call's ``cache_key()``."""
        return skey[len(self._direct) :] if skey.startswith(self._direct) else skey

    def stored(self, key: str) -> str:
        """A key given to ``invalidate``/``delete``: a stored key as it is, else a direct key."""
        rest = key[len(self.prefix) :] if key.startswith(self.prefix) else None
        return key if rest is not None and rest.startswith(("fn:", "k:")) else self.user_key(key)

    def describe(
        self,
        kind: str,
        binding: Binding | None,
        skey: str | None,
        tags: Iterable[str] = (),
        keys: Iterable[str] = (),
    ) -> Op:
        """The :class:`Op` middleware sees, in the user's words (built only for observed kinds)."""
        user_tags, internal = split_tags(tags)
        return Op(
            kind,  # type: ignore[arg-type]
            None if skey is None else self.user_facing(skey),
            (binding.ident or None) if binding is not None else None,
            user_tags,
            frozenset(self.user_facing(k) for k in keys),
            skey,
            internal,
        )

    def cached_skey(self, entry: Entry) -> str:
        """The stored key of ``entry``, derived once and remembered on it ("" if unknown)."""
        skey = entry.skey
        if skey is None:
            skey = entry.skey = self.entry_skey(entry) or ""
        return skey

    def entry_skey(self, entry: Entry) -> str | None:
        if entry.skey is not None:
            return entry.skey
        if isinstance(entry.fkey, str):
            return entry.fkey
        if self._memory is None or entry.shelf is None:
            return None
        skey_of: Any = self._memory.meta_of(entry.shelf)
        return skey_of(entry.fkey) if skey_of is not None else None

    def entry_tags(self, entry: Entry) -> tuple[str, ...]:
        """The tags a computation that read ``entry`` depends on."""
        skey = self.entry_skey(entry)
        return (*entry.tags, inv.key_tag(skey)) if skey is not None else entry.tags
