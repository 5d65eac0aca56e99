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
from .keys import _FALSE, _FLOAT, _TRUE, _qualname, encode


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
