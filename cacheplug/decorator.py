"""``@cached``: the decorator, its per-function helpers and its fast path.

Everything about a function is decided once, at decoration time: sync or async, which
parameters make the key, whether the fast path applies, the tag templates. Bad arguments
raise :class:`~cacheplug.errors.ConfigurationError` there and then.

Each decorated function gets its own small ``wrapt.FunctionWrapper`` subclass whose
``__call__`` is generated for it (``cacheplug.fastpath``); every call that path cannot
serve, and every miss, goes through ``_Core`` and the coordinator.
"""

from __future__ import annotations

import copy as _copy
import functools
import inspect
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple, ParamSpec, TypeVar, overload

import wrapt

from . import config
from . import invalidation as inv
from .calls import Binding, _Read, _ttl_seconds
from .coordinator import Cache, on_unbind
from .envelope import MISS
from .errors import ConfigurationError
from .fastpath import _EMPTY, _NA, _NO_EPOCH, _UNCOUNTED, make_call
from .keys import _FALSE, _FLOAT, _TRUE, encode, encode_call, fast_key, fingerprint

__all__ = ["CacheInfo", "CachedFunction", "cached"]

P = ParamSpec("P")
R = TypeVar("R")

_CORES: weakref.WeakSet[_Core] = weakref.WeakSet()


def _no_rebind(*_: Any) -> None:
    pass


def _unbind_from(cache: Cache | None) -> None:
    """Unbind every function's fast path from ``cache`` (``None``: from every cache)."""
    for core in list(_CORES):
        bound = core.bound
        if bound is not None and (cache is None or bound[0] is cache):
            core.unbind()


on_unbind(_unbind_from)


