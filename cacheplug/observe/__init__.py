"""Watching a cache over time: reports built from its stats snapshots (and, beside them, the monitor).

:mod:`cacheplug.observe.report` turns a sequence of :class:`~cacheplug.CacheStats` snapshots
into a JSON-ready report dict and plain text; :mod:`cacheplug.observe.html` renders that dict as
one self-contained HTML page with inline SVG charts.
"""
