"""Entries to bytes and back for the shared tiers: format version, signing, pickling.

Every serialized entry starts with a four-byte header: the magic ``CP``, the format
version and the kind (``p`` plain, ``s`` signed). A signed entry then carries the signing
secret's id (8 bytes) and an HMAC-SHA256 (32 bytes) over the header, the secret id, the
key (which starts with the cache's namespace) and the whole payload (value, expiry,
version numbers and incarnation, tags). The payload is a pickle of ``(value, created,
expires, seq, tags, cost, incarnation)``, with an eighth item ``(deadline, stale_until,
error_until)`` only for an entry with freshness windows (``stale_ttl=``,
``stale_if_error=``, ``early_refresh=``), so that another process judges it alike.

Guarantees:

- with secrets, nothing is unpickled before its MAC has been verified in constant time
  (``hmac.compare_digest``); unsigned data, data signed with an unknown secret, a MAC
  computed for another key, or anything truncated is *tampered*;
- without secrets, signed data is never unpickled (it is *foreign*: another process with a
  secret owns it);
- data in a format this release does not know (a newer release's, or the pickled format 1
  written by earlier releases) is *foreign* and never unpickled;
- anything else that cannot be parsed is *corrupt*.

Unreadable data raises a subclass of :class:`UnreadableEntryError` whose ``kind`` says
which of the three it is, so that a tier can count them apart: corrupt and tampered rows
are deleted, foreign ones are left to the release that wrote them.

:class:`Codec` is the whole contract between a shared tier and serialization: a tier
stores what ``dumps`` returns, rebuilds entries with ``loads``, and accepts a folder that
others can write to only when ``signed`` is true. Compression or another format is a
codec of its own (or one wrapping :class:`PickleCodec`), written once for every shared
tier.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Sequence
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

from .envelope import Entry, PolicyEntry
from .errors import ConfigurationError, SerializationError

__all__ = [
    "FORMAT",
    "Codec",
    "CorruptEntryError",
    "ForeignEntryError",
    "PickleCodec",
    "TamperedEntryError",
    "UnreadableEntryError",
    "codec_for",
    "parse_secrets",
    "secret_id",
]

FORMAT: Final = 2
_MAGIC: Final = b"CP"
_PLAIN: Final = b"CP\x02p"
_SIGNED: Final = b"CP\x02s"
_HEADER: Final = 4
_SID: Final = 8
_MAC: Final = 32
_BODY: Final = _HEADER + _SID + _MAC  # where a signed entry's payload starts
_PICKLE_PROTOCOL: Final = 5
_BLOCK: Final = 64  # SHA-256's block size, for the HMAC key pads
# Format 1 (earlier releases): a protocol-5 pickle of ``(1, value, ...)``: PROTO 5, FRAME
# <8 bytes>, MARK, BININT1 1. Recognized by these bytes alone, never unpickled.
_FORMAT1_HEAD: Final = b"\x80\x05\x95"
_FORMAT1_TUPLE: Final = b"(K\x01"
_NEVER = float("inf")
_new_entry = object.__new__


class UnreadableEntryError(SerializationError):
    """Stored data that this process cannot (or must not) turn back into an entry.

    A codec's ``loads`` raises one of the three subclasses; their ``kind`` (``"corrupt"``,
    ``"tampered"``, ``"foreign"``) names the tier's counter and whether the row is deleted.
    """

    kind: ClassVar[str] = "unreadable"


class CorruptEntryError(UnreadableEntryError):
    """The data cannot be parsed: a damaged row, or a value whose class is gone."""

    kind = "corrupt"


class TamperedEntryError(UnreadableEntryError):
    """The signature is wrong, missing, truncated, or made with an unknown secret."""

    kind = "tampered"


class ForeignEntryError(UnreadableEntryError):
    """A format this release does not read (older, newer, or signed when we have no secret)."""

    kind = "foreign"


@runtime_checkable
class Codec(Protocol):
    """How a shared tier turns entries into bytes and back: the one thing it knows of serialization.

    ``dumps(entry, key)`` returns the bytes to store under ``key`` (the key may be bound
    into them, as a signature does); it raises :class:`~cacheplug.SerializationError` for a
    value it cannot serialize (the value then stays in memory, counted as unserializable).

    ``loads(data, key)`` rebuilds the :class:`~cacheplug.Entry` stored under ``key``, with
    every field the codec was given (value, ``created``, ``expires``, ``seq``, ``tags``,
    ``cost``, ``incarnation``, and the freshness windows of ``Entry.windows()`` where it
    has them: ``deadline``, ``stale_until``, ``error_until``) and ``skey=key``. Data it
    cannot or must not read raises :class:`CorruptEntryError` (damaged: the tier deletes
    the row and counts it as *corrupt*), :class:`TamperedEntryError` (a bad or missing
    signature: deleted, counted as *tampered*) or :class:`ForeignEntryError` (another
    format or release's: counted as *foreign* and left in place). Nothing it reads may run
    code before it is verified.

    ``signed`` is true only when ``loads`` verifies a signature made with a secret before
    it deserializes anything. A tier then accepts a folder that others can write to;
    an unsigned codec gets only a folder owned by this user and writable by nobody else.
    """

    @property
    def signed(self) -> bool:
        """Whether every entry is verified against a secret before it is deserialized."""
        ...

    def dumps(self, entry: Entry, key: str) -> bytes:
        """The bytes that store ``entry`` under ``key``."""
        ...

    def loads(self, data: bytes, key: str) -> Entry:
        """The entry that ``data``, stored under ``key``, holds; an UnreadableEntryError if none."""
        ...


def secret_id(secret: str) -> bytes:
    """The 8-byte id stored beside a MAC, naming the secret that made it (not the secret)."""
    return hashlib.sha256(secret.encode("utf-8")).digest()[:_SID]


def parse_secrets(secret: str | Sequence[str] | None, source: str = "secret") -> tuple[str, ...]:
    """Secrets from a comma-separated string or a sequence; the first one signs."""
    if secret is None:
        return ()
    if isinstance(secret, str):
        parts = [s.strip() for s in secret.split(",")]
        found = tuple(s for s in parts if s)
        if secret.strip() and not found:
            raise ConfigurationError(
                f"{source}={secret!r} holds no secret; give one or more, comma-separated"
            )
        return found
    if isinstance(secret, bytes) or not isinstance(secret, Sequence):
        raise ConfigurationError(
            f"{source} must be a str (comma-separated secrets) or a sequence of str, "
            f"got {type(secret).__name__}"
        )
    found_list: list[str] = []
    for item in secret:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"every {source} must be a non-empty str, got {item!r}")
        found_list.append(item.strip())
    return tuple(found_list)


def codec_for(codec: Codec | None, secret: str | Sequence[str] | None, owner: str) -> Codec:
    """The codec a shared tier is built with: ``codec``, or ``PickleCodec`` of ``secret``.

    ``secret`` is the shorthand for ``codec=PickleCodec(secrets)``; giving both is a
    :class:`ConfigurationError` (a codec of one's own gets its secrets itself).
    """
    if codec is None:
        return PickleCodec(parse_secrets(secret, f"{owner} secret"))
    if secret is not None:
        raise ConfigurationError(
            f"{owner}(codec=..., secret=...): give one of them. secret= is the shorthand for "
            f"codec=PickleCodec(secrets); a codec of your own takes its secrets itself"
        )
    if isinstance(codec, type) or not isinstance(codec, Codec) or type(codec.signed) is not bool:
        raise ConfigurationError(
            f"{owner} codec must be a cacheplug.Codec: dumps(entry, key) -> bytes, "
            f"loads(data, key) -> Entry and a bool signed; got {codec!r}"
        )
    return codec


def _framed(key: str) -> bytes:
    # Length-prefixed, so that no (key, payload) pair can be re-split into another.
    raw = key.encode("utf-8", "surrogatepass")
    return len(raw).to_bytes(4, "big") + raw


def _key_pads(secret: bytes, prefix: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner state (after ``prefix``) and outer state for ``secret``."""
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    padded = secret.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    inner.update(prefix)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    return inner, outer


class PickleCodec:
    """The default :class:`Codec`: pickled entries behind a format header, signed when given secrets.

    ``secrets``: one str (comma-separated secrets) or a sequence of str; the first signs
    with HMAC-SHA256, every one verifies (rotation: put the new secret first, keep the old
    one until the entries it signed have expired or been rewritten). With secrets, nothing
    is unpickled before its signature over the format, the key and the whole entry has
    been checked; without, signed data is never unpickled. ``DiskTier(secret=s)`` is
    ``DiskTier(codec=PickleCodec(s))``.
    """

    def __init__(self, secrets: str | Sequence[str] | None = None) -> None:
        found = parse_secrets(secrets)
        self.secrets_count = len(found)
        self.signed = bool(found)
        # Precomputed key pads: the inner and outer SHA-256 states of HMAC (RFC 2104) are
        # built once per secret, the inner one having absorbed the fixed prefix (header +
        # secret id); each message costs two copy() calls of prepared states. (This is
        # hmac.new(...).copy() without the hmac module's Python wrapper: ~1 µs, not ~3.)
        self._pads: dict[bytes, tuple[Any, Any]] = {}
        for secret in found:
            sid = secret_id(secret)
            if sid not in self._pads:
                self._pads[sid] = _key_pads(secret.encode("utf-8"), _SIGNED + sid)
        self._signer = None if not found else (secret_id(found[0]), self._pads[secret_id(found[0])])
        self._expect = _SIGNED if found else _PLAIN

    def dumps(self, entry: Entry, key: str) -> bytes:
        """Serialize ``entry`` stored under ``key``; :class:`SerializationError` if it can't be."""
        windows = entry.windows()
        record: tuple[Any, ...] = (
            entry.value,
            entry.created,
            entry.expires,
            entry.seq,
            entry.tags,
            entry.cost,
            entry.incarnation,
        )
        if windows is not None:
            record += (windows,)
        try:
            payload = pickle.dumps(record, protocol=_PICKLE_PROTOCOL)
        except Exception as exc:
            raise SerializationError(
                f"value of type {type(entry.value).__qualname__} cannot be pickled: {exc}"
            ) from exc
        if self._signer is None:
            return _PLAIN + payload
        sid, (inner, outer) = self._signer
        mac = inner.copy()
        mac.update(_framed(key))
        mac.update(payload)
        out = outer.copy()
        out.update(mac.digest())
        return b"".join((_SIGNED, sid, out.digest(), payload))

    def loads(self, data: bytes, key: str) -> Entry:
        """Rebuild the entry stored under ``key``; raise an :class:`UnreadableEntryError`."""
        try:
            head = data[:_HEADER]
        except TypeError:
            raise CorruptEntryError(f"stored data is a {type(data).__name__}, not bytes") from None
        if head != self._expect:
            raise self._unreadable(data)
        view = memoryview(data)
        if self.signed:
            pads = self._pads.get(data[_HEADER : _HEADER + _SID])
            if pads is None:
                raise TamperedEntryError("signed with a secret this process does not know")
            payload = view[_BODY:]
            mac = pads[0].copy()
            mac.update(_framed(key))
            mac.update(payload)
            out = pads[1].copy()
            out.update(mac.digest())
            if not hmac.compare_digest(out.digest(), data[_HEADER + _SID : _BODY]):
                raise TamperedEntryError("signature does not match the entry and its key")
        else:
            payload = view[_HEADER:]
        try:
            record = pickle.loads(payload)
            try:
                value, created, expires, seq, tags, cost, incarnation = record
                windows = None
            except ValueError:  # stored under freshness options: one more item, its windows
                value, created, expires, seq, tags, cost, incarnation, windows = record
                deadline, stale_until, error_until = windows
        except Exception as exc:
            raise CorruptEntryError(f"stored entry cannot be read back: {exc!r}") from exc
        # Built field by field: this runs on every read from a shared tier.
        if windows is None:
            entry = _new_entry(Entry)
            entry.deadline = _NEVER if expires is None else expires  # ``expires`` derives from it
        else:  # stored under freshness options: its expiry apart from its deadline
            policy: PolicyEntry = _new_entry(PolicyEntry)
            policy.expiry = _NEVER if expires is None else expires
            policy.deadline, policy.stale_until, policy.error_until = deadline, stale_until, error_until
            entry = policy
        entry.value, entry.created, entry.seq, entry.tags = value, created, seq, tags
        entry.cost, entry.skey, entry.incarnation = cost, key, incarnation
        entry.shelf, entry.fkey, entry.ref, entry.hits = None, None, False, 0
        return entry

    def _unreadable(self, data: Any) -> UnreadableEntryError:
        """Why data that does not start with the expected header cannot be read."""
        if type(data) is not bytes:
            return CorruptEntryError(f"stored data is a {type(data).__name__}, not bytes")
        if data[:2] == _MAGIC and len(data) >= _HEADER:
            version, kind = data[2], data[3:4]
            if version > FORMAT:
                return ForeignEntryError(f"entry format {version}; this release reads {FORMAT}")
            if version == FORMAT and kind == b"s":
                return ForeignEntryError("entry is signed and this process has no secret")
            if version == FORMAT and kind == b"p" and self.signed:
                return TamperedEntryError("entry is not signed and this process requires signatures")
            return CorruptEntryError(f"entry header {data[:_HEADER]!r} is not valid")
        if data[:3] == _FORMAT1_HEAD and data[11:14] == _FORMAT1_TUPLE:
            return ForeignEntryError("entry format 1, written by an earlier release (not read)")
        return CorruptEntryError(f"stored data does not start with an entry header: {data[:8]!r}")

    def __repr__(self) -> str:
        return f"PickleCodec(signed={self.signed}, secrets={self.secrets_count})"
