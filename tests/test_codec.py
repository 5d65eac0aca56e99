"""The entry codec (issue 6, items 9 and 16): format header, signed entries, what is never unpickled."""

from __future__ import annotations

import builtins
import hmac
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from cacheplug.codec import (
    FORMAT,
    CorruptEntryError,
    ForeignEntryError,
    PickleCodec,
    TamperedEntryError,
    UnreadableEntryError,
    parse_secrets,
    secret_id,
)
from cacheplug.envelope import Entry
from cacheplug.errors import ConfigurationError, SerializationError

KEY = "ns|fn:app.views.profile@0123456789ab(i42)"
OTHER_KEY = "ns|fn:app.views.profile@0123456789ab(i43)"
SECRET = "first-secret-0123456789"


class _Touch:
    """Unpickling this creates ``path``: the marker of code run by ``pickle.loads``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (self.path, "w"))


def _entry(value: Any = "payload", **overrides: Any) -> Entry:
    fields: dict[str, Any] = {"created": 100.0, "expires": 160.0, "seq": 7, "tags": ("user:1", "plan:pro")}
    fields.update(overrides)
    return Entry(value, **fields)


def _evil_record(marker: Path) -> bytes:
    return pickle.dumps((_Touch(marker), 1.0, None, 0, (), 0, ""), 5)


def _signed_by(secret: str, key: str, payload: bytes) -> bytes:
    """A signed entry made from outside the codec (what an attacker with ``secret`` could make)."""
    head = b"CP\x02s" + secret_id(secret)
    length = len(key.encode()).to_bytes(4, "big")
    mac = hmac.new(secret.encode(), head + length + key.encode() + payload, "sha256").digest()
    return head + mac + payload


def test_entry_round_trips_every_field_including_incarnation() -> None:
    for codec in (PickleCodec(), PickleCodec([SECRET])):
        entry = _entry({"a": [1, 2]}, incarnation="inc-1")
        entry.cost = 12
        got = codec.loads(codec.dumps(entry, KEY), KEY)
        assert (got.value, got.created, got.expires, got.seq, got.tags) == (
            {"a": [1, 2]},
            100.0,
            160.0,
            7,
            ("user:1", "plan:pro"),
        )
        assert (got.cost, got.incarnation, got.skey, got.deadline) == (12, "inc-1", KEY, 160.0)
        assert got.copy_for().incarnation == "inc-1"


def test_serialized_entries_start_with_the_format_header() -> None:
    assert PickleCodec().dumps(_entry(), KEY)[:4] == b"CP" + bytes([FORMAT]) + b"p"
    assert PickleCodec([SECRET]).dumps(_entry(), KEY)[:4] == b"CP" + bytes([FORMAT]) + b"s"


def test_signature_is_hmac_sha256_over_header_secret_id_key_and_payload() -> None:
    data = PickleCodec([SECRET]).dumps(_entry(), KEY)
    assert data == _signed_by(SECRET, KEY, data[44:])


def test_unpicklable_value_is_a_serialization_error_not_unreadable() -> None:
    with pytest.raises(SerializationError) as info:
        PickleCodec().dumps(_entry(lambda: 1), KEY)
    assert not isinstance(info.value, UnreadableEntryError)


def test_rotation_first_secret_signs_every_secret_verifies() -> None:
    old = PickleCodec(["old-secret"])
    rotated = PickleCodec(["new-secret", "old-secret"])
    new_only = PickleCodec(["new-secret"])
    by_old = old.dumps(_entry("v1"), KEY)
    assert rotated.loads(by_old, KEY).value == "v1"
    by_rotated = rotated.dumps(_entry("v2"), KEY)
    assert by_rotated[4:12] == secret_id("new-secret")
    assert new_only.loads(by_rotated, KEY).value == "v2"
    with pytest.raises(TamperedEntryError):
        new_only.loads(by_old, KEY)  # the old secret was dropped


def test_secrets_parse_from_comma_separated_text_or_a_sequence() -> None:
    assert parse_secrets(" a , b,,c ") == ("a", "b", "c")
    assert parse_secrets(["a", "b"]) == ("a", "b")
    assert parse_secrets(None) == () == parse_secrets("")
    for bad in (",", [""], [1], b"raw"):
        with pytest.raises(ConfigurationError):
            parse_secrets(bad)  # type: ignore[arg-type]


def test_format_1_entries_of_earlier_releases_are_foreign_and_never_unpickled(tmp_path: Path) -> None:
    """Item 16: today's pickled envelopes are a miss for the new release, without unpickling."""
    marker = tmp_path / "ran"
    old_release = pickle.dumps((1, _Touch(marker), 100.0, None, 3, (), 0), 5)
    for codec in (PickleCodec(), PickleCodec([SECRET])):
        with pytest.raises(ForeignEntryError):
            codec.loads(old_release, KEY)
    assert not marker.exists()


