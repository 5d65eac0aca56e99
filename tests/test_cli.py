"""The command line end to end: ``python -m cacheplug ...`` in subprocesses, against a cache
directory that another live process (tests/cli_support.py) wrote and publishes stats for.

``top`` runs in a pseudo-terminal whose screen pyte renders and the test reads back. Every
process a test starts is stopped by the test, by its pid, within bounded waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyte
import pytest

from cacheplug import DiskTier, Entry

ROOT = Path(__file__).resolve().parent.parent
WRITER = Path(__file__).resolve().parent / "cli_support.py"
WAIT = 30.0  # seconds: the longest any one exchange with a subprocess may take
LATENCY = r"\d+\.\d+ (µs|ms|s)"  # how a percentile is shown
O_N = "O(n) admin operation: reads every entry of the disk tier"


def _env(directory: Path | None = None, secret: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "200"
    if directory is not None:
        env["CACHEPLUG_DIR"] = str(directory)
    if secret is not None:
        env["CACHEPLUG_SECRET"] = secret
    return env


def run_cli(
    *args: str, directory: Path | None = None, secret: str | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m cacheplug ARGS`` (with ``--dir`` passed in ARGS or CACHEPLUG_DIR=directory)."""
    return subprocess.run(
        [sys.executable, "-m", "cacheplug", *args],
        env=_env(directory, secret),
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


class Writer:
    """The live service process: asks it commands, one JSON line each."""

    def __init__(self, directory: Path, secret: str | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER)],
            env=_env(directory, secret),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._line()
        self.pid: int = hello["pid"]
        self.keys: dict[str, str] = hello["keys"]

    def _line(self) -> Any:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], WAIT)
        assert ready, "the writer process did not answer in time"
        line = self.process.stdout.readline()
        assert line, "the writer process exited"
        return json.loads(line)

    def ask(self, command: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._line()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=WAIT)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def writer(cache_dir: Path) -> Iterator[Writer]:
    started = Writer(cache_dir)
    try:
        yield started
    finally:
        started.stop()


