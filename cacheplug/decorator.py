"""``@cached``: the decorator, its per-function helpers and its fast path.

Everything about a function is decided once, at decoration time: sync or async, which
parameters make the key, whether the fast path applies, the tag templates. Bad arguments
raise :class:`~cacheplug.errors.ConfigurationError` there and then.

Each decorated function gets its own small ``wrapt.FunctionWrapper`` subclass whose
``__call__`` is generated for it (``cacheplug.fastpath``); every call that path cannot
serve goes through ``_Core`` and the coordinator.

Keys: every key part separates entries in every tier alike. In memory each function
object has its own shelf (so a ``version=`` bump, a redefinition, ``importlib.reload`` or
two closures of one factory never share entries there); in the shared tiers the string key
carries ``ident@version`` and, when they differ from the defaults, a digest of ``ignore=``,
``typed=``, the ``key=`` function's fingerprint and the closure's cell values (read at the
first call). A closure over a value with no stable key stays memory-only, with one warning.

Recursion: the user's function is called by the frame that looked the key up (the
generated ``__call__`` on the fast path, ``_Core.call`` otherwise), never through thunks:
a cached recursive function costs 2 recursion levels per call more than the plain one on
the fast path (the wrapper object's call and its ``__call__``), at most 4 on the others.
With middleware, the chain's own frames come on top.
"""

from __future__ import annotations

import copy as _copy
import functools
import hashlib
import inspect
import logging
import threading
import types
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple, ParamSpec, Protocol, TypeVar, overload

import wrapt

from . import config
from . import invalidation as inv
from .calls import Binding, Pending, _Read, _ttl_seconds
from .coordinator import Cache, on_unbind
from .envelope import MISS
from .errors import ConfigurationError, UnkeyableArgumentError
from .fastpath import _EMPTY, _NA, _NO_EPOCH, _UNCOUNTED, _abort, make_call
from .keys import _FALSE, _FLOAT, _TRUE, _qualname, encode, encode_call, fast_key, fingerprint

__all__ = ["CacheInfo", "CachedFunction", "cached"]

P = ParamSpec("P")
R = TypeVar("R")
P2 = ParamSpec("P2")
R2 = TypeVar("R2")
T = TypeVar("T")

log = logging.getLogger("cacheplug")

_CORES: weakref.WeakSet[_Core] = weakref.WeakSet()
_SETTLE_LOCK = threading.Lock()


def _no_rebind(*_: Any) -> None:
    pass


def _unbind_from(cache: Cache | None) -> None:
    """Unbind every function's fast path from ``cache`` (``None``: from every cache)."""
    for core in list(_CORES):
        last = core.last
        if last is not None and (cache is None or last[0] is cache):
            core.last = None
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


def _check_decoratable(func: Any) -> None:
    """Refuse what ``@cached`` cannot key correctly, saying what to decorate instead."""
    if isinstance(func, functools.partial):
        raise ConfigurationError(
            f"@cached cannot decorate the functools.partial {func!r}: its bound arguments are not "
            f"part of the key. Decorate the underlying function ({_qualname(func.func)}) and "
            f"call it with those arguments, or wrap the call in a plain def and decorate that"
        )
    # A callable object is an instance of a Python class defining __call__; functions,
    # classes, builtins, C-level function types and function proxies (wrapt) are not.
    if isinstance(func, (type, wrapt.ObjectProxy)):
        return
    if not isinstance(inspect.getattr_static(type(func), "__call__", None), types.FunctionType):
        return
    raise ConfigurationError(
        f"@cached cannot decorate the callable object {func!r} of type {_qualname(type(func))}: "
        f"the object's state is not part of the key. Put @cached on the class's __call__ method "
        f"(the instance then joins the key like self in any method), or on a plain function"
    )


