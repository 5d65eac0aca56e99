"""One ``cache_data`` function as it lives across the reruns of its script.

A Streamlit script runs again from the top on every interaction, so its ``@cache_data``
functions are defined again on every run. :func:`kept` keeps each definition in
``cacheplug.state.SCRIPT_FUNCTIONS`` by what identifies it (the function's module, name,
script file and code, and the options that change what is stored): a rerun finds the
same :class:`Definition`, with its underlying ``@cached`` function, memory entries and
bookkeeping, and a miss runs the newest definition of the user's function.

What is stored is the result pickled, as Streamlit stores it: every call returns a new
copy (``pickle.loads``), and a result that cannot be pickled raises at once. ``max_entries``
and ``max_size`` are kept by a :class:`Book` per cache: the keys this process stored or
read, least recently used first; an evicted key is invalidated in every tier.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import pickle
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from ... import state
from ...cache import Cache
from ...decorator import CachedFunction, cached
from ...errors import SerializationError, UnkeyableArgumentError
from ...keys import _WAYS_OUT, encode, fingerprint
from .._require import require
from .hashing import PLAIN, hashed
from .options import Options

st = require("streamlit", "streamlit")

__all__ = ["Book", "Definition", "kept"]

# Set while a cache_data function computes: only the outermost one shows a spinner.
_COMPUTING: contextvars.ContextVar[bool] = contextvars.ContextVar("cacheplug_streamlit", default=False)
_BOOK_LOCK = threading.Lock()


class Definition:
    """One ``cache_data`` function as it persists across the reruns of its script."""

    def __init__(self, func: Callable[..., Any], options: Options) -> None:
        self.func = func
        self.options = options
        self.name = func.__qualname__
        self.is_async = inspect.iscoroutinefunction(func)
        self.hash_funcs = options.hash_funcs
        self.spinner: bool | str = True
        self.show_time = False
        # Per cache: the keys this process stored or read, least recently used first, with
        # their sizes and memory keys (max_entries= and max_size= evict from the front).
        self.books: weakref.WeakKeyDictionary[Cache, Book] = weakref.WeakKeyDictionary()
        self.cached = self._decorate()

    def _decorate(self) -> CachedFunction[..., Any]:
        func, options = self.func, self.options
        definition = self
        if self.is_async:

            async def acompute(*args: Any, **kwargs: Any) -> bytes:
                with definition.computing(args, kwargs):
                    value = await definition.func(*args, **kwargs)
                return definition.pickled(value)

            compute: Callable[..., Any] = acompute
        else:

            def compute(*args: Any, **kwargs: Any) -> bytes:
                with definition.computing(args, kwargs):
                    value = definition.func(*args, **kwargs)
                return definition.pickled(value)

        functools.update_wrapper(compute, func)  # its module, name and signature: the key's
        self.compute_code = compute.__code__
        decorated: CachedFunction[..., Any] = cached(
            options.ttl,
            tags=options.tags,
            # Arguments are keyed through hash_funcs (the defaults for DataFrames and arrays
            # included): the key function leaves the _arguments out itself.
            key=self.key,
            namespace=options.namespace,
            # The user's code is what identifies the function (compute's is the same for all).
            version=fingerprint(func),
            cache=options.cache,
        )(compute)
        return decorated

    @contextlib.contextmanager
    def computing(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[None]:
        """Show the spinner around a computation (the outermost one only, in a running app)."""
        text = self.spinner
        if text is True:
            text = f"Running `{self.name}({'...' if args or kwargs else ''})`."
        outer = not _COMPUTING.get()
        token = _COMPUTING.set(True)
        try:
            if text and outer and st.runtime.exists():
                extra = {"show_time": True} if self.show_time else {}
                with st.spinner(text, **extra):
                    yield
            else:
                yield
        finally:
            _COMPUTING.reset(token)

    def pickled(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(
                f"cache_data returns a copy of {self.name}'s result to every caller, made with "
                f"pickle, and its result of type {type(value).__module__}.{type(value).__qualname__} "
                f"cannot be pickled ({type(exc).__name__}: {exc}); return plain data (a DataFrame, "
                f"lists, dicts), or cache shared objects with st.cache_resource"
            ) from exc

    def key(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """The key material: the arguments not starting with ``_``, hashed where ``hash_funcs`` say."""
        options, funcs = self.options, self.hash_funcs
        positional = options.positional
        if not kwargs and positional is not None and len(args) == len(positional):
            pairs: Iterable[tuple[str, Any]] = zip(positional, args, strict=True)  # bound as given
        else:
            bound = options.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            pairs = bound.arguments.items()
        private = options.private
        return tuple(
            (name, value if type(value) in PLAIN else hashed(value, funcs, 0))
            for name, value in pairs
            if name not in private
        )

    def unkeyable(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """Which argument of this call cannot be keyed, and what to do, in words (or ``None``)."""
        bound = self.options.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name in self.options.private:
                continue
            try:
                material = hashed(value, self.hash_funcs, 0)
            except UnkeyableArgumentError as exc:
                return f"cache_data {self.name}(): parameter {name!r}: {exc}"
            try:
                encode(material, name=f"parameter {name!r}")
            except UnkeyableArgumentError as exc:
                what = str(exc).replace(_WAYS_OUT, "").rstrip(": ")
                return (
                    f"cache_data {self.name}(): {what}: start the parameter's name with '_' to "
                    f"leave it out of the key, pass hash_funcs={{TheType: lambda value: ...}} "
                    f"returning something keyable, or give the type a __cache_key__() method"
                )
        return None

    def served(self, blob: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What a call returns: a fresh copy of the stored result (after the bookkeeping)."""
        if self.options.bounded:
            self.book(blob, args, kwargs)
        return pickle.loads(blob)

    def book(self, blob: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Record the call's key as the most recent; evict the oldest beyond the bounds.

        An evicted entry is invalidated as ``f.clear(*args)`` would: removed from this
        process's memory and every shared tier, and stale for the other processes.
        """
        core = self.cached._self_core
        cache = core.cache()
        fkey, skey_fn = core.keys(cache, core.arguments(args, kwargs), args, kwargs)
        with _BOOK_LOCK:
            book = self.books.get(cache)
            if book is None:
                book = self.books[cache] = Book()
            evicted = book.add(skey_fn(), len(blob), fkey, self.options.max_entries, self.options.max_size)
        if evicted:
            binding = core.binding(cache)
            for skey, old_fkey in evicted:
                cache.invalidator.invalidate_call(binding, old_fkey, skey)

    def forget(self, key: str | None = None) -> None:
        """Drop the bookkeeping of one key (``None``: of every key) in every cache."""
        with _BOOK_LOCK:
            for book in self.books.values():
                book.forget(key)


class Book:
    """The keys one function stored or read in one cache, least recently used first."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: OrderedDict[str, tuple[int, Hashable]] = OrderedDict()
        self.total = 0  # bytes

    def add(
        self, skey: str, size: int, fkey: Hashable, limit: int | None, budget: int | None
    ) -> list[tuple[str, Hashable]]:
        """Make ``skey`` the most recent; return the keys to evict (never the last one left)."""
        entries = self.entries
        known = entries.get(skey)
        if known is not None:
            self.total -= known[0]
        entries[skey] = (size, fkey)
        entries.move_to_end(skey)
        self.total += size
        evicted = []
        while len(entries) > 1 and (
            (limit is not None and len(entries) > limit) or (budget is not None and self.total > budget)
        ):
            old, (old_size, old_fkey) = entries.popitem(last=False)
            self.total -= old_size
            evicted.append((old, old_fkey))
        return evicted

    def forget(self, skey: str | None) -> None:
        if skey is None:
            self.entries.clear()
            self.total = 0
            return
        known = self.entries.pop(skey, None)
        if known is not None:
            self.total -= known[0]


def kept(func: Callable[..., Any], options: Options) -> Definition:
    """The kept definition of ``func`` (made on its first decoration), now calling ``func``."""
    identity = options.identity(func)
    with state.SCRIPT_FUNCTIONS_LOCK:
        found = state.SCRIPT_FUNCTIONS.get(identity)
        if not isinstance(found, Definition):
            found = state.SCRIPT_FUNCTIONS[identity] = Definition(func, options)
        found.func = func  # the newest run's function (its globals) computes the misses
        found.hash_funcs = options.hash_funcs
    return found
