"""A process of the test project, driven over stdin: one JSON command a line, one JSON answer a line.

``python -m tests.django_project.worker`` (``DJANGO_SETTINGS_MODULE`` and ``CACHEPLUG_DIR``
from the environment). Commands: ``[method, *args]`` of the default cache backend, plus
``["set_tagged", key, value, tags]``, ``["incr_many", key, n]``, ``["add_many", keys, value]``
(the keys it added) and ``["session", session_key]`` (the session's data). The first line
written is ``["ready", pid]``; end of input ends the process.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _run(cache: Any, op: str, args: list[Any]) -> Any:
    if op == "set_tagged":
        key, value, tags = args
        return cache.set(key, value, tags=tags)
    if op == "incr_many":
        key, n = args
        for _ in range(n):
            cache.incr(key)
        return None
    if op == "add_many":
        keys, value = args
        return [key for key in keys if cache.add(key, value)]
    if op == "session":
        from django.contrib.sessions.backends.cache import SessionStore

        return dict(SessionStore(args[0]).load())
    return getattr(cache, op)(*args)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
    import django

    django.setup()
    from django.core.cache import cache

    print(json.dumps(["ready", os.getpid()]), flush=True)
    for line in sys.stdin:
        op, *args = json.loads(line)
        try:
            answer = ["ok", _run(cache, op, args)]
        except Exception as exc:  # reported to the test, which decides
            answer = ["error", f"{type(exc).__name__}: {exc}"]
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
