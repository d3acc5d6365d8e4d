"""The directory registry (AuthorizeDirectory, ListDirectories, UnauthorizeDirectory) and
ConnectDirectory by directory id, through the admin API against the real Samba AD DC; and
the sync daemon binding once per registered directory for every account connected to it."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from ad_sync import client
from ad_sync.cli import DaemonState, run_cycle
from bridge import audit
from bridge.app import Services, build_services, create_app
from bridge.domain import Tier
from bridge.store.db import transaction
from tests.admin_client import AdminClient, admin_client
from tests.builders import claim
from tests.conftest import FakeClock, make_settings
from tests.integration.ad.conftest import ADMIN, PASSWORD, Seed
from tests.servers.samba_dc import SambaDC


def registration(dc: SambaDC, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": "Corp DC", "LdapUrl": dc.ldaps_url, "StartTls": False,
        "BindDn": dc.admin_dn, "BindPassword": dc.admin_password,
        "CaCertificatePem": dc.ca_cert_path.read_text(), "TlsServerName": dc.tls_server_name}
    body.update(overrides)
    return body


@pytest.fixture
def registry_app(tmp_path: Path, sqlite_url: str, clock: FakeClock
                 ) -> Iterator[tuple[Flask, Services, str, str]]:
    """An app with two enterprise accounts on different domains (example.com,
    other.example), neither connected yet."""
    services = build_services(make_settings(tmp_path, sqlite_url), clock=clock)
    first = services.engine.create_account(ADMIN, "Staff Corp")
    claim(services.engine, ADMIN, first.id, "example.com")
    second = services.engine.create_account(ADMIN, "Elsewhere Ltd")
    claim(services.engine, ADMIN, second.id, "other.example")
    yield create_app(services.settings, services), services, first.id, second.id
    services.db.dispose()


def _trail(services: Services) -> str:
    out = io.StringIO()
    with transaction(services.sessions) as session:
        audit.export_jsonl(session, out, None)
    return out.getvalue()


def _authorize(admin: AdminClient, dc: SambaDC) -> str:
    done = admin.post("/directories", json=registration(dc))
    assert done.status_code == 201, done.get_json()
    directory_id: str = done.get_json()["Directory"]["DirectoryId"]
    return directory_id


def test_authorize_connect_two_accounts_and_unauthorize(
        registry_app: tuple[Flask, Services, str, str], dc: SambaDC, seed: Seed) -> None:
    app, services, first, second = registry_app
    admin = admin_client(app, "FullAccess")

    # The bind check runs before anything is stored.
    refused = admin.post("/directories", json=registration(dc, BindPassword="Wrong-Pw-1"))
    assert refused.status_code == 400
    assert "invalid credentials" in refused.get_json()["Message"]
    assert admin.get("/directories").get_json() == {"Directories": []}

    done = admin.post("/directories", json=registration(dc))
    assert done.status_code == 201, done.get_json()
    registered = done.get_json()["Directory"]
    directory_id = registered["DirectoryId"]
    assert directory_id.startswith("d-") and len(directory_id) == 12
    assert registered["DefaultNamingContext"] == dc.base_dn
    assert registered["Health"]["Status"] == "Healthy"
    assert "BindPassword" not in registered and dc.admin_password not in done.get_data(
        as_text=True)
    # The same directory and service account twice: refused, naming the first.
    again = admin.post("/directories", json=registration(dc, Name="Again"))
    assert again.status_code == 409 and directory_id in again.get_json()["Message"]

    # Two accounts connect to it by id, each with its own BaseDn.
    for account_id, base in ((first, seed.staff), (second, seed.elsewhere)):
        connected = admin.put(f"/accounts/{account_id}/directory", json={
            "DirectoryId": directory_id, "BaseDn": base, "GroupBaseDn": seed.groups_ou})
        assert connected.status_code == 200, connected.get_json()
        view = connected.get_json()["Directory"]
        assert view["DirectoryId"] == directory_id and view["BaseDn"] == base
        assert view["LdapUrl"] == dc.ldaps_url and view["HasCaCertificate"] is True
    listed = admin.get("/directories").get_json()["Directories"]
    assert [d["ConnectedAccountIds"] for d in listed] == [sorted([first, second])]
    assert dc.admin_password not in json.dumps(listed)
    account = admin.get(f"/accounts/{first}").get_json()["Account"]
    assert account["AccountType"] == "EnterpriseDirectory"

    # Unauthorize is refused while an account is connected, naming them.
    busy = admin.delete(f"/directories/{directory_id}")
    assert busy.status_code == 409
    message = busy.get_json()["Message"]
    assert "Staff Corp" in message and first in message and second in message
    assert admin.delete(f"/accounts/{first}/directory").status_code == 204
    busy = admin.delete(f"/directories/{directory_id}")
    assert busy.status_code == 409 and first not in busy.get_json()["Message"]
    assert admin.delete(f"/accounts/{second}/directory").status_code == 204
    assert admin.delete(f"/directories/{directory_id}").status_code == 204
    assert admin.get("/directories").get_json() == {"Directories": []}
    assert admin.delete("/directories/d-ffffffffff").status_code == 404

    trail = _trail(services)
    for name in ("AuthorizeDirectory", "ConnectDirectory", "UnauthorizeDirectory"):
        assert f'"eventName": "{name}"' in trail or f'"eventName":"{name}"' in trail
    assert dc.admin_password not in trail and "Wrong-Pw-1" not in trail


def test_connect_by_id_refusals(registry_app: tuple[Flask, Services, str, str],
                                dc: SambaDC, seed: Seed) -> None:
    app, _services, first, _second = registry_app
    admin = admin_client(app, "FullAccess")
    directory_id = _authorize(admin, dc)
    path = f"/accounts/{first}/directory"
    # Unknown id; inline settings with an id; a BaseDn the directory does not have.
    assert admin.put(path, json={"DirectoryId": "d-0000000000",
                                 "BaseDn": seed.staff}).status_code == 404
    both = admin.put(path, json={"DirectoryId": directory_id, "BaseDn": seed.staff,
                                 "BindPassword": "x"})
    assert both.status_code == 400 and "not both" in both.get_json()["Message"]
    missing = admin.put(path, json={"DirectoryId": directory_id,
                                    "BaseDn": f"OU=Nowhere,{dc.base_dn}"})
    assert missing.status_code == 400
    assert admin.get(path).get_json() == {"Directories": []}
    # A team account may not connect (the one connect rule).
    team = admin.post("/accounts", json={"Name": "Team"}).get_json()["Account"]["AccountId"]
    assert admin.put(f"/accounts/{team}/directory", json={
        "DirectoryId": directory_id, "BaseDn": seed.staff}).status_code == 403


def test_policy_marks(registry_app: tuple[Flask, Services, str, str], dc: SambaDC,
                      seed: Seed) -> None:
    """The guide's table: AuthorizeDirectory and UnauthorizeDirectory FA; ListDirectories
    FA, UM, RO."""
    app, _services, _first, _second = registry_app
    directory_id = _authorize(admin_client(app, "FullAccess"), dc)
    for policy in ("UserManagement", "ReadOnly"):
        other = admin_client(app, policy)
        assert other.get("/directories").status_code == 200
        assert other.post("/directories", json=registration(dc, Name=policy)
                          ).status_code == 403
        assert other.delete(f"/directories/{directory_id}").status_code == 403
    spec = app.test_client().get("/openapi.json").get_json()
    assert spec["paths"]["/directories"]["post"]["operationId"] == "AuthorizeDirectory"
    assert spec["paths"]["/directories"]["get"]["operationId"] == "ListDirectories"
    assert spec["paths"]["/directories/{directoryId}"]["delete"]["operationId"] == \
        "UnauthorizeDirectory"


def test_the_daemon_binds_once_per_directory(
        registry_app: tuple[Flask, Services, str, str], dc: SambaDC, seed: Seed) -> None:
    app, services, first, second = registry_app
    admin = admin_client(app, "FullAccess")
    directory_id = _authorize(admin, dc)
    engine = services.engine
    for account_id, base in ((first, seed.staff), (second, seed.elsewhere)):
        engine.ad_directories.connect(
            ADMIN, account_id, {"DirectoryId": directory_id, "BaseDn": base,
                                "GroupBaseDn": seed.groups_ou},
            lambda cfg: client.verify_connection(cfg, allow_insecure=False),
            organisation=_organisation(app))
        engine.add_or_update_group_mappings(ADMIN, account_id, {"Chime-Pro": Tier.PRO})
    for sam, ou, mail in (("pat", seed.staff, "pat@example.com"),
                          ("oli", seed.elsewhere, "oli@other.example")):
        dc.add_member(seed.pro, dc.add_user(sam, ou_dn=ou, mail=mail, password=PASSWORD))

    binds: list[str | None] = []

    def counting(cfg: Any, **kwargs: Any) -> Any:
        binds.append(kwargs.get("user"))
        return client.open_connection(cfg, **kwargs)

    state = DaemonState()
    reports = run_cycle(services, state, every=60.0, stop=threading.Event(), connect=counting)
    assert sorted(r.account_id for r in reports) == sorted([first, second])
    assert all(r.status == "ok" for r in reports), [r.as_json() for r in reports]
    assert binds == [None]  # one service-account bind for both accounts
    assert engine.get_user_by_email("pat@example.com").account_id == first
    assert engine.get_user_by_email("oli@other.example").account_id == second
    (listed,) = engine.directory_registry.list_directories(_organisation(app))
    assert listed.health == "Healthy" and listed.checked_at is not None
    # Sign-in with the directory password goes through the registered directory too.
    signed_in = app.test_client().post("/auth/ad/login", json={
        "email": "oli@other.example", "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.get_json()
    assert signed_in.get_json()["account"]["id"] == second

    # Both due again (incremental this time): still one bind between them.
    state.due.clear()
    reports = run_cycle(services, state, every=60.0, connect=counting)
    assert [r.mode for r in reports] == ["incremental", "incremental"]
    assert binds == [None, None]


def test_a_failing_directory_is_unhealthy_without_a_bind_per_account(
        registry_app: tuple[Flask, Services, str, str], dc: SambaDC, seed: Seed) -> None:
    app, services, first, second = registry_app
    admin = admin_client(app, "FullAccess")
    service_account = dc.add_user("svc-chime", password="Service-Pw-42")
    done = admin.post("/directories", json=registration(
        dc, BindDn=service_account, BindPassword="Service-Pw-42"))
    assert done.status_code == 201, done.get_json()
    directory_id = done.get_json()["Directory"]["DirectoryId"]
    for account_id, base in ((first, seed.staff), (second, seed.elsewhere)):
        assert admin.put(f"/accounts/{account_id}/directory", json={
            "DirectoryId": directory_id, "BaseDn": base}).status_code == 200
    # The service account is disabled in the directory (its bind now fails).
    dc.disable_user(service_account)
    binds: list[object] = []

    def counting(cfg: Any, **kwargs: Any) -> Any:
        binds.append(cfg)
        return client.open_connection(cfg, **kwargs)

    reports = run_cycle(services, DaemonState(), every=60.0, connect=counting)
    assert len(binds) == 1
    assert {r.status for r in reports} == {"unknown"} and len(reports) == 2
    (listed,) = admin.get("/directories").get_json()["Directories"]
    assert listed["Health"]["Status"] == "Failing"
    assert listed["Health"]["Message"] and listed["Health"]["CheckedTimestamp"]
    assert "Service-Pw-42" not in json.dumps(listed)
    status = services.engine.ad_directories.get(first)
    assert status is not None and status.last_status == "unknown"
    # The account's last sync report says why (the console's Active directory page).
    last = services.engine.ad_sync_runs.reports(first).last_run
    assert last is not None and (last.state, last.status) == ("done", "unknown")
    assert last.report["error"] and "Service-Pw-42" not in json.dumps(last.report)

    # The administrator replaces the service account (PUT): checked by one bind first.
    path = f"/directories/{directory_id}"
    assert admin.put(path, json=registration(dc, Name="Corp DC", BindPassword="Wrong-9")
                     ).status_code == 400
    replaced = admin.put(path, json=registration(dc, Name="Corp DC"))
    assert replaced.status_code == 200, replaced.get_json()
    view = replaced.get_json()["Directory"]
    assert view["BindDn"] == dc.admin_dn and view["Health"]["Status"] == "Healthy"
    assert view["ConnectedAccountIds"] == sorted([first, second])
    assert admin.put("/directories/d-ffffffffff", json=registration(dc)).status_code == 404
    reports = run_cycle(services, DaemonState(), every=60.0, connect=counting)
    assert [r.status for r in reports] == ["ok", "ok"] and len(binds) == 2
    last = services.engine.ad_sync_runs.reports(first).last_run
    assert last is not None and last.status == "ok" and last.requested_by is None
    assert dc.admin_password not in _trail(services) and "Wrong-9" not in _trail(services)


def _organisation(app: Flask) -> str:
    from bridge.api.framework import STATE_KEY

    organisation: str = app.extensions[STATE_KEY].aws_account_id
    return organisation
