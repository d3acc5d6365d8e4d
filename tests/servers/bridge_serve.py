"""`bridge serve` as a real process on a free 127.0.0.1 port, for tests of the server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tests.servers.ports import (
    LOOPBACK,
    ExitedBeforeListening,
    free_port,
    stop_process_group,
    wait_for_own_listener,
)


class ServeLog:
    """The serving process's log, line by line as it is written (a reader thread follows
    its output), so a test waits for the line the code under test logs when something
    happened — as the SMTP server's ``wait_for_message_to`` waits for a mail — instead of
    polling an API with sleeps."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._condition = threading.Condition()

    def follow(self, stream: IO[bytes]) -> threading.Thread:
        """Read ``stream`` to its end in a daemon thread (returned, for joining)."""

        def read() -> None:
            for raw in stream:
                with self._condition:
                    self._lines.append(raw.decode("utf-8", "replace"))
                    self._condition.notify_all()

        thread = threading.Thread(target=read, name="serve-log", daemon=True)
        thread.start()
        return thread

    @property
    def lines(self) -> list[str]:
        with self._condition:
            return list(self._lines)

    def wait_for_line(self, *needles: str, timeout: float = 60.0) -> str:
        """Block until a line holding every one of ``needles`` was logged; return it.

        Raises:
            TimeoutError: if none was within ``timeout`` seconds (the message shows the
                last lines logged).
        """
        return self.wait_for(lambda line: all(n in line for n in needles), timeout=timeout,
                             what=f"a log line with {needles!r}")

    def wait_for(self, matches: Callable[[str], bool], *, timeout: float = 60.0,
                 what: str = "a matching log line") -> str:
        """Block until a logged line ``matches``; return the first such line.

        Raises:
            TimeoutError: if none was within ``timeout`` seconds.
        """

        def found() -> str | None:
            return next((line for line in self._lines if matches(line)), None)

        with self._condition:
            if not self._condition.wait_for(lambda: found() is not None, timeout):
                raise TimeoutError(f"no {what} within {timeout:.1f}s; "
                                   f"last lines: {self._lines[-5:]!r}")
            line = found()
            assert line is not None
            return line


@contextmanager
def bridge_serve(data_dir: Path, *, port: int | None = None, log_file: Path | None = None,
                 log: ServeLog | None = None, **env: str) -> Iterator[int]:
    """Serve the SQLite database of ``data_dir`` (already migrated) with the `make run`
    defaults plus ``env`` (``BRIDGE_*`` variables: ``BRIDGE_DATABASE_URL`` and
    ``BRIDGE_SECRET_KEY`` there serve that database instead); yields the port. Stopped
    (SIGTERM, then SIGKILL after 30 s) on exit.

    ``port``: the port to serve on (when the test must know it first, e.g. for an OpenID
    Provider's redirect URIs); else a free one, replaced (up to twice) if another process
    listens on it before the server could. Yields once the server process itself listens:
    a server that exits first raises :class:`ExitedBeforeListening`. ``log_file``: where
    the server's log goes (standard output and error); ``log``: a :class:`ServeLog` that
    follows it instead; else nowhere."""
    movable = port is None
    for attempt in range(3):
        serving = port or free_port()
        try:
            running = _start(serving, data_dir, log_file, log, env)
            break
        except ExitedBeforeListening as exc:
            # Only a port chosen here may change: the caller's may be named elsewhere.
            if not (movable and exc.taken) or attempt == 2:
                raise
    try:
        yield serving
    finally:
        _stop(*running)


_Running = tuple[subprocess.Popen[bytes], "IO[bytes] | int", "threading.Thread | None"]


def _start(port: int, data_dir: Path, log_file: Path | None, log: ServeLog | None,
           env: dict[str, str]) -> _Running:
    """`bridge serve` on ``port``, returned once that process listens there (stopped again
    if it does not)."""
    full = {**os.environ, "BRIDGE_DATA_DIR": str(data_dir), "BRIDGE_DATABASE_URL": "",
            "BRIDGE_HOST": LOOPBACK, "BRIDGE_PORT": str(port), "BRIDGE_LOG_LEVEL": "WARNING",
            **env}
    for name in ("BRIDGE_WORKERS", "BRIDGE_TRUSTED_PROXY_COUNT", "BRIDGE_CONFIG"):
        if name not in env:
            full.pop(name, None)
    out: IO[bytes] | int = (log_file.open("ab") if log_file is not None
                            else subprocess.PIPE if log is not None else subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve"], env=full,
                            stdout=out, stderr=subprocess.STDOUT if log_file or log else out,
                            start_new_session=True)
    reader = log.follow(proc.stdout) if log is not None and proc.stdout is not None else None
    try:
        # Not wait_for_port: another process that took the port would answer it.
        wait_for_own_listener(proc, LOOPBACK, port, timeout=30)
    except BaseException:
        _stop(proc, out, reader)
        raise
    return proc, out, reader


def _stop(proc: subprocess.Popen[bytes], out: IO[bytes] | int,
          reader: threading.Thread | None) -> None:
    stop_process_group(proc)
    if reader is not None:
        reader.join(timeout=10)  # the pipe ends with the process
    if not isinstance(out, int):
        out.close()
