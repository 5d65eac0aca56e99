"""Flask integration: ``CachePlug(app)``, ``app.config`` settings, ``flask cacheplug ...``, cached views.

``pip install 'cacheplug[flask]'``. :class:`CachePlug` (``CachePlug(app)`` or
``plug.init_app(app)`` in an application factory):

* reads the ``CACHEPLUG_*`` keys of ``app.config``: the cache settings of
  :func:`cacheplug.configure` (when any is given, the process's default cache is rebuilt
  from them) and the defaults of every cached view (``CACHEPLUG_HTTP_*``); an unknown
  ``CACHEPLUG_`` key raises :class:`~cacheplug.ConfigurationError` (a typo caught at start);
* mounts the command line's click group as ``flask cacheplug ...`` (``--dir`` defaults to
  the application's cache directory);
* caches views' responses with :meth:`CachePlug.cached`, in Flask-Caching's shape, with
  :mod:`cacheplug.http`'s policy. A view's lookup runs in the view (after
  ``before_request``); its response is completed and stored by a WSGI layer around
  ``app.wsgi_app`` once Flask has finished it, so a session cookie set by Flask stops it
  from being stored and a session read makes it vary on ``Cookie``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from .. import invalidation as inv
from ..cache import Cache
from ..defaults import configure
from ..errors import ConfigurationError
from ..http import Fill, Response, ResponseCache
from ..tiers.disk import DiskTier
from ._require import require
from .wsgi import Environ, StartResponse, WSGIApp, request_of, run_fill

flask = require("flask", "flask")
click = require("click", "flask")
_datastructures = require("werkzeug.datastructures", "flask")
require("rich", "flask")  # the command line's tables; then cacheplug.cli imports cleanly
_cli = require("cacheplug.cli", "flask")

__all__ = ["CachePlug"]

_FILL = "cacheplug.fill"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _flag(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigurationError(f"app.config[{key!r}]={value!r}: use True or False")
    return value


def _number(kind: type) -> Callable[[str, Any], Any]:
    def convert(key: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return kind(value)
        except ValueError:
            raise ConfigurationError(f"app.config[{key!r}]={value!r} is not a number, e.g. 300") from None

    return convert


def _items(kind: type) -> Callable[[str, Any], Any]:
    def convert(key: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return tuple(kind(part.strip()) for part in value.split(",") if part.strip())
        except ValueError:
            raise ConfigurationError(f"app.config[{key!r}]={value!r}: give comma-separated values") from None

    return convert


def _same(key: str, value: Any) -> Any:
    return value


# app.config key -> (argument, conversion of a str value, e.g. from the environment)
_CACHE_KEYS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "CACHEPLUG_DEFAULT_TTL": ("default_ttl", _number(float)),
    "CACHEPLUG_MAX_ENTRIES": ("max_entries", _number(int)),
    "CACHEPLUG_DIR": ("directory", _same),
    "CACHEPLUG_TIERS": ("tiers", _same),
    "CACHEPLUG_ENABLED": ("enabled", _flag),
    "CACHEPLUG_SECRET": ("secret", _same),
    "CACHEPLUG_NAMESPACE": ("namespace", _same),
}
_VIEW_KEYS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "CACHEPLUG_HTTP_TTL": ("ttl", _number(float)),
    "CACHEPLUG_HTTP_STATUSES": ("statuses", _items(int)),
    "CACHEPLUG_HTTP_ALLOW_COOKIES": ("allow_cookies", _items(str)),
    "CACHEPLUG_HTTP_RESPECT_REQUEST_CACHE_CONTROL": ("respect_request_cache_control", _flag),
    "CACHEPLUG_HTTP_MAX_BODY_SIZE": ("max_body_size", _number(int)),
}
_ENVIRONMENT_ONLY = ("CACHEPLUG_OTEL", "CACHEPLUG_LATENCY_TARGET_MS")


def _read(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cache settings and the views' defaults that ``config`` gives (``None``: not given)."""
    cache: dict[str, Any] = {}
    views: dict[str, Any] = {}
    for key in sorted(k for k in config if k.startswith("CACHEPLUG_")):
        value = config[key]
        if key in _ENVIRONMENT_ONLY:
            raise ConfigurationError(
                f"{key} is read from the environment only: set it there, not in app.config"
            )
        found = _CACHE_KEYS.get(key) or _VIEW_KEYS.get(key)
        if found is None:
            known = ", ".join((*_CACHE_KEYS, *_VIEW_KEYS))
            raise ConfigurationError(f"app.config has the unknown key {key}; cacheplug reads {known}")
        if value is not None:
            (cache if key in _CACHE_KEYS else views)[found[0]] = found[1](key, value)
    return cache, views


def _directory_of(cache: Cache | None) -> str | None:
    for tier in cache.tiers if cache is not None else ():
        if isinstance(tier, DiskTier):
            return tier.directory
    return None


def _commands(directory: str | None) -> Any:
    """The command line's group (same commands, options and callback), ``--dir`` defaulting
    to ``directory``."""
    group = _cli.cli
    settings = dict(group.context_settings)
    if directory is not None:
        settings["default_map"] = {name: {"directory": directory} for name in group.commands}
    return click.Group(
        "cacheplug",
        commands=dict(group.commands),
        callback=group.callback,
        params=group.params,
        help=group.help,
        context_settings=settings,
    )


class _Finish:
    """The WSGI layer around ``app.wsgi_app`` that completes and stores cached views' responses."""

    def __init__(self, wsgi_app: WSGIApp) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return run_fill(self.wsgi_app, environ, start_response, lambda: environ.pop(_FILL, None))


