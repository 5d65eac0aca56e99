"""What ``inspect`` and ``keys`` may say of a stored entry: its metadata always, its value once trusted.

An entry's bytes (``cacheplug.codec``) are a header, for signed entries a secret id and a
MAC, then a pickle of ``(value, created, expires, seq, tags, cost, incarnation)`` (and
the freshness windows as an eighth item, for an entry that has them).

- **Metadata** is read by an unpickler that never imports anything: every class the pickle
  names becomes an inert stand-in, so reading an unverified entry's metadata runs no code
  from it (only builtin containers, numbers and strings are built). It is labelled
  unverified unless the signature was checked.
- **The value** is shown only through the codec, and only when the codec would serve it:
  a signed entry once ``CACHEPLUG_SECRET`` verifies its MAC (without a secret the value is
  withheld); an unsigned one when no secret is configured and the directory is private
  (owned by this user, writable by nobody else: the disk tier's own trust rule). Its
  ``repr`` is truncated.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any

from ..cache.naming import split_tags
from ..codec import PickleCodec, UnreadableEntryError
from ..private_files import directory_problem
from .common import truncated
from .store import Row

__all__ = ["Decoded", "decode"]

_PLAIN, _SIGNED = b"CP\x02p", b"CP\x02s"
_SIGNED_BODY = 4 + 8 + 32  # header, secret id, MAC
REPR_LIMIT = 200


class _Inert:
    """Stands for any object the pickle names a class for: built, filled, never run."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


class _MetadataUnpickler(pickle.Unpickler):
    """An unpickler that imports nothing: each named global is a fresh inert class."""

    def find_class(self, module: str, name: str) -> Any:
        return type(f"{module}.{name}", (_Inert,), {})

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not cacheplug's")


@dataclass(frozen=True, slots=True)
class Decoded:
    """An entry as the CLI shows it.

    ``signature``: ``"unsigned"``, ``"verified"``, ``"not checked"`` (signed, no secret
    given) or ``"invalid"``. ``value``: the truncated ``repr``, or ``None`` with ``withheld``
    saying why. ``metadata_error``: why the metadata could not be read (then the times,
    tags and cost are ``None``).
    """

    key: str
    size: int
    signature: str
    created: float | None
    expires: float | None
    tags: tuple[str, ...] | None
    cost: float | None  # seconds
    value: str | None
    withheld: str | None
    metadata_error: str | None = None

    @property
    def verified(self) -> bool:
        """Whether the metadata comes from an entry the codec accepted."""
        return self.signature == "verified" or (self.signature == "unsigned" and self.value is not None)


def _payload(data: bytes) -> bytes | None:
    if data[:4] == _PLAIN:
        return data[4:]
    if data[:4] == _SIGNED:
        return data[_SIGNED_BODY:]
    return None


def _metadata(data: bytes) -> tuple[float | None, float | None, tuple[str, ...], float | None]:
    payload = _payload(data)
    if payload is None:
        raise ValueError(f"not an entry this release reads (header {data[:4]!r})")
    record = _MetadataUnpickler(io.BytesIO(payload)).load()
    if not isinstance(record, tuple) or len(record) not in (7, 8):  # 8: with freshness windows
        raise ValueError("not a cacheplug entry record")
    _, created, expires, _, tags, cost, _ = record[:7]
    user_tags = (
        sorted(split_tags(t for t in tags if isinstance(t, str))[0]) if isinstance(tags, tuple) else []
    )
    return (
        created if isinstance(created, int | float) else None,
        expires if isinstance(expires, int | float) else None,
        tuple(user_tags),
        cost / 1000 if isinstance(cost, int | float) else None,
    )


def _value(row: Row, directory: str, secret: str | None) -> tuple[str, str | None, str | None]:
    """``(signature, value repr or None, why withheld or None)``."""
    head = row.data[:4]
    if head == _SIGNED:
        if secret is None:
            return (
                "not checked",
                None,
                "the entry is signed; set CACHEPLUG_SECRET to verify it and see the value",
            )
        codec = PickleCodec(secret)
    elif head == _PLAIN:
        if secret is not None:
            return (
                "unsigned",
                None,
                "the entry is not signed, and with CACHEPLUG_SECRET set cacheplug refuses unsigned entries",
            )
        problem = directory_problem(directory)
        if problem is not None:
            return "unsigned", None, f"unsigned entries are trusted only in a private directory: {problem}"
        codec = PickleCodec()
    else:
        return "unknown", None, f"the entry's format is not one this release reads (header {head!r})"
    try:
        entry = codec.loads(row.data, row.key)
    except UnreadableEntryError as exc:
        signature = "invalid" if exc.kind == "tampered" else ("verified" if codec.signed else "unsigned")
        return signature, None, f"the value cannot be read here ({exc.kind}: {exc})"
    try:
        shown = repr(entry.value)
    except Exception as exc:
        shown = f"<repr failed: {type(exc).__name__}: {exc}>"
    return ("verified" if codec.signed else "unsigned"), truncated(shown, REPR_LIMIT), None


def decode(row: Row, directory: str, secret: str | None, *, with_value: bool = True) -> Decoded:
    """What may be shown of ``row`` (see the module docstring)."""
    error = None
    try:
        created, expires, tags, cost = _metadata(row.data)
    except Exception as exc:  # any damaged pickle: say so, never fail the command
        created = expires = cost = None
        tags = None
        error = f"{type(exc).__name__}: {exc}"
    if with_value:
        signature, value, withheld = _value(row, directory, secret)
    else:
        signature = {_SIGNED: "not checked", _PLAIN: "unsigned"}.get(row.data[:4], "unknown")
        value, withheld = None, "not read"
    return Decoded(
        key=row.key,
        size=len(row.data),
        signature=signature,
        created=created,
        expires=expires,
        tags=tags,
        cost=cost,
        value=value,
        withheld=withheld,
        metadata_error=error,
    )
