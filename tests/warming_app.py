"""An application for the ``cacheplug warm`` tests: importing it registers what to warm.

Its functions use the default cache (``CACHEPLUG_DIR``: memory and the disk tier) and write
one line per computation to the file named by ``WARMING_APP_LOG``, so a test sees what the
command computed, in which order, and that importing computes nothing.
``WARMING_APP_FAIL=1`` adds a task whose computation raises.
"""

from __future__ import annotations

import os

from cacheplug import WarmingTask, cached, register_warming_task


def _log(what: str) -> None:
    with open(os.environ["WARMING_APP_LOG"], "a", encoding="utf-8") as log:
        log.write(what + "\n")


@cached(ttl=300, warm=[(1,), (2,), (3,)])
def price(item: int) -> int:
    _log(f"price {item}")
    return item * 10


@cached(ttl=300)
def home() -> str:
    _log("home")
    return "home"


def _broken() -> str:
    _log("broken")
    raise RuntimeError("the reports database is down")


register_warming_task(WarmingTask("home page", home, priority=10))
if os.environ.get("WARMING_APP_FAIL") == "1":
    register_warming_task(WarmingTask("reports", key="reports", compute=_broken, priority=5))


class App:
    """Stands for the application object (a WSGI app, say): the command only checks it exists."""


app = App()
