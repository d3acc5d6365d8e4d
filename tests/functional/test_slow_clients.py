"""Slow clients cannot take `bridge serve` down: with 64 connections trickling a request one
byte at a time, `/healthz` and a SCIM GET from another client are still answered.

Against a real `bridge serve` process (the `make run` defaults: SQLite, BRIDGE_WORKERS=2) on
loopback. The trickling clients stop by themselves; every request has a finite timeout.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.app import build_services
from bridge.domain import Actor
from bridge.store.db import upgrade
from config import load_settings
from tests.builders import enterprise
from tests.servers.bridge_serve import bridge_serve
from tests.servers.ports import LOOPBACK

SLOW_CLIENTS = 64
TRICKLE_SECONDS = 15.0  # each slow client gives up after this
BYTE_INTERVAL = 0.5  # seconds between two bytes of a slow client
ANSWER_TIMEOUT = 5.0  # generous: the target is 1 s, a loaded shared machine is slower
ADMIN = Actor(type="Test", principal_id="test", name="test")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """(port, SCIM key) of a `bridge serve` with its defaults, stopped afterwards."""
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'bridge.db'}"
    upgrade(url)
    # The embedded default (its key generated into the data dir), as `make run` serves it.
    services = build_services(load_settings(env={}, overrides={"data_dir": data}))
    account = enterprise(services.engine, ADMIN, ["slow.example"], name="Slow Corp")
    key = services.engine.api_keys.create(ADMIN, account.id, connect=True).key
    services.db.dispose()
    with bridge_serve(data) as port:
        yield port, key


class Trickler(threading.Thread):
    """One slow client: sends a request one byte every BYTE_INTERVAL until its deadline,
    then hangs up. ``body``: trickle the body (the headers arrive at once) instead of the
    headers."""

    def __init__(self, port: int, body: bool, deadline: float,
                 trickling: threading.Semaphore) -> None:
        super().__init__(daemon=True)
        self.port, self.body, self.deadline, self.trickling = port, body, deadline, trickling
        self.sent = 0
        self.cut_off = False  # the server closed the connection while we trickled

    def run(self) -> None:
        head = (f"POST /scim/v2/Users HTTP/1.1\r\nHost: {LOOPBACK}:{self.port}\r\n"
                "Content-Type: application/scim+json\r\n")
        with socket.create_connection((LOOPBACK, self.port), timeout=ANSWER_TIMEOUT) as sock:
            if self.body:
                sock.sendall((head + "Content-Length: 100000\r\n\r\n").encode())
                slow = b"{" * 100_000
            else:
                slow = (head + "X-Padding: " + "p" * 1000).encode()
            while time.monotonic() < self.deadline and self.sent < len(slow):
                try:
                    sock.sendall(slow[self.sent:self.sent + 1])
                except OSError:
                    self.cut_off = True
                    return
                self.sent += 1
                if self.sent == 2:
                    self.trickling.release()  # its request is now arriving byte by byte
                time.sleep(BYTE_INTERVAL)  # the trickle itself: one byte per interval


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=ANSWER_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        conn.close()


def test_trickling_clients_do_not_block_other_requests(served: tuple[int, str]) -> None:
    port, key = served
    deadline = time.monotonic() + TRICKLE_SECONDS
    trickling = threading.Semaphore(0)
    slow = [Trickler(port, i % 2 == 1, deadline, trickling) for i in range(SLOW_CLIENTS)]
    for client in slow:
        client.start()
    for _ in slow:  # every slow request has begun arriving (its second byte is sent)
        assert trickling.acquire(timeout=ANSWER_TIMEOUT)

    scim = {"Authorization": f"Bearer {key}", "Accept": "application/scim+json"}
    answers = []
    for _ in range(3):
        answers.append(("/healthz", *_get(port, "/healthz", {})))
        answers.append(("scim", *_get(port, "/scim/v2/Users?count=1", scim)))
    still_trickling = time.monotonic() < deadline
    for client in slow:
        client.join(timeout=TRICKLE_SECONDS + ANSWER_TIMEOUT)

    assert [status for _, status, _ in answers] == [200] * len(answers), answers
    assert still_trickling, "the slow clients stopped before the other requests were answered"
    assert not any(c.cut_off for c in slow), "the server hung up on a slow client"
    assert all(c.sent > 2 for c in slow)
