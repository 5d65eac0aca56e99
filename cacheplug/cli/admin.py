"""The destructive commands: ``invalidate`` and ``clear``, through a real :class:`~cacheplug.Cache`.

They do what a process of the service would do: build a ``Cache`` over the directory's
disk tier (signed with ``CACHEPLUG_SECRET`` when set) and call ``invalidate`` or ``clear``.
So the invalidation is recorded in the host's version store, and every process using the
directory stops serving what it made stale, memory tiers included. It fails closed: when
it cannot be recorded the command says so and exits with status 1. Both ask for
confirmation unless ``--yes``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import click

from ..cache import Cache
from ..errors import CacheplugError
from ..observe.publish import collect
from ..tiers.disk import DiskTier
from .common import CliError, checked_directory, directory_option, namespace_option, secret_from_environment
from .store import open_rows

__all__ = ["clear", "invalidate"]


@contextlib.contextmanager
def _cache(directory: str, namespace: str) -> Iterator[Cache]:
    """A cache over the directory's disk tier, closed (tier included) on exit."""
    try:
        tier = DiskTier(directory, secret=secret_from_environment())
    except CacheplugError as exc:
        raise CliError(str(exc)) from None
    try:
        if tier.down_reason is not None:
            raise CliError(f"the disk tier in {directory} cannot be opened: {tier.down_reason}")
        cache = Cache([tier], namespace=namespace)
        try:
            if cache.degraded is not None:
                raise CliError(f"cannot record invalidations in {directory}: {cache.degraded}")
            yield cache
        finally:
            cache.close()
    finally:
        tier.close()


def _apply(directory: str, namespace: str, action: str, run: Callable[[Cache], None]) -> None:
    with _cache(directory, namespace) as cache:
        try:
            run(cache)
        except CacheplugError as exc:
            raise CliError(f"the {action} was not recorded: {exc}") from None


@click.command()
@directory_option
@namespace_option()
@click.option("--tag", "tags", multiple=True, help="A tag to invalidate (repeatable).")
@click.option("--key", "keys", multiple=True, help="A key to invalidate: stored or user key (repeatable).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def invalidate(
    directory: str | None, namespace: str, tags: tuple[str, ...], keys: tuple[str, ...], yes: bool
) -> None:
    """Make the entries carrying a tag, or stored under a key, stale for every process."""
    if not tags and not keys:
        raise click.UsageError("give at least one --tag or --key")
    path = checked_directory(directory)
    what = ", ".join([*(f"tag {t!r}" for t in tags), *(f"key {k!r}" for k in keys)])
    if not yes:
        click.confirm(f"Invalidate {what} for every process using {path}?", abort=True)
    _apply(path, namespace, "invalidation", lambda cache: cache.invalidate(tags=tags, keys=keys))
    click.echo(f"invalidated {what}")


def _namespaces(path: str) -> list[str]:
    """Every namespace with entries on disk or a live process (and the default one)."""
    found = {""}
    with open_rows(path) as rows:
        found.update(key.split("|", 1)[0] for key in rows.stored_keys() if "|" in key)
    found.update(p.latest.namespace for p in collect(path))
    return sorted(found)


@click.command()
@directory_option
@namespace_option(default=None)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(directory: str | None, namespace: str | None, yes: bool) -> None:
    """Make every entry stale for every process (one namespace with --namespace)."""
    path = checked_directory(directory)
    spaces = [namespace] if namespace is not None else _namespaces(path)
    shown = ", ".join(repr(n) for n in spaces)
    if not yes:
        click.confirm(
            f"Make every entry of namespace{'s' if len(spaces) != 1 else ''} {shown} stale "
            f"for every process using {path}?",
            abort=True,
        )
    for space in spaces:
        _apply(path, space, "clear", lambda cache: cache.clear())
    click.echo(f"cleared namespace{'s' if len(spaces) != 1 else ''} {shown}")
