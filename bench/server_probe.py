"""Probe: how a candidate HTTP server treats hostile or unusual clients, before it may serve
the bridge (issue 12, part 3: granian against waitress, `bridge serve`'s default).

Each check runs against a fresh server (:class:`bench.scim.Server`, SQLite, loopback):

- ``big-body``: one client declares and sends a 64 MiB body to ``POST /scim/v2/Users``
  (the application refuses anything over ``BRIDGE_MAX_BODY_BYTES``, 1 MiB). Reported: the
  status, how many bytes the server took before answering, and the growth of the server
  processes' peak memory (VmHWM) — a server that buffers the whole body before the
  application sees it holds it all in memory.
- ``trickle``: 64 connections trickle a request a byte every 0.5 s (half the headers, half
  the body of a request with a valid key, so that the application reads it; as
  ``tests/functional/test_slow_clients.py``); ``/healthz`` and a SCIM GET from another
  client must still answer within 5 s. ``trickle-form``: the same, the body tricklers
  posting the AD sign-in form without any key.
- ``headers``: a request with 1 MiB of headers: the status (or a closed connection).
- ``idle`` / ``idle900``: 1,100 / 900 idle connections held open (waitress's limit is
  1,000 open connections, more wait in the listen backlog); does ``/healthz`` from a new
  client still answer.
- ``sigterm``: a request whose body is still arriving when SIGTERM is sent (the rest comes
  1 s later): its answer, and how long the process takes to exit.

Run: ``.venv/bin/python -m bench.server_probe [--servers waitress,granian1]
[--checks big-body,trickle,headers,idle,sigterm]``. Not a test: the findings go to
docs/performance.md; a server is only shipped with tests of its own.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.scim import Server, setup
from tests.servers.ports import LOOPBACK

CHECKS = ("big-body", "trickle", "trickle-form", "headers", "idle", "idle900", "sigterm")
ANSWER_TIMEOUT = 5.0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (granian runs its workers as child processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return found


def _peak_kib(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=ANSWER_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, round(time.monotonic() - started, 3)
    except OSError as exc:
        return -1, round(time.monotonic() - started, 3) if str(exc) else -1.0
    finally:
        conn.close()


def _read_status(sock: socket.socket) -> str:
    try:
        data = sock.recv(200)
    except OSError as exc:
        return f"error {type(exc).__name__}"
    return data.split(b"\r\n", 1)[0].decode(errors="replace") if data else "closed"


def big_body(server: Server, key: str) -> str:
    before = _peak_kib(server.proc.pid)
    size = 64 * 1024 * 1024
    sent = 0
    with socket.create_connection((LOOPBACK, server.port), timeout=30) as sock:
        sock.sendall((f"POST /scim/v2/Users HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
                      f"Authorization: Bearer {key}\r\n"
                      "Content-Type: application/scim+json\r\n"
                      f"Content-Length: {size}\r\n\r\n").encode())
        chunk = b"{" * 65536
        sock.settimeout(2)
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server stopped reading (it answered, or closed)
        sock.settimeout(30)
        status = _read_status(sock)
    grown = (_peak_kib(server.proc.pid) - before) // 1024
    return f"{status!r} after {sent // (1024 * 1024)} MiB sent; peak memory +{grown} MiB"


def trickle_form(server: Server, key: str) -> str:
    """``trickle`` with the body tricklers posting the AD sign-in form with no key at all
    (a form the application reads before anything else decides)."""
    return trickle(server, key, form=True)


def trickle(server: Server, key: str, form: bool = False) -> str:
    deadline = time.monotonic() + 12
    started = threading.Semaphore(0)
    cut = []

    def slow(body: bool) -> None:
        # The body tricklers send the account's key: the application then reads the body.
        head = (f"POST /scim/v2/Users HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
                + (f"Authorization: Bearer {key}\r\n" if body else "")
                + "Content-Type: application/scim+json\r\n")
        if body and form:
            head = (f"POST /auth/ad/login HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n")
        with socket.create_connection((LOOPBACK, server.port), timeout=ANSWER_TIMEOUT) as s:
            data = ((head + "Content-Length: 100000\r\n\r\n").encode() + b"{" * 100_000
                    if body else (head + "X-Padding: " + "p" * 1000).encode())
            i = len(head) + 30 if body else 0
            if body:
                s.sendall(data[:i])
            first = True
            while time.monotonic() < deadline and i < len(data):
                try:
                    s.sendall(data[i:i + 1])
                except OSError:
                    cut.append(1)
                    return
                i += 1
                if first:
                    started.release()
                    first = False
                time.sleep(0.5)  # the trickle itself: one byte per half second

    threads = [threading.Thread(target=slow, args=(n % 2 == 1,), daemon=True)
               for n in range(64)]
    # (64: eight times the worker threads of either server.)
    for t in threads:
        t.start()
    for _ in threads:
        started.acquire(timeout=ANSWER_TIMEOUT)
    answers = [_get(server.port, "/healthz"),
               _get(server.port, "/scim/v2/Users?count=1", {"Authorization": f"Bearer {key}"}),
               _get(server.port, "/healthz")]
    for t in threads:
        t.join(timeout=20)
    return f"answers (status, s) {answers}; slow clients cut off: {len(cut)}"


def headers(server: Server, _key: str) -> str:
    with socket.create_connection((LOOPBACK, server.port), timeout=10) as sock:
        try:
            sock.sendall((f"GET /healthz HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
                          + "".join(f"X-H{i}: {'h' * 1000}\r\n" for i in range(1024))
                          + "\r\n").encode())
        except OSError as exc:
            return f"send failed: {type(exc).__name__}"
        return repr(_read_status(sock))


def idle(server: Server, _key: str, idle_count: int = 1100) -> str:
    held = []
    try:
        for _ in range(idle_count):
            s = socket.create_connection((LOOPBACK, server.port), timeout=5)
            held.append(s)
        return f"with {len(held)} idle connections open: /healthz {_get(server.port, '/healthz')}"
    except OSError as exc:
        return f"opening connections failed after {len(held)}: {exc}"
    finally:
        for s in held:
            s.close()


def sigterm(server: Server, key: str) -> str:
    body = b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],' \
           b'"userName":"late@probe.example"}'
    with socket.create_connection((LOOPBACK, server.port), timeout=15) as sock:
        sock.sendall((f"POST /scim/v2/Users HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
                      f"Authorization: Bearer {key}\r\n"
                      "Content-Type: application/scim+json\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:10])
        # The server cannot tell us it has parsed the headers (that is the state under
        # test): give it a moment, as a slow client's next segment would.
        time.sleep(0.3)
        stopped = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGTERM)
        _wait_not_listening(server.port, timeout=10)  # the stop has begun
        try:
            sock.sendall(body[10:])
        except OSError as exc:
            return f"rest of the body refused: {type(exc).__name__}"
        status = _read_status(sock)
    try:
        server.proc.wait(timeout=30)
        exited = f"exited {time.monotonic() - stopped:.1f} s after SIGTERM"
    except Exception:
        exited = "still running 30 s after SIGTERM"
    return f"in-flight request answered {status!r}; {exited}"


def _wait_not_listening(port: int, timeout: float) -> None:
    """Until a new connection to ``port`` is refused (the server closed its listener)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.2).close()
        except OSError:
            return
        time.sleep(0.05)


PROBES: dict[str, Callable[[Server, str], str]] = {
    "big-body": big_body, "trickle": trickle, "headers": headers, "idle": idle,
    "idle900": lambda server, key: idle(server, key, 900), "trickle-form": trickle_form,
    "sigterm": sigterm}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="waitress,granian1")
    parser.add_argument("--checks", default=",".join(CHECKS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="server-probe-") as tmp:
        data = Path(tmp)
        url = f"sqlite:///{data / 'bridge.db'}"
        key, _account, _ids = setup(url, data, 10)
        for name in args.servers.split(","):
            for check in args.checks.split(","):
                server = Server(url, data, 2, name)
                try:
                    print(f"{name:10} {check:9} {PROBES[check](server, key)}", flush=True)
                finally:
                    if server.proc.poll() is None:
                        server.stop()


if __name__ == "__main__":
    main()
