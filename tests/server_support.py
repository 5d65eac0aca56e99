"""Driving a real server process with client threads, then stopping it by its pid."""

from __future__ import annotations

import signal
import subprocess
import threading


def drive(server: subprocess.Popen[bytes], threads: list[threading.Thread], timeout: float) -> str:
    """Run the client ``threads`` to the end (at most ``timeout`` seconds each), then stop
    ``server`` (SIGTERM, SIGKILL after 20 s) and return what it printed."""
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=timeout)
        assert not any(t.is_alive() for t in threads), f"clients did not finish in {timeout:g} s"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output = server.communicate(timeout=20)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0].decode(errors="replace")
    return output
