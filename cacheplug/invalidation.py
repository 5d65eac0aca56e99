"""Invalidation vocabulary: tag names, tag families, write rules, dependency capture, batches.

Tags a user writes are plain strings. cacheplug adds internal tags, all starting with
``"\\x00"`` so they can never collide with a user's:

* ``\\x00ns:<namespace>`` on every entry of a cache namespace (``Cache.clear()``);
* ``\\x00fn:<namespace>:<function>`` on every entry of a function (``cache_clear()``);
* ``\\x00fa:<namespace>:<function>``, bumped when any entry of the function is invalidated
  by its arguments (what ``depends_on=[function]`` listens to);
* ``\\x00k:<key>`` for one key (``invalidate(keys=...)``, ``f.invalidate(...)``);
* ``\\x00~<prefix>``, a *family*: invalidating the user tag ``"user:42"`` also bumps the
  families ``"user:"`` and ``""`` (every prefix ending at a separator, and the empty one).
  An entry that depends on a whole function with ``tags=["user:{user_id}"]`` carries the
  family ``"user:"`` and so goes stale when any ``user:...`` tag is invalidated, in any
  process, without anyone keeping a registry of templates.

Dependency capture: while a cached function computes, every cached value it reads (hits
and computations alike, through any cache) is recorded in a context variable; the new entry
carries the tags of all of them. Context variables follow threads started with a copied
context (``asyncio.to_thread``, ``contextvars.copy_context().run``) and asyncio tasks, but
not a bare ``ThreadPoolExecutor.submit``: reads done there are not captured.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

__all__ = ["Debouncer", "InvalidationRule", "batch"]

log = logging.getLogger("cacheplug")

_SEPARATORS = frozenset(":/.|-_#@ ,;=")
_FORMATTER = string.Formatter()


def ns_tag(namespace: str) -> str:
    return "\x00ns:" + namespace


def fn_tag(namespace: str, ident: str) -> str:
    return f"\x00fn:{namespace}:{ident}"


def fn_any_tag(namespace: str, ident: str) -> str:
    return f"\x00fa:{namespace}:{ident}"


def key_tag(skey: str) -> str:
    return "\x00k:" + skey


ANY_TAG_FAMILY = "\x00~"

# "Every row of": an entry tagged ``"order:7"`` also carries ``ROWS + "order"`` (one per
# prefix ending before a separator), and a write of a whole table (``id=None``) bumps it, so
# a table-level write reaches the entries of each of its rows. A row write does not bump it:
# ``order:7`` stays exact.
ROWS = "\x00*"


def rows_tags(tag: str) -> list[str]:
    """The "every row of" tags a user tag belongs to: ``"order:7"`` → ``[ROWS + "order"]``."""
    return [ROWS + tag[:i] for i, char in enumerate(tag) if char in _SEPARATORS and i]


def with_rows(tags: tuple[str, ...]) -> tuple[str, ...]:
    """``tags`` followed by the "every row of" tags of its user tags (none twice)."""
    extra = [r for tag in tags if not tag.startswith("\x00") for r in rows_tags(tag)]
    return tags if not extra else tuple(dict.fromkeys((*tags, *extra)))


def template_rows(template: str) -> list[str]:
    """The "every row of" tags every tag of ``template`` carries, known before formatting:
    those ending in its literal text before the first field (``"order:{id}"`` → ``order``)."""
    literal = []
    for text, field, _, _ in _FORMATTER.parse(template):
        literal.append(text)
        if field is not None:
            break
    return rows_tags("".join(literal))


def families(tag: str) -> Iterator[str]:
    """The family tags a user tag belongs to: each prefix ending at a separator, and ``""``."""
    yield ANY_TAG_FAMILY
    for i, char in enumerate(tag):
        if char in _SEPARATORS:
            yield ANY_TAG_FAMILY + tag[: i + 1]


def expand(tags: Iterable[str]) -> set[str]:
    """User tags plus their families; internal tags pass through unchanged."""
    out: set[str] = set()
    for tag in tags:
        out.add(tag)
        if not tag.startswith("\x00"):
            out.update(families(tag))
    return out


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# {name}, {name.attr}, {name[key]} and chains of them: what str.format resolves from the
# call's arguments without conversions or format specs.
_FIELD = re.compile(rf"{_IDENT}(?:\.{_IDENT}|\[[^\[\]{{}}]+\])*")
ALLOWED_FORMS = "'{name}', '{name.attr}' or '{name[key]}' (chains like '{user.org.id}' too)"


def template_fields(template: str, what: str = "tag template") -> list[str]:
    """Root names of the replacement fields in ``template`` (``"{user.org_id}"`` → ``user``).

    Raises :class:`ConfigurationError` unless every field is one of the allowed forms
    (see ``ALLOWED_FORMS``); ``{{`` and ``}}`` stand for literal braces.
    """
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise ConfigurationError(
            f"{what} {template!r} is not a valid template ({exc}); fields are written "
            f"{ALLOWED_FORMS}, literal braces as '{{{{' and '}}}}'"
        ) from None
    roots = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise ConfigurationError(
                f"{what} {template!r} uses a positional field; name the parameter: "
                f"{ALLOWED_FORMS}, e.g. 'user:{{user_id}}'"
            )
        if conversion is not None or spec:
            raise ConfigurationError(
                f"{what} {template!r}: the field {{{field}...}} has a conversion or format "
                f"spec ('!r', ':>5'); only {ALLOWED_FORMS} are allowed: format the value in a "
                f"tags= callable instead"
            )
        if _FIELD.fullmatch(field) is None:
            raise ConfigurationError(f"{what} {template!r}: {{{field}}} is not one of {ALLOWED_FORMS}")
        roots.append(field.split(".", 1)[0].split("[", 1)[0])
    return roots


def template_family(template: str) -> str | None:
    """The family a template's tags fall in, or ``None`` for a static tag (no fields)."""
    literal = []
    for text, field, _, _ in _FORMATTER.parse(template):
        literal.append(text)
        if field is not None:
            prefix = "".join(literal)
            cut = max((i for i, c in enumerate(prefix) if c in _SEPARATORS), default=-1)
            return ANY_TAG_FAMILY + prefix[: cut + 1]
    return None