def table(output: str) -> list[list[str]]:
    """The body rows of the rich tables in ``output``, as lists of cell texts."""
    return [
        [c.strip() for c in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def fields(output: str) -> dict[str, str]:
    """``inspect``'s lines: a label padded to 10 columns, a space, the text."""
    return {line[:10].rstrip(): line[11:] for line in output.splitlines()}


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failing command prints; checks there is exactly one and no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


# -- stats ---------------------------------------------------------------------------------


def test_stats_json_adds_up_the_live_process_and_measures_the_disk_tier(
    writer: Writer, cache_dir: Path
) -> None:
    result = run_cli("stats", "--json", "--dir", str(cache_dir))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["directory"] == str(cache_dir)
    (process,) = doc["processes"]
    assert {k: process[k] for k in ("host", "pid", "namespace", "interval", "snapshots")} == {
        "host": socket.gethostname(),
        "pid": writer.pid,
        "namespace": "",
        "interval": 60.0,
        "snapshots": 1,
    }
    assert doc["totals"] == {
        "calls": 7,
        "hits": 4,
        "misses": 3,
        "stale": 0,
        "coalesced": 0,
        "errors": 0,
        "invalidations": 0,
        "hit_rate": 4 / 7,
    }
    counts = ("hits", "misses", "stale", "coalesced", "errors", "calls", "hit_rate", "tier_hits")
    functions = {name: {k: f[k] for k in counts} for name, f in doc["functions"].items() if f["calls"]}
    assert functions == {
        "__main__.price": {
            "hits": 3,
            "misses": 2,
            "stale": 0,
            "coalesced": 0,
            "errors": 0,
            "calls": 5,
            "hit_rate": 0.6,
            "tier_hits": {"memory": 3, "disk": 0},
        },
        "__main__.name_of": {
            "hits": 1,
            "misses": 1,
            "stale": 0,
            "coalesced": 0,
            "errors": 0,
            "calls": 2,
            "hit_rate": 0.5,
            "tier_hits": {"memory": 1, "disk": 0},
        },
    }
    assert doc["functions"]["__main__.price"]["compute"]["count"] == 2
    disk = doc["tiers"]["disk"]
    assert (disk["entries"], disk["hits"]) == (5, 0)  # price(1), price(2), name_of(7), user:1, long
    assert disk["bytes"] > 0
    assert doc["tiers"]["memory"]["entries"] == 5


def test_stats_table_shows_totals_functions_and_tiers(writer: Writer, cache_dir: Path) -> None:
    result = run_cli("stats", directory=cache_dir)  # the directory from CACHEPLUG_DIR
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"cacheplug stats for {cache_dir}"
    assert lines[1] == f"1 live process: {writer.pid}@{socket.gethostname()}"
    assert lines[2] == (
        "Totals: 7 calls, 4 hits (57.1%), 3 misses, 0 stale, 0 coalesced, 0 errors, 0 invalidations"
    )
    rows = {row[0]: row for row in table(result.stdout)}
    assert rows["__main__.price"][:8] == ["__main__.price", "5", "3", "2", "0", "0", "0", "60.0%"]
    assert re.fullmatch(LATENCY, rows["__main__.price"][9])  # compute p95
    assert rows["__main__.name_of"][:8] == ["__main__.name_of", "2", "1", "1", "0", "0", "0", "50.0%"]
    assert rows["disk"][:3] == ["disk", "0", "5"]
    assert rows["memory"][:3] == ["memory", "4", "5"]


def test_stats_without_publishing_processes_reports_the_disk_tier_alone(
    writer: Writer, cache_dir: Path
) -> None:
    writer.stop()  # its published file ages out with it
    result = run_cli("stats", "--dir", str(cache_dir))
    assert result.returncode == 0, result.stderr
    assert "No live process publishes its stats here" in result.stdout
    assert "the disk tier holds 5 entries" in result.stdout
    assert json.loads(run_cli("stats", "--json", "--dir", str(cache_dir)).stdout)["processes"] == []


# -- keys and inspect ----------------------------------------------------------------------


def test_keys_lists_stored_keys_with_their_user_tags(writer: Writer, cache_dir: Path) -> None:
    result = run_cli("keys", "--json", "--dir", str(cache_dir))
    assert result.returncode == 0, result.stderr
    k = writer.keys
    assert json.loads(result.stdout) == {
        "operation": O_N,
        "directory": str(cache_dir),
        "keys": sorted(
            [
                {"key": k["price1"], "tags": ["price:1"]},
                {"key": k["price2"], "tags": ["price:2"]},
                {"key": k["name7"], "tags": []},
                {"key": "|k:user:1", "tags": ["user:1", "users"]},
                {"key": "|k:long", "tags": ["bulk"]},
            ],
            key=lambda d: str(d["key"]),
        ),
    }
    human = run_cli("keys", "--tag", "users", "--dir", str(cache_dir))
    assert human.returncode == 0, human.stderr
    assert human.stdout.splitlines()[0] == f"# {O_N}"
    assert table(human.stdout) == [["|k:user:1", "user:1, users"]]
    assert human.stdout.splitlines()[-1] == "1 key"
    assert "O(n) admin operation" in run_cli("keys", "--help").stdout


def test_inspect_shows_metadata_and_the_value_of_an_unsigned_entry(writer: Writer, cache_dir: Path) -> None:
    before = time.time()
    result = run_cli("inspect", "user:1", "--json", "--dir", str(cache_dir))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {k: doc[k] for k in ("key", "user_key", "tier", "tags", "signature", "value", "withheld")} == {
        "key": "|k:user:1",
        "user_key": "user:1",
        "tier": "disk",
        "tags": ["user:1", "users"],
        "signature": "unsigned",
        "value": "{'name': 'ada'}",
        "withheld": None,
    }
    assert doc["created"] <= before and doc["expires"] == pytest.approx(doc["created"] + 100, abs=1)
    assert 0 < doc["ttl_left"] <= 100 and doc["size"] > 0 and doc["cost"] == 0.0
    human = run_cli("inspect", writer.keys["price1"], "--dir", str(cache_dir))  # a stored key
    assert human.returncode == 0, human.stderr
    shown = fields(human.stdout)
    assert (shown["key"], shown["user key"]) == (writer.keys["price1"], writer.keys["price1"])
    assert (shown["tier"], shown["tags"], shown["signature"], shown["value"]) == (
        "disk",
        "price:1",
        "unsigned",
        "10",
    )
    assert "ttl left" in shown["expires"] and shown["created"].endswith("ago)")


def test_inspect_truncates_long_values_and_fails_for_a_missing_key(writer: Writer, cache_dir: Path) -> None:
    doc = json.loads(run_cli("inspect", "long", "--json", "--dir", str(cache_dir)).stdout)
    assert len(doc["value"]) == 200 and doc["value"].startswith("'xxxx") and doc["value"].endswith("…")
    assert doc["expires"] is None and doc["ttl_left"] is None
    line = error_line(run_cli("inspect", "nope", "--dir", str(cache_dir)))
    assert line == (
        f"Error: no live entry under 'nope' (stored key '|k:nope') in {cache_dir}; "
        "`cacheplug keys` lists the stored keys"
    )


def test_inspect_shows_a_signed_value_only_once_the_secret_verifies_it(tmp_path: Path) -> None:
    directory = tmp_path / "signed"
    signed = Writer(directory, secret="s3cret")
    try:
        without = json.loads(run_cli("inspect", "user:1", "--json", "--dir", str(directory)).stdout)
        assert (without["signature"], without["value"], without["tags"]) == (
            "not checked",
            None,
            ["user:1", "users"],
        )
        assert (
            without["withheld"] == "the entry is signed; set CACHEPLUG_SECRET to verify it and see the value"
        )
        assert without["metadata_verified"] is False
        shown = fields(run_cli("inspect", "user:1", "--dir", str(directory)).stdout)
        assert shown["tags"] == "user:1, users (unverified)"
        assert shown["value"].startswith("withheld: the entry is signed")
        verified = json.loads(
            run_cli("inspect", "user:1", "--json", "--dir", str(directory), secret="s3cret").stdout
        )
        assert (verified["signature"], verified["value"], verified["metadata_verified"]) == (
            "verified",
            "{'name': 'ada'}",
            True,
        )
        wrong = json.loads(
            run_cli("inspect", "user:1", "--json", "--dir", str(directory), secret="other").stdout
        )
        assert (wrong["signature"], wrong["value"]) == ("invalid", None)
        assert "tampered" in wrong["withheld"]
        assert signed.ask("get user:1") == {"name": "ada"}  # inspecting deleted nothing
    finally:
        signed.stop()


# -- invalidate and clear ------------------------------------------------------------------


def test_invalidate_from_the_cli_is_seen_by_the_writer_process(writer: Writer, cache_dir: Path) -> None:
    assert writer.ask("get user:1") == {"name": "ada"}  # from its memory tier
    result = run_cli(
        "invalidate", "--tag", "users", "--key", writer.keys["price1"], "--yes", "--dir", str(cache_dir)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"invalidated tag 'users', key '{writer.keys['price1']}'\n"
    assert writer.ask("get user:1") is None
    assert writer.ask("price 1") == {"value": 10, "computed": 3}  # computed again
    assert writer.ask("price 2") == {"value": 20, "computed": 3}  # untouched


def test_invalidate_asks_for_confirmation(writer: Writer, cache_dir: Path) -> None:
    refused = run_cli("invalidate", "--key", "user:1", "--dir", str(cache_dir), input="n\n")
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"Invalidate key 'user:1' for every process using {cache_dir}? [y/N]")
    assert "Aborted!" in refused.stderr
    assert writer.ask("get user:1") == {"name": "ada"}
    accepted = run_cli("invalidate", "--key", "user:1", "--dir", str(cache_dir), input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert writer.ask("get user:1") is None
    usage = run_cli("invalidate", "--yes", "--dir", str(cache_dir))
    assert usage.returncode == 2 and "give at least one --tag or --key" in usage.stderr


def test_clear_makes_every_entry_stale_for_every_process(writer: Writer, cache_dir: Path) -> None:
    refused = run_cli("clear", "--dir", str(cache_dir), input="\n")
    assert refused.returncode == 1 and writer.ask("get user:1") == {"name": "ada"}
    result = run_cli("clear", "--dir", str(cache_dir), input="y\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("cleared namespace ''\n")
    assert writer.ask("get user:1") is None
    assert writer.ask("price 2") == {"value": 20, "computed": 3}


def test_invalidate_fails_closed_when_it_cannot_be_recorded(writer: Writer, cache_dir: Path) -> None:
    writer.stop()
    versions = cache_dir / "versions"
    os.rename(versions, cache_dir / "versions.aside")
    versions.write_text("not a folder")
    line = error_line(run_cli("invalidate", "--tag", "users", "--yes", "--dir", str(cache_dir)))
    assert line.startswith(f"Error: cannot record invalidations in {cache_dir}: ")


def test_a_directory_others_can_write_to_shows_no_unsigned_value_and_is_refused(
    writer: Writer, cache_dir: Path
) -> None:
    os.chmod(cache_dir, 0o777)
    doc = json.loads(run_cli("inspect", "user:1", "--json", "--dir", str(cache_dir)).stdout)
    assert (doc["signature"], doc["value"], doc["tags"]) == ("unsigned", None, ["user:1", "users"])
    assert doc["withheld"].startswith("unsigned entries are trusted only in a private directory: ")
    line = error_line(run_cli("clear", "--yes", "--dir", str(cache_dir)))
    assert "refusing the disk tier directory" in line and "group- or world-writable" in line


# -- errors --------------------------------------------------------------------------------

READ_COMMANDS = [["stats"], ["stats", "--json"], ["keys"], ["inspect", "k"], ["top", "--once"], ["report"]]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c))
def test_read_commands_explain_a_missing_directory_and_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "missing"
    line = error_line(run_cli(*command, "--dir", str(missing)))
    assert line == (
        f"Error: no cache directory at {missing}; "
        "give the directory your processes use with --dir or CACHEPLUG_DIR"
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    "command",
    [*READ_COMMANDS, ["invalidate", "--tag", "t", "--yes"], ["clear", "--yes"]],
    ids=lambda c: " ".join(c),
)
def test_commands_explain_unusable_directories(tmp_path: Path, command: list[str]) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert "is not a directory" in error_line(run_cli(*command, "--dir", str(a_file)))
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0)
    try:
        assert "cannot read the cache directory" in error_line(run_cli(*command, "--dir", str(closed)))
    finally:
        os.chmod(closed, 0o700)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no disk tier" in error_line(run_cli(*command, "--dir", str(empty)))


@pytest.mark.parametrize("command", READ_COMMANDS[:4], ids=lambda c: " ".join(c))
def test_read_commands_explain_a_corrupt_database_and_leave_it_alone(
    tmp_path: Path, command: list[str]
) -> None:
    directory = tmp_path / "corrupt"
    (directory / "entries").mkdir(parents=True, mode=0o700)
    db = directory / "entries" / "cache.db"
    db.write_bytes(b"this is not a database" * 100)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    line = error_line(run_cli(*command, "--dir", str(directory)))
    assert line.startswith(f"Error: the disk tier's database {db} is corrupt")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in directory.iterdir()) == ["entries"]


