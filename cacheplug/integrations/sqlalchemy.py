"""SQLAlchemy 2.x: the writes a session commits invalidate what was cached from them.

``track(factory)`` listens to the sessions a ``sessionmaker`` (or ``async_sessionmaker``,
``scoped_session``, ``Session`` or ``AsyncSession`` class or instance) makes. While a
transaction is open it only records what is written; once the outermost transaction has
committed, it sends :data:`cacheplug.signals.written` (sender: the ``Session``; for an
``AsyncSession``, the ``Session`` it runs on) once per written row or table, inside one
:func:`cacheplug.batch`, so a commit costs one invalidation per cache however many rows it
wrote. What is sent:

* an object inserted, updated (with a net change) or deleted by a flush: ``entity=`` the
  entity of each table its row lives in (two for joined-table inheritance) and ``id=`` its
  primary key (a :class:`CompositeKey` for a composite one);
* the objects on the other side of a relationship that changed (added to or removed from a
  collection, an orphan deleted, a many-to-one set), with their ids: their collections
  changed too;
* a many-to-many association (``secondary``) table whose rows a flush changed, and every
  table written by a statement executed through the session rather than by a flush (Core
  ``insert()``/``update()``/``delete()``, ``session.execute(update(Model)...)``,
  ``Query.update()``/``delete()``, ORM bulk inserts and updates, the legacy ``bulk_*``
  methods): ``entity=`` the table's entity and ``id=None``. That invalidates the entity's
  tag (``"order"``), not the per-row tags (``"order:5"``);
* nothing for ``text()`` and ``exec_driver_sql()`` statements, nor for rows that the
  database changes by itself (``ON DELETE CASCADE``, triggers): invalidate those by hand.

A rollback sends nothing; a savepoint rolled back drops what was written inside it, one
released keeps it for the outer commit. The entity of a table is its name, or the
``__cacheplug_entity__`` attribute of the model class mapped to it (:func:`entity_of`); the
tags invalidated are those of :func:`cacheplug.invalidate_by_write`: ``entity`` and
``f"{entity}:{id}"``, plus the registered rules'.

Fails closed: when the invalidation cannot be recorded, the commit call raises
:class:`~cacheplug.errors.InvalidationError` (the data *is* committed) and the process reads
no shared tier until the invalidation is recorded (``cacheplug.cache.invalidating``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from ._require import require

require("sqlalchemy", "sqlalchemy")  # raises MissingDependency naming the extra when missing

from sqlalchemy import event  # noqa: E402  (imported once the check above passed)
from sqlalchemy import inspect as sa_inspect  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_sessionmaker  # noqa: E402
from sqlalchemy.orm import Mapper, Session, SessionTransaction, scoped_session, sessionmaker  # noqa: E402
from sqlalchemy.orm.attributes import get_state_history, instance_state  # noqa: E402
from sqlalchemy.orm.base import NO_VALUE, PASSIVE_NO_INITIALIZE  # noqa: E402
from sqlalchemy.orm.interfaces import MANYTOONE  # noqa: E402
from sqlalchemy.orm.state import InstanceState  # noqa: E402
from sqlalchemy.sql.expression import FromClause, TableClause  # noqa: E402
from sqlalchemy.sql.util import find_tables  # noqa: E402
from sqlalchemy.util import await_only  # noqa: E402

from .. import signals  # noqa: E402
from ..errors import ConfigurationError, InvalidationError  # noqa: E402
from ..invalidation import batch  # noqa: E402

__all__ = ["CompositeKey", "Tracking", "entity_of", "track"]

_INFO_KEY = "cacheplug.writes"  # the session.info entry holding its open transaction's writes

Write = tuple[str, Any]  # (entity, id or None)
Pending = Write | InstanceState[Any]  # a write, or an object whose row is named at commit


class CompositeKey(tuple[Any, ...]):
    """The id of a row with a composite primary key: a tuple whose ``str`` joins its parts with ``:``.

    ``CompositeKey((7, 2))`` equals ``(7, 2)``, and the tag of a write of it to ``order_line``
    is ``"order_line:7:2"``: write ``@cached(tags=["order_line:{order_id}:{line_no}"])``.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return ":".join(str(part) for part in self)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


# -- entities --------------------------------------------------------------------------------


