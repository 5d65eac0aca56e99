"""HTTP syntax the response cache reads: header fields, cache directives, entity tags, dates.

Parsing only, no policy: :mod:`cacheplug.http` decides what the parsed values mean. Also
the escaping keys are built with, one-to-one so that two different requests never share a
key.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from collections.abc import Iterable

__all__ = [
    "HOP_BY_HOP",
    "NOT_MODIFIED_FIELDS",
    "escape",
    "etag_of",
    "expires_in",
    "header",
    "headers_from",
    "matches",
    "parse_cache_control",
    "seconds",
    "vary_names",
]

# Fields a response must not carry into the cache (connection-level, or recomputed).
HOP_BY_HOP = frozenset(
    {"age", "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
# What a 304 carries of the stored response (RFC 9110 15.4.5), besides Age.
NOT_MODIFIED_FIELDS = frozenset(
    {"cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary"}
)
_DELTA = re.compile(r"[0-9]+")
_DIRECTIVE = re.compile(r'\s*([^\s=,]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,]*))?\s*(?:,|$)')
_ETAGS = re.compile(r'(?:W/)?"[^"]*"|\*')
_CONFLICT = "\x00conflict"


def escape(text: str, plain: re.Pattern[str]) -> str:
    """``text`` with every character ``plain`` does not match percent-escaped (``%`` too)."""
    if plain.fullmatch(text):
        return text
    return "".join(ch if plain.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text)


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """A ``Cache-Control`` value as ``{directive: argument or None}``, names lower-cased.

    A directive given twice with different arguments maps to a marker that no number
    parses from, so a conflicting ``max-age`` makes a response unstorable (RFC 9111 4.2.1).
    """
    out: dict[str, str | None] = {}
    for match in _DIRECTIVE.finditer(value or ""):
        name, arg = match[1].lower(), match[2]
        if arg is not None:
            arg = arg.strip()
            if arg[:1] == '"':
                arg = re.sub(r"\\(.)", r"\1", arg[1:-1])
        if name in out and out[name] != arg:
            arg = _CONFLICT
        out[name] = arg
    return out


def seconds(arg: str | None) -> int | None:
    """A delta-seconds argument (``max-age=60``), or ``None`` when absent or invalid."""
    return int(arg) if arg is not None and _DELTA.fullmatch(arg.strip()) else None


def headers_from(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header fields as the policy reads them: lower-case names, repeated ones joined."""
    out: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        if name in out:
            out[name] += ("; " if name == "cookie" else ", ") + value
        else:
            out[name] = value
    return out


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """One response header field (repeats joined), ``name`` lower-case."""
    found = [v for k, v in headers if k.lower() == name]
    return ", ".join(found) if found else None


def vary_names(headers: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The request header names a response's ``Vary`` lists: lower-case, sorted, once each."""
    vary = header(headers, "vary")
    if vary is None:
        return ()
    return tuple(sorted({n.strip().lower() for n in vary.split(",") if n.strip()}))


def etag_of(body: bytes) -> str:
    """A strong entity tag for ``body``: a hash of its bytes."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str | None) -> bool:
    """``If-None-Match`` against an entity tag, by weak comparison (RFC 9110 13.1.2)."""
    if if_none_match is None or etag is None:
        return False
    opaque = etag.removeprefix("W/")
    return any(t == "*" or t.removeprefix("W/") == opaque for t in _ETAGS.findall(if_none_match))


def expires_in(expires: str, date: str | None, now: float) -> float | None:
    """Seconds from ``Date`` (else ``now``) to ``Expires``; ``None`` when invalid or past."""
    try:
        until = email.utils.parsedate_to_datetime(expires).timestamp()
        since = email.utils.parsedate_to_datetime(date).timestamp() if date else now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return until - since if until > since else None
