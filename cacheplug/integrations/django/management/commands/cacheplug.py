"""``python manage.py cacheplug <command> ...``: the ``cacheplug`` command line, on this project.

Every command of ``cacheplug --help`` (stats, top, inspect, keys, invalidate, clear, report),
with the same options and output, and ``--dir`` defaulting to the project's cache
directory: ``settings.CACHEPLUG["directory"]``, else what the command line itself uses
(``CACHEPLUG_DIR``, else the project's folder). Django's ``--settings`` and ``--pythonpath``
are applied by ``manage.py`` and left out; every other argument after the command's name
belongs to cacheplug's command line (``manage.py cacheplug --help``).
Needs the ``cli`` extra (click and rich).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...._require import require
from ...config import project_settings

__all__ = ["Command"]


_DJANGO_OPTIONS = ("--settings", "--pythonpath")  # applied by manage.py before the command runs


def _without_django_options(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True  # and its value, the next argument
        elif not arg.startswith(tuple(f"{o}=" for o in _DJANGO_OPTIONS)):
            out.append(arg)
    return out


def _run(args: list[str], prog_name: str) -> None:
    require("click", "cli")
    from .....cli import directory_defaults, main  # deferred: needs the cli extra

    directory = (project_settings() or {}).get("directory")
    main(args, prog_name=prog_name, default_map=directory_defaults(directory))


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    """cacheplug's command line on the project's cache directory."""

    help = "Operate this project's cacheplug cache: stats, top, inspect, keys, invalidate, clear, report."

    def run_from_argv(self, argv: list[str]) -> None:
        """``manage.py cacheplug ...``: the arguments go to cacheplug's command line untouched."""
        program = os.path.basename(argv[0])
        program = "python -m django" if program == "__main__.py" else program  # as Django names it
        _run(_without_django_options(argv[2:]), f"{program} {argv[1]}")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER, help="a cacheplug command and its options")

    def handle(self, *args: str, **options: Any) -> None:
        """``call_command("cacheplug", "stats", "--json")``: output on stdout; a failure is a CommandError."""
        try:
            _run(list(args), "cacheplug")
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise CommandError(f"cacheplug {' '.join(args)} exited with status {exc.code}") from None
