"""What ``@cached`` decides about one function at decoration time, and its binding to a cache.

:class:`_CoreBase` checks the options (bad ones raise
:class:`~cacheplug.errors.ConfigurationError` there and then), reads the signature, decides
the key parts, the tag templates and whether the fast path applies, then binds the function
to the cache it runs in (rebinding the generated fast path's cells) and builds each call's
keys and tags. The call drivers and the helpers behind ``cache_info()``, ``invalidate()``,
``cache_key()`` and ``refresh()`` (``drivers._Core``) build on it.

Keys: every key part separates entries in every tier alike. In memory each function
object has its own shelf (so a ``version=`` bump, a redefinition, ``importlib.reload`` or
two closures of one factory never share entries there); in the shared tiers the string key
carries ``ident@version`` and, when they differ from the defaults, a digest of ``ignore=``,
``typed=``, the ``key=`` function's fingerprint and the closure's cell values (read at the
first call). A closure over a value with no stable key stays memory-only, with one warning.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from . import defaults, settings, state, warmcalls
from . import invalidation as inv
from .cache import Cache, stampede
from .cache.calls import Binding, _ttl_seconds
from .cache.freshness import freshness
from .cache.lifecycle import on_unbind
from .errors import ConfigurationError
from .fastpath import _EMPTY, _NO_EPOCH, _UNCOUNTED, lean_cells, meter_cells
from .identity import _cells_key, _check_decoratable, _unfast, _untyped
from .keys import _qualname, encode, encode_call, fast_key, fingerprint
from .wrappers import CachedFunction

log = logging.getLogger("cacheplug")

_CORES: weakref.WeakSet[_CoreBase] = weakref.WeakSet()
_SETTLE_LOCK = threading.Lock()
# Functions already warned about as memory-only closures (module, qualified name).
_WARNED_LOCAL: set[tuple[str, str]] = state.WARNED_LOCAL


def _no_rebind(*_: Any, **__: Any) -> None:
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


class _CoreBase:
    """What ``@cached`` decides about one function; ``drivers._Core`` adds how its calls run."""

    def __init__(
        self,
        wrapped: Any,
        *,
        ttl: Any,
        tags: Any,
        depends_on: Any,
        warm: Any,
        key: Callable[..., Any] | None,
        ignore: Iterable[str],
        namespace: str | None,
        version: str | int | None,
        cache: Cache | None,
        typed: bool,
        cache_if: Callable[[Any], bool] | None,
        copy: bool,
        lock: str | None = None,
        lock_timeout: float = stampede.DEFAULT_LOCK_TIMEOUT,
        stale_ttl: Any = None,
        stale_if_error: Any = None,
        early_refresh: Any = False,
    ) -> None:
        func = wrapped.__func__ if isinstance(wrapped, (classmethod, staticmethod)) else wrapped
        settings.check_environment(stacklevel=5)  # the warning points at the decorated def
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
        # stale_ttl=, stale_if_error=, early_refresh= (None: none of them): stamped on every
        # entry the function stores; its misses then take the compute flow, which acts on
        # the judge's late verdicts (cacheplug.cache.freshness).
        self.freshness = freshness(stale_ttl, stale_if_error, early_refresh, self.ttl, "@cached")
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
        if not isinstance(copy, bool) or not isinstance(typed, bool):
            raise ConfigurationError("@cached copy= and typed= take True or False")
        # What warming computes (cacheplug.warming reads it from the registry): checked now.
        self.warm = warmcalls.check(warm, self.sig, f"@cached warm= of {func.__qualname__}")
        self.typed = typed
        self.cache_if = cache_if
        self.copy = copy
        host, timeout = stampede.check_lock(lock, lock_timeout, "@cached")
        # How a miss is protected from stampedes (one computation per key, host leases).
        self.guard = stampede.Guard(self.is_async, host, timeout)
        if host and cache is not None:
            stampede.require_leases(cache, "@cached")
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
        # Closure cells join the key at the first call (some are empty until then); with key=
        # or version= the user has chosen what identifies the function's code, and cells
        # with no stable key are left out rather than keeping it memory-only.
        self.versioned = key is not None or version is not None
        self.settled = not getattr(func, "__closure__", None)
        self.local = False
        self.proxy: weakref.ref[Any] | None = None
        self.holder: list[Any] = [cache] if cache is not None else state.DEFAULT_CACHE
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
        cells = _cells_key(self.func, own, self.versioned)
        if cells is None:
            self.local = True
            warned = (self.func.__module__, self.func.__qualname__)
            if warned in _WARNED_LOCAL:
                return self._settled()
            _WARNED_LOCAL.add(warned)  # once per function definition, not per closure made
            log.warning(
                "cacheplug: %s is a closure over a value with no stable key, so its results stay "
                "in this process's memory and never reach the shared tiers; pass key= or version= "
                "to @cached to say what identifies it",
                self.func.__qualname__,
            )
        elif cells:
            self.key_parts.append("cells=" + cells)
            self.name = self._name()
        self._settled()

    def _settled(self) -> None:
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
        """Tags every entry carries for its ``depends_on`` (computed per cache namespace), and
        the "every row of" tags of its templates (``order:{id}``: a write of the whole
        ``order`` table reaches every entry; see ``invalidation.ROWS``)."""
        out: list[str] = [r for template in self.tag_templates for r in inv.template_rows(template)]
        for dep in self.depends_on:
            if isinstance(dep, str):
                out += [dep, *inv.rows_tags(dep)]
                continue
            core: _CoreBase = dep._self_core
            out += [inv.fn_tag(namespace, core.ident), inv.fn_any_tag(namespace, core.ident)]
            if core.tags_callable is not None:
                out.append(inv.ANY_TAG_FAMILY)
            for template in core.tag_templates:
                family = inv.template_family(template)
                out.append(template if family is None else family)
                out += inv.template_rows(template)
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
        return found if found is not None else defaults.get_cache()

    def binding(self, cache: Cache) -> Binding:
        last = self.last
        if last is not None and last[0] is cache:
            binding = last[1]
        else:
            self.settle()
            if self.guard.host:
                stampede.require_leases(cache, f"@cached {self.func.__qualname__}:")
            binding = cache.binding(self.ident, self, self.dependency_tags(cache.namespace), self.relevance())
            self.last = (cache, binding)
        bound = self.bound
        if bound is None or bound[0] is not cache:
            if cache.chains.misses_only and cache.enabled and not cache.closed:
                self.bound = (cache, binding)
                self.rebind(
                    binding.shelf,
                    cache.epoch,
                    cache.clock,
                    binding.hits.counter,
                    functools.partial(cache.judge.recheck_in, binding),
                    binding.fresh,
                    lean_cells(self, cache, binding),
                    meter_cells(cache, binding),
                    learning=cache.learner is not None,  # the fast path that counts hits per entry
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
            extra = inv.with_rows(tuple(str(t) for t in made))
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
