"""A Django cache backend on cacheplug's tiers: ``CACHES = {"default": {"BACKEND": ...CacheplugCache}}``.

Django's cache API with its semantics, served by a :class:`cacheplug.Cache` over a memory
tier in front of the host's disk tier (both configurable):

- ``timeout``: ``DEFAULT_TIMEOUT`` is ``TIMEOUT`` (300 s unless set), ``None`` is forever,
  ``0`` or less stores nothing and removes what was there (``add`` then answers True, as
  Django's own backends do). ``get`` returns a copy (values are pickled, as in every Django
  backend), so changing it changes nothing stored.
- **Host-wide writes**: ``set``, ``add``, ``touch``, ``delete`` and the ``_many`` forms
  invalidate the key (``Cache.invalidate(keys=...)``) before storing, so every process of
  the host sees the new value at its next read, never its own older copy in memory; they
  apply at once, also inside a ``cacheplug.batch()``. Each write takes the key's host-wide
  lock (``cacheplug.integrations.django.locks``), which also makes ``add``, ``incr``,
  ``decr`` and ``touch`` atomic across processes; ``incr`` keeps the key's expiry and tags.
- **Tags**: ``set``, ``add``, ``set_many``, ``get_or_set`` take ``tags=[...]``;
  :meth:`CacheplugCache.invalidate_tags` (or ``cacheplug.invalidate(tags=...)``, or a
  model write of that entity) makes every entry carrying one stale, in every process.
- Keys are made by ``make_key`` (``KEY_PREFIX``, ``VERSION``, ``KEY_FUNCTION``) and
  validated like Django's (a ``CacheKeyWarning`` for keys memcached would refuse).
- The async methods (``aget``, ``aset``, ...) run the same code in a worker thread, never
  on the event loop.
- ``clear()`` makes every entry of the backend's namespace stale, in every process.

``LOCATION`` is the cache directory (default: ``settings.CACHEPLUG["directory"]``, else
``CACHEPLUG_DIR``, else the project's folder, as for the default cache). ``OPTIONS``:
``namespace`` (default ``"django"``, so that ``clear()`` leaves ``@cached`` functions
alone), ``tiers`` (``"memory,disk"``, ``"memory"`` or ``"disk"``), ``MAX_ENTRIES`` (of the
memory tier), ``secret`` (signs the disk tier's entries), ``lock_timeout`` (seconds a write
waits for its key's lock, default 10) and ``clock`` (a callable, or its dotted path: the
seconds every expiry is judged by). Every thread's backend instance shares one cache.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import math
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.utils.module_loading import import_string

from ... import state
from ...cache import Cache
from ...cache.invalidating import check_tags
from ...cache.lifecycle import close_tiers
from ...errors import ConfigurationError
from ...settings import settings_from_env
from ...tiers.defaults import build_tiers
from ...tiers.disk import DiskTier
from .config import SettingsError, project_settings
from .locks import KeyLocks

__all__ = ["CacheplugCache", "forget_shared"]

PROTOCOL = pickle.HIGHEST_PROTOCOL
_ABSENT = object()
_OPTIONS = ("namespace", "tiers", "MAX_ENTRIES", "secret", "lock_timeout", "clock")


@dataclass(frozen=True)
class _Config:
    """One ``CACHES`` entry's LOCATION and OPTIONS, checked (hashable: the key of its shared cache)."""

    directory: str | None
    namespace: str
    tiers: str | None
    max_entries: int | None
    secret: Any
    lock_timeout: float
    clock: Callable[[], float] | None


def _fail(key: str, problem: str) -> SettingsError:
    return SettingsError(f"CACHES OPTIONS[{key!r}] of the cacheplug backend {problem}")