def entity_of(model_or_table: Any) -> str:
    """The entity a write to this model class or ``Table`` is sent as.

    The table's name, unless the model class mapped to it declares
    ``__cacheplug_entity__ = "order"``. For a model, the entity of its own table.
    """
    if isinstance(model_or_table, TableClause):
        return _table_entity(model_or_table)
    mapper = sa_inspect(model_or_table, raiseerr=False)
    if not isinstance(mapper, Mapper):
        raise ConfigurationError(f"entity_of() takes a mapped model class or a Table, got {model_or_table!r}")
    return _table_entity(mapper.local_table)


_TABLE_ENTITIES: weakref.WeakKeyDictionary[FromClause, str] = weakref.WeakKeyDictionary()


def _table_entity(table: FromClause) -> str:
    found = _TABLE_ENTITIES.get(table)
    if found is None:
        found = _TABLE_ENTITIES[table] = _declared_entity(table)
    return found


def _mappers() -> Iterable[Mapper[Any]]:
    # SQLAlchemy keeps no public list of every registry; this private one has existed since
    # 1.4. Without it, tables are named by their names (the tests notice).
    all_registries = getattr(importlib.import_module("sqlalchemy.orm.mapper"), "_all_registries", None)
    for registry in all_registries() if all_registries is not None else ():
        yield from registry.mappers


def _declared_entity(table: FromClause) -> str:
    """``__cacheplug_entity__`` of the class that maps ``table`` (the base of an
    inheritance hierarchy sharing it), else the table's name."""
    name = str(getattr(table, "name", "") or table.description)
    # ``==``, not ``is``: a statement's table may be an annotated copy, equal to the original.
    owners = [m for m in _mappers() if m.local_table == table]
    owner = next((m for m in owners if m.inherits is None or m.inherits.local_table != table), None)
    if owner is None:
        return name
    for klass in owner.class_.__mro__:
        mapped: Any = sa_inspect(klass, raiseerr=False)
        if isinstance(mapped, Mapper) and mapped.local_table != table:
            break  # a mapped superclass of another table: its entity names that table
        if "__cacheplug_entity__" in vars(klass):
            return _checked_entity(klass, vars(klass)["__cacheplug_entity__"])
    return name


def _checked_entity(klass: type, entity: Any) -> str:
    if not isinstance(entity, str) or not entity or entity.startswith("\x00"):
        raise ConfigurationError(
            f"{klass.__qualname__}.__cacheplug_entity__ must be a non-empty str (the name its "
            f'writes are invalidated by, e.g. "order"), got {entity!r}'
        )
    return entity


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a flush of one mapper's objects sends, worked out once per mapper."""

    entities: tuple[str, ...]
    key_attributes: tuple[str, ...]
    # (attribute, the entity of its secondary table or None), for every relationship
    relationships: tuple[tuple[str, str | None], ...]
    # (the entities of the row a foreign key points to, the attributes holding the key)
    parents: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]


_PLANS: weakref.WeakKeyDictionary[Mapper[Any], _Plan] = weakref.WeakKeyDictionary()


def _plan(mapper: Mapper[Any]) -> _Plan:
    found = _PLANS.get(mapper)
    if found is None:
        found = _PLANS[mapper] = _Plan(
            entities=tuple(dict.fromkeys(_table_entity(t) for t in mapper.tables)),
            key_attributes=tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key),
            relationships=tuple(
                (r.key, None if r.secondary is None else _table_entity(r.secondary))
                for r in mapper.relationships
            ),
            parents=tuple(dict.fromkeys(p for r in mapper.relationships if (p := _parent(mapper, r)))),
        )
    return found


