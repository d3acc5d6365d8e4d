"""What the test server harnesses share: loopback ports (a free one, waiting for one to
accept) and their base classes (a harness is a context manager; a loopback server also
names its host and running port)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, Self

LOOPBACK = "127.0.0.1"


# Fewer ports than this outside the ephemeral range (a machine tuned to e.g. "1024 65535"):
# free_port asks the kernel instead, as it did before the range was used.
_MIN_PORTS = 1_000


def outside_ephemeral_range(low: int, high: int) -> range | None:
    """Ports outside the ephemeral range ``low``-``high`` (the kernel's, 32768-60999 by
    default): an outgoing connection's source port (a client of Postgres, Chromium's own
    sockets...) or another ``bind(port 0)`` then never takes a port between the moment it
    is chosen and the moment its server binds it. The larger side, at most 12,000 ports
    below ``low``, never a privileged port; None when neither side has ``_MIN_PORTS``."""
    below = range(max(1_024, low - 12_000), max(1_024, low))
    above = range(max(1_024, high + 1), 65_536)
    best = below if len(below) >= len(above) else above
    return best if len(best) >= _MIN_PORTS else None


def _kernel_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):  # not Linux: the Linux default (macOS's is above it)
        return 32_768, 60_999
    return low, high


_PORT_RANGE = outside_ephemeral_range(*_kernel_range())
_handed_out: set[int] = set()
_random = random.Random()


def _bindable(port: int) -> int | None:
    """``port`` (0: one the kernel picks) bound and released on 127.0.0.1, else None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return None
        bound: int = sock.getsockname()[1]
        return bound


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago and that this process has
    not been given before, outside the kernel's ephemeral range where it leaves room
    (:func:`outside_ephemeral_range`; else one the kernel picks).

    Two harnesses that each choose a port before either starts (two OpenID Providers of
    one fixture) can therefore not be given the same one. Another process may still bind
    the port before the caller does: callers that can retry on ``EADDRINUSE`` should.
    """
    for _ in range(1000):
        port = _bindable(_random.choice(_PORT_RANGE) if _PORT_RANGE is not None else 0)
        if port is None or port in _handed_out:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE or 'the ephemeral range'} "
                       "after 1000 tries")


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


def listening_sockets(host: str, port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``host:port`` (IPv4, this network
    namespace; Linux's ``/proc/net/tcp``)."""
    wanted = f"{int.from_bytes(socket.inet_aton(host), sys.byteorder):08X}:{port:04X}"
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(fields[9])
    return inodes


def _holds_one_of(pid: int, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in wanted:
                return True
        except OSError:
            continue
    return False


def stop_process_group(proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """End the process group that ``proc`` leads (started with ``start_new_session``):
    SIGTERM, then SIGKILL after ``timeout`` seconds; returns once ``proc`` has exited."""
    with contextlib.suppress(ProcessLookupError):  # the group may be gone already
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class ExitedBeforeListening(RuntimeError):
    """The server process ended before it listened on its port; ``taken``: another
    process listens there (the port was taken after it was chosen)."""

    def __init__(self, message: str, *, taken: bool) -> None:
        super().__init__(message)
        self.taken = taken


def wait_for_own_listener(proc: subprocess.Popen[Any], host: str, port: int,
                          timeout: float = 30.0) -> None:
    """Block until the process ``proc`` itself listens on ``host:port`` (and accepts a
    connection there): unlike :func:`wait_for_port`, a port taken by another process after
    it was chosen is not mistaken for this server.

    Raises:
        ExitedBeforeListening: if ``proc`` ended first.
        RuntimeError: if it did not listen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        code = proc.poll()
        if code is not None:
            taken = bool(listening_sockets(host, port))
            raise ExitedBeforeListening(
                f"the server process exited with {code} before listening on {host}:{port}"
                + (" (another process listens there)" if taken else ""), taken=taken)
        if _holds_one_of(proc.pid, listening_sockets(host, port)):
            wait_for_port(host, port, timeout=max(deadline - time.monotonic(), 0.1))
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"the server process did not listen on {host}:{port} "
                               f"within {timeout:.1f}s")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.2)


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
