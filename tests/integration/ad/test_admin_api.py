"""PUT|GET|DELETE /accounts/{accountId}/directory through the admin API (SigV4, policies)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from bridge.app import build_services, create_app
from tests.admin_client import admin_client
from tests.builders import claim
from tests.conftest import FakeClock, make_settings
from tests.integration.ad.conftest import ADMIN, Seed, directory_body
from tests.servers.samba_dc import SambaDC


@pytest.fixture
def ad_app(tmp_path: Path, sqlite_url: str, clock: FakeClock) -> Iterator[tuple[Flask, str]]:
    services = build_services(make_settings(tmp_path, sqlite_url), clock=clock)
    account = services.engine.create_account(ADMIN, "Corp")
    claim(services.engine, ADMIN, account.id, "example.com")
    yield create_app(services.settings, services), account.id
    services.db.dispose()


def test_connect_list_disconnect(ad_app: tuple[Flask, str], dc: SambaDC, seed: Seed) -> None:
    app, account_id = ad_app
    admin = admin_client(app, "FullAccess")
    path = f"/accounts/{account_id}/directory"

    refused = admin.put(path, json=directory_body(dc, seed, BindPassword="Wrong-Password-1"))
    assert refused.status_code == 400
    assert "invalid credentials" in refused.get_json()["Message"]
    assert admin.get(path).get_json() == {"Directories": []}

    done = admin.put(path, json=directory_body(dc, seed))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["Directory"]["BaseDn"] == seed.staff
    listed = admin.get(path)
    assert listed.status_code == 200
    assert dc.admin_password not in listed.get_data(as_text=True)
    assert "BindPassword" not in listed.get_json()["Directories"][0]
    account = admin.get(f"/accounts/{account_id}").get_json()["Account"]
    assert account["AccountType"] == "EnterpriseDirectory"

    read_only = admin_client(app, "ReadOnly")
    assert read_only.get(path).status_code == 200
    assert read_only.delete(path).status_code == 403

    assert admin.delete(path).status_code == 204
    assert admin.get(path).get_json() == {"Directories": []}

    # The password is in no audit event (refused, accepted or disconnected).
    import io

    from bridge import audit
    from bridge.store.db import transaction

    services = app.extensions["bridge"]
    out = io.StringIO()
    with transaction(services.sessions) as session:
        assert audit.export_jsonl(session, out, None) > 0
    trail = out.getvalue()
    assert "ConnectDirectory" in trail and "DisconnectDirectory" in trail
    assert dc.admin_password not in trail and "Wrong-Password-1" not in trail


def test_team_account_cannot_connect(ad_app: tuple[Flask, str], dc: SambaDC,
                                     seed: Seed) -> None:
    app, _ = ad_app
    admin = admin_client(app, "FullAccess")
    team = admin.post("/accounts", json={"Name": "Team"}).get_json()["Account"]["AccountId"]
    response = admin.put(f"/accounts/{team}/directory", json=directory_body(dc, seed))
    assert response.status_code == 403
    assert admin.delete(f"/accounts/{team}/directory").status_code == 404
