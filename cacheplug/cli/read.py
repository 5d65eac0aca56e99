"""The read commands: ``stats``, ``keys``, ``inspect`` and ``report``. None of them writes.

``stats`` and ``report`` cover every live process of the host: they add up the snapshots
the processes publish beside the disk tier (``cacheplug.observe.publish``), and ``stats``
adds the disk tier's own size, measured from its database. ``keys`` and ``inspect`` read the
disk tier's rows (``cacheplug.cli.store``) and show what ``cacheplug.cli.entries`` allows.
"""

from __future__ import annotations

import os
import time
from typing import Any

import click
from rich.table import Table

from ..cache.naming import Names
from ..observe.publish import Published, collect
from ..statistics import CacheStats
from .common import (
    CliError,
    checked_directory,
    directory_option,
    emit_json,
    json_option,
    namespace_option,
    secret_from_environment,
)
from .entries import Decoded, decode
from .merge import hit_latency, merged
from .store import open_rows
from .text import ago, console, duration, moment, percent, percentile_ms, size

__all__ = ["inspect", "keys", "report", "stats"]

O_N = "O(n) admin operation: reads every entry of the disk tier"


def _published(directory: str, namespace: str | None) -> list[Published]:
    found = collect(directory)
    if namespace is not None:
        found = [p for p in found if p.latest.namespace == namespace]
    return found


def _process(p: Published) -> dict[str, Any]:
    return {
        "host": p.host,
        "pid": p.pid,
        "namespace": p.latest.namespace,
        "written": p.written,
        "interval": p.interval,
        "snapshots": len(p.snapshots),
    }


def _totals(view: CacheStats) -> dict[str, Any]:
    names = ("hits", "misses", "stale", "coalesced", "errors", "invalidations")
    return {**{n: getattr(view, n) for n in names}, "calls": view.calls, "hit_rate": view.hit_rate}


@click.command()
@directory_option
@namespace_option(default=None)
@json_option
def stats(directory: str | None, namespace: str | None, as_json: bool) -> None:
    """Hits, misses and latencies: totals, per function and per tier, over every live process."""
    path = checked_directory(directory)
    with open_rows(path) as rows:
        disk = rows.measure()
    published = _published(path, namespace)
    view = merged([p.latest for p in published], disk)
    if as_json:
        emit_json(
            {
                "directory": path,
                "processes": [_process(p) for p in published],
                "totals": _totals(view),
                "functions": {name: f.to_dict() for name, f in view.functions.items()},
                "tiers": {name: t.to_dict() for name, t in view.tiers.items()},
            }
        )
        return
    out = console()
    count = len(published)
    out.print(f"cacheplug stats for {path}")
    if not count:
        out.print(
            "No live process publishes its stats here (a Monitor does: cacheplug.start_monitoring()); "
            f"the disk tier holds {disk[0]} entries in {size(disk[1])}."
        )
        return
    pids = ", ".join(f"{p.pid}@{p.host}" for p in published)
    out.print(f"{count} live process{'es' if count != 1 else ''}: {pids}")
    out.print(
        f"Totals: {view.calls} calls, {view.hits} hits ({percent(view.hit_rate)}), {view.misses} misses, "
        f"{view.stale} stale, {view.coalesced} coalesced, {view.errors} errors, "
        f"{view.invalidations} invalidations"
    )
    functions = Table(title="Functions", title_justify="left")
    for column in ("function", "calls", "hits", "misses", "stale", "coalesced", "errors", "hit rate"):
        functions.add_column(column, justify="left" if column == "function" else "right")
    functions.add_column("hit p95", justify="right")
    functions.add_column("compute p95", justify="right")
    for name, f in view.functions.items():
        functions.add_row(
            name,
            *(str(n) for n in (f.calls, f.hits, f.misses, f.stale, f.coalesced, f.errors)),
            percent(f.hit_rate),
            percentile_ms(hit_latency(f)),
            percentile_ms(f.compute),
        )
    out.print(functions)
    tiers = Table(title="Tiers", title_justify="left")
    for column in ("tier", "hits", "entries", "bytes"):
        tiers.add_column(column, justify="left" if column == "tier" else "right")
    for name, t in view.tiers.items():
        tiers.add_row(name, str(t.hits), "-" if t.entries is None else str(t.entries), size(t.bytes))
    out.print(tiers)


def _listed(path: str, namespace: str | None, tag: tuple[str, ...]) -> list[Decoded]:
    with open_rows(path) as rows:
        every = rows.stored_keys()
        if namespace is not None:
            every = [k for k in every if k.startswith(namespace + "|")]
        found = [decode(row, path, None, with_value=False) for row in rows.rows(every)]
    if tag:
        wanted = set(tag)
        found = [d for d in found if d.tags is not None and wanted & set(d.tags)]
    return found


