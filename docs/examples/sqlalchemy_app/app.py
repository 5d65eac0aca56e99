"""A small orders service on SQLAlchemy 2 whose cached reads follow every commit.

The reads are cached with ``@cached`` and tagged by entity; ``track(Session)`` makes each
commit invalidate what it wrote, so no write below calls ``invalidate()``:

* ``order_view(order_id)``: one order, tagged ``order:{order_id}``;
* ``customer_orders(customer_id)``: a customer's orders, tagged ``customer:{customer_id}``
  (an order written sends the customer its foreign key points to);
* ``order_count()``: tagged ``order``, which every order write invalidates, by object or by
  a statement (``discount_all``) alike; a statement, which writes rows cacheplug cannot
  name, invalidates every ``order:{order_id}`` entry too.

Run it: ``python app.py`` (SQLite in a temporary folder). Its tests: ``test_app.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import ForeignKey, String, create_engine, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

from cacheplug import cached
from cacheplug.integrations.sqlalchemy import Tracking, track


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    __cacheplug_entity__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(Base):
    __tablename__ = "orders"
    __cacheplug_entity__ = "order"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    total: Mapped[int]  # in cents
    status: Mapped[str] = mapped_column(String(20), default="open")
    customer: Mapped[Customer] = relationship(back_populates="orders")


SessionFactory = sessionmaker(expire_on_commit=False)
computed: list[str] = []  # what the cached reads computed, for the tests to look at


def start(url: str) -> Tracking:
    """Bind the sessions to the database at ``url``, create the tables, track the writes."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    SessionFactory.configure(bind=engine)
    return track(SessionFactory)


# -- reads, cached ---------------------------------------------------------------------


@cached(ttl=300, tags=["order:{order_id}"])
def order_view(order_id: int) -> dict[str, object] | None:
    computed.append(f"order {order_id}")
    with SessionFactory() as session:
        order = session.get(Order, order_id)
        if order is None:
            return None
        return {"id": order.id, "customer": order.customer_id, "total": order.total, "status": order.status}


@cached(ttl=300, tags=["customer:{customer_id}"])
def customer_orders(customer_id: int) -> list[int]:
    computed.append(f"customer {customer_id}")
    with SessionFactory() as session:
        query = select(Order.id).where(Order.customer_id == customer_id).order_by(Order.id)
        return list(session.scalars(query))


@cached(ttl=300, tags=["order"])
def order_count() -> int:
    computed.append("count")
    with SessionFactory() as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


# -- writes: no invalidate() anywhere ------------------------------------------------------


def add_customer(name: str) -> int:
    with SessionFactory.begin() as session:
        customer = Customer(name=name)
        session.add(customer)
        session.flush()
        return customer.id


def place_order(customer_id: int, total: int) -> int:
    with SessionFactory.begin() as session:
        order = Order(customer_id=customer_id, total=total)
        session.add(order)
        session.flush()
        return order.id


def cancel_order(order_id: int) -> None:
    with SessionFactory.begin() as session:
        order = session.get(Order, order_id)
        if order is not None:
            order.status = "cancelled"


def move_order(order_id: int, customer_id: int) -> None:
    """Both customers' order lists change: the old and the new foreign key are sent."""
    with SessionFactory.begin() as session:
        session.get_one(Order, order_id).customer_id = customer_id


def discount_all(percent: int) -> None:
    """One UPDATE for every order: invalidated by table (``order`` and every ``order:{id}``)."""
    with SessionFactory.begin() as session:
        session.execute(update(Order).values(total=Order.total * (100 - percent) // 100))


def refund_then_fail(order_id: int) -> None:
    """A transaction that rolls back: nothing is invalidated."""
    with SessionFactory.begin() as session:
        session.get_one(Order, order_id).total = 0
        raise RuntimeError("payment provider unavailable")


if __name__ == "__main__":
    start(f"sqlite:///{Path(tempfile.mkdtemp()) / 'shop.db'}")
    ada = add_customer("Ada")
    first = place_order(ada, 1200)
    print(order_view(first), customer_orders(ada), order_count())
    place_order(ada, 800)
    print(customer_orders(ada), order_count())  # both recomputed after the commit
    cancel_order(first)
    print(order_view(first))  # status "cancelled"
