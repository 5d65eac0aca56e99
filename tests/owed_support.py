"""Cached functions shared by tests/test_invalidation_owed.py and the process it drives.

Defined in a module both import, so that they have the same identity (and keys) in both;
they use the default cache (``CACHEPLUG_DIR``) and read their value from the file named by
``CACHEPLUG_TEST_SOURCE``.
"""

from __future__ import annotations

import os
import sys

from cacheplug import cached

computed: list[str] = []


def _source(name: str) -> str:
    with open(os.environ["CACHEPLUG_TEST_SOURCE"]) as fh:
        return f"{name}={fh.read()}"


@cached(tags=["item:{x}"], version="1")
def f(x: int) -> str:
    computed.append(f"f{x}")
    return _source(f"f{x}")


@cached(tags=["other:{x}"], version="1")
def g(x: int) -> str:
    computed.append(f"g{x}")
    return _source(f"g{x}")


def serve() -> None:
    """The other process: one command per line on stdin ("f 1"), one answer per line."""
    for line in sys.stdin:
        name, x = line.split()
        before = len(computed)
        value = {"f": f, "g": g}[name](int(x))
        print(value, "computed" if len(computed) > before else "cached", flush=True)


if __name__ == "__main__":
    serve()
