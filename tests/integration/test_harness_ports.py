"""The harnesses' ports: the range ``free_port`` draws from on any kernel setting, and
`bridge serve` (``bridge_serve``) never mistaken for another process that took its port."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bridge.store.db import upgrade
from tests.servers import bridge_serve as serve_module
from tests.servers import ports
from tests.servers.bridge_serve import bridge_serve
from tests.servers.ports import (
    LOOPBACK,
    ExitedBeforeListening,
    free_port,
    listening_sockets,
    outside_ephemeral_range,
    wait_for_own_listener,
)


@pytest.mark.parametrize(("low", "high", "expected"), [
    (32_768, 60_999, range(20_768, 32_768)),  # Linux's default: 12,000 ports below
    (49_152, 65_535, range(37_152, 49_152)),  # the IANA range (macOS, Windows)
    (10_000, 65_535, range(1_024, 10_000)),   # never a privileged port
    (2_000, 60_000, range(60_001, 65_536)),   # the larger side
    (1_024, 65_535, None),                    # a machine tuned for many connections
    (1_024, 65_000, None),                    # 535 ports left: too few to draw from
])
def test_the_range_outside_the_ephemeral_one(low: int, high: int,
                                             expected: range | None) -> None:
    assert outside_ephemeral_range(low, high) == expected


def test_without_room_outside_it_free_port_asks_the_kernel(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_PORT_RANGE", None)
    given = [free_port() for _ in range(20)]
    assert len(set(given)) == len(given)
    for port in given:  # each bindable a moment ago
        with socket.socket() as sock:
            sock.bind((LOOPBACK, port))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Another process's server, as far as `bridge serve` can tell: a socket listening on a
    port free_port handed out."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, free_port()))
        sock.listen()
        yield sock


@pytest.fixture
def data(tmp_path: Path) -> Path:
    upgrade(f"sqlite:///{tmp_path / 'data' / 'bridge.db'}")
    return tmp_path / "data"


def test_the_listening_sockets_of_a_port(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert len(listening_sockets(LOOPBACK, port)) == 1
    listener.close()
    assert listening_sockets(LOOPBACK, port) == set()


def test_a_port_another_process_listens_on_is_not_its_servers(
        listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    # A process that would listen there but cannot (it exits with EADDRINUSE).
    proc = subprocess.Popen([sys.executable, "-c", (
        f"import socket; socket.socket().bind(('{LOOPBACK}', {port}))")],
        stderr=subprocess.DEVNULL)
    with pytest.raises(ExitedBeforeListening, match="another process listens") as raised:
        wait_for_own_listener(proc, LOOPBACK, port, timeout=10)
    assert raised.value.taken


def test_bridge_serve_on_a_given_port_taken_fails_instead_of_yielding_the_other_server(
        data: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with pytest.raises(ExitedBeforeListening) as raised, bridge_serve(data, port=port):
        pytest.fail("bridge_serve yielded a port another process listens on")
    assert raised.value.taken


def test_bridge_serve_replaces_a_port_it_chose_that_was_taken(
        data: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = listener.getsockname()[1]
    chosen = iter([taken])
    monkeypatch.setattr(serve_module, "free_port", lambda: next(chosen, None) or free_port())
    with bridge_serve(data) as port:
        assert port != taken
        assert requests.get(f"http://{LOOPBACK}:{port}/healthz", timeout=10).ok