class CacheInfo(NamedTuple):
    """Statistics of one cached function in its current cache (after ``functools``)."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


def _unfast(value: Any) -> Any:
    if value is _TRUE:
        return True
    if value is _FALSE:
        return False
    if type(value) is tuple and len(value) == 2 and value[0] is _FLOAT:
        return float(value[1])
    return value


def _untyped(value: Any) -> Any:
    if type(value) is bool:
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    return value


class _Core:
    """Everything ``@cached`` knows about one function; shared by sync and async drivers."""

    def __init__(
        self,
        wrapped: Any,
        *,
        ttl: Any,
        tags: Any,
        depends_on: Any,
        warm: bool,
        key: Callable[..., Any] | None,
        ignore: Iterable[str],
        namespace: str | None,
        version: str | int | None,
        cache: Cache | None,
        typed: bool,
        cache_if: Callable[[Any], bool] | None,
        copy: bool,
    ) -> None:
        func = wrapped.__func__ if isinstance(wrapped, (classmethod, staticmethod)) else wrapped
        if not callable(func):
            raise ConfigurationError(f"@cached needs a function, got {wrapped!r}")
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise ConfigurationError(
                f"@cached cannot cache the generator function {func.__qualname__}: a generator is "
                f"consumed once; return a list (or tuple) instead"
            )
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func)
        self.kind = (
            "classmethod"
            if isinstance(wrapped, classmethod)
            else "staticmethod"
            if isinstance(wrapped, staticmethod)
            else "function"
        )
        try:
            self.sig = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"@cached cannot read the signature of {func!r}: {exc}") from None
        params = self.sig.parameters
        self.names = tuple(params)
        self.ttl = _ttl_seconds(ttl, "@cached ttl")
        if key is not None and not callable(key):
            raise ConfigurationError(
                f"@cached key= must be a callable returning the key material, got {key!r}"
            )
        self.key = key
        if isinstance(ignore, str):
            raise ConfigurationError(f"@cached ignore= takes a tuple of names: write ignore=({ignore!r},)")
        ignored = tuple(ignore)
        unknown = [n for n in ignored if n not in params]
        if unknown:
            raise ConfigurationError(
                f"@cached ignore= names {unknown} that {func.__qualname__} does not have; "
                f"its parameters are {list(self.names)}"
            )
        self.kept = tuple(n for n in self.names if n not in ignored)
        if namespace is not None and (not isinstance(namespace, str) or "(" in namespace):
            raise ConfigurationError(f"@cached namespace= must be a str without '(', got {namespace!r}")
        if version is not None and not isinstance(version, (str, int)):
            raise ConfigurationError(f"@cached version= must be a str or int, got {version!r}")
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigurationError(f"@cached cache= must be a cacheplug.Cache, got {cache!r}")
        if cache_if is not None and not callable(cache_if):
            raise ConfigurationError("@cached cache_if= must be a predicate on the result")
        if not isinstance(warm, bool) or not isinstance(copy, bool) or not isinstance(typed, bool):
            raise ConfigurationError("@cached warm=, copy= and typed= take True or False")
        self.warm = warm
        self.typed = typed
        self.cache_if = cache_if
        self.copy = copy
        self.tag_templates: tuple[str, ...] = ()
        self.tags_callable: Callable[..., Iterable[str]] | None = None
        self._check_tags(tags)
        self.depends_on = self._check_deps(depends_on)
        self.untagged = self.tags_callable is None and not self.tag_templates
        ident = f"{func.__module__}.{func.__qualname__}"
        self.ident = f"{namespace}:{ident}" if namespace else ident
        self.version = str(version) if version is not None else fingerprint(func)
        self.name = f"{self.ident}@{self.version}"
        self.holder: list[Any] = [cache] if cache is not None else config.CURRENT
        self.nparams = len(self.names)
        self.fast = (
            key is None
            and not ignored
            and typed
            and not copy
            and self.kind == "function"
            and all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params.values())
        )
        # The cache and binding the fast path serves from (None: take the general path).
        self.bound: tuple[Cache, Binding] | None = None
        self.rebind: Callable[..., None] = _no_rebind
        _CORES.add(self)

    # -- decoration-time checks ----------------------------------------------------------

    def _check_tags(self, tags: Any) -> None:
        if callable(tags) and not isinstance(tags, str):
            self.tags_callable = tags
            return
        if isinstance(tags, str):
            raise ConfigurationError(f"@cached tags= takes a list of templates: write tags=[{tags!r}]")
        templates = tuple(tags)
        for template in templates:
            if not isinstance(template, str) or not template:
                raise ConfigurationError(f"@cached tag {template!r} must be a non-empty str template")
            for root in inv.template_fields(template):
                if root not in self.sig.parameters:
                    raise ConfigurationError(
                        f"tag template {template!r} names {root!r}, which is not a parameter of "
                        f"{self.func.__qualname__} (parameters: {list(self.sig.parameters)})"
                    )
        self.tag_templates = templates

    def _check_deps(self, depends_on: Any) -> tuple[Any, ...]:
        if isinstance(depends_on, str) or (
            callable(depends_on) and not isinstance(depends_on, (list, tuple))
        ):
            raise ConfigurationError("@cached depends_on= takes a list of cached functions and tag strings")
        deps = tuple(depends_on)
        for dep in deps:
            if not isinstance(dep, (str, CachedFunction)):
                raise ConfigurationError(
                    f"@cached depends_on= items must be @cached functions or tag strings, got {dep!r}"
                )
        return deps

    def dependency_tags(self, namespace: str) -> list[str]:
        """Tags every entry carries for its ``depends_on`` (computed per cache namespace)."""
        out: list[str] = []
        for dep in self.depends_on:
            if isinstance(dep, str):
                out.append(dep)
                continue
            core: _Core = dep._self_core
            out += [inv.fn_tag(namespace, core.ident), inv.fn_any_tag(namespace, core.ident)]
            if core.tags_callable is not None:
                out.append(inv.ANY_TAG_FAMILY)
            for template in core.tag_templates:
                family = inv.template_family(template)
                out.append(template if family is None else family)
        return out

    def relevance(self) -> list[str]:
        """Tags through which an invalidation can reach this function's entries (templates)."""
        if self.tags_callable is not None:
            return [inv.ANY_TAG_FAMILY]
        out = []
        for template in self.tag_templates:
            family = inv.template_family(template)
            out.append(template if family is None else family)
        return out

    # -- binding to a cache ----------------------------------------------------------------

    def cache(self) -> Cache:
        found: Cache | None = self.holder[0]
        return found if found is not None else config.get_cache()

    def binding(self, cache: Cache) -> Binding:
        binding = cache.binding(self.ident, self, self.dependency_tags(cache.namespace), self.relevance())
        bound = self.bound
        if bound is None or bound[0] is not cache:
            if cache._chain is None and cache.enabled and not cache.closed:
                self.bound = (cache, binding)
                self.rebind(
                    binding.shelf,
                    cache.epoch,
                    cache.clock,
                    binding.hits.counter,
                    functools.partial(cache.recheck_in, binding),
                    binding.fresh,
                )
            else:
                self.unbind()
        return binding

    def unbind(self) -> None:
        """Send every call through the general path until the next one binds again."""
        self.bound = None
        self.rebind(_EMPTY, _NO_EPOCH, float, _UNCOUNTED, bool, [0, -1])

    def skey_of_fkey(self, prefix: str) -> Callable[[Hashable], str]:
        head = f"{prefix}fn:{self.name}("
        kept = self.kept

        def skey(fkey: Hashable) -> str:
            values = tuple(_unfast(v) for v in fkey)  # type: ignore[attr-defined]
            return head + encode_call(kept, values) + ")"

        return skey

    # -- keys ------------------------------------------------------------------------------

    def arguments(self, key_args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = self.sig.bind(*key_args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    def keys(
        self,
        cache: Cache,
        arguments: dict[str, Any],
        key_args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Hashable, Callable[[], str]]:
        if self.key is not None:
            body = encode(self.key(*key_args, **kwargs), name="the key= result")
            skey = cache.function_key(self.name, body)
            return skey, lambda: skey
        values = tuple(arguments[n] for n in self.kept)
        if not self.typed:
            values = tuple(_untyped(v) for v in values)
        fkey = fast_key(values)
        if fkey is None:
            skey = cache.function_key(self.name, encode_call(self.kept, values))
            return skey, lambda: skey
        return fkey, lambda: cache.function_key(self.name, encode_call(self.kept, values))

    def tags(
        self,
        binding: Binding,
        arguments: dict[str, Any],
        key_args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[str, ...]:
        if self.tags_callable is not None:
            made = self.tags_callable(*key_args, **kwargs)
            if isinstance(made, str):
                made = [made]
            extra = tuple(str(t) for t in made)
        elif self.tag_templates:
            extra = tuple(t.format_map(arguments) for t in self.tag_templates)
        else:
            return binding.base_tags
        return binding.base_tags + extra

    def prepare(
        self, key_args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Cache, Binding, Hashable, Callable[[], str], Callable[[], tuple[str, ...]]] | None:
        """Resolve the cache and build the call's keys; ``None`` when caching is off."""
        cache = self.cache()
        if not cache.enabled:
            return None
        binding = self.binding(cache)
        arguments = self.arguments(key_args, kwargs)
        fkey, skey_fn = self.keys(cache, arguments, key_args, kwargs)
        return (
            cache,
            binding,
            fkey,
            skey_fn,
            lambda: self.tags(binding, arguments, key_args, kwargs),
        )

    # -- calls -----------------------------------------------------------------------------

    def call(self, key_args: tuple[Any, ...], kwargs: dict[str, Any], thunk: Callable[[], Any]) -> Any:
        try:
            prepared = self.prepare(key_args, kwargs)
        except TypeError as exc:
            if isinstance(exc, ConfigurationError) or "cache key" in str(exc):
                raise
            return thunk()  # wrong arguments: let the function raise its own TypeError
        if prepared is None:
            return thunk()
        cache, binding, fkey, skey_fn, tags_fn = prepared
        value = cache.call(binding, fkey, skey_fn, thunk, tags_fn, self.ttl, self.cache_if)
        return _copy.deepcopy(value) if self.copy else value

    # Thunk-building entry points for the generated fast path: a lambda inside the generated
    # __call__ would turn its arguments into cell variables and slow every hit down.
    def call_direct(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        func = self.func
        return self.call(args, kwargs, lambda: func(*args, **kwargs))

    def call_values(self, values: tuple[Any, ...]) -> Any:
        """The general path for a call the named fast path bound (NA marks a missing argument).

        Values before the first missing one are passed by position, the others by name,
        which binds exactly as the original call did.
        """
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        gap = False
        for name, value in zip(self.names, values, strict=True):
            if value is _NA:
                gap = True
            elif gap:
                kwargs[name] = value
            else:
                args.append(value)
        return self.call_direct(tuple(args), kwargs)

    async def acall_direct(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        func = self.func
        return await self.acall(args, kwargs, lambda: func(*args, **kwargs))

    def shared_key(self, cache: Cache, binding: Binding, args: tuple[Any, ...]) -> str:
        """The string key of a fast-typed call, remembered for the hottest calls.

        Calls served by the shared tiers need it on every read; encoding costs more than a
        dict lookup, so up to 4096 recent keys per function are kept (the memo is simply
        emptied when full).
        """
        memo = binding.skeys
        skey = memo.get(args)
        if skey is None:
            skey = cache.function_key(self.name, encode_call(self.kept, args))
            if len(memo) >= 4096:
                memo.clear()
            memo[args] = skey
        return skey

    def miss_direct(self, args: tuple[Any, ...]) -> Any:
        """A fast-path call that missed memory: the argument tuple is already the key."""
        func = self.func
        bound = self.bound
        if bound is None or bound[0] is not self.holder[0]:
            # Not bound to the current cache: the general path binds on the way.
            return self.call(args, {}, lambda: func(*args))
        cache, binding = bound
        names, name = self.kept, self.name
        if cache._lower:
            # The fast path already looked in memory (and rechecked a moved epoch): go
            # straight to the shared tiers.
            skey = binding.skeys.get(args) or self.shared_key(cache, binding, args)
            entry = cache.read_lower(binding, args, skey, cache.clock())
            if entry is not MISS:
                return cache.hit(binding, entry)
            skey_fn: Callable[[], str] = lambda: skey  # noqa: E731
        else:
            # A memory-only cache has nowhere else to look.
            skey_fn = lambda: cache.function_key(name, encode_call(names, args))  # noqa: E731
        return cache.fill(
            binding,
            args,
            skey_fn,
            lambda: func(*args),
            binding.base_tags_fn
            if self.untagged
            else lambda: self.tags(binding, dict(zip(names, args, strict=True)), args, {}),
            self.ttl,
            self.cache_if,
        )

    async def acall(self, key_args: tuple[Any, ...], kwargs: dict[str, Any], thunk: Callable[[], Any]) -> Any:
        try:
            prepared = self.prepare(key_args, kwargs)
        except TypeError as exc:
            if isinstance(exc, ConfigurationError) or "cache key" in str(exc):
                raise
            return await thunk()
        if prepared is None:
            return await thunk()
        cache, binding, fkey, skey_fn, tags_fn = prepared
        value = await cache.acall(binding, fkey, skey_fn, thunk, tags_fn, self.ttl, self.cache_if)
        return _copy.deepcopy(value) if self.copy else value

    def note_hit(self, entry: Any) -> None:
        bound = self.bound
        if bound is not None and inv.ACTIVE:
            inv.note(_Read(bound[0], entry))

    # -- helpers ---------------------------------------------------------------------------

    def info(self) -> CacheInfo:
        cache = self.cache()
        binding = self.binding(cache)
        maxsize = cache.memory.max_entries if cache.memory is not None else None
        return CacheInfo(binding.hits.value, binding.misses.value, maxsize, len(binding.shelf))

    def clear(self) -> None:
        cache = self.cache()
        binding = self.binding(cache)
        cache.clear_binding(binding)

    def invalidate(self, key_args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        cache = self.cache()
        binding = self.binding(cache)
        fkey, skey_fn = self.keys(cache, self.arguments(key_args, kwargs), key_args, kwargs)
        return cache.invalidate_call(binding, fkey, skey_fn())

    def cache_key(self, key_args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        cache = self.cache()
        _, skey_fn = self.keys(cache, self.arguments(key_args, kwargs), key_args, kwargs)
        return skey_fn()

    def refresh_plan(
        self, key_args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Cache, Any, Callable[[], str]]:
        cache = self.cache()
        binding = self.binding(cache)
        arguments = self.arguments(key_args, kwargs)
        fkey, skey_fn = self.keys(cache, arguments, key_args, kwargs)
        pending = cache.begin(binding, fkey, None, self.tags(binding, arguments, key_args, kwargs), self.ttl)
        return cache, pending, skey_fn


class BoundCachedFunction(wrapt.BoundFunctionWrapper[..., Any]):
    """A cached method bound to an instance or class; helpers include the instance in the key."""

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

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Drop the entry of this call (with this instance) in every tier."""
        return self._self_core.invalidate(self._key_args(args), kwargs)

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The stable string key of this call."""
        return self._self_core.cache_key(self._key_args(args), kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Recompute this call, store the result and return it."""
        return _refresh(
            self._self_core, self._key_args(args), kwargs, lambda: self.__wrapped__(*args, **kwargs)
        )

    async def ainvalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Async twin of :meth:`invalidate`."""
        return self.invalidate(*args, **kwargs)

    async def arefresh(self, *args: Any, **kwargs: Any) -> Any:
        """Async twin of :meth:`refresh` for async methods."""
        return await _arefresh(
            self._self_core, self._key_args(args), kwargs, lambda: self.__wrapped__(*args, **kwargs)
        )


def _refresh(core: _Core, key_args: tuple[Any, ...], kwargs: dict[str, Any], thunk: Callable[[], Any]) -> Any:
    cache, pending, skey_fn = core.refresh_plan(key_args, kwargs)
    try:
        value = thunk()
    except BaseException:
        inv.capture_end(pending.token)
        raise
    cache.finish(pending, value, core.cache_if is None or bool(core.cache_if(value)), skey_fn, force=True)
    return value


async def _arefresh(
    core: _Core, key_args: tuple[Any, ...], kwargs: dict[str, Any], thunk: Callable[[], Any]
) -> Any:
    cache, pending, skey_fn = core.refresh_plan(key_args, kwargs)
    try:
        value = await thunk()
    except BaseException:
        inv.capture_end(pending.token)
        raise
    cache.finish(pending, value, core.cache_if is None or bool(core.cache_if(value)), skey_fn, force=True)
    return value


class CachedFunction(wrapt.FunctionWrapper[P, R]):
    """A function decorated with ``@cached``: call it as the original, plus cache helpers.

    ``cache_info()``, ``cache_clear()``, ``invalidate(*args, **kwargs)``,
    ``refresh(*args, **kwargs)``, ``cache_key(*args, **kwargs)``; async functions also have
    ``ainvalidate`` and ``arefresh``.
    """

    __bound_function_wrapper__ = BoundCachedFunction  # type: ignore[assignment]

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


def _wrap(func: Any, options: dict[str, Any]) -> Any:
    core = _Core(func, **options)

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # Bound calls (methods, classmethods, staticmethods) arrive here through wrapt.
        key_args = args if instance is None or core.kind == "staticmethod" else (instance, *args)
        if core.is_async:
            return core.acall(key_args, kwargs, lambda: wrapped(*args, **kwargs))
        return core.call(key_args, kwargs, lambda: wrapped(*args, **kwargs))

    cls = type(
        "CachedFunction",
        (CachedFunction,),
        {
            "__call__": make_call(core),
            "__module__": CachedFunction.__module__,
            "__qualname__": CachedFunction.__qualname__,
        },
    )
    proxy = cls(func, wrapper)
    proxy._self_core = core
    return proxy


@overload
def cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...


@overload
def cached(
    ttl: float | Any = None,
    *,
    tags: Iterable[str] | Callable[..., Iterable[str]] = (),
    depends_on: Iterable[Any] = (),
    warm: bool = False,
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    namespace: str | None = None,
    version: str | int | None = None,
    cache: Cache | None = None,
    typed: bool = True,
    cache_if: Callable[[Any], bool] | None = None,
    copy: bool = False,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def cached(
    ttl: Any = None,
    *,
    tags: Iterable[str] | Callable[..., Iterable[str]] = (),
    depends_on: Iterable[Any] = (),
    warm: bool = False,
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    namespace: str | None = None,
    version: str | int | None = None,
    cache: Cache | None = None,
    typed: bool = True,
    cache_if: Callable[[Any], bool] | None = None,
    copy: bool = False,
) -> Any:
    """Cache a function's results: ``@cached`` or ``@cached(ttl, tags=..., ...)``.

    Works on functions, async functions (the awaited result is cached), methods,
    classmethods and staticmethods (write ``@cached`` above ``@classmethod``).

    Args:
        ttl: seconds or ``timedelta``; ``None`` uses the cache's ``default_ttl``; ``0``
            does not store.
        tags: templates formatted from the call's arguments (``"user:{user_id}"``,
            ``"org:{user.org_id}"``) or one callable returning tags.
        depends_on: cached functions and tag strings this function's results depend on.
        warm: validated and kept on the function; reserved for warming, which does not
            exist yet (it changes nothing today).
        key: a callable of the call's arguments returning the key material.
        ignore: parameter names left out of the key (``ignore=("self",)``).
        namespace: a prefix for this function's identity in keys.
        version: mixed into every key; default: a fingerprint of the function's code.
        cache: a :class:`Cache`; default: :func:`get_cache` at call time.
        typed: ``f(1)``, ``f(1.0)`` and ``f(True)`` are distinct entries (default).
        cache_if: predicate on the result; ``False`` returns it without storing.
        copy: return a deep copy of cached values to callers that mutate results.
    """
    options = dict(
        ttl=None,
        tags=tags,
        depends_on=depends_on,
        warm=warm,
        key=key,
        ignore=ignore,
        namespace=namespace,
        version=version,
        cache=cache,
        typed=typed,
        cache_if=cache_if,
        copy=copy,
    )
    if (callable(ttl) and not isinstance(ttl, (int, float))) or isinstance(ttl, (classmethod, staticmethod)):
        return _wrap(ttl, options)
    options["ttl"] = ttl
    _ttl_seconds(ttl, "@cached ttl")  # fail at decoration time, before the function exists

    def decorate(func: Any) -> Any:
        return _wrap(func, options)

    return decorate
