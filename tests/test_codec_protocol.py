"""The codec layer (issue 7, "codecs in one place"): a shared tier knows serialization only
through its ``Codec``; ``secret=`` is the shorthand for ``codec=PickleCodec(secrets)``."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import (
    MISS,
    Cache,
    Codec,
    ConfigurationError,
    CorruptEntryError,
    DiskTier,
    Entry,
    ForeignEntryError,
    MemoryTier,
    PickleCodec,
    SerializationError,
    TamperedEntryError,
    cached,
)
from tests.disk_support import raw_db

SECRET = "codec-secret-0123456789abcdef"
KEY = "|fn:app.f@0123456789ab(i1)"


class Reversed:
    """PickleCodec's bytes backwards: what no other codec (nor diskcache) would read."""

    def __init__(self, signed: bool = False) -> None:
        self.inner = PickleCodec([SECRET] if signed else None)
        self.signed = signed
        self.dumped: list[tuple[Any, str, bytes]] = []
        self.loaded: list[tuple[bytes, str]] = []

    def dumps(self, entry: Entry, key: str) -> bytes:
        data = self.inner.dumps(entry, key)[::-1]
        self.dumped.append((entry.value, key, data))
        return data

    def loads(self, data: bytes, key: str) -> Entry:
        self.loaded.append((data, key))
        return self.inner.loads(data[::-1], key)


class Scripted:
    """Answers each read with the error that the stored bytes name."""

    signed = False
    errors = {b"corrupt": CorruptEntryError, b"tampered": TamperedEntryError, b"foreign": ForeignEntryError}

    def dumps(self, entry: Entry, key: str) -> bytes:
        return str(entry.value).encode()

    def loads(self, data: bytes, key: str) -> Entry:
        raise self.errors[data]("scripted")


def _stored(directory: Path, key: str) -> bytes:
    with raw_db(directory) as con:
        (value,) = con.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchone()
    return bytes(value)


def test_pickle_codec_is_a_codec_and_is_public() -> None:
    assert isinstance(PickleCodec(), Codec) and isinstance(Reversed(), Codec)
    assert {"Codec", "PickleCodec", "CorruptEntryError", "TamperedEntryError", "ForeignEntryError"} <= set(
        cacheplug.__all__
    )
    assert not PickleCodec().signed and PickleCodec(SECRET).signed


def test_a_custom_codec_makes_every_stored_byte_and_reads_every_one(tmp_path: Path) -> None:
    codec = Reversed()
    tier = DiskTier(tmp_path / "tier", codec=codec)
    assert tier.codec is codec
    calls: list[int] = []
    with Cache([MemoryTier(), tier]) as cache:

        @cached(cache=cache)
        def square(x: int) -> int:
            calls.append(x)
            return x * x

        assert square(3) == 9
        key = square.cache_key(3)
        ((value, dumped_key, data),) = codec.dumped
        assert (value, dumped_key) == (9, key)
        assert _stored(tmp_path / "tier", key) == data  # the row is the codec's bytes, as they are
        assert codec.loaded == []  # the memory tier served nothing yet; the disk was not read

        cache.tiers[0].clear()
        assert square(3) == 9 and calls == [3]  # a disk hit, through the codec
        assert codec.loaded == [(data, key)]

    tier.set(KEY, Entry("direct", 100.0, None, 0))
    assert tier.get(KEY).value == "direct"
    assert codec.dumped[-1][1] == KEY and codec.loaded[-1] == (codec.dumped[-1][2], KEY)
    assert tier.get("absent") is MISS and len(codec.loaded) == 2  # nothing stored: no loads
    tier.close()

    # Another codec over the same folder cannot read those bytes: the tier adds nothing of its own.
    plain = DiskTier(tmp_path / "tier")
    assert plain.get(KEY) is MISS and plain.corrupt == 1
    plain.close()


def test_secret_and_codec_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="give one of them") as info:
        DiskTier(tmp_path / "tier", codec=PickleCodec([SECRET]), secret=SECRET)
    assert "codec=PickleCodec(secrets)" in str(info.value)
    assert not (tmp_path / "tier").exists()  # refused before anything was created


