"""A service process for the CLI tests: it fills a cache directory and publishes its stats.

Run as a script with ``CACHEPLUG_DIR`` set (and ``CACHEPLUG_SECRET`` for signed entries).
It calls two ``@cached`` functions and ``Cache.set`` with tags, publishes one snapshot,
prints one JSON line (its pid and the stored keys), then answers one JSON line per command
read from stdin:

- ``get KEY``: ``cache.get(KEY)``;
- ``price N``: ``price(N)`` and how many times ``price`` computed so far;
- ``more N``: N more ``price(1)`` calls, then publishes its snapshots again (one more);
- ``quit``: exits.
"""

from __future__ import annotations

import json
import os
import sys

from cacheplug import Cache, cached
from cacheplug.observe.publish import publish

computed = {"price": 0}
cache = Cache()


@cached(cache=cache, tags=["price:{item}"], ttl=300)
def price(item: int) -> int:
    computed["price"] += 1
    return item * 10


@cached(cache=cache, ttl=300)
def name_of(user: int) -> str:
    return f"user-{user}"


def main() -> None:
    directory = os.environ["CACHEPLUG_DIR"]
    for item in (1, 2, 1, 1, 1):
        price(item)
    name_of(7)
    name_of(7)
    cache.set("user:1", {"name": "ada"}, ttl=100, tags=["user:1", "users"])
    cache.set("long", "x" * 500, tags=["bulk"])
    snapshots = [cache.stats()]
    publish(directory, snapshots, interval=60)
    keys = {"price1": price.cache_key(1), "price2": price.cache_key(2), "name7": name_of.cache_key(7)}
    print(json.dumps({"pid": os.getpid(), "keys": keys}), flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "get":
            answer: object = cache.get(argument)
        elif command == "price":
            answer = {"value": price(int(argument)), "computed": computed["price"]}
        elif command == "more":
            for _ in range(int(argument)):
                price(1)
            snapshots.append(cache.stats())
            publish(directory, snapshots, interval=60)
            answer = len(snapshots)
        elif command == "quit":
            break
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
