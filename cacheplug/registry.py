"""The registry of ``@cached`` functions: what warming, the CLI and a user can enumerate.

Every decorated function is registered when it is decorated (``cacheplug.decorator``), held
weakly in ``cacheplug.state.FUNCTIONS``: a function that is dropped (a closure, a reloaded
module's old version) leaves the registry with it. :func:`cached_functions` describes each
live one with the policy it was decorated with, read from the function at the moment of
the call.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from . import state
from .cache import Cache
from .wrappers import CachedFunction

__all__ = ["RegisteredFunction", "cached_functions"]

Kind = Literal["function", "method", "classmethod", "staticmethod"]


@dataclass(frozen=True)
class RegisteredFunction:
    """One live ``@cached`` function and the policy it was decorated with.

    The options are those given to ``@cached`` (``ttl`` in seconds; ``warm`` checked:
    ``False``, ``True``, the tuple of ``(args, kwargs)`` calls, or the callable); ``kind`` is
    ``"method"`` for a plain function defined in a class body; ``ident`` is the function's
    identity in keys (``module.qualname``, after ``namespace:`` when one is given);
    ``version`` is the ``version=`` given, or the fingerprint of the function's code;
    ``cache`` is the ``cache=`` given (``None``: the default cache at call time).
    :attr:`function` is the decorated function itself, while it lives.
    """

    name: str
    module: str
    ident: str
    kind: Kind
    is_async: bool
    ttl: float | None
    tags: tuple[str, ...] | Callable[..., Iterable[str]]
    depends_on: tuple[Any, ...]
    warm: Any
    version: str
    namespace: str | None
    cache: Cache | None
    typed: bool
    ignore: tuple[str, ...]
    key: Callable[..., Any] | None
    cache_if: Callable[[Any], bool] | None
    copy: bool
    _function: weakref.ref[Any] = field(repr=False, compare=False)

    @property
    def function(self) -> CachedFunction[..., Any] | None:
        """The decorated function, or ``None`` once it has been garbage-collected."""
        found: CachedFunction[..., Any] | None = self._function()
        return found


def _kind(core: Any, function: Any) -> Kind:
    if core.kind != "function":
        kind: Kind = core.kind
        return kind
    # A def in a class body has the class as the last part of its qualified name; a nested
    # def has "<locals>" there.
    parent = core.func.__qualname__.rpartition(".")[0]
    if not parent or parent.endswith("<locals>"):
        return "function"
    if "<locals>" in parent:
        return "method"  # a class defined in a function: not reachable to look at
    # ``@staticmethod`` / ``@classmethod`` written above ``@cached`` wrap the cached function
    # in the class body: the class's own attribute says which.
    owner: Any = sys.modules.get(core.func.__module__)
    for part in parent.split("."):
        owner = getattr(owner, part, None)
    raw = vars(owner).get(core.func.__name__) if isinstance(owner, type) else None
    if isinstance(raw, staticmethod | classmethod) and raw.__func__ is function:
        return "staticmethod" if isinstance(raw, staticmethod) else "classmethod"
    return "method"


def _describe(function: Any) -> RegisteredFunction:
    core = function._self_core
    func = core.func
    base = f"{func.__module__}.{func.__qualname__}"
    holder = core.holder
    return RegisteredFunction(
        name=func.__qualname__,
        module=func.__module__,
        ident=core.ident,
        kind=_kind(core, function),
        is_async=core.is_async,
        ttl=core.ttl,
        tags=core.tags_callable if core.tags_callable is not None else core.tag_templates,
        depends_on=core.depends_on,
        warm=core.warm,
        version=core.version,
        namespace=core.ident[: -len(base) - 1] if core.ident != base else None,
        cache=None if holder is state.DEFAULT_CACHE else holder[0],
        typed=core.typed,
        ignore=tuple(n for n in core.names if n not in core.kept),
        key=core.key,
        cache_if=core.cache_if,
        copy=core.copy,
        _function=weakref.ref(function),
    )


def cached_functions() -> list[RegisteredFunction]:
    """Every live ``@cached`` function of the process, in decoration order, with its policy."""
    return [_describe(function) for function in state.registered_functions()]
