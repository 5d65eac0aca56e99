"""The Django integration's tests: a small project (settings, the ``shop`` app) and its tests.

pytest-django runs them on the machine's PostgreSQL; ``conftest.py`` sets Django up for this
folder only, so the rest of the suite runs without Django in the same pytest run.
"""
