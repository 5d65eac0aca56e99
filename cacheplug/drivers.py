"""How a cached function's calls run: the general sync and async paths, the fast path's
miss, and the helpers' operations.

:class:`_Core` adds to what was decided at decoration time (:class:`~cacheplug.core._CoreBase`)
how a call runs: served from a tier, or computed and stored (``cache_if=``, ``copy=``),
through the general path (``call``/``acall``) or, for a call the generated fast path
(``cacheplug.fastpath``) missed in memory, through ``miss_begin``/``miss_end``; and what
``cache_info()``, ``cache_clear()``, ``invalidate()``, ``cache_key()`` and ``refresh()``
(its plan: the wrappers run the recomputation) do in the function's current cache.

Recursion: the user's function is called by the frame that looked the key up (the
generated ``__call__`` on the fast path, ``_Core.call`` otherwise), never through thunks:
a cached recursive function costs 2 recursion levels per call more than the plain one on
the fast path (the wrapper object's call and its ``__call__``), at most 4 on the others.
With middleware, the chain's own frames come on top.
"""

from __future__ import annotations

import asyncio
import copy as _copy
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

from . import invalidation as inv
from .cache import Cache, stampede
from .cache.calls import Binding, Pending, _Read
from .cache.flow import arun, call_flow, run
from .cache.stats import tier_names
from .cache.tiering import Steps
from .core import _CoreBase
from .envelope import MISS
from .errors import ConfigurationError, UnkeyableArgumentError
from .fastpath import _NA, _abort
from .identity import _unfast
from .keys import encode_call
from .wrappers import CacheInfo

log = logging.getLogger("cacheplug")

_get_ident = threading.get_ident