def test_newer_format_is_foreign_and_signed_data_without_a_secret_is_foreign(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    newer = b"CP\x03p" + _evil_record(marker)
    signed = _signed_by(SECRET, KEY, _evil_record(marker))
    with pytest.raises(ForeignEntryError):
        PickleCodec().loads(newer, KEY)
    with pytest.raises(ForeignEntryError):
        PickleCodec().loads(signed, KEY)
    assert not marker.exists()


def test_garbage_is_corrupt() -> None:
    for data in (b"", b"garbage", b"CP\x02x" + b"1", b"CP\x02p" + b"not a pickle", 42, "text"):
        with pytest.raises(CorruptEntryError):
            PickleCodec().loads(data, KEY)  # type: ignore[arg-type]


def test_unsigned_entry_read_with_a_secret_is_tampered_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(TamperedEntryError):
        PickleCodec([SECRET]).loads(b"CP\x02p" + _evil_record(marker), KEY)
    assert not marker.exists()


def _variants(good: bytes, codec: PickleCodec, marker: Path, rng: random.Random, n: int) -> list[bytes]:
    evil = _evil_record(marker)
    record = pickle.loads(good[44:])
    stripped = pickle.dumps((record[0], record[1], record[2], record[3], (), record[5], record[6]), 5)
    fixed = [
        b"CP\x02p" + evil,  # unsigned
        good[:44] + evil,  # a valid MAC over another payload
        good[:12] + bytes(32) + evil,  # zero MAC
        _signed_by("a-wrong-secret", KEY, evil),  # unknown secret id
        good[:12] + _signed_by("a-wrong-secret", KEY, evil)[12:],  # right id, wrong key's MAC
        _signed_by(SECRET, OTHER_KEY, evil)[:44] + evil,  # MAC for another key
        codec.dumps(_entry("other"), OTHER_KEY),  # a value copied from another key
        good[:44] + stripped,  # tags stripped
        good[:12] + good[12:28] + good[44:],  # truncated MAC
        good[:12] + good[12:28],  # MAC truncated, no payload
        pickle.dumps((1, _Touch(marker), 1.0, None, 0, (), 0), 5),  # format 1
    ]
    out = list(fixed)
    out += [good[:cut] for cut in range(len(good))]  # every truncation
    sources = (good, good[:44] + evil, b"CP\x02p" + evil)
    while len(out) < n:
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(data))
            data[pos] ^= 1 << rng.randrange(8)
        if bytes(data) != good:
            out.append(bytes(data))
    return out


def test_fuzzed_signed_entries_are_all_misses_and_never_run_code(tmp_path: Path) -> None:
    """Item 9: 10,000 variants of a valid signed entry: 0 executions, every one unreadable."""
    marker = tmp_path / "ran"
    codec = PickleCodec([SECRET])
    good = codec.dumps(_entry(), KEY)
    assert codec.loads(good, KEY).value == "payload"
    kinds: dict[str, int] = {}
    variants = _variants(good, codec, marker, random.Random(6), 10_000)
    assert len(variants) >= 10_000
    for data in variants:
        with pytest.raises(UnreadableEntryError) as info:
            codec.loads(data, KEY)
        kinds[info.value.kind] = kinds.get(info.value.kind, 0) + 1
        assert not marker.exists(), f"unpickled an unverified entry: {data[:60]!r}"
    assert kinds["tampered"] > 5_000, kinds
