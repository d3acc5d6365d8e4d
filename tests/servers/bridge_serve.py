"""`bridge serve` as a real process on a free 127.0.0.1 port, for tests of the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.ports import LOOPBACK, free_port, wait_for_port


@contextmanager
def bridge_serve(data_dir: Path, **env: str) -> Iterator[int]:
    """Serve the SQLite database of ``data_dir`` (already migrated) with the `make run`
    defaults plus ``env`` (``BRIDGE_*`` variables); yields the port. Stopped (SIGTERM, then
    SIGKILL after 30 s) on exit."""
    port = free_port()
    full = {**os.environ, "BRIDGE_DATA_DIR": str(data_dir), "BRIDGE_DATABASE_URL": "",
            "BRIDGE_HOST": LOOPBACK, "BRIDGE_PORT": str(port), "BRIDGE_LOG_LEVEL": "WARNING",
            **env}
    for name in ("BRIDGE_WORKERS", "BRIDGE_TRUSTED_PROXY_COUNT", "BRIDGE_CONFIG"):
        if name not in env:
            full.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve"], env=full,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for_port(LOOPBACK, port, timeout=30)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