class _Core(_CoreBase):
    """Everything ``@cached`` knows about one function, with the drivers that run its calls."""

    # -- calls -----------------------------------------------------------------------------
    #
    # The user's function is called right here, by the frame that looked the key up, not
    # through a thunk handed to the coordinator: see the module docstring on recursion.

    def start(self, key_args: tuple[Any, ...], kwargs: dict[str, Any]) -> Steps | None:
        """The compute flow of one call (run it with ``run``/``arun``), or ``None``: call the
        function plainly (caching is off, or its arguments do not bind: the function raises
        its own ``TypeError``)."""
        try:
            prepared = self.prepare(key_args, kwargs)
        except TypeError as exc:
            if isinstance(exc, (ConfigurationError, UnkeyableArgumentError)) or "cache key" in str(exc):
                raise
            return None
        if prepared is None:
            return None
        cache, binding, fkey, skey_fn, tags_fn = prepared
        if binding.calls is not None:  # the cache learns usage: keep what refreshes this key
            cache.learner.remember(binding, fkey, (key_args, kwargs))  # type: ignore[union-attr]
        keep = self.keep if self.cache_if is not None or self.copy else None
        return call_flow(
            cache,
            binding,
            fkey,
            skey_fn,
            tags_fn,
            self.ttl,
            keep,
            self.copy_out if self.copy else None,
            guard=self.guard,
        )

    def call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key_args: tuple[Any, ...],
    ) -> Any:
        """The general sync path: ``func(*args, **kwargs)`` served or computed and stored."""
        flow = self.start(key_args, kwargs)
        if flow is None:
            return func(*args, **kwargs)
        return run(flow, func, args, kwargs)

    async def acall(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key_args: tuple[Any, ...],
    ) -> Any:
        """The general async path: the same flow, driven by the async driver."""
        flow = self.start(key_args, kwargs)
        if flow is None:
            return await func(*args, **kwargs)
        return await arun(flow, func, args, kwargs)

    def store(self, cache: Cache, pending: Pending, value: Any, skey_fn: Callable[[], str]) -> Any:
        """End a computation: store ``value`` unless ``cache_if`` or ``copy=`` refuse it."""
        keep, result = self.keep(pending, value)
        entry = cache.finish(pending, value, keep, skey_fn)
        if pending.mark is not None:
            stampede.land(pending, entry)
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
        flow = self.start(key_args, kwargs)
        if flow is None:
            return wrapped(*args, **kwargs)
        return run(flow, wrapped, args, kwargs)  # this frame, the driver's, then the function

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
        if (
            bound is None
            or bound[0] is not self.holder[0]
            or not bound[0].chains.quiet_miss
            or self.guard.host
            or self.freshness is not None
        ):
            # Not bound to the current cache (the general path binds on the way), middleware
            # observes the miss, it takes a host lease, or the function has freshness options
            # (the flow acts on an entry past its deadline: a refresh ahead, a stale value):
            # the general flow runs it.
            return self.call(self.func, args, {}, args)
        cache, binding = bound
        skey = None
        if cache.tiering.lower and not binding.local:
            # The fast path already looked in memory (and rechecked a moved epoch): go
            # straight to the shared tiers.
            skey = binding.skeys.get(args) or self.shared_key(cache, binding, args)
            entry = cache.tiering.read_now(binding, args, skey, cache.clock())
            if entry is not MISS:
                return cache.hit(binding, entry)
        tags = (
            binding.base_tags
            if self.untagged
            else self.tags(binding, dict(zip(self.names, args, strict=True)), args, {})
        )
        seq0, start = cache.epoch[0], cache.clock()
        mark = None
        if binding.flights is not None and (self.ttl if self.ttl is not None else cache.default_ttl) != 0:
            # Claim the key's flight (cacheplug.flight); when another caller computes it,
            # the general flow waits for that computation.
            mark = [_get_ident(), seq0, start, None]
            if binding.flights.marks.setdefault(args, mark) is not mark:
                return self.call(self.func, args, {}, args)
        # Cache.begin(..., miss=True), inlined: this is every fast-path miss.
        binding.misses.add()
        pending = Pending(binding, args, skey, tags, self.ttl, seq0, start)
        pending.mark = mark
        return pending

    def miss_end(self, pending: Pending, value: Any) -> Any:
        """Store what a fast-path miss computed (see :meth:`miss_begin`) and return it."""
        cache = pending.binding.cache
        pending.binding.meter.compute.record(cache.clock() - pending.start)
        skey = pending.skey
        if skey is not None:
            skey_fn: Callable[[], str] = lambda: skey  # noqa: E731
        else:
            fkey = pending.fkey
            assert isinstance(fkey, tuple)
            skey_fn = self._skey_fn(cache, fkey)
        if self.cache_if is not None:
            return self.store(cache, pending, value, skey_fn)
        entry = cache.finish(pending, value, True, skey_fn)  # the fast path never copies
        if pending.mark is not None:
            stampede.land(pending, entry)
        return value

    def _skey_fn(self, cache: Cache, args: tuple[Any, ...]) -> Callable[[], str]:
        """The stored key of a fast-typed call, built only if asked for."""
        name, kept = self.name, self.kept
        return lambda: cache.function_key(name, encode_call(kept, args))

    def lean_end(
        self, args: tuple[Any, ...], value: Any, shelf: Any, seq0: int, start: float, bucket: list[Any]
    ) -> Any:
        """Finish a lean fast-path miss (see ``fastpath._LEAN_MISS``) the way the flow does."""
        bound = self.bound
        if bound is None or bound[1].shelf is not shelf:
            return value  # rebound while it computed: storing nothing is always safe
        cache, binding = bound
        pending = Pending(binding, args, None, binding.base_tags, self.ttl, seq0, start)
        pending.bucket = bucket  # what the computation read, captured by the fast path
        cache.finish(pending, value, True, self._skey_fn(cache, args))
        return value

    def contended(self, args: tuple[Any, ...]) -> Any:
        """A lean fast-path miss whose key another caller is computing: the general flow
        waits for that computation (or computes, for a recursive call of its owner)."""
        return self.call(self.func, args, {}, args)

    def note_hit(self, entry: Any) -> None:
        bound = self.bound
        if bound is not None and inv.ACTIVE:
            inv.note(_Read(bound[0], entry))

    # -- helpers ---------------------------------------------------------------------------

    def info(self) -> CacheInfo:
        cache = self.cache()
        binding = self.binding(cache)
        memory = cache.memory
        maxsize = memory.max_entries if memory is not None else None
        held = len(binding.shelf)
        return CacheInfo(
            binding.hits.value,
            binding.misses.value,
            maxsize,
            held,
            stats=binding.meter.read(binding.ident, tier_names(cache)),
            share=held / len(memory) if memory is not None and len(memory) else 0.0,
        )

    def clear(self) -> None:
        cache = self.cache()
        binding = self.binding(cache)
        cache.invalidator.clear_function(binding)

    def invalidate(self, key_args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        cache = self.cache()
        binding = self.binding(cache)
        fkey, skey_fn = self.keys(cache, self.arguments(key_args, kwargs), key_args, kwargs)
        return cache.invalidator.invalidate_call(binding, fkey, skey_fn())

    def cache_key(self, key_args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        cache = self.cache()
        self.settle()
        _, skey_fn = self.keys(cache, self.arguments(key_args, kwargs), key_args, kwargs)
        return skey_fn()

    # -- what a learning cache asks (cacheplug.cache.learning) ------------------------------

    def recall(self, binding: Binding, fkey: Hashable) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """The arguments of the call stored under memory key ``fkey``, or ``None`` if unknown.

        Kept by the general path (``binding.calls``), or read back from the key itself when
        it holds every parameter's value: positional parameters by position, keyword-only
        ones by name.
        """
        calls = binding.calls
        found = calls.get(fkey) if calls is not None else None
        if found is not None:
            return found  # type: ignore[no-any-return]
        if type(fkey) is not tuple or self.key is not None or len(self.kept) != self.nparams:
            return None
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param, value in zip(self.sig.parameters.values(), fkey, strict=True):
            if param.kind is param.KEYWORD_ONLY:
                kwargs[param.name] = _unfast(value)
            elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) and not kwargs:
                args.append(_unfast(value))
            else:
                return None
        return tuple(args), kwargs

    def recompute(self, cache: Cache, call: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        """Refresh one call in ``cache`` (if the function still runs there), as ``refresh()`` does;
        an async function runs in an event loop of its own, in this thread."""
        if self.cache() is not cache:
            return
        key_args, kwargs = call
        flow = self.refresh_flow(key_args, kwargs)
        if self.is_async:
            asyncio.run(arun(flow, self.func, key_args, kwargs))
        else:
            run(flow, self.func, key_args, kwargs)

    def refresh_flow(self, key_args: tuple[Any, ...], kwargs: dict[str, Any]) -> Steps:
        """The flow of ``refresh()``: compute without probing, then replace what is stored."""
        cache = self.cache()
        binding = self.binding(cache)
        arguments = self.arguments(key_args, kwargs)
        fkey, skey_fn = self.keys(cache, arguments, key_args, kwargs)
        cache_if = self.cache_if
        return call_flow(
            cache,
            binding,
            fkey,
            skey_fn,
            lambda: self.tags(binding, arguments, key_args, kwargs),
            self.ttl,
            lambda _pending, value: (cache_if is None or bool(cache_if(value)), value),
            probe=False,
            force=True,
        )
