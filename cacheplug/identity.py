"""What identifies a cached function beyond its name: closure cells, argument normalisation
and what ``@cached`` refuses to decorate.

``keys`` encodes values; this module decides which of a function's values count. A
closure's cells join the shared-tier key by their stable encoding (:func:`_cells_key`); a
cell with none makes the function memory-only (its caller, ``_Core.settle``, says so).
``typed=False`` folds ``True``/``1.0`` into ``1`` (:func:`_untyped`), and the fast path's
markers for ``bool``/``float`` are turned back into values before a string key is built
(:func:`_unfast`). A ``functools.partial`` or a callable object is refused at decoration
(:func:`_check_decoratable`), with what to decorate instead.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any

import wrapt

from .errors import ConfigurationError
from .keys import _FALSE, _FLOAT, _TRUE, _qualname, encode, fingerprint


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


# How deep a closure's helpers are followed (a helper's own closure, and so on).
_MAX_DEPTH = 8
# Containers a closure may mutate: keyed by their contents at the first call, except under
# ``version=`` (or ``key=``), where they are the user's state to version.
_MUTABLE = (list, dict, set, bytearray)


def _cell_key(value: Any, name: str, versioned: bool, seen: set[int], depth: int) -> str | None:
    """The stable encoding of one closure cell's value, or ``None`` if it has none.

    Modules encode by name. A function (a helper, a lambda, a wrapped original under another
    decorator, a cached function) encodes by qualified name, the fingerprint of its code
    (unless ``versioned``: then ``version=`` speaks for the code) and, followed recursively,
    its own cells: two closures of one factory differ by what their helpers close over too.
    A class made inside a function has no stable identity. Anything else must be keyable by
    :func:`cacheplug.keys.encode`: a value with no stable key (a connection, an instance
    compared by identity) could make two closures of one factory compute different results
    under one key.
    """
    if isinstance(value, types.ModuleType):
        return "M" + value.__name__
    code = getattr(value, "__code__", None)
    if isinstance(value, types.FunctionType) and isinstance(code, types.CodeType):
        head = "F" + _qualname(value) + ("" if versioned else "#" + fingerprint(value))
        if id(value) in seen or depth >= _MAX_DEPTH:
            return head
        seen.add(id(value))
        inner = _cells_of(value, None, versioned, seen, depth + 1)
        return None if inner is None else f"{head}({inner})"
    if isinstance(value, type) and "<locals>" in value.__qualname__:
        return None
    if versioned and type(value) in _MUTABLE:
        return ""  # state the user versions (a counter, a registry), not what identifies it
    try:
        return encode(value, name=f"closure variable {name!r}")
    except Exception:
        return None


def _cells_of(func: Any, own: Any, versioned: bool, seen: set[int], depth: int) -> str | None:
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
        encoded = _cell_key(value, name, versioned, seen, depth)
        if encoded is None:
            if versioned:
                continue  # version= (or key=) says the user has taken care of what has no key
            return None
        if encoded:
            parts.append(f"{name}={encoded}")
    return ",".join(parts)


def _cells_key(func: Any, own: Any, versioned: bool = False) -> str | None:
    """The encoding of ``func``'s closure cells ("" if none count), or ``None`` if unkeyable.

    Cells holding the function itself (or ``own``, its wrapper: recursion) and ``__class__``
    cells (``super()``) are left out; an empty cell has no value to key. Values are read
    once, at the first call: a container mutated later keeps the key it had then.
    ``versioned`` (``version=`` or ``key=`` given): cells with no stable key and mutable
    containers are left out instead of making the function memory-only (or keying state),
    and helpers' code is not fingerprinted; other keyable values still join the key, so a
    factory's closures over different numbers, strings or tuples never share entries.
    """
    return _cells_of(func, own, versioned, {id(func)}, 0)
