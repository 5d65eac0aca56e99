"""The other process of tests/test_sqlalchemy_processes.py: a cached read of the users table.

Defined in a module both processes import, so the cached function has the same identity
(and keys) in both. It uses the default cache (``CACHEPLUG_DIR``) and the database named by
``CACHEPLUG_TEST_DB_URL`` (and ``CACHEPLUG_TEST_DB_SCHEMA`` for PostgreSQL).
"""

from __future__ import annotations

import os
import sys

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from cacheplug import cached

from .sqla_support import User

computed: list[int] = []
_ENGINES: dict[str, Engine] = {}


def engine() -> Engine:
    url = os.environ["CACHEPLUG_TEST_DB_URL"]
    if url not in _ENGINES:
        schema = os.environ.get("CACHEPLUG_TEST_DB_SCHEMA")
        args = {"options": f"-csearch_path={schema}"} if schema else {}
        _ENGINES[url] = create_engine(url, connect_args=args)
    return _ENGINES[url]


@cached(tags=["user:{user_id}"], version="1")
def user_name(user_id: int) -> str | None:
    computed.append(user_id)
    with Session(engine()) as session:
        user = session.get(User, user_id)
        return None if user is None else user.name


def serve() -> None:
    """One user id per line on stdin; answers ``<name> computed|cached``."""
    for line in sys.stdin:
        before = len(computed)
        name = user_name(int(line))
        print(name, "computed" if len(computed) > before else "cached", flush=True)
