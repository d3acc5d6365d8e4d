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

from ad_sync import client
from ad_sync.locks import directory_lock
from ad_sync.records import SyncRecords
from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from tests.builders import claim
from tests.conftest import FakeClock, make_settings
from tests.functional.console.conftest import Console, csrf_token, events
from tests.integration.ad.conftest import Seed, directory_body
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


def test_a_run_under_way_is_shown_and_a_second_one_refused(console: Console, dc: SambaDC,
                                                           seed: Seed) -> None:
    """While a run is under way (the directory's sync lock held and its report stored as
    ``running``, as every run does: the daemon, the CLI or another request), the page says
    a sync is in progress and offers no Sync now; a post is refused in words (one refused
    SyncDirectory event). A run whose process died (its report still ``running``, the lock
    free) is said not to have finished."""
    svc = console.services
    account = svc.engine.create_account(SETUP, "Example Corp")
    claim(svc.engine, SETUP, account.id, "example.com")
    svc.engine.ad_directories.connect(
        SETUP, account.id, directory_body(dc, seed),
        lambda cfg: client.verify_connection(cfg, allow_insecure=False))
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/directory"
    assert "Sync now" in console.client.get(base).text
    with directory_lock(svc, account.id) as held:
        assert held
        SyncRecords(svc.engine.uow).start_report(
            account.id, run_id="live-run", mode="full", dry_run=False,
            allow_mass_change=False, requested_by=None, now=svc.engine.now())
        page = console.client.get(base).text
        assert "A sync of this directory is in progress" in page and "Sync now" not in page
        token = csrf_token(console.client.get(base + "?connect=1").text)
        refused = console.client.post(base + "/sync", data={"csrf_token": token,
                                                            "dry_run": "0"})
        assert refused.status_code == 302
        assert "under way" in console.client.get(base).text
    [event] = events(svc, "SyncDirectory")
    assert event["errorCode"] == "Conflict"
    assert event["userIdentity"]["source"] == "console"  # type: ignore[index]
    # A run that started and whose process died: the lock is free again.
    SyncRecords(svc.engine.uow).start_report(
        account.id, run_id="dead-run", mode="full", dry_run=False, allow_mass_change=False,
        requested_by="alice", now=svc.engine.now())
    page = console.client.get(base).text
    assert "Did not finish: nothing more is applied until the next sync" in page
    assert "Sync now" in page
