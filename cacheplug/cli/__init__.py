"""The ``cacheplug`` command line (``pip install 'cacheplug[cli]'``; also ``python -m cacheplug``).

:data:`cli` is the click group, so that framework integrations can mount the same commands
(``flask cacheplug stats``, say); :func:`main` runs it as the console script. The commands
live by kind: ``read`` (stats, keys, inspect, report), ``admin`` (invalidate, clear: they
ask for confirmation), ``live`` (top) and ``warm`` (imports the application and runs its
warming tasks). Every one but ``warm`` takes ``--dir`` (default ``CACHEPLUG_DIR``, else the
project's folder); see docs/cli.md.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

import click

from . import admin, live, read, warm

__all__ = ["cli", "directory_defaults", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cacheplug", prog_name="cacheplug")
@click.option("-v", "--verbose", is_flag=True, help="Also print cacheplug's log warnings (to stderr).")
def cli(verbose: bool) -> None:
    """Operate the cacheplug cache of this host: stats, live view, entries, invalidation, warming."""
    # A failing command explains itself in one line; the library's warnings about the same
    # fault (logged for services) would repeat it, so they are shown only when asked for.
    log = logging.getLogger("cacheplug")
    handler = logging.StreamHandler() if verbose else logging.NullHandler()
    propagate, log.propagate = log.propagate, False
    log.addHandler(handler)

    def restore() -> None:  # the group may run inside an application (a framework's CLI)
        log.removeHandler(handler)
        log.propagate = propagate

    click.get_current_context().call_on_close(restore)


for _command in (
    read.stats,
    live.top,
    read.inspect,
    read.keys,
    admin.invalidate,
    admin.clear,
    read.report,
    warm.warm,
):
    cli.add_command(_command)


def directory_defaults(directory: str | None) -> dict[str, dict[str, str]]:
    """A click ``default_map`` making ``directory`` every command's default ``--dir``.

    For an integration mounting :data:`cli` on its project's cache directory (``{}`` for
    ``None``: the commands' own default, ``CACHEPLUG_DIR`` or the project's folder).
    """
    if directory is None:
        return {}
    return {
        name: {"directory": directory}
        for name, command in cli.commands.items()
        if any(param.name == "directory" for param in command.params)
    }


def main(
    args: Sequence[str] | None = None,
    *,
    prog_name: str = "cacheplug",
    default_map: dict[str, dict[str, str]] | None = None,
) -> None:
    """Run the command line on ``args`` (default: ``sys.argv[1:]``), exiting with its status.

    An OS or SQLite failure no command explained is one line, exit 1. ``prog_name`` and
    ``default_map`` (see :func:`directory_defaults`) are for integrations that mount it.
    """
    try:
        cli.main(args=None if args is None else list(args), prog_name=prog_name, default_map=default_map)
    except (OSError, sqlite3.Error) as exc:
        click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(1) from None