@click.command(help=f"List the stored keys with their tags ({O_N}).")
@directory_option
@namespace_option(default=None)
@click.option("--tag", multiple=True, help="Only entries carrying this tag (repeatable: any of them).")
@json_option
def keys(directory: str | None, namespace: str | None, tag: tuple[str, ...], as_json: bool) -> None:
    path = checked_directory(directory)
    found = _listed(path, namespace, tag)
    if as_json:
        emit_json(
            {
                "operation": O_N,
                "directory": path,
                "keys": [{"key": d.key, "tags": list(d.tags or ())} for d in found],
            }
        )
        return
    out = console()
    out.print(f"# {O_N}")
    table = Table("key", "tags")
    for d in found:
        table.add_row(d.key, ", ".join(d.tags or ()) if d.metadata_error is None else "(unreadable)")
    out.print(table)
    out.print(f"{len(found)} key{'s' if len(found) != 1 else ''}")


def _inspected(path: str, key: str, namespace: str) -> Decoded:
    names = Names(namespace, None)
    candidates = [key, names.stored(key)]
    with open_rows(path) as rows:
        for candidate in dict.fromkeys(candidates):
            row = rows.row(candidate)
            if row is not None:
                return decode(row, path, secret_from_environment())
    raise CliError(
        f"no live entry under {key!r} (stored key {names.stored(key)!r}) in {path}; "
        f"`cacheplug keys` lists the stored keys"
    )


@click.command()
@click.argument("key")
@directory_option
@namespace_option()
@json_option
def inspect(key: str, directory: str | None, namespace: str, as_json: bool) -> None:
    """Show one entry: its metadata, and its value once it can be trusted.

    KEY is a stored key as `cacheplug keys` prints it, or a key given to Cache.get/set.
    Signed entries show their value only when CACHEPLUG_SECRET verifies them.
    """
    path = checked_directory(directory)
    d = _inspected(path, key, namespace)
    now = time.time()
    left = None if d.expires is None else d.expires - now
    document = {
        "key": d.key,
        "user_key": Names(namespace, None).user_facing(d.key),
        "tier": "disk",
        "size": d.size,
        "created": d.created,
        "expires": d.expires,
        "ttl_left": left,
        "tags": None if d.tags is None else list(d.tags),
        "cost": d.cost,
        "signature": d.signature,
        "metadata_verified": d.verified,
        "value": d.value,
        "withheld": d.withheld,
        "metadata_error": d.metadata_error,
    }
    if as_json:
        emit_json(document)
        return
    unverified = "" if d.verified else " (unverified)"
    rows: list[tuple[str, str]] = [
        ("key", d.key),
        ("user key", str(document["user_key"])),
        ("tier", "disk"),
        ("size", f"{d.size} bytes"),
        ("created", ago(d.created, now) + unverified),
        ("expires", moment(d.expires) + ("" if left is None else f" (ttl left {duration(left)})")),
        ("tags", "-" if d.tags is None else (", ".join(d.tags) or "-") + unverified),
        ("cost", "-" if d.cost is None else f"{d.cost:.3f} s"),
        ("signature", d.signature),
        ("value", d.value if d.value is not None else f"withheld: {d.withheld}"),
    ]
    if d.metadata_error is not None:
        rows.append(("metadata", f"unreadable: {d.metadata_error}"))
    for label, text in rows:
        click.echo(f"{label:<10} {text}")


@click.command()
@directory_option
@namespace_option(default=None)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True, path_type=str),
    default=None,
    help="Write the report as one self-contained HTML page to this file.",
)
@json_option
def report(directory: str | None, namespace: str | None, html_path: str | None, as_json: bool) -> None:
    """The performance report over every live process: text, --json, or an --html page."""
    path = checked_directory(directory)
    from ..observe.report import build_report, render_text  # deferred: only this command needs them

    # Every process's window of snapshots: the report groups them by process itself.
    series = [snapshot for p in _published(path, namespace) for snapshot in p.snapshots]
    if not series:
        raise CliError(
            f"no live process publishes its stats in {path}; start a Monitor in your processes "
            f"(cacheplug.start_monitoring()) and try again after an interval"
        )
    built = build_report(series)
    if html_path is not None:
        from ..observe.html import render_html

        page = render_html(built)
        try:
            with open(html_path, "w", encoding="utf-8") as out:
                out.write(page)
        except OSError as exc:
            raise CliError(f"could not write {html_path} ({exc.strerror})") from None
        click.echo(f"wrote {os.path.abspath(html_path)}")
    elif as_json:
        emit_json(built)
    else:
        click.echo(render_text(built))
