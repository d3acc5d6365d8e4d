"""`bridge serve` leaves X-Forwarded-For to BRIDGE_TRUSTED_PROXY_COUNT: the server itself
must neither strip nor believe it (waitress strips untrusted proxy headers by default)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from bridge import audit
from bridge.app import build_services
from bridge.store.db import transaction, upgrade
from config import load_settings
from tests.servers.bridge_serve import bridge_serve
from tests.servers.ports import LOOPBACK


def _refused_sign_in(port: int, forwarded: str) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        # An address on an unclaimed domain: 401, audited with the client address.
        conn.request("POST", "/auth/ad/login", body=json.dumps(
            {"email": "x@unclaimed.test", "password": "nope"}),
            headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize(("proxies", "seen"), [("1", "203.0.113.7"), ("0", "127.0.0.1")])
def test_forwarded_address_follows_the_setting(tmp_path: Path, proxies: str,
                                               seen: str) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'bridge.db'}"
    upgrade(url)
    with bridge_serve(data, BRIDGE_TRUSTED_PROXY_COUNT=proxies) as port:
        assert _refused_sign_in(port, "203.0.113.7") == 401
    # The served bridge's own database, read with the key it generated in the data dir.
    services = build_services(load_settings(env={}, overrides={"data_dir": data}))
    try:
        with transaction(services.sessions) as session:
            events, _ = audit.lookup(session, audit.EventQuery(event_name="SignIn"))
    finally:
        services.db.dispose()
    assert [e["sourceIPAddress"] for e in events] == [seen]
