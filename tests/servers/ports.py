"""What the test server harnesses share: loopback ports (a free one, waiting for one to
accept) and their base classes (a harness is a context manager; a loopback server also
names its host and running port)."""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

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
