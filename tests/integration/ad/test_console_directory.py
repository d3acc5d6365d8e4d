"""The console's **Active directory** page connects a real Samba AD DC (LDAPS, verified
with the DC's own CA): **Connect to your Active Directory** binds once and stores the
settings (one ConnectDirectory event, source console), the page shows the connection
without the password, and **Disconnect** (after its confirmation) returns the account to
console management."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from tests.builders import claim
from tests.conftest import FakeClock, make_settings
from tests.functional.console.conftest import Console, events
from tests.integration.ad.conftest import Seed
from tests.servers.samba_dc import SambaDC

SETUP = Actor(type="Test", principal_id="test", name="test")


@pytest.fixture
def console(sqlite_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Console]:
    svc: Services = build_services(make_settings(tmp_path, sqlite_url), clock=clock)
    client: FlaskClient = create_app(svc.settings, svc).test_client()
    yield Console(svc, client, clock)
    svc.db.dispose()


def test_connect_show_and_disconnect_a_real_directory(console: Console, dc: SambaDC,
                                                      seed: Seed) -> None:
    svc = console.services
    account = svc.engine.create_account(SETUP, "Example Corp")
    claim(svc.engine, SETUP, account.id, "example.com")
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/directory"
    connected = console.form(base, {
        "ldap_url": dc.ldaps_url, "base_dn": seed.staff, "bind_dn": dc.admin_dn,
        "bind_password": dc.admin_password, "ca_certificate": dc.ca_cert_path.read_text(),
        "tls_server_name": dc.tls_server_name, "group_base_dn": seed.groups_ou},
        page=base + "?connect=1")
    assert connected.status_code == 302, connected.text  # type: ignore[attr-defined]
    assert svc.engine.get_account(account.id).directory_kind == "active_directory"
    page = console.client.get(base)
    assert seed.staff in page.text and dc.admin_dn in page.text
    assert "Stored (never shown)" in page.text and dc.admin_password not in page.text
    [event] = [e for e in events(svc, "ConnectDirectory")
               if e["userIdentity"]["principalId"] != "test"]  # type: ignore[index]
    assert event["errorCode"] is None
    assert event["userIdentity"]["source"] == "console"  # type: ignore[index]
    assert dc.admin_password not in json.dumps(events(svc), default=str)

    confirm = console.client.get(base + "?disconnect=1")
    assert "returns to console management" in confirm.text
    gone = console.form(base + "/disconnect", {}, page=base + "?disconnect=1")
    assert gone.status_code == 302  # type: ignore[attr-defined]
    assert svc.engine.get_account(account.id).directory_kind is None
    assert svc.engine.ad_directories.get(account.id) is None
    [event] = events(svc, "DisconnectDirectory")
    assert event["errorCode"] is None
