"""What a SQLAlchemy session wrote, named as cacheplug entities and row ids.

Used by :mod:`cacheplug.integrations.sqlalchemy` (see its docstring for what is sent):

* the entity of a table is its name, or the ``__cacheplug_entity__`` of the model class that
  maps it (the base of an inheritance hierarchy sharing it), checked once per table;
* what a flush of one object wrote (:func:`flushed`): the object itself, named at commit by
  its identity (:func:`named`), the rows its foreign keys (constraints, or many-to-one
  relationships) point to, and the other side of the relationships it changed (a
  many-to-many one's association table by table);
* the tables an INSERT, UPDATE or DELETE statement writes (:func:`statement_tables`).

Everything a mapper needs is worked out once per mapper (:class:`Plan`); a commit then
costs a few dictionary lookups per row.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from ._require import require

require("sqlalchemy", "sqlalchemy")

from sqlalchemy import inspect as sa_inspect  # noqa: E402
from sqlalchemy.orm import Mapper  # noqa: E402
from sqlalchemy.orm.attributes import get_state_history, instance_state  # noqa: E402
from sqlalchemy.orm.base import NO_VALUE, PASSIVE_NO_INITIALIZE  # noqa: E402
from sqlalchemy.orm.interfaces import MANYTOONE  # noqa: E402
from sqlalchemy.orm.state import InstanceState  # noqa: E402
from sqlalchemy.sql.expression import FromClause, TableClause  # noqa: E402
from sqlalchemy.sql.util import find_tables  # noqa: E402

from ..errors import ConfigurationError  # noqa: E402

__all__ = [
    "CompositeKey",
    "Pending",
    "Plan",
    "Write",
    "entity_of",
    "flushed",
    "mappers",
    "named",
    "statement_tables",
    "table_entity",
]

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
        return table_entity(model_or_table)
    mapper = sa_inspect(model_or_table, raiseerr=False)
    if not isinstance(mapper, Mapper):
        raise ConfigurationError(f"entity_of() takes a mapped model class or a Table, got {model_or_table!r}")
    return table_entity(mapper.local_table)


_TABLE_ENTITIES: weakref.WeakKeyDictionary[FromClause, str] = weakref.WeakKeyDictionary()


def table_entity(table: FromClause) -> str:
    found = _TABLE_ENTITIES.get(table)
    if found is None:
        found = _TABLE_ENTITIES[table] = _declared_entity(table)
    return found


def mappers() -> Iterable[Mapper[Any]]:
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
    owners = [m for m in mappers() if m.local_table == table]
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
class Plan:
    """What a flush of one mapper's objects sends, worked out once per mapper."""

    entities: tuple[str, ...]
    key_attributes: tuple[str, ...]
    # (attribute, the entity of its secondary table or None), for every relationship
    relationships: tuple[tuple[str, str | None], ...]
    # (the entities of the row a foreign key points to, the attributes holding the key)
    parents: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]


_PLANS: weakref.WeakKeyDictionary[Mapper[Any], Plan] = weakref.WeakKeyDictionary()


def _plan(mapper: Mapper[Any]) -> Plan:
    found = _PLANS.get(mapper)
    if found is None:
        found = _PLANS[mapper] = Plan(
            entities=_entities(mapper),
            key_attributes=tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key),
            relationships=tuple(
                (r.key, None if r.secondary is None else table_entity(r.secondary))
                for r in mapper.relationships
            ),
            parents=tuple(
                dict.fromkeys(
                    [
                        *_referenced(mapper),
                        *(p for r in mapper.relationships if (p := _parent(mapper, r)) is not None),
                    ]
                )
            ),
        )
    return found


def _referenced(mapper: Mapper[Any]) -> Iterator[tuple[tuple[str, ...], tuple[str, ...]]]:
    """For each foreign key constraint of the model's tables onto another table's primary key:
    that table's entity, and the attributes of ``mapper`` holding the key (in the key's order)."""
    for table in mapper.tables:
        for constraint in getattr(table, "foreign_key_constraints", ()):
            try:
                referred = constraint.referred_table
                key = list(referred.primary_key.columns)
                local_of = {element.column: element.parent for element in constraint.elements}
                if not key or set(local_of) != set(key):
                    continue
                attributes = tuple(mapper.get_property_by_column(local_of[c]).key for c in key)
            except Exception:  # unresolved, or a column the model does not map
                continue
            yield (table_entity(referred),), attributes


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
    return _entities(target), keys


def _entities(mapper: Mapper[Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(table_entity(t) for t in mapper.tables))


def _rows(values: tuple[Any, ...]) -> list[Any]:
    """``[id]`` of a row whose key is ``values``, or ``[]`` when a part of it is unknown."""
    if any(v is None or v is NO_VALUE for v in values):
        return []
    return [values[0] if len(values) == 1 else CompositeKey(values)]


def flushed(state: InstanceState[Any], deleted: bool, bucket: set[Pending], plans: dict[type, Plan]) -> None:
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


def named(bucket: set[Pending]) -> set[Write]:
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


def statement_tables(clause: Any) -> list[FromClause]:
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
