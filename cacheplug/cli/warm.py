"""``cacheplug warm --app module:attr``: import the application, run its due warming tasks.

Importing the application is what registers its ``@cached(warm=...)`` functions and its
``register_warming_task`` calls, so the command imports ``module`` (from the current
directory first, as ``flask --app`` does) and checks that ``attr`` is there; then it runs
``cacheplug.warm_now`` with a progress bar and shows each task's figures. The entries go
wherever the application's caches put them (its disk tier: every process of the host then
finds them warm). Exit status 1 when a task failed (its figures say why), and when the
application cannot be imported.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..warming import WarmReport, warm_now
from .common import CliError, emit_json, json_option
from .text import console, duration

__all__ = ["warm"]


def load_app(spec: str) -> Any:
    """Import ``module:attr`` (the current directory first on the path) and return ``attr``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(
            f"{spec!r}: give it as module:attribute, e.g. myapp.wsgi:app", param_hint="--app"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise CliError(
            f"cannot import the application module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise CliError(f"the module {module_name!r} has no attribute {attr!r}") from None
    return found


@click.command()
@click.option(
    "--app",
    "app",
    required=True,
    metavar="MODULE:ATTR",
    help="The application to import (its cached functions and warming tasks register on import).",
)
@click.option("--force", is_flag=True, help="Run every task, and recompute entries that are still fresh.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Computations at once.",
)
@json_option
def warm(app: str, force: bool, workers: int, as_json: bool) -> None:
    """Import the application and run its due warming tasks (highest priority first)."""
    load_app(app)
    if as_json:
        report = warm_now(force=force, workers=workers)
        emit_json({"app": app, **report.to_dict()})
    else:
        report = _with_progress_bar(force, workers)
        _show(app, report)
    if not report.ok:
        raise SystemExit(1)


def _with_progress_bar(force: bool, workers: int) -> WarmReport:
    out = console()
    columns = (TextColumn("warming"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=out) as bar:
        job = bar.add_task("", total=None)

        def progress(done: int, total: int, name: str) -> None:
            bar.update(job, completed=done, total=total, description=name)

        return warm_now(progress, force=force, workers=workers)


def _show(app: str, report: WarmReport) -> None:
    out = console()
    out.print(
        f"Warmed {app}: {report.warmed} computed, {report.skipped} fresh already, {report.failed} failed "
        f"in {duration(report.duration)}"
    )
    if not report.tasks:
        out.print("No warming task was due (--force runs them all).")
        return
    table = Table(title="Tasks", title_justify="left")
    for column in ("task", "runs", "warmed", "skipped", "failures", "last run", "last error"):
        table.add_column(column, justify="left" if column in ("task", "last error") else "right")
    for t in report.tasks:
        last = "-" if t.last_duration is None else duration(t.last_duration)
        table.add_row(
            t.name, str(t.runs), str(t.warmed), str(t.skipped), str(t.failures), last, t.last_error or ""
        )
    out.print(table)