# -- top -----------------------------------------------------------------------------------


def test_top_once_prints_one_frame(writer: Writer, cache_dir: Path) -> None:
    result = run_cli("top", "--once", "--dir", str(cache_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"cacheplug top  {cache_dir}  1 process  ")
    rows = {row[0]: row for row in table(result.stdout)}
    assert rows["__main__.price"][:4] == ["__main__.price", "5", "-", "60.0%"]  # one snapshot: no rate yet


def _pty_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def test_top_in_a_terminal_refreshes_and_quits_on_q(writer: Writer, cache_dir: Path) -> None:
    # A second snapshot, 70 calls of price(1) after the first: memory hits, 1 in 64 timed.
    assert writer.ask("more 70") == 2
    master, slave = pty.openpty()
    _pty_size(slave, 30, 120)
    env = _env(None)
    env.pop("COLUMNS")
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(
        [sys.executable, "-m", "cacheplug", "top", "--interval", "0.2", "--dir", str(cache_dir)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    screen = pyte.Screen(120, 30)
    stream = pyte.ByteStream(screen)

    def read_until(done: Any, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                try:
                    stream.feed(os.read(master, 65536))
                except OSError:  # the child closed the terminal
                    return bool(done())
            if done():
                return True
        return False

    def row(name: str) -> list[str] | None:
        for line in screen.display:
            cells = [c.strip() for c in line.strip().strip("│").split("│")]
            if cells and cells[0] == name:
                return cells
        return None

    try:
        assert read_until(lambda: row("__main__.price") is not None, WAIT), "\n".join(screen.display)
        price = row("__main__.price")
        assert price is not None
        assert price[1:2] == ["70"]  # calls in the last interval
        assert re.fullmatch(r"\d+\.\d", price[2])  # calls per second
        assert price[3] == "100.0%"
        assert re.fullmatch(LATENCY, price[4])  # hit p95
        assert any(line.startswith(f"cacheplug top  {cache_dir}  1 process") for line in screen.display)
        os.write(master, b"q")
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=WAIT)
        os.close(master)


def test_top_exits_cleanly_on_ctrl_c(writer: Writer, cache_dir: Path) -> None:
    master, slave = pty.openpty()
    _pty_size(slave, 30, 120)
    process = subprocess.Popen(
        [sys.executable, "-m", "cacheplug", "top", "--interval", "0.2", "--dir", str(cache_dir)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_env(None),
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + WAIT
        while b"__main__.price" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                seen += os.read(master, 65536)
        assert b"__main__.price" in seen
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=WAIT)
        os.close(master)


# -- report --------------------------------------------------------------------------------


def test_report_as_text_json_and_html(writer: Writer, cache_dir: Path, tmp_path: Path) -> None:
    text = run_cli("report", "--dir", str(cache_dir))
    assert text.returncode == 0, text.stderr
    assert "__main__.price" in text.stdout
    as_json = run_cli("report", "--json", "--dir", str(cache_dir))
    assert as_json.returncode == 0, as_json.stderr
    assert isinstance(json.loads(as_json.stdout), dict)
    page = tmp_path / "out.html"
    html = run_cli("report", "--html", str(page), "--dir", str(cache_dir))
    assert html.returncode == 0, html.stderr
    assert html.stdout == f"wrote {page}\n"
    assert "__main__.price" in page.read_text()


def test_report_without_publishing_processes_says_what_to_do(writer: Writer, cache_dir: Path) -> None:
    writer.stop()
    assert "no live process publishes its stats" in error_line(run_cli("report", "--dir", str(cache_dir)))


def test_python_dash_m_and_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("cacheplug, version ")


class _Evil:
    """A value whose unpickling would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _RawCodec:
    """A signed-looking codec that stores prepared bytes: a forged entry with a bad MAC."""

    signed = True

    def __init__(self, data: bytes) -> None:
        self.data = data

    def dumps(self, entry: Any, key: str) -> bytes:
        return self.data

    def loads(self, data: bytes, key: str) -> Any:
        raise AssertionError("never read back here")


def test_inspect_and_keys_run_nothing_from_a_forged_signed_entry(tmp_path: Path) -> None:
    """Metadata of an unverified entry is read without importing anything from its pickle."""
    marker = tmp_path / "ran"
    payload = pickle.dumps((_Evil(marker), 1.0, None, 0, ("forged", "\x00ns:"), 0, ""), protocol=5)
    directory = tmp_path / "forged"
    tier = DiskTier(directory, codec=_RawCodec(b"CP\x02s" + b"\x01" * 8 + b"\x00" * 32 + payload))
    tier.set("|k:evil", Entry(None, 1.0, None, 0))
    tier.close()
    for secret in (None, "some-secret"):
        doc = json.loads(run_cli("inspect", "evil", "--json", "--dir", str(directory), secret=secret).stdout)
        assert (doc["tags"], doc["value"], doc["created"]) == (["forged"], None, 1.0)
        assert doc["signature"] == ("not checked" if secret is None else "invalid")
    keys = json.loads(run_cli("keys", "--json", "--dir", str(directory)).stdout)["keys"]
    assert keys == [{"key": "|k:evil", "tags": ["forged"]}]
    assert not marker.exists()
