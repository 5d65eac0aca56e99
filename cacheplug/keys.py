"""Stable, collision-free keys for cached calls.

Two forms of a key exist and they group calls identically (two calls share an entry in one
tier exactly when they share it in every tier):

* the **string key** (:func:`encode`), a type-tagged, self-delimiting text that is the same
  in every process, interpreter restart and ``PYTHONHASHSEED``; the shared tiers use it;
* the **fast key** (:func:`fast_key`), a tuple the memory tier uses for calls whose
  arguments are all ``int``, ``str``, ``bytes``, ``bool``, ``float`` or ``None``, built
  without any string formatting. Values that compare equal but encode differently are
  tagged apart (``True``/``1``/``1.0``, ``0.0``/``-0.0``) and every NaN is one value, as in
  the string form.

Nothing here uses Python's ``hash()`` of a string.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import pathlib
import types
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .errors import ConfigurationError, UnkeyableArgumentError

__all__ = ["CacheKeys", "encode", "fast_key", "fingerprint"]

# Encoded argument lists longer than this are replaced by their SHA-256 digest, so that the
# shared tiers' indexes stay small; the digest keeps keys collision-free in practice.
_MAX_ENCODED = 240


class _Unkeyable(Exception):
    """Internal: carries the path to the first value that cannot be keyed."""

    def __init__(self, value: object, path: str) -> None:
        super().__init__(path)
        self.value = value
        self.path = path


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _enc_str(value: str) -> str:
    return f"s{len(value)}:{value}"


def _enc_seq(tag: str, items: Iterable[Any], path: str) -> str:
    return tag + "(" + ",".join(_encode(v, f"{path}[{i}]") for i, v in enumerate(items)) + ")"


def _enc_set(tag: str, items: Iterable[Any], path: str) -> str:
    return tag + "{" + ",".join(sorted(_encode(v, f"{path}{{}}") for v in items)) + "}"


def _enc_dict(value: dict[Any, Any], path: str) -> str:
    pairs = sorted(
        _encode(k, f"{path}.keys()") + "=" + _encode(v, f"{path}[{k!r}]") for k, v in value.items()
    )
    return "d{" + ",".join(pairs) + "}"


def _enc_float(value: float) -> str:
    return "f" + repr(value)


_EXACT: dict[type, Callable[[Any, str], str]] = {
    type(None): lambda v, p: "N",
    bool: lambda v, p: "T" if v else "F",
    int: lambda v, p: f"i{v}",
    float: lambda v, p: _enc_float(v),
    str: lambda v, p: _enc_str(v),
    bytes: lambda v, p: f"b{v.hex()}",
    tuple: lambda v, p: _enc_seq("t", v, p),
    list: lambda v, p: _enc_seq("l", v, p),
    set: lambda v, p: _enc_set("S", v, p),
    frozenset: lambda v, p: _enc_set("Z", v, p),
    dict: lambda v, p: _enc_dict(v, p),
    _dt.datetime: lambda v, p: f"D{v.isoformat()}",
    _dt.date: lambda v, p: f"a{v.isoformat()}",
    _dt.time: lambda v, p: f"h{v.isoformat()}",
    _dt.timedelta: lambda v, p: f"j{v.days},{v.seconds},{v.microseconds}",
    uuid.UUID: lambda v, p: f"u{v.hex}",
    decimal.Decimal: lambda v, p: f"m{v}",
}


def _encode(value: Any, path: str) -> str:
    kind = type(value)
    exact = _EXACT.get(kind)
    if exact is not None:
        return exact(value, path)
    custom = getattr(value, "__cache_key__", None)
    if custom is not None and not isinstance(value, type):
        return f"k{_qualname(kind)}(" + _encode(custom(), f"{path}.__cache_key__()") + ")"
    if isinstance(value, enum.Enum):
        return f"e{_qualname(kind)}.{value.name}"
    if isinstance(value, type):
        return f"c{_qualname(value)}"
    if dataclasses.is_dataclass(value):
        fields = (getattr(value, f.name) for f in dataclasses.fields(value))
        return _enc_seq(f"C{_qualname(kind)}", fields, path)
    if isinstance(value, pathlib.PurePath):
        return f"p{kind.__name__}{_enc_str(value.as_posix())}"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return f"g{_qualname(value)}"
    raise _Unkeyable(value, path)


def encode(value: Any, *, name: str = "argument") -> str:
    """Encode ``value`` as a stable, type-tagged string.

    Raises :class:`UnkeyableArgumentError` (a ``TypeError``) naming ``name`` when a part of
    the value has no stable encoding, or when encoding it raised (an int past the
    interpreter's digit limit, a ``__cache_key__`` that fails): chained to that error.
    """
    try:
        return _encode(value, name)
    except _Unkeyable as exc:
        raise UnkeyableArgumentError(
            f"cannot build a cache key from {exc.path} of type "
            f"{type(exc.value).__module__}.{type(exc.value).__qualname__}: {_WAYS_OUT}"
        ) from None
    except (UnkeyableArgumentError, RecursionError, MemoryError):
        raise  # the interpreter's limits, not the argument's fault (a cycle recurses too)
    except Exception as exc:
        raise UnkeyableArgumentError(
            f"cannot build a cache key from {name} of type {type(value).__module__}."
            f"{type(value).__qualname__}: encoding it raised {type(exc).__name__}: {exc}; {_WAYS_OUT}"
        ) from exc


_WAYS_OUT = (
    "give the type a __cache_key__() method returning a keyable value, pass key= to @cached "
    "to choose the key material yourself, or leave the parameter out with ignore=(...)"
)


def encode_call(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """Encode a call's bound arguments; long encodings become a digest."""
    parts = []
    for name, value in zip(names, values, strict=True):
        kind = type(value)
        # The two commonest argument types inline (same text as _EXACT gives them).
        if kind is int:
            try:
                parts.append(f"i{value}")
            except ValueError:  # past sys.get_int_max_str_digits(): encode() names it
                parts.append(encode(value, name=f"parameter {name!r}"))
        elif kind is str:
            parts.append(f"s{len(value)}:{value}")
        else:
            parts.append(encode(value, name=f"parameter {name!r}"))
    text = ",".join(parts)
    if len(text) > _MAX_ENCODED:
        return "#" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text


class _Marker:
    """A sentinel standing in for a value inside fast keys; equal only to itself."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_TRUE = _Marker("True")
_FALSE = _Marker("False")
_FLOAT = _Marker("float")


def fast_key(values: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The memory tier's key for ``values``, or ``None`` when a value is not a fast type.

    When every value is an ``int``, ``str``, ``bytes`` or ``None`` the tuple itself is the
    key (this is what the decorator's fast path relies on).
    """
    out: list[Any] = []
    for value in values:
        kind = type(value)
        if kind is int or kind is str or kind is bytes or value is None:
            out.append(value)
        elif kind is bool:
            out.append(_TRUE if value else _FALSE)
        elif kind is float:
            # Equal non-zero floats have equal reprs; 0.0/-0.0 and NaNs go by their repr.
            out.append((_FLOAT, value if value == value and value != 0.0 else repr(value)))
        else:
            return None
    return tuple(out)


def _const_repr(const: Any) -> str:
    if isinstance(const, types.CodeType):
        return "code:" + _code_digest(const)
    if isinstance(const, frozenset):
        return "frozenset{" + ",".join(sorted(_const_repr(c) for c in const)) + "}"
    if isinstance(const, tuple):
        return "(" + ",".join(_const_repr(c) for c in const) + ")"
    return f"{type(const).__name__}:{const!r}"


def _code_digest(code: types.CodeType) -> str:
    digest = hashlib.sha256()
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    digest.update(repr(code.co_varnames).encode())
    digest.update(repr(code.co_freevars).encode())
    for const in code.co_consts:
        digest.update(b"\0" + _const_repr(const).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def fingerprint(func: Callable[..., Any]) -> str:
    """A short hash of ``func``'s own code: bytecode, constants and referenced names.

    File names and line numbers are left out, so moving a function does not change it;
    editing its body does. Edits to helpers it calls are not seen: pass ``version=``.
    """
    code = getattr(func, "__code__", None)
    if code is None:
        return "0"
    return _code_digest(code)[:12]


class CacheKeys:
    """Namespaced key building for :meth:`Cache.get`/:meth:`Cache.set`.

    ``CacheKeys("billing").make("invoice", 42)`` is ``"billing:invoice:42"``;
    ``.child("eu")`` nests a namespace. A part containing the separator (or the escape
    character) is escaped, so distinct part lists never produce one key. A bad namespace,
    separator or an empty part list raises :class:`~cacheplug.errors.ConfigurationError`
    (a ``ValueError``).
    """

    __slots__ = ("_prefix", "namespace", "sep")

    def __init__(self, namespace: str, *, sep: str = ":") -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(
                f"CacheKeys needs a non-empty namespace string, e.g. CacheKeys('billing'), got {namespace!r}"
            )
        if not isinstance(sep, str) or len(sep) != 1 or sep == "\\":
            raise ConfigurationError(
                f"CacheKeys sep must be one character other than a backslash, got {sep!r}"
            )
        self.namespace = namespace
        self.sep = sep
        self._prefix = self._escape(namespace) + sep

    def _escape(self, part: object) -> str:
        text = part if isinstance(part, str) else str(part)
        return text.replace("\\", "\\\\").replace(self.sep, "\\" + self.sep)

    def make(self, *parts: object) -> str:
        """Join ``parts`` under this namespace, escaping separators inside parts."""
        if not parts:
            raise ConfigurationError(
                "CacheKeys.make() needs at least one part, e.g. keys.make('invoice', 42)"
            )
        return self._prefix + self.sep.join(self._escape(p) for p in parts)

    def child(self, name: str) -> CacheKeys:
        """A nested namespace: ``CacheKeys("a").child("b").make(1) == "a:b:1"``."""
        nested = CacheKeys.__new__(CacheKeys)
        nested.namespace = f"{self.namespace}{self.sep}{name}"
        nested.sep = self.sep
        nested._prefix = self._prefix + self._escape(name) + self.sep
        return nested

    def __repr__(self) -> str:
        return f"CacheKeys({self.namespace!r})"
