"""FastAPI: ``@cached`` on route functions whose parameters come from ``Depends``.

``pip install 'cacheplug[fastapi]'``. FastAPI calls a route function with what its
dependencies returned (a database session, the current user) and with objects it injects
itself (``Request``, ``Response``, ``BackgroundTasks``...). Plain :func:`cacheplug.cached`
keys on every parameter, so such a call raises
:class:`~cacheplug.UnkeyableArgumentError` unless each is listed in ``ignore=``.
:func:`cached` here is :func:`cacheplug.cached` with those parameters left out of the key,
found from the signature: a ``Depends(...)``/``Security(...)`` default, an
``Annotated[..., Depends(...)]`` annotation, or an injected type. A dependency that does
change the result (the current user's id) joins the key when named in
``key_dependencies=``.

Caching a dependency itself needs nothing from here: ``Depends(f)`` on a ``@cached``
function ``f`` is served from the cache (FastAPI reads the cached function's signature).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ParamSpec, TypeVar, overload

from ..decorator import CachedFunction
from ..decorator import cached as _cached
from ..errors import ConfigurationError
from ._require import require

_params = require("fastapi.params", "fastapi")
_background = require("starlette.background", "fastapi")
_requests = require("starlette.requests", "fastapi")
_responses = require("starlette.responses", "fastapi")
_security = require("fastapi.security", "fastapi")

__all__ = ["cached", "dependency_parameters"]

P = ParamSpec("P")
R = TypeVar("R")

# What FastAPI passes by type, not from the request's data (Request and WebSocket are
# HTTPConnections; a Response parameter is the one FastAPI will send headers from).
_INJECTED: tuple[type, ...] = (
    _requests.HTTPConnection,
    _responses.Response,
    _background.BackgroundTasks,
    _security.SecurityScopes,
)


def _is_dependency(parameter: inspect.Parameter, annotation: Any) -> bool:
    if isinstance(parameter.default, _params.Depends):
        return True
    if typing.get_origin(annotation) is Annotated:
        if any(isinstance(meta, _params.Depends) for meta in annotation.__metadata__):
            return True
        annotation = typing.get_args(annotation)[0]
    return isinstance(annotation, type) and issubclass(annotation, _INJECTED)


def dependency_parameters(func: Callable[..., Any]) -> tuple[str, ...]:
    """The parameters of ``func`` that FastAPI fills from dependencies or injects itself."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # a forward reference that does not resolve: read the raw annotations
        hints = {}
    return tuple(
        name
        for name, parameter in inspect.signature(func).parameters.items()
        if _is_dependency(parameter, hints.get(name, parameter.annotation))
    )


@overload
def cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...


@overload
def cached(
    ttl: Any = None,
    *,
    key_dependencies: Iterable[str] = (),
    ignore: Iterable[str] = (),
    **options: Any,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def cached(
    ttl: Any = None,
    *,
    key_dependencies: Iterable[str] = (),
    ignore: Iterable[str] = (),
    **options: Any,
) -> Any:
    """:func:`cacheplug.cached` for FastAPI routes: dependencies are left out of the key.

    Takes every option of :func:`cacheplug.cached`. ``key_dependencies``: names of
    dependency parameters whose values do join the key (their values must be keyable:
    ``int``, ``str``, a dataclass, a ``__cache_key__``). Write it below the route decorator:
    ``@app.get(...)`` then ``@cached(ttl=60)``.
    """
    if callable(ttl) and not isinstance(ttl, (int, float)):
        return _decorate(ttl, None, (), (), {})
    if isinstance(key_dependencies, str):
        raise ConfigurationError(
            f"key_dependencies= takes a tuple of names: write key_dependencies=({key_dependencies!r},)"
        )
    if isinstance(ignore, str):
        raise ConfigurationError(f"ignore= takes a tuple of names: write ignore=({ignore!r},)")
    named, ignored = tuple(key_dependencies), tuple(ignore)
    return lambda func: _decorate(func, ttl, named, ignored, options)


def _decorate(
    func: Any, ttl: Any, named: tuple[str, ...], ignored: tuple[str, ...], options: dict[str, Any]
) -> Any:
    found = dependency_parameters(func)
    unknown = [name for name in named if name not in found]
    if unknown:
        raise ConfigurationError(
            f"key_dependencies= names {unknown}, which are not dependency parameters of "
            f"{func.__qualname__} (those are {list(found)})"
        )
    left_out = ignored + tuple(n for n in found if n not in named and n not in ignored)
    return _cached(ttl, ignore=left_out, **options)(func)
