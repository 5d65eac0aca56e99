"""The middleware chain: the plugin point around every cache operation.

A middleware is a callable ``(op, call_next) -> result``. ``op`` is an immutable
:class:`Op` describing the operation (``kind`` is ``"get"``, ``"set"``, ``"compute"`` or
``"invalidate"``); ``call_next(op)`` continues down the chain and returns the operation's
result (for ``"get"`` an entry or the miss sentinel, for ``"compute"`` the computed value
— an awaitable for async functions —, for ``"set"`` and ``"invalidate"`` ``None``).

The chain is composed once, when the :class:`~cacheplug.Cache` is built. A cache without
middleware has no chain at all, and its calls take the direct path: the mechanism costs
nothing when it is not used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Middleware", "Op", "compose"]

OpKind = Literal["get", "set", "compute", "invalidate"]


@dataclass(frozen=True, slots=True)
class Op:
    """One cache operation as middleware sees it.

    ``key`` is the string key (``None`` for a tag-only invalidation), ``function`` the
    qualified name of the cached function (``None`` for direct ``Cache`` calls), ``tags``
    the tags involved.
    """

    kind: OpKind
    key: str | None
    function: str | None = None
    tags: frozenset[str] = frozenset()
    run: Callable[[], Any] = field(default=lambda: None, repr=False, compare=False)


Middleware = Callable[[Op, Callable[[Op], Any]], Any]
Handler = Callable[[Op], Any]


def _terminal(op: Op) -> Any:
    return op.run()


def _link(middleware: Middleware, call_next: Handler) -> Handler:
    def handler(op: Op) -> Any:
        return middleware(op, call_next)

    return handler


def compose(middleware: Sequence[Middleware]) -> Handler | None:
    """Compose ``middleware`` (outermost first) into one handler, or ``None`` when empty."""
    if not middleware:
        return None
    handler: Handler = _terminal
    for item in reversed(middleware):
        if not callable(item):
            from .errors import ConfigurationError

            raise ConfigurationError(f"middleware must be callables (op, call_next) -> result, got {item!r}")
        handler = _link(item, handler)
    return handler