def _config(location: str, options: Mapping[str, Any]) -> _Config:
    for key in options:
        if key not in _OPTIONS:
            hint = (
                " (cacheplug's memory tier evicts the least recently used entry, one at a time)"
                if key == "CULL_FREQUENCY"
                else ""
            )
            raise _fail(key, f"is not an option{hint}; the options are {', '.join(_OPTIONS)}")
    namespace = options.get("namespace", "django")
    if not isinstance(namespace, str) or "|" in namespace or "\x00" in namespace:
        raise _fail("namespace", f"must be a str without '|' or NUL, not {namespace!r}")
    max_entries = options.get("MAX_ENTRIES")
    if max_entries is not None and (isinstance(max_entries, bool) or not isinstance(max_entries, int)):
        raise _fail("MAX_ENTRIES", f"must be an int >= 1 (entries in the memory tier), not {max_entries!r}")
    wait = options.get("lock_timeout", 10.0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait < math.inf:
        raise _fail("lock_timeout", f"must be seconds > 0, not {wait!r}")
    clock = options.get("clock")
    if isinstance(clock, str):
        clock = import_string(clock)
    if clock is not None and not callable(clock):
        raise _fail("clock", f"must be a callable returning seconds (or its dotted path), not {clock!r}")
    tiers = options.get("tiers")
    if tiers is not None and not isinstance(tiers, str):
        raise _fail("tiers", f"must be 'memory,disk', 'memory' or 'disk', not {tiers!r}")
    secret = options.get("secret")
    return _Config(
        directory=location or None,
        namespace=namespace,
        tiers=tiers,
        max_entries=max_entries,
        secret=tuple(secret) if isinstance(secret, list) else secret,
        lock_timeout=float(wait),
        clock=clock,
    )


class _Shared:
    """What every thread's backend instance of one configuration uses: the cache and its locks."""

    def __init__(self, config: _Config) -> None:
        project = project_settings() or {}
        try:
            given = settings_from_env(
                directory=config.directory or project.get("directory"),
                tiers=config.tiers or project.get("tiers"),
                max_entries=config.max_entries or project.get("max_entries"),
                secret=config.secret or project.get("secret"),
            )
            tiers = build_tiers(given)
            self.cache = Cache(tiers, namespace=config.namespace, clock=config.clock)
        except ConfigurationError as exc:
            raise SettingsError(f"the cacheplug cache backend: {exc}") from exc
        self.cache.on_close(lambda: close_tiers(tiers))
        disk = next((t for t in tiers if isinstance(t, DiskTier)), None)
        self.directory = None if disk is None else disk.directory
        name = "django-" + hashlib.sha256(config.namespace.encode()).hexdigest()[:16]
        self.locks = KeyLocks(self.directory, name, config.lock_timeout)

    def close(self) -> None:
        self.cache.close()
        self.locks.close()


def _shared(config: _Config) -> _Shared:
    with state.SHARED_LOCK:
        found = state.SHARED_CACHES.get(config)
        if found is None or found.cache.closed:
            found = state.SHARED_CACHES[config] = _Shared(config)
        return found


def forget_shared() -> None:
    """Close the backends' shared caches (``settings.CACHEPLUG`` changed): the next use rebuilds them."""
    with state.SHARED_LOCK:
        mine = [k for k in state.SHARED_CACHES if isinstance(k, _Config)]
        closing = [state.SHARED_CACHES.pop(k) for k in mine]
    for shared in closing:
        shared.close()


def _at_once(call: Callable[[], Any]) -> Any:
    """Run ``call`` outside any ``cacheplug.batch()`` of the caller: Django's writes apply at once."""
    return contextvars.Context().run(call)


class CacheplugCache(BaseCache):  # type: ignore[misc]  # Django ships no type hints
    """Django's cache API over cacheplug's tiers (see the module docstring for the semantics)."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._config = _config(location, params.get("OPTIONS") or {})
        self._shared: _Shared | None = None

    @property
    def _parts(self) -> _Shared:
        shared = self._shared
        if shared is None or shared.cache.closed:
            shared = self._shared = _shared(self._config)
        return shared

    @property
    def cacheplug(self) -> Cache:
        """The :class:`cacheplug.Cache` behind this backend (one for every thread)."""
        return self._parts.cache

    @property
    def directory(self) -> str | None:
        """The disk tier's directory (``None`` without one)."""
        return self._parts.directory

    # -- helpers ------------------------------------------------------------------------------

    def _seconds(self, timeout: Any) -> float | None:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else float(timeout)

    def _store(
        self, parts: _Shared, items: Mapping[str, bytes], ttl: float | None, tags: tuple[str, ...]
    ) -> None:
        """Invalidate ``items``' keys host-wide, then store them (under their locks)."""
        cache = parts.cache
        _at_once(lambda: cache.invalidate(keys=list(items)))
        if ttl is not None and ttl <= 0:
            return  # Django: a timeout of 0 or less removes the key
        expires = None if ttl is None else cache.clock() + ttl
        for skey, data in items.items():
            cache.set(skey, (expires, data, tags), ttl=ttl, tags=tags)

    # -- reads --------------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """The value under ``key``, or ``default``."""
        found = self._parts.cache.get(self.make_and_validate_key(key, version=version), _ABSENT)
        return default if found is _ABSENT else pickle.loads(found[1])

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        """``{key: value}`` for the keys that hold a value."""
        cache, out = self._parts.cache, {}
        for key in keys:
            found = cache.get(self.make_and_validate_key(key, version=version), _ABSENT)
            if found is not _ABSENT:
                out[key] = pickle.loads(found[1])
        return out

    def has_key(self, key: Any, version: int | None = None) -> bool:
        """Whether ``key`` holds a value (it is not unpickled)."""
        return self._parts.cache.get(self.make_and_validate_key(key, version=version), _ABSENT) is not _ABSENT

    # -- writes -------------------------------------------------------------------------------

    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> None:
        """Store ``value`` under ``key`` for ``timeout`` seconds, with ``tags``, for every process."""
        self.set_many({key: value}, timeout, version, tags=tags)

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> list[Any]:
        """Store every item of ``data`` (one invalidation for all the keys); returns ``[]``."""
        items = {
            self.make_and_validate_key(k, version=version): pickle.dumps(v, PROTOCOL) for k, v in data.items()
        }
        ttl, tag_tuple, parts = self._seconds(timeout), check_tags(tags), self._parts
        with parts.locks.hold(items):
            self._store(parts, items, ttl, tag_tuple)
        return []

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> bool:
        """Store ``value`` only if ``key`` holds none (atomic across processes); True if stored."""
        skey = self.make_and_validate_key(key, version=version)
        data, ttl, tag_tuple, parts = (
            pickle.dumps(value, PROTOCOL),
            self._seconds(timeout),
            check_tags(tags),
            self._parts,
        )
        with parts.locks.hold([skey]):
            if parts.cache.get(skey, _ABSENT) is not _ABSENT:
                return False
            self._store(parts, {skey: data}, ttl, tag_tuple)
            return True

    def get_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> Any:
        """The value under ``key``; if none, ``default`` (called if callable) is added and returned."""
        found = self.get(key, _ABSENT, version=version)
        if found is not _ABSENT:
            return found
        if callable(default):
            default = default()
        self.add(key, default, timeout, version, tags=tags)
        # Another process may have added first: return what is stored (as Django does).
        return self.get(key, default, version=version)

    def _update(
        self,
        key: Any,
        version: int | None,
        change: Callable[[tuple[Any, bytes, tuple[str, ...]]], tuple[float | None, bytes]],
    ) -> bool:
        """Replace the entry under ``key`` with ``change(entry)`` atomically; False if there is none."""
        skey = self.make_and_validate_key(key, version=version)
        parts = self._parts
        with parts.locks.hold([skey]):
            found = parts.cache.get(skey, _ABSENT)
            if found is _ABSENT:
                return False
            ttl, data = change(found)
            self._store(parts, {skey: data}, ttl, found[2])
            return True

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Give ``key`` a new expiry (atomic across processes); False if it holds nothing."""
        ttl = self._seconds(timeout)
        return self._update(key, version, lambda found: (ttl, found[1]))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Add ``delta`` to the value under ``key`` atomically across processes, keeping its expiry.

        Raises ``ValueError`` when ``key`` holds nothing, as Django's backends do.
        """
        result: list[Any] = []
        clock = self._parts.cache.clock

        def add_delta(found: tuple[Any, bytes, tuple[str, ...]]) -> tuple[float | None, bytes]:
            result.append(pickle.loads(found[1]) + delta)
            expires = found[0]
            return (None if expires is None else expires - clock()), pickle.dumps(result[0], PROTOCOL)

        if not self._update(key, version, add_delta):
            raise ValueError(f"Key '{self.make_key(key, version=version)}' not found")
        return result[0]

    def delete(self, key: Any, version: int | None = None) -> bool:
        """Remove ``key`` for every process; True if it held a value."""
        skey = self.make_and_validate_key(key, version=version)
        parts = self._parts
        with parts.locks.hold([skey]):
            existed = parts.cache.get(skey, _ABSENT) is not _ABSENT
            _at_once(lambda: parts.cache.invalidate(keys=[skey]))
        return existed

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        """Remove every key of ``keys`` for every process (one invalidation)."""
        skeys = [self.make_and_validate_key(k, version=version) for k in keys]
        parts = self._parts
        with parts.locks.hold(skeys):
            _at_once(lambda: parts.cache.invalidate(keys=skeys))

    def clear(self) -> None:
        """Make every entry of this backend's namespace stale, in every process."""
        self._parts.cache.clear()

    def invalidate_tags(self, tags: Iterable[str]) -> None:
        """Make every entry stored with one of ``tags`` stale, in every process.

        Inside a ``cacheplug.batch()`` it is collected and applied when the block exits.
        """
        self._parts.cache.invalidate(tags=check_tags(tags))

    def close(self, **kwargs: Any) -> None:
        """Nothing: Django calls this after every request; the shared cache stays open."""

    # -- async: the same code, in a worker thread ---------------------------------------------

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return await asyncio.to_thread(self.get, key, default, version)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return await asyncio.to_thread(self.get_many, list(keys), version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await asyncio.to_thread(self.has_key, key, version)

    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> None:
        await asyncio.to_thread(self.set, key, value, timeout, version, tags=tags)

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> list[Any]:
        return await asyncio.to_thread(self.set_many, data, timeout, version, tags=tags)

    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> bool:
        return await asyncio.to_thread(self.add, key, value, timeout, version, tags=tags)

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> Any:
        return await asyncio.to_thread(self.get_or_set, key, default, timeout, version, tags=tags)

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return await asyncio.to_thread(self.touch, key, timeout, version)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return await asyncio.to_thread(self.incr, key, delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return await asyncio.to_thread(self.incr, key, -delta, version)

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        return await asyncio.to_thread(self.delete, key, version)

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        await asyncio.to_thread(self.delete_many, list(keys), version)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await asyncio.to_thread(self.incr_version, key, delta, version)

    async def adecr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await asyncio.to_thread(self.incr_version, key, -delta, version)

    async def ainvalidate_tags(self, tags: Iterable[str]) -> None:
        await asyncio.to_thread(self.invalidate_tags, list(tags))
