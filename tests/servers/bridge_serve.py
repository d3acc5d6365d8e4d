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
def bridge_serve(data_dir: Path, *, port: int | None = None, log_file: Path | None = None,
                 **env: str) -> Iterator[int]:
    """Serve the SQLite database of ``data_dir`` (already migrated) with the `make run`
    defaults plus ``env`` (``BRIDGE_*`` variables); yields the port. Stopped (SIGTERM, then
    SIGKILL after 30 s) on exit.

    ``port``: the port to serve on (when the test must know it first, e.g. for an OpenID
    Provider's redirect URIs); else a free one. ``log_file``: where the server's log goes
    (standard output and error), else nowhere."""
    port = port or free_port()
    full = {**os.environ, "BRIDGE_DATA_DIR": str(data_dir), "BRIDGE_DATABASE_URL": "",
            "BRIDGE_HOST": LOOPBACK, "BRIDGE_PORT": str(port), "BRIDGE_LOG_LEVEL": "WARNING",
            **env}
    for name in ("BRIDGE_WORKERS", "BRIDGE_TRUSTED_PROXY_COUNT", "BRIDGE_CONFIG"):
        if name not in env:
            full.pop(name, None)
    out = log_file.open("ab") if log_file is not None else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve"], env=full,
                            stdout=out, stderr=subprocess.STDOUT if log_file else out,
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
        if not isinstance(out, int):
            out.close()
