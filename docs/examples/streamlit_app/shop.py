"""The example's data: orders in a dict standing in for a database, and the one write.

``record_sale`` writes, then tells cacheplug which entity changed; every cached result
tagged with that order (in every process of the host) is recomputed on its next call. An
ORM integration (SQLAlchemy, Django) sends the same signal after each commit.
"""

from __future__ import annotations

from typing import Any

import cacheplug

ORDERS: dict[int, dict[str, Any]] = {
    1: {"customer": "Ada", "items": 2, "total": 30.0},
    2: {"customer": "Grace", "items": 1, "total": 12.5},
}
QUERIES: list[int] = []  # the order ids the "database" was asked for, in order


def fetch_order(order_id: int) -> dict[str, Any]:
    QUERIES.append(order_id)
    return dict(ORDERS[order_id])


def record_sale(order_id: int, amount: float) -> None:
    order = ORDERS[order_id]
    order["items"] += 1
    order["total"] += amount
    cacheplug.invalidate_by_write("order", order_id)
