"""Behind reverse proxies (``BRIDGE_TRUSTED_PROXY_COUNT``): the client address that rate
limits and the audit trail see is the one the trusted proxies forwarded, never one a client
wrote itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge import audit
from bridge.app import build_services, create_app
from bridge.store.db import transaction
from tests.conftest import FakeClock, make_settings


def _client(tmp_path: Path, sqlite_url: str, clock: FakeClock,
            proxies: int) -> Iterator[tuple[FlaskClient, object]]:
    settings = make_settings(tmp_path, sqlite_url, trusted_proxy_count=proxies,
                             ad_sign_in_max_failures_per_address=2,
                             ad_sign_in_max_failures_per_user=100)
    services = build_services(settings, clock=clock)
    yield create_app(settings, services).test_client(), services
    services.db.dispose()


def _fail(client: FlaskClient, user: str, forwarded: str | None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    # An address on an unclaimed domain: refused at once (401) and counted as a failure.
    return client.post("/auth/ad/login", json={"email": f"{user}@unclaimed.test",
                                                "password": "nope"},
                       headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code


def _source_ips(services: object) -> list[str | None]:
    with transaction(services.sessions) as session:  # type: ignore[attr-defined]
        events, _ = audit.lookup(session, audit.EventQuery(event_name="SignIn"))
    return [e["sourceIPAddress"] for e in events]


@pytest.fixture
def behind_one_proxy(tmp_path: Path, sqlite_url: str,
                     clock: FakeClock) -> Iterator[tuple[FlaskClient, object]]:
    yield from _client(tmp_path, sqlite_url, clock, proxies=1)


@pytest.fixture
def direct(tmp_path: Path, sqlite_url: str,
           clock: FakeClock) -> Iterator[tuple[FlaskClient, object]]:
    yield from _client(tmp_path, sqlite_url, clock, proxies=0)


def test_behind_a_proxy_each_forwarded_client_is_limited_on_its_own(
        behind_one_proxy: tuple[FlaskClient, object]) -> None:
    client, services = behind_one_proxy
    # The proxy appends the peer it saw; what a client wrote before it is not trusted.
    assert [_fail(client, f"u{i}", "198.51.100.9, 203.0.113.7") for i in range(3)] == [
        401, 401, 429]
    assert _fail(client, "u9", "203.0.113.8") == 401  # another client: its own count
    assert set(_source_ips(services)) == {"203.0.113.7", "203.0.113.8"}


def test_without_trusted_proxies_forwarded_headers_are_ignored(
        direct: tuple[FlaskClient, object]) -> None:
    client, services = direct
    statuses = [_fail(client, f"u{i}", f"203.0.113.{i}") for i in range(3)]
    assert statuses == [401, 401, 429]  # one client, 127.0.0.1, whatever it claims
    assert set(_source_ips(services)) == {"127.0.0.1"}


def test_the_setting_is_bounded() -> None:
    from config import SettingsError, load_settings

    with pytest.raises(SettingsError, match="BRIDGE_TRUSTED_PROXY_COUNT"):
        load_settings(env={"BRIDGE_TRUSTED_PROXY_COUNT": "-1"})
