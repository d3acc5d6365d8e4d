"""Loopback port helpers shared by the test server harnesses."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is found by binding ``127.0.0.1:0`` and closing the socket again, so
    another process may take it before the caller binds it: callers that can
    retry on ``EADDRINUSE`` should do so.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until a TCP connection to ``host:port`` succeeds.

    Polls with a short exponential backoff (10 ms doubling up to 200 ms) and
    never sleeps past the deadline.

    Raises:
        RuntimeError: if no connection succeeded within ``timeout`` seconds; the
            message names the address and the last connection error.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    last_error: OSError | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with socket.create_connection((host, port), timeout=min(remaining, 1.0)):
                return
        except OSError as exc:
            last_error = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.2)
    raise RuntimeError(
        f"nothing accepted TCP connections on {host}:{port} within {timeout:.1f}s"
        f" (last error: {last_error!r})"
    )
