"""A service process for the learned-set tests: it learns what is hot, or warms from what was.

Run with ``CACHEPLUG_DIR`` set, as ``learning_support.py learn`` or ``learning_support.py warm``;
it prints one JSON line and exits.

- ``learn``: a learning cache over memory and the disk tier; ``price(1)`` and ``price(2)`` and
  ``label("a", lang="fr")`` are called often, ``price(3)`` once; one tick; the cache closes
  (which saves the learned set beside the disk tier).
- ``warm``: a fresh process with the same functions: every entry is made stale
  (``cache.clear()``), then ``warm_from_history()`` computes what the other process learned;
  the calls made afterwards are served warm.
"""

from __future__ import annotations

import json
import os
import sys

from cacheplug import Cache, DiskTier, MemoryTier, cached, warm_from_history

computed: list[object] = []
disk = DiskTier(os.environ["CACHEPLUG_DIR"])
cache = Cache([MemoryTier(), disk], learn=sys.argv[1] == "learn")


@cached(cache=cache, ttl=300)
def price(item: int) -> int:
    computed.append(["price", item])
    return item * 10


@cached(cache=cache, ttl=300)
def label(name: str, *, lang: str = "en") -> str:
    computed.append(["label", name, lang])
    return f"{name}:{lang}"


def main() -> None:
    if sys.argv[1] == "learn":
        for _ in range(5):
            price(1), price(2), label("a", lang="fr")
        price(3)
        assert cache.learner is not None
        cache.learner.tick()
        cache.close()
        print(json.dumps({"computed": computed}), flush=True)
        return
    cache.clear()
    report = warm_from_history(cache)
    by_warming = list(computed)
    served = [price(1), price(2), label("a", lang="fr")]
    after = computed[len(by_warming) :]
    print(
        json.dumps({"warmed": report.warmed, "by_warming": by_warming, "served": served, "after": after}),
        flush=True,
    )
    cache.close()


if __name__ == "__main__":
    main()
    disk.close()