# -- write rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class InvalidationRule:
    """What a write of ``entity`` invalidates beyond ``entity`` and ``entity:{id}``.

    ``tags`` is a list of templates formatted with ``id`` (``"dashboard:{id}"``) or a
    callable receiving the id and returning an iterable of tags.
    """

    entity: str
    tags: Iterable[str] | Callable[[Any], Iterable[str]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.entity, str) or not self.entity:
            raise ConfigurationError(
                "InvalidationRule needs an entity name, e.g. InvalidationRule('user', ...)"
            )
        if callable(self.tags):
            return
        if isinstance(self.tags, str):
            raise ConfigurationError("InvalidationRule tags must be a list of templates, not one string")
        frozen = tuple(self.tags)
        for template in frozen:
            if not isinstance(template, str):
                raise ConfigurationError(f"InvalidationRule tag {template!r} is not a string")
            unknown = [f for f in template_fields(template, "InvalidationRule template") if f != "id"]
            if unknown:
                raise ConfigurationError(
                    f"InvalidationRule template {template!r} may only use {{id}}, not {unknown}"
                )
        object.__setattr__(self, "tags", frozen)

    def tags_for(self, id: Any) -> list[str]:
        """The tags this rule adds for a write of ``id``."""
        if callable(self.tags):
            return [str(t) for t in self.tags(id)]
        if id is None:
            return [t for t in self.tags if "{" not in t]
        return [t.format(id=id) for t in self.tags]


def write_tags(entity: str, id: Any, rules: Iterable[InvalidationRule]) -> list[str]:
    """Tags invalidated by a write of ``entity`` (and ``id``) under ``rules``."""
    # A write of the whole table (id None) reaches every entry of one of its rows too.
    tags = [entity, ROWS + entity] if id is None else [entity, f"{entity}:{id}"]
    for rule in rules:
        if rule.entity == entity:
            tags.extend(rule.tags_for(id))
    return tags


# -- dependency capture -----------------------------------------------------------------

CAPTURE: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("cacheplug_capture", default=None)


# One item per computation capturing right now, in any thread or task. ``list.append`` and
# ``list.pop`` are atomic, so this is an exact count without a lock, and the hit path tests
# the list's truth (a few ns) before it looks at the context variable at all.
ACTIVE: list[None] = []


def capture_begin() -> tuple[list[Any], contextvars.Token[list[Any] | None]]:
    """Start capturing the cached reads of this context (``calls.Pending`` inlines this)."""
    bucket: list[Any] = []
    token = CAPTURE.set(bucket)
    ACTIVE.append(None)
    return bucket, token


# Bound once: capture_end runs on every miss.
_active_pop = ACTIVE.pop
_capture_reset = CAPTURE.reset


def capture_end(token: contextvars.Token[list[Any] | None]) -> None:
    """Stop the capture that ``token`` started."""
    _active_pop()
    _capture_reset(token)


def note(entry: Any) -> None:
    """Record ``entry`` as read by the computation running in this context, if any."""
    if not ACTIVE:
        return
    bucket = CAPTURE.get()
    if bucket is not None:
        bucket.append(entry)


# -- batches ----------------------------------------------------------------------------

