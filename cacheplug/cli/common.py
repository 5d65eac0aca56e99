"""What every command shares: the ``--dir``/``--namespace``/``--json`` options, the directory check, errors.

A command operates on one cache directory: ``--dir``, else ``CACHEPLUG_DIR``, else the
project's default folder (:func:`cacheplug.private_files.default_directory`). Before a
command touches it, :func:`checked_directory` says in one line what is wrong with it (absent,
not a folder, unreadable, no disk tier in it) and what to do; the command then exits with
status 1 (:class:`CliError`), never with a traceback. Read commands never create anything:
a directory that is not there stays absent.

Output is either a human form (tables through rich) or, with ``--json``, one JSON document
on stdout that scripts can rely on.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..private_files import default_directory

__all__ = [
    "CliError",
    "checked_directory",
    "database_path",
    "directory_option",
    "emit_json",
    "json_option",
    "namespace_option",
    "secret_from_environment",
    "truncated",
]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1  # the directory or the operation failed (click's usage errors exit with 2)


class CliError(click.ClickException):
    """A failure explained in one line (``Error: ...`` on stderr, exit status 1)."""

    exit_code = EXIT_ERROR


def directory_option(command: F) -> F:
    """``--dir``: the cache directory (default: ``CACHEPLUG_DIR``, else the project's folder)."""
    return click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=True, dir_okay=True, path_type=str),
        default=None,
        help="Cache directory (default: $CACHEPLUG_DIR, else this project's folder).",
    )(command)


def namespace_option(default: str | None = "") -> Callable[[F], F]:
    """``--namespace``: the cache namespace (``Cache(namespace=...)``); ``None``: every namespace."""

    def decorate(command: F) -> F:
        return click.option(
            "--namespace",
            default=default,
            show_default=default is not None,
            help="Cache namespace, as given to Cache(namespace=...)"
            + (" (default: every namespace)." if default is None else "."),
        )(command)

    return decorate


def json_option(command: F) -> F:
    """``--json``: print one JSON document instead of tables."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(command)


def secret_from_environment() -> str | None:
    """``CACHEPLUG_SECRET`` (comma-separated secrets), or ``None`` when unset or empty."""
    return os.environ.get("CACHEPLUG_SECRET") or None


def database_path(directory: str) -> str:
    """Where the disk tier keeps its SQLite database inside ``directory``."""
    return os.path.join(directory, "entries", "cache.db")


def _unreadable(path: str, st: os.stat_result) -> bool:
    # os.access answers for root too, who may read anything; a folder whose owner bits
    # deny reading is still treated as unreadable, as its owner meant.
    if not os.access(path, os.R_OK | os.X_OK):
        return True
    return st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o500 != 0o500


def checked_directory(directory: str | None) -> str:
    """The absolute cache directory, checked; :class:`CliError` saying what to do if unusable.

    Usable: an existing, readable folder holding a disk tier (``entries/cache.db``).
    Nothing is created.
    """
    path = os.path.abspath(directory if directory is not None else default_directory())
    where = "--dir or CACHEPLUG_DIR"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CliError(
            f"no cache directory at {path}; give the directory your processes use with {where}"
        ) from None
    except OSError as exc:
        raise CliError(f"cannot reach the cache directory {path} ({exc.strerror}); check {where}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CliError(f"{path} is not a directory; give a cache directory with {where}")
    if _unreadable(path, st):
        raise CliError(
            f"cannot read the cache directory {path} (mode {stat.S_IMODE(st.st_mode):03o}); "
            f"run as its owner or give it read access (chmod 700 {path})"
        )
    db = database_path(path)
    try:
        db_st = os.stat(db)
    except OSError:
        raise CliError(
            f"{path} holds no disk tier (no entries/cache.db): it is not a cacheplug cache directory; "
            f"give the directory your processes use with {where}"
        ) from None
    if not stat.S_ISREG(db_st.st_mode) or _unreadable(os.path.dirname(db), os.stat(os.path.dirname(db))):
        raise CliError(f"cannot read the disk tier's database {db}; check its permissions")
    return path


def emit_json(document: Any) -> None:
    """Print ``document`` as indented JSON (keys in a stable order) and a newline."""
    click.echo(json.dumps(document, indent=2, sort_keys=True, allow_nan=False, default=str))


def truncated(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
