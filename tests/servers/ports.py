"""What the test server harnesses share: loopback ports (a free one, waiting for one to
accept) and their base classes (a harness is a context manager; a loopback server also
names its host and running port)."""

from __future__ import annotations

import random
import socket
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"




def _outside_ephemeral_range() -> range:
    """Ports outside the kernel's ephemeral range (32768-60999 by default): an outgoing
    connection's source port (a client of Postgres, Chromium's own sockets...) then never
    takes a port between the moment it is chosen and the moment its server binds it."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32_768, 60_999
    below = range(max(1_024, low - 12_000), low)
    above = range(high + 1, 65_536)
    return below if len(below) >= len(above) else above


_PORT_RANGE = _outside_ephemeral_range()
_handed_out: set[int] = set()
_random = random.Random()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago and that this process has
    not been given before.

    Two harnesses that each choose a port before either starts (two OpenID Providers of
    one fixture) can therefore not be given the same one. Another process may still bind
    the port before the caller does: callers that can retry on ``EADDRINUSE`` should.
    """
    for _ in range(1000):
        port = _random.choice(_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE} after 1000 tries")


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


class Harness(ABC):
    """A test server that ``with`` starts and stops: subclasses define ``start`` (returning
    the harness) and ``stop`` (idempotent, safe after a failed ``start``)."""

    @abstractmethod
    def start(self) -> Self:
        """Start the server; return the harness."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the server (idempotent, safe after a failed ``start``)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class LoopbackServer(Harness):
    """A harness listening on 127.0.0.1 on a port chosen when it starts: subclasses say
    which port they run on (``_running_port``, None when not running)."""

    @abstractmethod
    def _running_port(self) -> int | None:
        """The port while running, else None."""

    @property
    def host(self) -> str:
        """The address the server listens on: always ``127.0.0.1``."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The port the server listens on; raises ``RuntimeError`` if not running."""
        port = self._running_port()
        if port is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return port
