"""The objects a cached function is: ``wrapt`` wrappers carrying the cache helpers.

:class:`CachedFunction` (a ``wrapt.FunctionWrapper``) is what ``@cached`` returns; bound
through an instance or a class it gives a :class:`BoundCachedFunction`, whose helpers put
the instance (or class) in the key as the call does. Both are typed after the wrapped
function (``ParamSpec``), and both hand every helper to the function's core
(``_self_core``): ``cache_info()``, ``cache_clear()``, ``invalidate()``, ``cache_key()``,
``refresh()`` and the async twins. Calls themselves do not come through here: each
function's wrapper class gets a generated ``__call__`` (``cacheplug.decorator._wrap``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple, ParamSpec, TypeVar, overload

import wrapt

from .cache.flow import arun, run
from .statistics import FunctionStats

if TYPE_CHECKING:
    from .drivers import _Core

__all__ = ["BoundCachedFunction", "CacheInfo", "CachedFunction"]

P = ParamSpec("P")
R = TypeVar("R")
P2 = ParamSpec("P2")
R2 = TypeVar("R2")
T = TypeVar("T")


class _Info(NamedTuple):
    hits: int
    misses: int
    maxsize: int | None
    currsize: int


class CacheInfo(_Info):
    """Statistics of one cached function in its current cache, in ``functools``' shape.

    ``hits``, ``misses`` (every call not served by a tier, as ``functools`` counts them:
    those that raised included), ``maxsize`` (the memory tier's ``max_entries``) and
    ``currsize`` (this function's entries in memory) unpack as ``functools``' four fields.
    Besides them: ``share``, this function's share of the memory tier's entries (0.0 to
    1.0), and ``stats``, its full :class:`~cacheplug.FunctionStats` (outcomes by tier,
    latencies).
    """

    share: float
    stats: FunctionStats

    def __new__(
        cls,
        hits: int,
        misses: int,
        maxsize: int | None,
        currsize: int,
        *,
        share: float = 0.0,
        stats: FunctionStats | None = None,
    ) -> CacheInfo:
        info = super().__new__(cls, hits, misses, maxsize, currsize)
        info.share = share
        info.stats = stats if stats is not None else FunctionStats("")
        return info


class BoundCachedFunction(wrapt.BoundFunctionWrapper[P, R]):
    """A cached method bound to an instance or class; helpers include the instance in the key.

    Typed after the method's parameters without ``self``/``cls``: ``obj.method(1)``,
    ``obj.method.invalidate(1)`` and ``Repo.util(3)`` (a cached staticmethod) check.
    """

    def _key_args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        instance = getattr(self.__wrapped__, "__self__", None)
        return args if instance is None else (instance, *args)

    @property
    def _self_core(self) -> _Core:
        core: _Core = self._self_parent._self_core
        return core

    def cache_info(self) -> CacheInfo:
        """Statistics of the method's cache (shared by all instances)."""
        return self._self_core.info()

    def cache_clear(self) -> None:
        """Drop every entry of the method, for every instance, in every tier."""
        self._self_core.clear()

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the entry of this call (with this instance) in every tier."""
        return self._self_core.invalidate(self._key_args(args), kwargs)

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The stable string key of this call."""
        return self._self_core.cache_key(self._key_args(args), kwargs)

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Recompute this call, store the result and return it."""
        if self._self_core.is_async:
            return _arefresh(  # type: ignore[return-value]
                self._self_core, self._key_args(args), kwargs, lambda: self.__wrapped__(*args, **kwargs)
            )
        return _refresh(  # type: ignore[no-any-return]
            self._self_core, self._key_args(args), kwargs, lambda: self.__wrapped__(*args, **kwargs)
        )

    async def ainvalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Async twin of :meth:`invalidate`."""
        return self._self_core.invalidate(self._key_args(args), kwargs)

    async def arefresh(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Async twin of :meth:`refresh` for async methods."""
        return await _arefresh(
            self._self_core, self._key_args(args), kwargs, lambda: self.__wrapped__(*args, **kwargs)
        )


def _refresh(core: _Core, key_args: tuple[Any, ...], kwargs: dict[str, Any], thunk: Callable[[], Any]) -> Any:
    return run(core.refresh_flow(key_args, kwargs), thunk)


async def _arefresh(
    core: _Core, key_args: tuple[Any, ...], kwargs: dict[str, Any], thunk: Callable[[], Any]
) -> Any:
    return await arun(core.refresh_flow(key_args, kwargs), thunk)


class CachedFunction(wrapt.FunctionWrapper[P, R]):
    """A function decorated with ``@cached``: call it as the original, plus cache helpers.

    ``cache_info()``, ``cache_clear()``, ``invalidate(*args, **kwargs)``,
    ``refresh(*args, **kwargs)``, ``cache_key(*args, **kwargs)``; async functions also have
    ``ainvalidate`` and ``arefresh``.
    """

    __bound_function_wrapper__ = BoundCachedFunction  # type: ignore[assignment]

    if TYPE_CHECKING:
        # wrapt's C descriptor binds at run time; these tell the type checker what comes out.
        # mypy hands @cached a staticmethod below it as the plain function: through the
        # class every parameter is kept (a staticmethod is called as it is, a method takes
        # self explicitly). Classmethods are told apart in cached()'s overloads, by their
        # first parameter ``cls: type[T]``. A cached staticmethod called through an
        # instance cannot be told from a method (wrapt's stubs say the same).
        @overload  # type: ignore[override]
        def __get__(self, instance: None, owner: type[Any] | None = None, /) -> CachedFunction[P, R]: ...
        @overload
        def __get__(
            self: CachedFunction[Concatenate[T, P2], R2], instance: T, owner: type[Any] | None = None, /
        ) -> BoundCachedFunction[P2, R2]: ...
        def __get__(self, instance: Any, owner: type[Any] | None = None, /) -> Any: ...

    @property
    def _core(self) -> _Core:
        core: _Core = self._self_core
        return core

    def cache_info(self) -> CacheInfo:
        """Hits, misses, maxsize and currsize (live entries in the memory tier)."""
        return self._core.info()

    def cache_clear(self) -> None:
        """Drop every entry of this function in every tier and process, without a scan."""
        self._core.clear()

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the entry of this call in every tier; True if a fresh one existed."""
        return self._core.invalidate(args, kwargs)

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Recompute this call, store the result everywhere and return it."""
        if self._core.is_async:
            return _arefresh(self._core, args, kwargs, lambda: self.__wrapped__(*args, **kwargs))  # type: ignore[return-value]
        return _refresh(self._core, args, kwargs, lambda: self.__wrapped__(*args, **kwargs))  # type: ignore[no-any-return]

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The stable string key of this call (the shared tiers' key)."""
        return self._core.cache_key(args, kwargs)

    async def ainvalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Async twin of :meth:`invalidate`."""
        return self._core.invalidate(args, kwargs)

    async def arefresh(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Recompute an async call, store the result everywhere and return it."""
        return await _arefresh(self._core, args, kwargs, lambda: self.__wrapped__(*args, **kwargs))
