"""``cache_data``: ``st.cache_data``'s call shape (Streamlit 1.67) on cacheplug's tiers.

``@cache_data`` and ``@cache_data(...)`` return a :class:`CachedDataFunction`: called as the
original, it returns a fresh copy of the stored result; ``clear()`` drops its entries;
``cache_data.clear()`` every ``cache_data`` entry (they all carry :data:`ALL_TAG`). The
options are read by ``options``, the function's life across reruns is ``definition``'s.
Being cacheplug entries, they are shared by every process of the host through the disk
tier, and an invalidation anywhere on the host (``invalidate(tags=...)``, an entity write)
reaches them. Keys live under the namespace ``streamlit`` (and, for a script's own
functions, a digest of the script's path), apart from ``@cached`` functions.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ... import state
from ...api import invalidate
from ...cache import Cache
from ...decorator import CachedFunction, CacheInfo
from ...errors import ConfigurationError, UnkeyableArgumentError
from .definition import Definition, kept
from .options import ALL_TAG, Options, check_display, check_unsupported

__all__ = ["ALL_TAG", "CachedDataFunction", "cache_data"]

P = ParamSpec("P")
R = TypeVar("R")


def _raised_in(exc: BaseException, code: Any) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


class CachedDataFunction(Generic[P, R]):
    """A function decorated with :data:`cache_data`: call it as the original.

    Each call returns a new copy of the cached result. ``clear()`` drops every entry of the
    function (in every tier and process of the host), ``clear(*args, **kwargs)`` the entry
    of one call; ``cache_info()`` and ``cache_key(*args, **kwargs)`` are the underlying
    ``@cached`` function's.
    """

    def __init__(self, definition: Definition, func: Callable[P, R]) -> None:
        self._definition = definition
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        definition = self._definition
        if definition.is_async:
            return self._acall(args, kwargs)  # type: ignore[return-value]
        try:
            blob = definition.cached(*args, **kwargs)
        except UnkeyableArgumentError as exc:
            raise self._explained(exc, args, kwargs) from None
        result: R = definition.served(blob, args, kwargs)
        return result

    async def _acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        definition = self._definition
        try:
            blob = await definition.cached(*args, **kwargs)
        except UnkeyableArgumentError as exc:
            raise self._explained(exc, args, kwargs) from None
        return definition.served(blob, args, kwargs)

    def _explained(
        self, exc: UnkeyableArgumentError, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BaseException:
        if _raised_in(exc, self._definition.compute_code):
            return exc  # raised by a cached call inside the function: not about its arguments
        found = self._definition.unkeyable(args, kwargs)
        return exc if found is None else UnkeyableArgumentError(found)

    @property
    def __cacheplug_cached__(self) -> CachedFunction[..., Any]:
        """The ``@cached`` function this one is built on (it returns the pickled result);
        ``cacheplug.testing``'s assertion helpers count and look up through it."""
        return self._definition.cached

    def __get__(self, instance: Any, owner: type[Any] | None = None) -> Any:
        if instance is None:
            return self
        return _BoundCachedData(self, instance)

    def clear(self, *args: Any, **kwargs: Any) -> None:
        """Drop the entry of this call (given arguments) or every entry of the function."""
        definition = self._definition
        if args or kwargs:
            key = definition.cached.cache_key(*args, **kwargs)
            definition.cached.invalidate(*args, **kwargs)
            definition.forget(key)
        else:
            definition.cached.cache_clear()
            definition.forget()

    def cache_info(self) -> CacheInfo:
        """Hits, misses and the rest, as ``@cached`` functions report them."""
        return self._definition.cached.cache_info()

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The stable string key of this call (as the CLI lists it)."""
        return self._definition.cached.cache_key(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<cache_data function {self._definition.name}>"


class _BoundCachedData:
    """A ``cache_data`` method bound to an instance (the instance is its first argument)."""

    def __init__(self, function: CachedDataFunction[..., Any], instance: Any) -> None:
        self._function, self._instance = function, instance

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(self._instance, *args, **kwargs)

    def clear(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            self._function.clear(self._instance, *args, **kwargs)
        else:
            self._function.clear()


class _CacheData:
    """``cache_data``: ``@cache_data``, ``@cache_data(ttl=..., ...)`` and ``cache_data.clear()``."""

    @overload
    def __call__(self, func: Callable[P, R], /) -> CachedDataFunction[P, R]: ...

    @overload
    def __call__(
        self,
        func: None = None,
        /,
        *,
        ttl: float | datetime.timedelta | str | None = None,
        max_entries: int | None = None,
        max_size: int | str | None = None,
        show_spinner: bool | str = True,
        show_time: bool = False,
        persist: str | bool | None = None,
        hash_funcs: Mapping[Any, Callable[[Any], Any]] | None = None,
        scope: str = "global",
        refresh_mode: str = "foreground",
        tags: Iterable[str] | Callable[..., Iterable[str]] = (),
        cache: Cache | None = None,
    ) -> Callable[[Callable[P, R]], CachedDataFunction[P, R]]: ...

    def __call__(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        ttl: float | datetime.timedelta | str | None = None,
        max_entries: int | None = None,
        max_size: int | str | None = None,
        show_spinner: bool | str = True,
        show_time: bool = False,
        persist: str | bool | None = None,
        hash_funcs: Mapping[Any, Callable[[Any], Any]] | None = None,
        scope: str = "global",
        refresh_mode: str = "foreground",
        tags: Iterable[str] | Callable[..., Iterable[str]] = (),
        cache: Cache | None = None,
    ) -> Any:
        """Cache a function's results on cacheplug's tiers, the way ``st.cache_data`` does.

        Args:
            ttl: how long an entry stays fresh: seconds, a ``datetime.timedelta`` or a string
                pandas' ``Timedelta`` reads (``"1h"``, ``"30m"``, ``"1d"``, ``"1h23s"``), as
                Streamlit accepts; ``None``: the cache's ``default_ttl`` (none unless
                configured: never expires).
            max_entries: keep at most this many entries of the function: beyond it, the
                least recently used entry (of those this process stored or read) is
                removed from every tier.
            max_size: keep at most this many bytes of pickled results (an int, or a string
                with a unit: ``"500MB"``, ``"1.5GiB"``; powers of 1024), evicting as
                ``max_entries`` does; one result larger than it alone is kept.
            show_spinner: ``True`` shows ``Running `name(...)`.`` while a miss computes, a
                string shows that text, ``False`` none (only the outermost cached function
                shows one, and only in a running app).
            show_time: show the elapsed time next to the spinner's text.
            persist: accepted (``"disk"``, ``True``, ``False``, ``None``) and ignored:
                cacheplug's tiers decide where entries live (the default cache's disk tier
                keeps them across restarts whatever ``persist`` says), and ``ttl`` applies
                either way.
            hash_funcs: ``{type or "module.QualName": function}``: an argument (or an item
                inside a list, tuple, dict or set argument) of exactly that type is keyed by
                what the function returns. pandas DataFrames and Series and NumPy arrays are
                keyed by their content without it.
            scope: ``"global"`` only; ``"session"`` raises ``ConfigurationError``.
            refresh_mode: ``"foreground"`` only; ``"background"`` raises ``ConfigurationError``.
            tags: tag templates formatted from the call's arguments (``"order:{order_id}"``)
                or a callable returning tags: ``cacheplug.invalidate(tags=...)`` and entity
                writes (``invalidate_by_write("order", 7)`` invalidates ``"order"`` and
                ``"order:7"``) make those entries stale in every process of the host.
            cache: a :class:`cacheplug.Cache`; default: the default cache at call time.

        Arguments whose names start with ``_`` are left out of the key. Every call returns
        a new unpickled copy of the stored result; a result that cannot be pickled raises
        :class:`~cacheplug.SerializationError`. Streamlit elements drawn inside the
        function are not replayed on a hit (Streamlit replays them): draw outside it.
        """
        check_display(show_spinner, show_time)
        check_unsupported(persist, scope, refresh_mode)
        given = dict(
            ttl=ttl, max_entries=max_entries, max_size=max_size, hash_funcs=hash_funcs, tags=tags, cache=cache
        )

        def decorate(f: Callable[..., Any]) -> CachedDataFunction[..., Any]:
            if not callable(f):
                raise ConfigurationError(f"cache_data decorates a function, got {f!r}")
            definition = kept(f, Options(f, **given))
            definition.spinner, definition.show_time = show_spinner, show_time
            return CachedDataFunction(definition, f)

        return decorate if func is None else decorate(func)

    def clear(self) -> None:
        """Drop every ``cache_data`` entry, in every open cache and every process of the host."""
        invalidate(tags=[ALL_TAG])
        with state.SCRIPT_FUNCTIONS_LOCK:
            kept = [d for d in state.SCRIPT_FUNCTIONS.values() if isinstance(d, Definition)]
        for definition in kept:
            definition.forget()


cache_data = _CacheData()
"""``st.cache_data``'s call shape on cacheplug's tiers: see :meth:`_CacheData.__call__`."""
