"""Writes seen as SQL: every statement that writes, ``QuerySet.update()``, ``bulk_create()``, ....

``QuerySet.update()``, ``bulk_create()``, ``bulk_update()``, ``QuerySet._raw_delete()`` and
raw SQL through ``connection.cursor()`` write rows without ``post_save`` or
``post_delete``. Every connection gets a database execute wrapper
(``connection.execute_wrappers``, installed when it connects) that looks at the start of
each statement after it ran: ``INSERT INTO t``, ``UPDATE t``, ``DELETE FROM t`` and
``TRUNCATE t, u`` (with the dialects' variants: ``INSERT OR REPLACE``, ``INSERT IGNORE``,
``REPLACE INTO``, ``ONLY``, quoted and schema-qualified names, after leading comments)
record a write, delivered like the model signals' writes (after the commit:
``cacheplug.integrations.django.writes``):

- of the rows it writes, ``(entity, pk)`` each, when Django's own code for known rows
  issued it (``save()``; the deletes of ``delete()`` and its ``SET_DEFAULT`` updates: found
  by ``origins``; a new row's once Django has read its key back) and, for an UPDATE or a
  DELETE, its SQL is filtered by exactly those keys (:func:`by_key`);
- else of the whole table, ``(entity, None)``, which reaches every row's entries.

What it cannot see is documented as not covered: statements starting with ``WITH`` (a
CTE), ``MERGE``, ``COPY``, stored procedures and triggers, and writes made outside
Django's connections.

The cost on a statement that writes nothing is one anchored regular-expression match that
fails at its first letters (and a context variable read).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db import connections
from django.db.backends.signals import connection_created

from .origins import Insert, Rows, origin
from .writes import Write, entity_of, hold, record_statement, settle

__all__ = ["TableEntities", "WriteWatcher", "by_key", "install", "written", "written_tables"]

_IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*)'
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
# Leading comments (a query tagger's /* ... */ or -- lines) are skipped.
_LEAD = r"(?:\s*(?:/\*.*?\*/|--[^\n]*(?:\n|$)))*\s*"
_ONE = re.compile(
    _LEAD + r"(?P<verb>INSERT(?:\s+OR\s+[A-Za-z]+|\s+IGNORE)?\s+INTO|REPLACE\s+INTO"
    r"|UPDATE(?:\s+OR\s+[A-Za-z]+)?(?:\s+ONLY)?|DELETE\s+FROM(?:\s+ONLY)?)"
    rf"\s+(?P<table>{_NAME})",
    re.IGNORECASE | re.DOTALL,
)
_TRUNCATE = re.compile(
    rf"{_LEAD}TRUNCATE(?:\s+TABLE)?(?:\s+ONLY)?\s+(?P<tables>{_NAME}(?:\s*,\s*{_NAME})*)",
    re.IGNORECASE | re.DOTALL,
)
_PARTS = re.compile(_IDENT)
# How Django's statements for known rows end: filtered by the primary key alone.
_BY_KEY = re.compile(
    rf"\sWHERE\s+(?P<column>{_NAME})\s*(?:=\s*(?P<one>%s)|IN\s*\((?P<many>\s*%s(?:\s*,\s*%s)*)\s*\))"
    r"(?:\s+RETURNING\s+[\w\s\".,`]+)?\s*;?\s*$",
    re.IGNORECASE,
)
# The plain forms, the only ones Django's own writes of known rows use (``origins``); an
# ``INSERT OR REPLACE`` or ``REPLACE`` may delete other rows: always a table write.
_PLAIN = {"INSERT INTO": "INSERT", "UPDATE": "UPDATE", "UPDATE ONLY": "UPDATE", "DELETE FROM": "DELETE"}


def _unquoted(name: str) -> str:
    """The table of a possibly schema-qualified, possibly quoted name: its last part."""
    last: str = _PARTS.findall(name)[-1]
    if last[0] == '"':
        return last[1:-1].replace('""', '"')
    if last[0] in "`[":
        return last[1:-1]
    return last


def written(sql: str) -> tuple[str | None, tuple[str, ...]]:
    """The plain verb (``INSERT``, ``UPDATE``, ``DELETE``; ``None`` for the other forms) and
    the tables a statement writes, by its first words; ``(None, ())`` for anything else."""
    found = _ONE.match(sql)
    if found is not None:
        return _PLAIN.get(" ".join(found["verb"].upper().split())), (_unquoted(found["table"]),)
    found = _TRUNCATE.match(sql)
    if found is not None:
        return None, tuple(_unquoted(name) for name in re.split(r"\s*,\s*", found["tables"]))
    return None, ()


def written_tables(sql: str) -> tuple[str, ...]:
    """The tables a statement writes, by its first words; ``()`` for anything else."""
    return written(sql)[1]


def by_key(sql: str, params: Any, table: str, rows: Rows, connection: Any) -> bool:
    """Whether ``sql`` is filtered by the primary key of ``rows.model`` alone, with exactly
    ``rows.pks`` (as Django sends them) as its last parameters: then it writes no other row,
    whoever issued it (a custom ``QuerySet._update()`` run inside Django's frame does not)."""
    found = _BY_KEY.search(sql)
    if found is None or not isinstance(params, (list, tuple)):
        return False
    parts = [_unquoted(part).lower() for part in _PARTS.findall(found["column"])]
    pk = rows.model._meta.pk
    if parts[-1] != str(pk.column).lower() or (len(parts) > 1 and parts[-2] != table.lower()):
        return False
    count = 1 if found["one"] else found["many"].count("%s")
    if len(params) < count:
        return False
    try:
        sent = set(params[len(params) - count :])
        expected = {pk.get_db_prep_value(key, connection) for key in rows.pks}
    except (TypeError, ValueError):  # an unhashable or unconvertible value: not Django's
        return False
    return len(sent) == count and sent == expected


class TableEntities:
    """Table name to entity, from the installed models (link tables of many-to-many included).

    Built on first use and again when a table is not found (a model created since); a table
    no model has is its own entity.
    """

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def refresh(self) -> None:
        known = {}
        for model in apps.get_models(include_auto_created=True):
            if model._meta.proxy:
                continue  # the concrete model names the table
            known[str(model._meta.db_table)] = entity_of(model)
        self._known = known

    def __call__(self, table: str) -> str:
        entity = self._known.get(table)
        if entity is None:
            self.refresh()
            entity = self._known.setdefault(table, table)
        return entity


class WriteWatcher:
    """The execute wrapper: after a statement that writes, record the rows or tables it wrote."""

    def __init__(self, entities: Callable[[str], str]) -> None:
        self.entities = entities

    def __call__(self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
        settle()  # a new row of a save() this thread left unfinished is delivered now
        result = execute(sql, params, many, context)
        if isinstance(sql, str):
            verb, tables = written(sql)
            if tables:
                self.wrote(context["connection"], sql, params, verb, tables, many)
        return result

    def wrote(
        self, connection: Any, sql: str, params: Any, verb: str | None, tables: tuple[str, ...], many: bool
    ) -> None:
        """Record what a statement that ran wrote: its rows when known, else its tables."""
        using = connection.alias
        found = origin(verb, tables[0]) if verb is not None and not many else None
        if isinstance(found, Insert):
            hold(using, found.instance, found.model)
            return
        writes: list[Write]
        if isinstance(found, Rows) and by_key(sql, params, tables[0], found, connection):
            entity = entity_of(found.model)
            writes = [(entity, pk) for pk in found.pks]
        else:
            writes = [(self.entities(t), None) for t in tables]
        record_statement(using, writes)

    def on_connect(self, sender: Any, connection: Any, **_: Any) -> None:
        """Receiver of ``connection_created``: wrap the connection's statements (once)."""
        if self not in connection.execute_wrappers:
            connection.execute_wrappers.append(self)


def install(watcher: WriteWatcher) -> None:
    """Put ``watcher`` on every connection: those open now and each one that connects later."""
    connection_created.connect(watcher.on_connect, weak=False, dispatch_uid="cacheplug.statements")
    for connection in connections.all(initialized_only=True):
        watcher.on_connect(type(connection), connection)