def test_secret_is_the_shorthand_for_a_signed_pickle_codec(tmp_path: Path) -> None:
    by_secret = DiskTier(tmp_path / "tier", secret=f"{SECRET},old-secret-0123456789")
    by_codec = DiskTier(tmp_path / "tier", codec=PickleCodec([SECRET]))
    assert isinstance(by_secret.codec, PickleCodec) and by_secret.codec.signed
    assert by_secret.codec.secrets_count == 2
    by_secret.set(KEY, Entry("v", 100.0, None, 0))
    assert by_codec.get(KEY).value == "v"
    assert _stored(tmp_path / "tier", KEY)[:4] == b"CP\x02s"
    assert "PickleCodec(signed=True" in repr(by_codec)
    by_secret.close()
    by_codec.close()


@pytest.mark.parametrize(
    "codec",
    [object(), PickleCodec, type("NoSigned", (), {"dumps": len, "loads": len})(), Scripted, "pickle"],
)
def test_something_that_is_not_a_codec_is_refused(tmp_path: Path, codec: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"must be a cacheplug\.Codec"):
        DiskTier(tmp_path / "tier", codec=codec)


def test_a_codec_whose_signed_is_not_a_bool_is_refused(tmp_path: Path) -> None:
    """The tier trusts its folder by ``signed``: a truthy string must not pass for it."""
    codec = Scripted()
    codec.signed = "yes"  # type: ignore[assignment]
    with pytest.raises(ConfigurationError, match="bool signed"):
        DiskTier(tmp_path / "tier", codec=codec)


def test_the_codec_errors_drive_the_damage_counters(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "tier", codec=Scripted())
    for kind in ("corrupt", "tampered", "foreign"):
        tier.set(kind, Entry(kind, 100.0, None, 0))
        assert tier.get(kind) is MISS
    assert (tier.corrupt, tier.tampered, tier.foreign) == (1, 1, 1)
    assert sorted(tier.keys()) == ["foreign"]  # corrupt and tampered rows deleted, foreign left
    with Cache([tier]) as cache:
        stats = cache.stats()
        assert (stats["corrupt"], stats["tampered"], stats["foreign"]) == (1, 1, 1)
    tier.close()


def test_only_a_signed_codec_opens_a_folder_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigurationError, match=re.escape("signed DiskTier(codec=...)")):
        DiskTier(shared, codec=Reversed(signed=False))
    tier = DiskTier(shared, codec=Reversed(signed=True))
    tier.set(KEY, Entry("v", 100.0, None, 0))
    assert tier.get(KEY).value == "v"
    assert os.stat(shared).st_mode & 0o777 == 0o777  # accepted as it is, for its signed codec
    tier.close()


def test_a_value_the_codec_cannot_serialize_stays_in_memory(tmp_path: Path) -> None:
    class Refusing(Reversed):
        def dumps(self, entry: Entry, key: str) -> bytes:
            raise SerializationError("not this one")

    tier = DiskTier(tmp_path / "tier", codec=Refusing())
    with Cache([MemoryTier(), tier]) as cache:
        cache.set("k", "v")
        assert cache.get("k") == "v"
        assert cache.stats()["unserializable"] == 1 and len(tier) == 0
    tier.close()


def test_disk_tier_without_a_directory_uses_the_default_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHEPLUG_DIR", str(tmp_path / "from-env"))
    tier = DiskTier()
    assert tier.directory == str(tmp_path / "from-env")
    tier.close()


def test_tiers_import_nothing_from_the_configuration() -> None:
    """The tiers sit below the settings: the default directory comes from ``private_files``."""
    tiers = Path(cacheplug.__file__).parent / "tiers"
    upward = []
    for path in sorted(tiers.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "config":
                upward.append(f"{path.name}:{node.lineno}")
    assert not upward


class NotAnEntry:
    """A broken codec: its loads returns the bare value instead of the Entry."""

    signed = False

    def dumps(self, entry: Entry, key: str) -> bytes:
        return str(entry.value).encode()

    def loads(self, data: bytes, key: str) -> Any:
        return data.decode()


def test_a_codec_that_returns_no_entry_is_counted_corrupt_and_the_call_computes(tmp_path: Path) -> None:
    """It used to raise AttributeError out of the caller's call."""
    disk = DiskTier(str(tmp_path / "disk"), codec=NotAnEntry())
    with Cache([MemoryTier(), disk]) as writer:
        writer.set("k", "v")
    with Cache([MemoryTier(), disk]) as reader:
        assert reader.get("k") is None
        assert reader.get_or_compute("k", lambda: "computed") == "computed"
    assert disk.corrupt >= 1
