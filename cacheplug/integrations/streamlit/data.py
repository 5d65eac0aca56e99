"""``cache_data``: ``st.cache_data``'s call shape (Streamlit 1.67) on cacheplug's tiers.

A Streamlit script runs again from the top on every interaction, so its ``@cache_data``
functions are defined again on every run. Each definition is kept in
``cacheplug.state.SCRIPT_FUNCTIONS`` by what identifies it (the function's module, name,
script file and code, and the options that change what is stored): a rerun finds the
same underlying ``@cached`` function, with its memory entries and bookkeeping, and calls
the newest definition of the user's function on a miss.

What is stored is the result pickled, as Streamlit stores it: every call returns a new
copy (``pickle.loads``), so a caller mutating its result never changes what the next one
gets, and a result that cannot be pickled raises at once. Entries carry the user's
``tags`` and the tag ``cacheplug.streamlit`` (what ``cache_data.clear()`` invalidates).
Being cacheplug entries, they are shared by every process of the host through the disk
tier, and an invalidation anywhere on the host (``invalidate(tags=...)``, an entity write)
reaches them. Keys live under the namespace ``streamlit`` (and, for a script's own
functions, a digest of the script's path), apart from ``@cached`` functions.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import hashlib
import importlib
import inspect
import math
import pickle
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ... import state
from ...api import invalidate
from ...cache import Cache
from ...decorator import CachedFunction, CacheInfo, cached
from ...errors import ConfigurationError, SerializationError, UnkeyableArgumentError
from ...keys import _WAYS_OUT, encode, fingerprint
from .._require import require

st = require("streamlit", "streamlit")

__all__ = ["ALL_TAG", "CachedDataFunction", "cache_data"]

P = ParamSpec("P")
R = TypeVar("R")

ALL_TAG = "cacheplug.streamlit"
"""The tag every ``cache_data`` entry carries: ``cache_data.clear()`` invalidates it."""

# Set while a cache_data function computes: only the outermost one shows a spinner.
_COMPUTING: contextvars.ContextVar[bool] = contextvars.ContextVar("cacheplug_streamlit", default=False)
_BOOK_LOCK = threading.Lock()


class _Definition:
    """One ``cache_data`` function as it persists across the reruns of its script."""

    def __init__(self, func: Callable[..., Any], options: _Options) -> None:
        self.func = func
        self.options = options
        self.name = func.__qualname__
        self.is_async = inspect.iscoroutinefunction(func)
        self.hash_funcs = options.hash_funcs
        self.spinner: bool | str = True
        self.show_time = False
        # Per cache: the keys this process stored or read, least recently used first, with
        # their sizes and memory keys (max_entries= and max_size= evict from the front).
        self.books: weakref.WeakKeyDictionary[Cache, _Book] = weakref.WeakKeyDictionary()
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
            (name, value if type(value) in _PLAIN else _hashed(value, funcs, 0))
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
                material = _hashed(value, self.hash_funcs, 0)
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
                book = self.books[cache] = _Book()
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


class _Book:
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


def _hashed(value: Any, funcs: Mapping[str, Callable[[Any], Any]], depth: int) -> Any:
    """``value`` with every object whose type ``hash_funcs`` names replaced by its hash."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    func = funcs.get(name)
    if func is not None and depth < 8:
        try:
            made = func(value)
        except Exception as exc:
            raise UnkeyableArgumentError(
                f"cannot build a cache key from an argument of type {name}: its hash function "
                f"raised {type(exc).__name__}: {exc}; pass hash_funcs={{{kind.__qualname__}: "
                f"lambda value: ...}} returning something keyable, or start the parameter's name "
                f"with '_' to leave it out of the key"
            ) from exc
        return _Hashed(name, _hashed(made, funcs, depth + 1))
    if kind in (list, tuple):
        return kind(_hashed(v, funcs, depth) for v in value)
    if kind is dict:
        return {k: _hashed(v, funcs, depth) for k, v in value.items()}
    if kind in (set, frozenset):
        return kind(_hashed(v, funcs, depth) for v in value)
    return value