# What a closure keeps as *state* (like a module's global variables) is not what identifies
# it, and is left out of the key as globals are: mutable containers (a list of calls, a dict
# it fills: a snapshot of their contents at the first call would be arbitrary) and objects
# compared by identity (a counter, a lock, a client, a Cache: no value to key). A value
# object (one with its own ``__eq__``) must be keyable, or the function stays memory-only.
def _cell_key(value: Any, name: str) -> str | None:
    """The stable encoding of one closure cell's value, or ``None`` if it has none.

    Functions (cached ones included) encode by qualified name and modules by name, as
    globals would: the cells of a helper closure are not followed. Anything else that cannot
    be keyed (a connection, an instance compared by identity) could make two closures of one
    factory compute different results under one key, so such a function stays memory-only.
    """
    if isinstance(value, types.ModuleType):
        return "M" + value.__name__
    try:
        return encode(value, name=f"closure variable {name!r}")
    except Exception:
        return None


def _cells_key(func: Any, own: Any) -> str | None:
    """The encoding of ``func``'s closure cells ("" if none count), or ``None`` if unkeyable.

    Cells holding the function itself (or ``own``, its wrapper: recursion) and ``__class__``
    cells (``super()``) are left out; an empty cell has no value to key. Values are read
    once, at the first call: a container mutated later keeps the key it had then.
    """
    closure = getattr(func, "__closure__", None)
    if not closure:
        return ""
    parts = []
    for name, cell in zip(func.__code__.co_freevars, closure, strict=True):
        try:
            value = cell.cell_contents
        except ValueError:
            return None
        if value is func or (own is not None and value is own):
            continue
        if name == "__class__" and isinstance(value, type):
            continue
        encoded = _cell_key(value, name)
        if encoded is None:
            return None
        if encoded:
            parts.append(f"{name}={encoded}")
    return ",".join(parts)


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
        config.check_environment(stacklevel=5)  # the warning points at the decorated def
        _check_decoratable(func)
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
        # Key parts beyond identity and version that change what a call maps to; none in
        # the default case, whose key text stays ``ident@version(args)``.
        self.key_parts: list[str] = []
        if ignored:
            self.key_parts.append("kept=" + ",".join(self.kept))
        if not typed:
            self.key_parts.append("untyped")
        if key is not None:
            self.key_parts.append(f"key={_qualname(key)}@{fingerprint(key)}")
        self.name = self._name()
        # Closure cells join the key at the first call (some are empty until then), unless
        # key= or version= says the user has chosen what identifies the function.
        self.settled = key is not None or version is not None or not getattr(func, "__closure__", None)
        self.local = False
        self.proxy: weakref.ref[Any] | None = None
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
        # The last cache and binding the general path used (saves a lookup per call).
        self.last: tuple[Cache, Binding] | None = None
        self.rebind: Callable[..., None] = _no_rebind
        self.copy_warned = False
        _CORES.add(self)

    def _name(self) -> str:
        base = f"{self.ident}@{self.version}"
        if not self.key_parts:
            return base
        digest = hashlib.sha256("\x00".join(self.key_parts).encode("utf-8", "surrogatepass"))
        return f"{base}~{digest.hexdigest()[:16]}"

    def settle(self) -> None:
        """At the first call: read the closure's cells into the key, or go memory-only.

        Once, under a lock: every binding and key of the function must see one name.
        """
        if self.settled:
            return
        with _SETTLE_LOCK:
            if not self.settled:
                self._settle()

    def _settle(self) -> None:
        own = self.proxy() if self.proxy is not None else None
        cells = _cells_key(self.func, own)
        if cells is None:
            self.local = True
            log.warning(
                "cacheplug: %s is a closure over a value with no stable key, so its results stay "
                "in this process's memory and never reach the shared tiers; pass key= or version= "
                "to @cached to say what identifies it",
                self.func.__qualname__,
            )
        elif cells:
            self.key_parts.append("cells=" + cells)
            self.name = self._name()
        self.settled = True

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
        last = self.last
        if last is not None and last[0] is cache:
            binding = last[1]
        else:
            self.settle()
            binding = cache.binding(self.ident, self, self.dependency_tags(cache.namespace), self.relevance())
            self.last = (cache, binding)
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
    #
    # The user's function is called right here, by the frame that looked the key up, not
    # through a thunk handed to the coordinator: see the module docstring on recursion.

    def call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key_args: tuple[Any, ...],
    ) -> Any:
        """The general sync path: ``func(*args, **kwargs)`` served or computed and stored."""
        try:
            prepared = self.prepare(key_args, kwargs)
        except TypeError as exc:
            if isinstance(exc, (ConfigurationError, UnkeyableArgumentError)) or "cache key" in str(exc):
                raise
            return func(*args, **kwargs)  # wrong arguments: let the function raise its own TypeError
        if prepared is None:
            return func(*args, **kwargs)
        cache, binding, fkey, skey_fn, tags_fn = prepared
        entry = cache.lookup(binding, fkey, skey_fn)
        if entry is not MISS:
            value = cache.hit(binding, entry)
            return self.copy_out(value) if self.copy else value
        pending = cache.begin(binding, fkey, None, tags_fn(), self.ttl, miss=True)
        try:
            if cache._chain is None:
                value = func(*args, **kwargs)
            else:
                value = cache._run_compute(binding, skey_fn, lambda: func(*args, **kwargs))
        except BaseException:
            _abort(pending)
            raise
        return self.store(cache, pending, value, skey_fn)

    async def acall(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key_args: tuple[Any, ...],
    ) -> Any:
        """The general async path: the same steps as :meth:`call`, awaited."""
        try:
            prepared = self.prepare(key_args, kwargs)
        except TypeError as exc:
            if isinstance(exc, (ConfigurationError, UnkeyableArgumentError)) or "cache key" in str(exc):
                raise
            return await func(*args, **kwargs)
        if prepared is None:
            return await func(*args, **kwargs)
        cache, binding, fkey, skey_fn, tags_fn = prepared
        entry = cache.lookup(binding, fkey, skey_fn)
        if entry is not MISS:
            value = cache.hit(binding, entry)
            return self.copy_out(value) if self.copy else value
        pending = cache.begin(binding, fkey, None, tags_fn(), self.ttl, miss=True)
        try:
            if cache._chain is None:
                value = await func(*args, **kwargs)
            else:
                value = await cache._run_compute(binding, skey_fn, lambda: func(*args, **kwargs))
        except BaseException:
            _abort(pending)
            raise
        keep, result = self.keep(pending, value)
        await cache.afinish(pending, value, keep, skey_fn)
        return result

    def store(self, cache: Cache, pending: Pending, value: Any, skey_fn: Callable[[], str]) -> Any:
        """End a computation: store ``value`` unless ``cache_if`` or ``copy=`` refuse it."""
        keep, result = self.keep(pending, value)
        cache.finish(pending, value, keep, skey_fn)
        return result

    def keep(self, pending: Pending, value: Any) -> tuple[bool, Any]:
        """Whether ``value`` may be stored (``cache_if``, ``copy=``), and what the caller gets."""
        result = value
        try:
            keep = self.cache_if is None or bool(self.cache_if(value))
            if self.copy:
                try:
                    result = _copy.deepcopy(value)
                except Exception as exc:
                    keep = False  # it could not be copied out on a hit either: not stored
                    self.warn_copy(exc)
        except BaseException:
            _abort(pending)
            raise
        return keep, result

    def copy_out(self, value: Any) -> Any:
        """A deep copy of a cached value for the caller (``copy=True``)."""
        try:
            return _copy.deepcopy(value)
        except Exception as exc:
            self.warn_copy(exc)
            return value

    def warn_copy(self, exc: Exception) -> None:
        if not self.copy_warned:
            self.copy_warned = True
            log.warning(
                "cacheplug: a result of %s cannot be deep-copied (%r), so with copy=True it is "
                "returned without being cached; return a copyable value or drop copy=True",
                self.func.__qualname__,
                exc,
            )

    def call_wrapped(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """wrapt's entry for bound calls (methods, classmethods, staticmethods)."""
        key_args = args if instance is None or self.kind == "staticmethod" else (instance, *args)
        if self.is_async:
            return self.acall(wrapped, args, kwargs, key_args)
        return self.call(wrapped, args, kwargs, key_args)

    def split_values(self, values: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Turn the named fast path's values (NA marks a missing argument) back into a call.

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
        return tuple(args), kwargs

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

    def miss_begin(self, args: tuple[Any, ...]) -> Any:
        """A fast-path call that missed memory: the argument tuple is already the key.

        Returns a :class:`Pending` for the generated ``__call__`` to compute and pass to
        :meth:`miss_end`, or the call's value when a shared tier (or, before the function
        is bound to the current cache, the general path) served it.
        """
        bound = self.bound
        if bound is None or bound[0] is not self.holder[0]:
            # Not bound to the current cache: the general path binds on the way.
            return self.call(self.func, args, {}, args)
        cache, binding = bound
        skey = None
        if cache._lower and not binding.local:
            # The fast path already looked in memory (and rechecked a moved epoch): go
            # straight to the shared tiers.
            skey = binding.skeys.get(args) or self.shared_key(cache, binding, args)
            entry = cache.read_lower(binding, args, skey, cache.clock())
            if entry is not MISS:
                return cache.hit(binding, entry)
        tags = (
            binding.base_tags
            if self.untagged
            else self.tags(binding, dict(zip(self.names, args, strict=True)), args, {})
        )
        # Cache.begin(..., miss=True), inlined: this is every fast-path miss.
        binding.misses.add()
        return Pending(binding, args, skey, tags, self.ttl, cache.epoch[0], cache.clock())

    def miss_end(self, pending: Pending, value: Any) -> Any:
        """Store what a fast-path miss computed (see :meth:`miss_begin`) and return it."""
        cache = pending.binding.cache
        skey = pending.skey
        if skey is not None:
            skey_fn: Callable[[], str] = lambda: skey  # noqa: E731
        else:
            name, kept, fkey = self.name, self.kept, pending.fkey
            assert isinstance(fkey, tuple)
            skey_fn = lambda: cache.function_key(name, encode_call(kept, fkey))  # noqa: E731
        if self.cache_if is not None:
            return self.store(cache, pending, value, skey_fn)
        cache.finish(pending, value, True, skey_fn)  # the fast path never copies
        return value

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
        self.settle()
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
    keep = core.cache_if is None or bool(core.cache_if(value))
    await cache.afinish(pending, value, keep, skey_fn, force=True)
    return value


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


if TYPE_CHECKING:

    class CachedClassMethod(CachedFunction[Concatenate[type[T], P], R]):
        """``@cached`` above ``@classmethod`` (as mypy sees it: a function of ``cls: type[T]``).

        Called directly it takes every parameter (a plain function whose first parameter is
        a class stays usable); bound through the class or an instance, ``P``.
        """

        def __get__(  # type: ignore[override]
            self, instance: object, owner: type[Any] | None = None, /
        ) -> BoundCachedFunction[P, R]: ...

    class _Decorator(Protocol):
        """What ``cached(...)`` with options returns: a decorator for each kind of function."""

        @overload
        def __call__(self, func: Callable[Concatenate[type[T], P], R], /) -> CachedClassMethod[T, P, R]: ...
        @overload
        def __call__(self, func: Callable[P, R], /) -> CachedFunction[P, R]: ...


def _wrap(func: Any, options: dict[str, Any]) -> Any:
    core = _Core(func, **options)
    cls = type(
        "CachedFunction",
        (CachedFunction,),
        {
            "__call__": make_call(core),
            "__module__": CachedFunction.__module__,
            "__qualname__": CachedFunction.__qualname__,
        },
    )
    # Bound calls (methods, classmethods, staticmethods) arrive through wrapt's wrapper.
    proxy = cls(func, core.call_wrapped)
    proxy._self_core = core
    core.proxy = weakref.ref(proxy)
    return proxy


@overload
def cached(func: Callable[Concatenate[type[T], P], R], /) -> CachedClassMethod[T, P, R]: ...


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
) -> _Decorator: ...


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