class _State:
    """What :meth:`CachePlug.init_app` left on one application (``app.extensions["cacheplug"]``)."""

    def __init__(self, cache: Cache | None, views: dict[str, Any]) -> None:
        self.cache = cache
        self.views = views
        self.policies: dict[int, ResponseCache] = {}

    def policy(self, options: dict[str, Any]) -> ResponseCache:
        found = self.policies.get(id(options))
        if found is None:
            given = {k: v for k, v in options.items() if v is not None}
            found = self.policies[id(options)] = ResponseCache(cache=self.cache, **{**self.views, **given})
        return found


class CachePlug:
    """cacheplug in a Flask application: ``CachePlug(app)``, or ``CachePlug()`` then ``init_app(app)``.

    ``cache``: the :class:`~cacheplug.Cache` cached views store into (default: the default
    cache at each request, rebuilt by ``init_app`` from ``app.config`` when it has cache
    settings; the two cannot be combined).
    """

    def __init__(self, app: Any = None, *, cache: Cache | None = None) -> None:
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigurationError(f"CachePlug(cache=...) needs a cacheplug.Cache, got {cache!r}")
        self.cache = cache
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        """Read ``app.config``, mount ``flask cacheplug``, and complete cached views' responses."""
        if "cacheplug" in app.extensions:
            raise ConfigurationError(f"cacheplug is already set up on the Flask app {app.name!r}")
        settings, views = _read(app.config)
        try:
            ResponseCache(**views)  # the views' defaults fail here, at start, not at a request
        except ConfigurationError as exc:
            raise ConfigurationError(f"app.config CACHEPLUG_HTTP_*: {exc}") from None
        if settings:
            if self.cache is not None:
                raise ConfigurationError(
                    "CachePlug(cache=...) and cache settings in app.config (CACHEPLUG_DIR, ...) "
                    "cannot be combined: configure the Cache you pass, or drop cache="
                )
            configure(**settings)
        app.extensions["cacheplug"] = _State(self.cache, views)
        app.wsgi_app = _Finish(app.wsgi_app)
        app.cli.add_command(_commands(settings.get("directory") or _directory_of(self.cache)), "cacheplug")

    def cached(
        self,
        ttl: float | timedelta | None = None,
        *,
        tags: Iterable[str] | Callable[..., Iterable[str]] = (),
        statuses: Iterable[int] | None = None,
        allow_cookies: Iterable[str] | None = None,
        respect_request_cache_control: bool | None = None,
        max_body_size: int | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Cache a view's responses: ``@plug.cached(ttl=60, tags=["item:{item_id}"])`` below ``@app.get``.

        ``tags``: templates formatted with the view's arguments (its URL variables), or a
        callable receiving them. Options left ``None`` come from ``app.config``
        (``CACHEPLUG_HTTP_TTL``, ``..._STATUSES``, ``..._ALLOW_COOKIES``,
        ``..._RESPECT_REQUEST_CACHE_CONTROL``, ``..._MAX_BODY_SIZE``), then from
        :class:`cacheplug.http.ResponseCache`'s defaults (60 s, ``(200,)``...). The query
        string is always part of the key.
        """
        options: dict[str, Any] = {
            "ttl": ttl,
            "statuses": statuses,
            "allow_cookies": allow_cookies,
            "respect_request_cache_control": respect_request_cache_control,
            "max_body_size": max_body_size,
        }
        ResponseCache(**{k: v for k, v in options.items() if v is not None})  # bad options fail now

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            tags_of = _tags_of(view, tags)

            @functools.wraps(view)
            def serve(*args: Any, **kwargs: Any) -> Any:
                state = flask.current_app.extensions.get("cacheplug")
                if not isinstance(state, _State):
                    raise ConfigurationError(
                        f"@plug.cached on {view.__qualname__}: set up cacheplug on the app first, "
                        f"CachePlug(app) or plug.init_app(app)"
                    )
                environ = flask.request.environ
                plan = state.policy(options).begin(request_of(environ))
                if isinstance(plan, Response):
                    return _response(plan)
                call = flask.current_app.ensure_sync(view)
                if plan is None:
                    return call(*args, **kwargs)
                return _compute(plan, environ, tags_of, call, args, kwargs)

            return serve

        return decorate


def _response(plan: Response) -> Any:
    """A Flask response sending exactly ``plan`` (Werkzeug would recount a HEAD's Content-Length)."""
    response = flask.current_app.response_class(plan.body, plan.status)
    response.headers = _datastructures.Headers(list(plan.headers))
    return response


def _compute(
    fill: Fill,
    environ: Environ,
    tags_of: Callable[[dict[str, Any]], tuple[str, ...]],
    call: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """A miss: run the view; the WSGI layer (``_Finish``) completes and stores the response."""
    try:
        fill.extra_tags = tags_of(kwargs)
        environ[_FILL] = fill
        return call(*args, **kwargs)
    except BaseException:
        environ.pop(_FILL, None)
        fill.conclude()
        raise


def _tags_of(view: Callable[..., Any], tags: Any) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    """The view's tags from its arguments, checked at decoration like ``@cached``'s."""
    if callable(tags):
        return lambda kwargs: tuple(str(t) for t in tags(**kwargs))
    if isinstance(tags, str):
        raise ConfigurationError(f"@plug.cached tags= takes a list of templates: write tags=[{tags!r}]")
    templates = tuple(tags)
    parameters = inspect.signature(view).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for template in templates:
        if not isinstance(template, str) or not template:
            raise ConfigurationError(f"@plug.cached tag {template!r} must be a non-empty str template")
        for root in inv.template_fields(template):
            if root not in parameters and not open_ended:
                raise ConfigurationError(
                    f"tag template {template!r} names {root!r}, which is not an argument of the view "
                    f"{view.__qualname__} (its arguments: {list(parameters)})"
                )
    return lambda kwargs: tuple(t.format_map(kwargs) for t in templates)