def _parent(mapper: Mapper[Any], relationship: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """For a many-to-one onto the other side's primary key: its entities, and the attributes of
    ``mapper`` holding that key (in the key's order)."""
    if relationship.direction is not MANYTOONE or relationship.secondary is not None:
        return None
    target = relationship.mapper
    local_of = {remote: local for local, remote in relationship.local_remote_pairs}
    if set(local_of) != set(target.primary_key):
        return None
    try:
        keys = tuple(mapper.get_property_by_column(local_of[c]).key for c in target.primary_key)
    except Exception:  # a foreign key column the model does not map: nothing to read it from
        return None
    return _plan(target).entities, keys


def _rows(values: tuple[Any, ...]) -> list[Any]:
    """``[id]`` of a row whose key is ``values``, or ``[]`` when a part of it is unknown."""
    if any(v is None or v is NO_VALUE for v in values):
        return []
    return [values[0] if len(values) == 1 else CompositeKey(values)]


def _flushed(
    state: InstanceState[Any], deleted: bool, bucket: set[Pending], plans: dict[type, _Plan]
) -> None:
    """Add what a flush of ``state`` wrote: its row, the rows its foreign keys point to (before
    and after), and the other side of the relationships it changed.

    The rows of objects are added as their states and named when the transaction commits
    (:func:`_named`): by then the flush has given new rows their identity, and a transaction
    that rolls back never pays for it.
    """
    bucket.add(state)
    plan = plans.get(state.class_)
    if plan is None:
        plan = plans[state.class_] = _plan(state.mapper)
    if not plan.parents and not plan.relationships and state.key is None:
        return  # a new row and nothing else (most inserts)
    now, before = state.dict, state.committed_state
    if state.key is not None and any(k in before for k in plan.key_attributes):
        for row in _rows(state.key[1]):  # the flush changed the key itself: the old row too
            bucket.update((entity, row) for entity in plan.entities)
    for entities, keys in plan.parents:
        rows = _rows(tuple(now.get(k) for k in keys))
        if any(k in before for k in keys):
            rows += _rows(tuple(before.get(k, now.get(k)) for k in keys))
        for row in rows:
            bucket.update((entity, row) for entity in entities)
    for key, secondary in plan.relationships:
        if deleted:
            if key not in now:
                continue  # never loaded: the flush did not need it, nothing changed there
            related = get_state_history(state, key, PASSIVE_NO_INITIALIZE).sum()
        elif key in before:
            history = get_state_history(state, key, PASSIVE_NO_INITIALIZE)
            related = [*history.added, *history.deleted]
        else:
            continue
        if related and secondary is not None:
            bucket.add((secondary, None))
        bucket.update(instance_state(other) for other in related if other is not None)


def _named(bucket: set[Pending]) -> set[Write]:
    """The writes of a committed transaction, each object's row named by its identity."""
    written: set[Write] = set()
    entities_of: dict[type, tuple[str, ...]] = {}
    for item in bucket:
        if type(item) is tuple:
            written.add(item)
            continue
        identity = cast("InstanceState[Any]", item).key  # (class, key values, token)
        if identity is None:
            continue  # never flushed: it wrote nothing
        entities = entities_of.get(identity[0])
        if entities is None:
            entities = entities_of[identity[0]] = _plan(cast("InstanceState[Any]", item).mapper).entities
        values = identity[1]
        if len(values) == 1:
            row = values[0]
        elif None in values:
            continue
        else:
            row = CompositeKey(values)
        for entity in entities:
            written.add((entity, row))
    return written


def _statement_tables(clause: Any) -> list[FromClause]:
    """The tables an INSERT, UPDATE or DELETE statement writes."""
    description = clause.entity_description
    model = description.get("entity") if isinstance(description, dict) else None
    mapped: Any = None if model is None else sa_inspect(model, raiseerr=False)
    if mapped is not None and hasattr(mapped, "mapper"):
        # An ORM statement: SQLAlchemy reports it once per table it runs on (a joined
        # subclass's), each time as the model's statement: every table of the model.
        return list(mapped.mapper.tables)
    table = getattr(clause, "table", None)
    if isinstance(table, TableClause):
        return [table]
    if isinstance(table, FromClause):  # an alias, or a join (multi-table UPDATE on some backends)
        return list(find_tables(table, include_aliases=False))
    return []


# -- one session's writes, by transaction ---------------------------------------------------


class _Writes:
    """What one session wrote in its open transaction, by savepoint, until it ends."""

    __slots__ = ("buckets", "committed", "connections", "flush")

    def __init__(self) -> None:
        # Keyed by the savepoint (or the outermost transaction) the writes belong to.
        self.buckets: dict[SessionTransaction, set[Pending]] = {}
        self.committed: set[SessionTransaction] = set()
        self.flush: Any = None  # the UOWTransaction of the flush running now, if any
        self.connections: list[Connection] = []  # the connections the session used

    def flushing(self) -> bool:
        transaction = getattr(self.flush, "transaction", None)
        return transaction is not None and transaction.is_active


def _writes(session: Session) -> _Writes:
    found = session.info.get(_INFO_KEY)
    if found is None:
        found = session.info[_INFO_KEY] = _Writes()
    return found


def _level(transaction: SessionTransaction | None) -> SessionTransaction | None:
    """The savepoint or outermost transaction ``transaction`` belongs to."""
    while transaction is not None and not transaction.nested and transaction.parent is not None:
        transaction = transaction.parent
    return transaction


def _bucket(session: Session, writes: _Writes) -> set[Pending] | None:
    level = session.get_nested_transaction() or session.get_transaction()
    if level is None:
        return None
    bucket = writes.buckets.get(level)
    if bucket is None:
        bucket = writes.buckets[level] = set()
    return bucket


# The connections of tracked sessions' open transactions, and those sessions (weakly): a
# statement one of them runs that no flush ran is a write by table.
_CONNECTIONS: weakref.WeakKeyDictionary[Connection, list[weakref.ref[Session]]] = weakref.WeakKeyDictionary()


def _after_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    writes = _writes(session)
    if connection not in writes.connections:
        writes.connections.append(connection)
        _CONNECTIONS.setdefault(connection, []).append(weakref.ref(session))


def _after_execute(conn: Connection, clause: Any, *args: Any) -> None:
    """A statement ran on some connection (every engine's, while anything is tracked)."""
    if not getattr(clause, "is_dml", False):
        return  # queries, DDL, text() and driver SQL
    sessions = _CONNECTIONS.get(conn)
    for ref in sessions or ():
        session = ref()
        writes = None if session is None else session.info.get(_INFO_KEY)
        if session is None or writes is None or writes.flushing():
            continue  # a flush's rows are sent as the objects they are
        bucket = _bucket(session, writes)
        if bucket is not None:
            bucket.update((_table_entity(t), None) for t in _statement_tables(clause))


def _release(session: Session, writes: _Writes) -> None:
    for connection in writes.connections:
        refs = _CONNECTIONS.get(connection)
        if refs is not None:
            refs[:] = [r for r in refs if r() is not session and r() is not None]
            if not refs:
                del _CONNECTIONS[connection]


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    _writes(session).flush = flush_context


def _after_flush(session: Session, flush_context: Any) -> None:
    """The flush's SQL ran; the session still lists what it flushed (new, dirty, deleted)."""
    writes = _writes(session)
    writes.flush = None
    bucket = _bucket(session, writes)
    if bucket is None:
        return
    plans: dict[type, _Plan] = {}
    for obj in session.new:
        _flushed(instance_state(obj), False, bucket, plans)
    for obj in session.dirty:
        if session.is_modified(obj):
            _flushed(instance_state(obj), False, bucket, plans)
    for obj in session.deleted:
        _flushed(instance_state(obj), True, bucket, plans)


def _after_commit(session: Session) -> None:
    level = session.get_nested_transaction() or session.get_transaction()
    if level is not None:
        _writes(session).committed.add(level)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint keeps its writes for its parent or drops them; the outermost sends them."""
    if not transaction.nested and transaction.parent is not None:
        return  # a flush's or a bulk operation's own subtransaction
    writes = session.info.get(_INFO_KEY)
    if writes is None:
        return
    bucket = writes.buckets.pop(transaction, None)
    committed = transaction in writes.committed
    writes.committed.discard(transaction)
    if transaction.nested:
        parent = _level(transaction.parent)
        if committed and bucket and parent is not None:
            writes.buckets.setdefault(parent, set()).update(bucket)
        return
    del session.info[_INFO_KEY]
    _release(session, writes)
    if committed and bucket:
        _send(session, _named(bucket))


# -- sending ---------------------------------------------------------------------------------


def _in_greenlet() -> bool:
    try:
        concurrency = importlib.import_module("sqlalchemy.util.concurrency")
        return bool(concurrency.in_greenlet())
    except Exception:  # no greenlet installed: no AsyncSession either
        return False


def _send(session: Session, written: set[Write]) -> None:
    """Send the writes of a committed transaction; an AsyncSession's are recorded off its loop."""
    if _in_greenlet():
        await_only(asyncio.to_thread(_deliver, session, written))
    else:
        _deliver(session, written)


def _deliver(session: Session, written: set[Write]) -> None:
    """``signals.written.send(session, entity=..., id=...)`` for each write, inside one batch.

    The receivers are looked up once per commit rather than once per write (a commit of 100
    rows would spend a third of its invalidation in blinker's lookup), and a receiver that
    raises does not keep the others, or the other writes, from being told.
    """
    signal = signals.written
    receivers = [] if signal.is_muted else list(signal.receivers_for(session))
    if any(inspect.iscoroutinefunction(r) for r in receivers):
        receivers = [signal.send]  # an async receiver: let blinker refuse it as it does
    failures: list[Exception] = []
    try:
        with batch():
            for entity, row in written:
                for receiver in receivers:
                    try:
                        receiver(session, entity=entity, id=row)
                    except Exception as exc:  # the other receivers and writes still go out
                        failures.append(exc)
    except InvalidationError as exc:
        raise InvalidationError(
            f"the transaction was committed (its writes are in the database), but their "
            f"invalidation could not be recorded: {exc}. Until it is, this process reads no "
            f"shared cache tier, and other processes may still serve the values it made stale"
        ) from exc
    if failures:
        raise failures[0]


# -- tracking --------------------------------------------------------------------------------

_EVENTS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("after_begin", _after_begin),
    ("before_flush", _before_flush),
    ("after_flush", _after_flush),
    ("after_commit", _after_commit),
    ("after_transaction_end", _after_transaction_end),
)