BATCH: contextvars.ContextVar[dict[Any, tuple[set[str], set[str]]] | None] = contextvars.ContextVar(
    "cacheplug_batch", default=None
)


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """Collect the invalidations requested inside the block and apply them once, at exit.

    Invalidations of every cache requested in this context (thread or task) are
    deduplicated and applied as one invalidation and one ``invalidated`` signal per cache
    when the block exits, also on exception. Nested blocks fold into the outermost. Until
    the block exits, the collected invalidations are not applied.
    """
    if BATCH.get() is not None:
        yield
        return
    pending: dict[Any, tuple[set[str], set[str]]] = {}
    token = BATCH.set(pending)
    try:
        yield
    finally:
        BATCH.reset(token)
        errors = []
        for cache, (tags, keys) in pending.items():
            try:
                cache.invalidator.apply(tags, keys)
            except Exception as exc:  # applied for every cache, then the first error raised
                errors.append(exc)
        if errors:
            raise errors[0]


def pending_for(cache: Any) -> tuple[set[str], set[str]] | None:
    """The batch bucket for ``cache`` when inside ``batch()``, else ``None``."""
    pending = BATCH.get()
    if pending is None:
        return None
    bucket = pending.get(cache)
    if bucket is None:
        bucket = pending[cache] = (set(), set())
    return bucket


# -- debounce ---------------------------------------------------------------------------


class Debouncer:
    """Coalesces a burst of invalidations into one, applied ``window`` seconds after the first.

    Opt-in (``Cache(debounce=...)``), because it trades correctness for write throughput:
    until the window closes, the entries the burst invalidates are still served. Use it only
    where readers may see data up to ``window`` seconds old after a write; ``flush()``
    applies what is pending at once. If applying fails in the background, the invalidations
    are kept, logged, and retried at the next window.

    The windows are timed by one worker thread, owned by the debouncer: started at the first
    invalidation (a cache that never invalidates has none), stopped and joined by
    :meth:`close`, which then applies what is still pending in the caller's thread (its
    error, if any, reaches the caller). After ``close()`` an invalidation is applied at once.
    """

    def __init__(self, window: float, apply: Callable[[set[str], set[str]], None]) -> None:
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
            raise ConfigurationError(f"debounce must be a number of seconds > 0, got {window!r}")
        self.window = float(window)
        self._apply = apply
        self._tags: set[str] = set()
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._due: float | None = None  # when the open window closes (None: no window open)
        self._worker: threading.Thread | None = None
        self._closed = False

    @property
    def worker(self) -> threading.Thread | None:
        """The thread timing the windows, while it runs (``None`` before the first invalidation)."""
        return self._worker

    def add(self, tags: set[str], keys: set[str]) -> None:
        """Hold ``tags`` and ``keys`` until the window (opened by the first of a burst) closes."""
        with self._lock:
            self._keep(tags, keys)
            closed = self._closed
            if not closed and self._worker is None:
                self._worker = threading.Thread(target=self._run, name="cacheplug-debounce", daemon=True)
                self._worker.start()
        if closed:
            self.flush()

    def _keep(self, tags: set[str], keys: set[str]) -> None:
        # Under the lock.
        self._tags |= tags
        self._keys |= keys
        if self._due is None and not self._closed:
            self._due = time.monotonic() + self.window
            self._wake.notify_all()

    @property
    def pending(self) -> bool:
        return bool(self._tags or self._keys)

    def flush(self) -> bool:
        """Apply what is pending now; True if there was anything."""
        with self._lock:
            tags, keys = self._tags, self._keys
            self._tags, self._keys = set(), set()
            self._due = None
        if not tags and not keys:
            return False
        try:
            self._apply(tags, keys)
        except BaseException:
            with self._lock:
                self._keep(tags, keys)
            raise
        return True

    def close(self) -> None:
        """Stop and join the worker, then apply what is pending (raising if that fails)."""
        with self._lock:
            self._closed = True
            self._due = None
            worker, self._worker = self._worker, None
            self._wake.notify_all()
        if worker is not None and worker is not threading.current_thread():
            worker.join()
        self.flush()

    def after_fork(self) -> None:
        """In a forked child: the parent applies what was pending; the child starts empty.

        The worker did not survive the fork; the child's next invalidation starts its own.
        """
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._tags, self._keys = set(), set()
        self._due = None
        self._worker = None

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed:
                    due = self._due
                    if due is not None and time.monotonic() >= due:
                        break
                    self._wake.wait(None if due is None else max(due - time.monotonic(), 0.0))
                if self._closed:
                    return
            try:
                self.flush()
            except Exception as exc:
                log.error(
                    "cacheplug: debounced invalidation failed (%r); retrying in %.3fs", exc, self.window
                )
