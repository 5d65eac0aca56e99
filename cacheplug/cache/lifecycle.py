"""The life of caches in a process: building their tiers, the open caches, forks.

``Cache(tiers=None)`` builds the configured default tiers (and owns them: closing the
cache closes them). Every open cache is registered (weakly) so that module-level
operations (``cacheplug.invalidate``) reach them all, and so that a forked child gets fresh
locks: only the forking thread lives on in the child, and a lock another thread held at
the fork would never be released there. The state each lock guards is consistent at any
bytecode boundary (the GIL), so fresh locks are enough.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from .. import state
from ..errors import ConfigurationError
from ..tiers.base import Tier
from ..versions import HostVersions

if TYPE_CHECKING:
    from .facade import Cache

__all__ = [
    "check_arguments",
    "close_tiers",
    "closed",
    "notify_unbind",
    "on_unbind",
    "open_caches",
    "opened",
    "release_versions",
    "resolve_tiers",
]

_OPEN: weakref.WeakSet[Cache] = state.OPEN_CACHES
_UNBIND_HOOKS: list[Callable[[Cache | None], None]] = state.UNBIND_HOOKS


_VERSIONS_MEMBERS = (
    "epoch",
    "mirror",
    "recent",
    "floor",
    "incarnation",
    "sync",
    "bump",
    "depend",
    "add_listener",
)


def check_arguments(namespace: Any, clock: Any, versions: Any = None) -> None:
    """Refuse a namespace, clock or version store a cache cannot work with, saying what to give."""
    if versions is not None and not all(hasattr(versions, name) for name in _VERSIONS_MEMBERS):
        raise ConfigurationError(
            f"Cache(versions=...) takes a version store (cacheplug.versions.LocalVersions(), or a "
            f"DiskTier's: tier.versions()), got {versions!r}"
        )
    if not isinstance(namespace, str) or "|" in namespace or "\x00" in namespace:
        raise ConfigurationError(f"Cache namespace must be a str without '|' or NUL, got {namespace!r}")
    if clock is not None and not callable(clock):
        raise ConfigurationError("Cache clock must be a zero-argument callable returning seconds")


def resolve_tiers(tiers: Sequence[Tier] | None, secret: str | Sequence[str] | None) -> list[Tier]:
    """The tiers a cache serves from: ``tiers``, checked, or the configured defaults."""
    if tiers is None:
        from ..tiers.defaults import default_tiers

        tiers = default_tiers(secret)
    elif secret is not None:
        raise ConfigurationError(
            "Cache(secret=...) applies to the tiers the cache builds itself; for tiers you pass, "
            "give the secret to the tier: DiskTier(directory, secret=...)"
        )
    chosen = list(tiers)
    if not chosen:
        raise ConfigurationError("Cache needs at least one tier, e.g. Cache([MemoryTier()])")
    for tier in chosen:
        if not isinstance(tier, Tier):
            raise ConfigurationError(f"{tier!r} is not a tier: it needs get/set/delete/clear")
    if len({id(tier) for tier in chosen}) != len(chosen):
        raise ConfigurationError("a Cache lists each tier once: the same tier object appears twice")
    return chosen


def close_tiers(tiers: Sequence[Tier]) -> None:
    for tier in tiers:
        with contextlib.suppress(Exception):
            tier.close()


def opened(cache: Cache) -> None:
    _OPEN.add(cache)


def release_versions(store: Any) -> None:
    """Close a host version store (its watcher thread) once no open cache judges against it.

    The store is the process's one for its directory; the next cache on that directory opens
    it again. Left running, its watcher outlived the cache and recreated a deleted directory.
    """
    if isinstance(store, HostVersions) and not any(c.judge.versions is store for c in list(_OPEN)):
        store.close()


def closed(cache: Cache) -> None:
    _OPEN.discard(cache)
    notify_unbind(cache)


def open_caches() -> list[Cache]:
    """Every open :class:`Cache` of this process."""
    # Every module-level invalidation asks (an ORM commit, once per row written): copying
    # the WeakSet's own set of references is several times faster than iterating it. A
    # cache collected during the copy changes that set under it: then take the slow path.
    try:
        refs = list(cast(Any, _OPEN).data)
    except RuntimeError:
        return [c for c in list(_OPEN) if not c.closed]
    return [c for ref in refs if (c := ref()) is not None and not c.closed]


def on_unbind(hook: Callable[[Cache | None], None]) -> None:
    """Call ``hook(cache)`` when ``cache`` stops serving fast paths (closed, swapped, disabled)."""
    _UNBIND_HOOKS.append(hook)


def notify_unbind(cache: Cache | None) -> None:
    for hook in _UNBIND_HOOKS:
        hook(cache)


def _after_fork_in_child() -> None:
    for cache in list(_OPEN):
        cache.bindings.after_fork()
        cache.health.after_fork()
        debouncer = cache.invalidator.debouncer
        if debouncer is not None:
            debouncer.after_fork()
        if cache.learner is not None:
            cache.learner.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