class Tracking:
    """The handle :func:`track` returns: the session events it listens to, until :meth:`untrack`.

    Usable as a context manager (``with track(Session): ...`` untracks at the end).
    """

    def __init__(self, target: Any, listen_on: Any, restore: Callable[[], None] | None) -> None:
        self.target = target
        self._listen_on = listen_on
        self._restore = restore
        for name, listener in _EVENTS:
            event.listen(listen_on, name, listener)
        if not _ACTIVE:
            # Every engine's statements, from now until nothing is tracked: one dictionary
            # lookup per statement finds those run on tracked sessions' connections.
            event.listen(Engine, "after_execute", _after_execute)
        _ACTIVE.add(self)
        self.active = True

    def untrack(self) -> None:
        """Stop listening (sessions in a transaction now send nothing for it); idempotent."""
        if not self.active:
            return
        self.active = False
        _TRACKINGS.pop(self.target, None)
        for name, listener in _EVENTS:
            if event.contains(self._listen_on, name, listener):
                event.remove(self._listen_on, name, listener)
        _ACTIVE.discard(self)
        if not _ACTIVE and event.contains(Engine, "after_execute", _after_execute):
            event.remove(Engine, "after_execute", _after_execute)
        if self._restore is not None:
            self._restore()

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.untrack()

    def __repr__(self) -> str:
        return f"<cacheplug Tracking of {self.target!r}{'' if self.active else ' (untracked)'}>"