def _hash_frame(frame: Any) -> str:
    """A DataFrame by content: shape, columns, dtypes, index and every row's values."""
    pandas: Any = importlib.import_module("pandas")
    digest = hashlib.sha256(repr((frame.shape, list(frame.columns), [str(t) for t in frame.dtypes])).encode())
    digest.update(pandas.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def _hash_series(series: Any) -> str:
    """A Series by content: name, dtype, index and values."""
    pandas: Any = importlib.import_module("pandas")
    digest = hashlib.sha256(repr((series.name, str(series.dtype), len(series))).encode())
    digest.update(pandas.util.hash_pandas_object(series, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def _hash_array(array: Any) -> Any:
    """A NumPy array by content (an object array: by its items, keyed as any argument)."""
    if array.dtype.hasobject:
        return ("object", array.shape, array.tolist())
    numpy: Any = importlib.import_module("numpy")
    data = numpy.ascontiguousarray(array).tobytes()
    return (array.dtype.str, array.shape, hashlib.sha256(data).hexdigest())


# What Streamlit hashes and cacheplug's keys do not: DataFrames, Series and arrays, by content
# (hash_funcs given for these types replace them).
# pandas 3 names its classes' module "pandas", pandas 2 "pandas.core.frame" and so on.
_DEFAULT_HASH_FUNCS: dict[str, Callable[[Any], Any]] = {
    "pandas.DataFrame": _hash_frame,
    "pandas.core.frame.DataFrame": _hash_frame,
    "pandas.Series": _hash_series,
    "pandas.core.series.Series": _hash_series,
    "numpy.ndarray": _hash_array,
}


# Types keyed as they are (no hash function applies to them): the common arguments' fast way.
_PLAIN = frozenset({int, str, float, bool, type(None), bytes})


class _Hashed:
    """What a ``hash_funcs`` function made of an argument, keyed apart from any plain value."""

    __slots__ = ("digest", "type_name")

    def __init__(self, type_name: str, digest: Any) -> None:
        self.type_name = type_name
        self.digest = digest

    def __cache_key__(self) -> tuple[str, Any]:
        return (self.type_name, self.digest)

    def __hash__(self) -> int:
        return hash(self.type_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Hashed) and (self.type_name, self.digest) == (other.type_name, other.digest)


class _Options:
    """The checked options of one ``cache_data`` decoration (what changes what is stored)."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        ttl: Any,
        max_entries: Any,
        max_size: Any,
        hash_funcs: Any,
        tags: Any,
        cache: Any,
    ) -> None:
        try:
            self.signature = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"cache_data cannot read the signature of {func!r}: {exc}") from None
        parameters = self.signature.parameters.values()
        self.private = frozenset(p.name for p in parameters if p.name.startswith("_"))
        # When every parameter is plain (no *args, **kwargs or keyword-only), a call passing
        # them all by position binds them in this order.
        plain = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
        self.positional: tuple[str, ...] | None = tuple(p.name for p in parameters) if plain else None
        self.ttl = _ttl_seconds(ttl)
        if max_entries is not None and (
            isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
        ):
            raise ConfigurationError(
                f"cache_data(max_entries=...) is how many entries to keep, an int >= 1 or None, "
                f"got {max_entries!r}"
            )
        self.max_entries: int | None = max_entries
        self.max_size = _byte_size(max_size)
        self.bounded = self.max_entries is not None or self.max_size is not None
        self.user_hash_funcs = _check_hash_funcs(hash_funcs)
        self.hash_funcs = {**_DEFAULT_HASH_FUNCS, **self.user_hash_funcs}
        self.tags = _with_all_tag(tags)
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigurationError(
                f"cache_data(cache=...) takes a cacheplug.Cache (or None), got {cache!r}"
            )
        self.cache: Cache | None = cache
        self.namespace = _namespace(func)

    def identity(self, func: Callable[..., Any]) -> tuple[Any, ...]:
        """What a redefinition must share with a kept definition to be the same function."""
        hashers = tuple(sorted((name, _code_of(f)) for name, f in self.user_hash_funcs.items()))
        tags = self.tags if not callable(self.tags) else ("<callable>", _code_of(self.tags))
        return (
            "cache_data",
            self.namespace,
            func.__module__,
            func.__qualname__,
            fingerprint(func),
            inspect.iscoroutinefunction(func),
            self.ttl,
            self.max_entries,
            self.max_size,
            tags,
            hashers,
            id(self.cache) if self.cache is not None else None,
        )


def _code_of(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__qualname__', repr(func))}@{fingerprint(func)}"


def _namespace(func: Callable[..., Any]) -> str:
    """``streamlit``, plus a digest of the script's path for a script's own functions.

    Every Streamlit script runs as ``__main__``: two apps on one host defining the same
    function with the same code must not share entries (their globals may differ).
    """
    if func.__module__ != "__main__":
        return "streamlit"
    path = getattr(getattr(func, "__code__", None), "co_filename", "")
    return "streamlit:" + hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _ttl_seconds(ttl: Any) -> float | None:
    """Streamlit's ``ttl``: ``None``, seconds, a ``timedelta`` or a pandas Timedelta string."""
    if ttl is None:
        return None
    if isinstance(ttl, str):
        pandas: Any = importlib.import_module("pandas")  # Streamlit's own parser, and its dependency
        try:
            seconds = float(pandas.Timedelta(ttl).total_seconds())
        except ValueError as exc:
            raise ConfigurationError(
                f"cache_data(ttl={ttl!r}) is not a duration Streamlit accepts ({exc}): give seconds, a "
                f"datetime.timedelta or a string such as '1h', '30m', '1d' or '1h23s'"
            ) from None
        if math.isnan(seconds) or seconds < 0:
            raise ConfigurationError(f"cache_data(ttl={ttl!r}) must be a duration >= 0, e.g. '1h'")
        return seconds
    if isinstance(ttl, datetime.timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or math.isnan(ttl) or ttl < 0:
        raise ConfigurationError(
            f"cache_data(ttl=...) must be None, seconds >= 0, a datetime.timedelta or a string such "
            f"as '1h', got {ttl!r}"
        )
    return float(ttl)


_BYTE_SIZE = re.compile(
    r"(?P<value>(?:\d+(?:\.\d*)?|\.\d+)) ?(?P<unit>b|(?:k|ki)b|(?:m|mi)b|(?:g|gi)b|(?:t|ti)b)",
    re.ASCII | re.IGNORECASE,
)
_UNITS = {"b": 0, "kb": 1, "kib": 1, "mb": 2, "mib": 2, "gb": 3, "gib": 3, "tb": 4, "tib": 4}


def _byte_size(value: Any) -> int | None:
    """Streamlit's ``max_size``: bytes, or a string with a unit (powers of 1024, rounded down)."""
    if value is None:
        return None
    size = -1
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        match = _BYTE_SIZE.fullmatch(value)
        if match is not None and len(match["value"]) <= 100:
            whole, _, fraction = match["value"].partition(".")
            scale = 1024 ** _UNITS[match["unit"].lower()]
            size = int(f"{whole or '0'}{fraction}") * scale // 10 ** len(fraction)
    if size <= 0:
        raise ConfigurationError(
            f"cache_data(max_size=...) is a positive byte size: an int number of bytes or a string "
            f"with a unit such as '500MB', '1.5GB' or '200KiB', got {value!r}"
        )
    return size


def _check_hash_funcs(hash_funcs: Any) -> dict[str, Callable[[Any], Any]]:
    if hash_funcs is None:
        return {}
    if not isinstance(hash_funcs, Mapping):
        raise ConfigurationError(
            f"cache_data(hash_funcs=...) maps types (or their 'module.QualName') to functions, "
            f"got {hash_funcs!r}"
        )
    checked: dict[str, Callable[[Any], Any]] = {}
    for kind, func in hash_funcs.items():
        if isinstance(kind, type):
            kind = f"{kind.__module__}.{kind.__qualname__}"
        if not isinstance(kind, str) or not callable(func):
            raise ConfigurationError(
                f"cache_data(hash_funcs=...) maps a type or its 'module.QualName' to a function, got "
                f"{kind!r}: {func!r}"
            )
        checked[kind] = func
    return checked


def _with_all_tag(tags: Any) -> Any:
    if callable(tags) and not isinstance(tags, str):
        user_tags = tags

        def tagged(*args: Any, **kwargs: Any) -> list[str]:
            made = user_tags(*args, **kwargs)
            return [*([made] if isinstance(made, str) else made), ALL_TAG]

        return tagged
    if isinstance(tags, str):
        raise ConfigurationError(f"cache_data(tags=...) takes a list of templates: write tags=[{tags!r}]")
    return (*tags, ALL_TAG)


def _check_display(show_spinner: Any, show_time: Any) -> None:
    if not isinstance(show_spinner, (bool, str)):
        raise ConfigurationError(
            f"cache_data(show_spinner=...) is True, False or the spinner's text, got {show_spinner!r}"
        )
    if not isinstance(show_time, bool):
        raise ConfigurationError(f"cache_data(show_time=...) is True or False, got {show_time!r}")


def _check_unsupported(persist: Any, scope: Any, refresh_mode: Any) -> None:
    if persist not in (None, False, True, "disk"):
        raise ConfigurationError(f"cache_data(persist=...) is 'disk', True, False or None, got {persist!r}")
    if scope != "global":
        raise ConfigurationError(
            f"cache_data(scope={scope!r}) is not supported: cacheplug's entries are shared by every "
            f"session and every process of the host (scope='global'); for data private to a session "
            f"use st.cache_data(scope='session') or st.session_state"
        )
    if refresh_mode != "foreground":
        raise ConfigurationError(
            f"cache_data(refresh_mode={refresh_mode!r}) is not supported: an expired entry is "
            f"recomputed by the next call (refresh_mode='foreground')"
        )


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

    def __init__(self, definition: _Definition, func: Callable[P, R]) -> None:
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


def _definition(func: Callable[..., Any], options: _Options) -> _Definition:
    """The kept definition of ``func`` (made on its first decoration), now calling ``func``."""
    identity = options.identity(func)
    with state.SCRIPT_FUNCTIONS_LOCK:
        found = state.SCRIPT_FUNCTIONS.get(identity)
        if not isinstance(found, _Definition):
            found = state.SCRIPT_FUNCTIONS[identity] = _Definition(func, options)
        found.func = func  # the newest run's function (its globals) computes the misses
        found.hash_funcs = options.hash_funcs
    return found


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
        _check_display(show_spinner, show_time)
        _check_unsupported(persist, scope, refresh_mode)
        given = dict(
            ttl=ttl, max_entries=max_entries, max_size=max_size, hash_funcs=hash_funcs, tags=tags, cache=cache
        )

        def decorate(f: Callable[..., Any]) -> CachedDataFunction[..., Any]:
            if not callable(f):
                raise ConfigurationError(f"cache_data decorates a function, got {f!r}")
            definition = _definition(f, _Options(f, **given))
            definition.spinner, definition.show_time = show_spinner, show_time
            return CachedDataFunction(definition, f)

        return decorate if func is None else decorate(func)

    def clear(self) -> None:
        """Drop every ``cache_data`` entry, in every open cache and every process of the host."""
        invalidate(tags=[ALL_TAG])
        with state.SCRIPT_FUNCTIONS_LOCK:
            kept = [d for d in state.SCRIPT_FUNCTIONS.values() if isinstance(d, _Definition)]
        for definition in kept:
            definition.forget()


cache_data = _CacheData()
"""``st.cache_data``'s call shape on cacheplug's tiers: see :meth:`_CacheData.__call__`."""
