"""Which tables a statement writes, by its first words (the execute wrapper's reading of SQL)."""

from __future__ import annotations

from typing import Any

import pytest

from cacheplug.integrations.django.statements import by_key, written, written_tables


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ('INSERT INTO "shop_orders" ("total") VALUES (%s) RETURNING "shop_orders"."id"', ("shop_orders",)),
        ('UPDATE "shop_orders" SET "total" = %s WHERE "shop_orders"."id" = %s', ("shop_orders",)),
        ('DELETE FROM "shop_orders" WHERE "shop_orders"."id" IN (%s)', ("shop_orders",)),
        ("  update shop_orders set total = 1", ("shop_orders",)),
        ("\n\tDELETE\nFROM\nshop_orders", ("shop_orders",)),
        ('INSERT OR REPLACE INTO "t" VALUES (1)', ("t",)),
        ("INSERT OR IGNORE INTO t VALUES (1)", ("t",)),
        ("INSERT IGNORE INTO `t` VALUES (1)", ("t",)),
        ("REPLACE INTO `db`.`t` VALUES (1)", ("t",)),
        ('UPDATE ONLY "public"."t" SET a = 1', ("t",)),
        ('DELETE FROM ONLY "s"."t"', ("t",)),
        ('INSERT INTO "we""ird" VALUES (1)', ('we"ird',)),
        ("INSERT INTO [dbo].[t] VALUES (1)", ("t",)),
        ('TRUNCATE "a", "b" RESTART IDENTITY CASCADE;', ("a", "b")),
        ("TRUNCATE TABLE ONLY t", ("t",)),
        ("/* controller=orders */ UPDATE t SET a = 1", ("t",)),
        ("-- tagged\nINSERT INTO t VALUES (1)", ("t",)),
        ('SELECT "t"."id" FROM "t" WHERE "t"."a" = %s', ()),
        ("SELECT * FROM t FOR UPDATE", ()),
        ("WITH x AS (SELECT 1) UPDATE t SET a = 1", ()),  # documented as not covered
        ('CREATE TABLE "t" ("id" integer)', ()),
        ("SAVEPOINT s1", ()),
        ("", ()),
    ],
)
def test_the_tables_a_statement_writes(sql: str, tables: tuple[str, ...]) -> None:
    assert written_tables(sql) == tables


@pytest.mark.parametrize(
    ("sql", "verb"),
    [
        ('INSERT INTO "t" ("a") VALUES (%s)', "INSERT"),
        ('UPDATE "t" SET "a" = %s WHERE "t"."id" = %s', "UPDATE"),
        ('UPDATE ONLY "t" SET a = 1', "UPDATE"),
        ('/* tagged */ DELETE FROM "t" WHERE "t"."id" IN (%s)', "DELETE"),
        # Forms that may write rows other than those named (a replace deletes the conflicting
        # ones): never given rows, always a table write.
        ('INSERT OR REPLACE INTO "t" VALUES (1)', None),
        ("INSERT IGNORE INTO t VALUES (1)", None),
        ("REPLACE INTO t VALUES (1)", None),
        ("UPDATE OR ROLLBACK t SET a = 1", None),
        ("TRUNCATE t", None),
    ],
)
def test_only_the_plain_forms_can_be_given_rows(sql: str, verb: str | None) -> None:
    assert written(sql)[0] == verb


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        ('UPDATE "shop_orders" SET "total" = %s WHERE "shop_orders"."id" = %s', [1, 5], True),
        ('DELETE FROM "shop_orders" WHERE "shop_orders"."id" IN (%s, %s)', [6, 5], True),
        ("UPDATE shop_orders SET total = 1 WHERE id = %s", [5], True),
        ('UPDATE "shop_orders" SET "total" = %s WHERE "shop_orders"."id" = %s RETURNING "id"', [1, 5], True),
        # Another key, another column, another table, more rows than known, or more conditions:
        ('UPDATE "shop_orders" SET "total" = %s WHERE "shop_orders"."id" = %s', [5, 6], False),
        ('UPDATE "shop_orders" SET "total" = %s WHERE "shop_orders"."total" = %s', [1, 5], False),
        ('UPDATE "shop_orders" SET "total" = %s WHERE "other"."id" = %s', [1, 5], False),
        ('DELETE FROM "shop_orders" WHERE "shop_orders"."id" IN (%s, %s)', [5, 5], False),
        ('UPDATE "shop_orders" SET "total" = 1 WHERE "total" > 3 OR "shop_orders"."id" = %s', [5], False),
        ('UPDATE "shop_orders" SET "total" = 1 WHERE ("total" > 3 OR "shop_orders"."id" = %s)', [5], False),
        ('UPDATE "shop_orders" SET "total" = 1 WHERE "shop_orders"."id" = %s AND "total" > 3', [5], False),
        ('UPDATE "shop_orders" SET "total" = 1', [], False),
        ("UPDATE shop_orders SET total = 1 WHERE id = %(id)s", {"id": 5}, False),
    ],
)
def test_a_statement_is_given_rows_only_when_filtered_by_their_keys_alone(
    sql: str, params: Any, expected: bool
) -> None:
    from django.db import connection

    from cacheplug.integrations.django.origins import Rows

    from .shop.models import Order

    keys = (5, 6) if " IN (" in sql else (5,)
    assert by_key(sql, params, "shop_orders", Rows(Order, keys), connection) is expected