_TRACKINGS: weakref.WeakKeyDictionary[Any, Tracking] = weakref.WeakKeyDictionary()
_ACTIVE: set[Tracking] = set()  # the trackings not undone


def track(target: Any) -> Tracking:
    """Invalidate, after each commit, what the sessions of ``target`` wrote (see the module docs).

    ``target``: a ``sessionmaker``, ``async_sessionmaker``, ``scoped_session`` or
    ``async_scoped_session``, a ``Session`` or ``AsyncSession`` subclass (``Session`` itself
    tracks every session of the process), or one session. Tracking the same target again
    returns the same :class:`Tracking`.
    """
    if isinstance(target, (scoped_session, async_scoped_session)):
        target = target.session_factory
    try:
        found = _TRACKINGS.get(target)
    except TypeError:  # not weakly referenceable: not something sessions come from either
        found = None
    if found is not None and found.active:
        return found
    for mapper in _mappers():  # a bad __cacheplug_entity__ fails here, not in a flush
        for table in mapper.tables:
            _table_entity(table)
    listen_on, restore = _listen_target(target)
    tracking = _TRACKINGS[target] = Tracking(target, listen_on, restore)
    return tracking


def _listen_target(target: Any) -> tuple[Any, Callable[[], None] | None]:
    """Where the events of ``target``'s sessions are listened to, and how to undo any change."""
    if isinstance(target, (sessionmaker, Session)) or (
        isinstance(target, type) and issubclass(target, Session)
    ):
        return target, None
    if isinstance(target, AsyncSession):
        return target.sync_session, None
    if isinstance(target, async_sessionmaker):
        # Events live on the Session an AsyncSession runs on; a class of its own keeps them
        # to this factory's sessions.
        factory = target
        had = "sync_session_class" in factory.kw
        base = factory.kw.get("sync_session_class") or factory.class_.sync_session_class
        own = type(f"Tracked{base.__name__}", (base,), {})
        factory.configure(sync_session_class=own)

        def restore_factory() -> None:
            if had:
                factory.configure(sync_session_class=base)
            else:
                factory.kw.pop("sync_session_class", None)

        return own, restore_factory
    if isinstance(target, type) and issubclass(target, AsyncSession):
        cls = target
        previous = vars(cls).get("sync_session_class")
        own = type(f"Tracked{cls.sync_session_class.__name__}", (cls.sync_session_class,), {})
        cls.sync_session_class = own

        def restore_class() -> None:
            if previous is None:
                del cls.sync_session_class
            else:
                cls.sync_session_class = previous

        return own, restore_class
    raise ConfigurationError(
        f"track() takes a sessionmaker, an async_sessionmaker, a scoped_session, a Session or "
        f"AsyncSession class, or a session; got {target!r}"
    )
