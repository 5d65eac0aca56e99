"""What to warm: the calls a warming spec names, checked against the function's signature.

A spec (``@cached(warm=...)``, ``WarmingTask(args=...)``) is one of:

* ``True``: one call without arguments (the function must accept that);
* an iterable of calls, each a ``tuple`` of positional arguments or a mapping of keyword
  arguments: ``[(1,), (2,)]``, ``[{"user_id": 1}]``;
* a callable returning such an iterable, called each time the warming runs (so the calls
  can depend on the data: "the 100 most viewed products").

:func:`check` validates a spec once, when the function is decorated or the task is made: a
call that does not bind to the signature raises :class:`~cacheplug.errors.ConfigurationError`
then, naming it. :func:`calls` turns a checked spec into the ``(args, kwargs)`` pairs to run,
calling (and checking the answer of) a callable spec.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ConfigurationError

__all__ = ["Call", "Spec", "calls", "check"]

Call = tuple[tuple[Any, ...], dict[str, Any]]
# What check() returns: False (nothing to warm), True (one call without arguments), the calls
# of a static iterable, or the callable that returns them.
Spec = bool | tuple[Call, ...] | Callable[[], Iterable[Any]]

_HOW = (
    "give True (a function called without arguments), a list of argument tuples or dicts "
    "([(1,), (2,)] or [{'user_id': 1}]), or a callable returning one"
)


def check(spec: Any, signature: inspect.Signature | None, what: str, *, extra: tuple[str, ...] = ()) -> Spec:
    """``spec`` validated (``what`` names it in errors); ``extra``: keywords every call gets too."""
    if spec is False:
        return False
    if spec is True:
        _binds((), {}, signature, what, extra)
        return True
    if isinstance(spec, (str, bytes, bytearray, Mapping)) or not (
        callable(spec) or isinstance(spec, Iterable)
    ):
        raise ConfigurationError(f"{what} got {spec!r}: {_HOW}")
    if callable(spec) and not isinstance(spec, (list, tuple, set, frozenset)):
        return spec  # type: ignore[no-any-return]
    return tuple(_checked(item, signature, what, extra) for item in spec)


def calls(
    spec: Spec, signature: inspect.Signature | None, what: str, *, extra: tuple[str, ...] = ()
) -> list[Call]:
    """The calls of a checked ``spec``; a callable spec is called now and its answer checked."""
    if spec is False:
        return []
    if spec is True:
        return [((), {})]
    if isinstance(spec, tuple):
        return [(args, dict(kwargs)) for args, kwargs in spec]
    made = spec()
    if isinstance(made, (str, bytes, bytearray, Mapping)) or not isinstance(made, Iterable):
        raise ConfigurationError(f"the callable of {what} returned {made!r}: it must return a list of calls")
    return [_checked(item, signature, what, extra) for item in made]


def _checked(item: Any, signature: inspect.Signature | None, what: str, extra: tuple[str, ...]) -> Call:
    if isinstance(item, tuple):
        call: Call = (item, {})
    elif isinstance(item, Mapping):
        kwargs = dict(item)
        if not all(isinstance(name, str) for name in kwargs):
            raise ConfigurationError(f"{what}: the keyword arguments {item!r} must be named by str")
        call = ((), kwargs)
    else:
        hint = f" (write ({item!r},) for one argument)" if not isinstance(item, list) else " (use a tuple)"
        raise ConfigurationError(f"{what}: each call is a tuple or a dict of arguments, got {item!r}{hint}")
    _binds(call[0], call[1], signature, what, extra)
    return call


def _binds(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    signature: inspect.Signature | None,
    what: str,
    extra: tuple[str, ...],
) -> None:
    if signature is None:
        return
    clash = [name for name in extra if name in kwargs]
    if clash:
        raise ConfigurationError(
            f"{what}: {clash[0]} is given by the warming itself; leave it out of {kwargs!r}"
        )
    try:
        signature.bind(*args, **kwargs, **dict.fromkeys(extra))
    except TypeError as exc:
        shown = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        plus = f" (and {', '.join(f'{name}=...' for name in extra)})" if extra else ""
        raise ConfigurationError(
            f"{what}: the call ({shown}){plus} does not fit the signature {signature}: {exc}"
        ) from None
