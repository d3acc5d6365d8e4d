"""``/readyz``, ``bridge status`` and ``bridge backup`` (restored into a working bridge)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from flask import Flask

from ad_sync.records import SyncRecords
from bridge.app import build_services, create_app
from bridge.cli import main
from bridge.domain import Actor
from bridge.store.db import upgrade
from tests.builders import enterprise
from tests.conftest import make_settings
from tests.functional.scim.conftest import USER, make_scim_client
from tests.servers.ports import free_port

ADMIN = Actor(type="TestSetup", principal_id="test-setup", name="test-setup")


def test_readyz_is_ok_on_a_migrated_database(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_is_503_before_the_migrations(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    services = build_services(settings)
    try:
        client = create_app(settings, services).test_client()
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["reason"].startswith("database migrations are not at head")
        assert body["database"] == [] and body["expected"]
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        upgrade(settings.effective_database_url)
        assert client.get("/readyz").status_code == 200
    finally:
        services.db.dispose()


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://bridge:pw-not-logged@127.0.0.1:{free_port()}/bridge"
    settings = make_settings(tmp_path, url)
    services = build_services(settings)
    try:
        response = create_app(settings, services).test_client().get("/readyz")
    finally:
        services.db.dispose()
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "reason": "database unreachable"}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory the ``bridge`` command uses (SQLite in it)."""
    data = tmp_path / "data"
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL", "BRIDGE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(data))
    monkeypatch.setenv("BRIDGE_SMTP_URL", "smtp://mailer:smtp-pw-value@127.0.0.1:2525")
    return data


def test_status_reports_database_keys_directories_domains_and_mail(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json"]) == 1  # not migrated yet
    assert json.loads(capsys.readouterr().out)["database"]["migrations"]["atHead"] is False
    assert main(["db", "upgrade"]) == 0
    assert main(["keys", "rotate"]) == 0
    settings = make_settings(data_dir.parent, "", data_dir=data_dir,
                             smtp_url="smtp://mailer:smtp-pw-value@127.0.0.1:2525")
    services = build_services(settings)
    try:
        account = enterprise(services.engine, ADMIN, ["corp.test"], name="Corp")
        services.engine.add_domain(ADMIN, account.id, "pending.example")
        services.engine.ad_directories.connect(ADMIN, account.id, {
            "LdapUrl": "ldaps://dc.corp.test", "BaseDn": "DC=corp,DC=test",
            "BindDn": "CN=sync,DC=corp,DC=test", "BindPassword": "bind-pw-value"},
            verify=lambda _candidate: None)  # no DC here: the bind check is not the subject
        SyncRecords(services.engine.uow).record_failure_status(
            account.id, "mass_change_stopped", "would suspend 9")
    finally:
        services.db.dispose()
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["database"]["reachable"] is True
    assert report["database"]["migrations"]["atHead"] is True
    (key,) = report["signingKeys"]
    assert key["alg"] == "ES256" and key["retiredAt"] is None and key["ageDays"] >= 0
    (directory,) = report["directories"]
    assert directory["accountId"] == account.id
    assert directory["lastStatus"] == "mass_change_stopped"
    (domain,) = report["pendingDomains"]
    assert (domain["name"], domain["accountId"]) == ("pending.example", account.id)
    assert report["mail"]["configured"] is True
    assert report["mail"]["server"] == "smtp://127.0.0.1:2525"
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "(at head)" in text and "pending.example" in text and "mass_change_stopped" in text
    for secret in ("smtp-pw-value", "bind-pw-value", "mailer"):
        assert secret not in out + text


def test_backup_restores_into_a_working_bridge(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    # The embedded default: the secret key generated into the data directory.
    settings = make_settings(tmp_path, "", data_dir=data_dir, secret_key="")
    services = build_services(settings)
    app = create_app(settings, services)
    scim = make_scim_client(app, services, ADMIN, "backup.example", "Backed up")
    created = scim.post("/Users", {"schemas": [USER], "userName": "kept@backup.example",
                                   "active": True})
    assert created.status_code == 201
    backup = tmp_path / "bridge-backup.db"
    # Taken while the bridge runs (its pool holds connections to the WAL database).
    assert main(["backup", str(backup)]) == 0
    after = scim.post("/Users", {"schemas": [USER], "userName": "later@backup.example"})
    assert after.status_code == 201
    services.db.dispose()
    assert main(["backup", str(backup)]) == 1  # never overwrites
    assert "exists" in capsys.readouterr().err

    # The runbook's restore: a new data directory, the backup as bridge.db, the same key.
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    shutil.copyfile(backup, restored_dir / "bridge.db")
    shutil.copyfile(data_dir / "secret.key", restored_dir / "secret.key")
    restored = build_services(make_settings(tmp_path, "", data_dir=restored_dir,
                                            secret_key=""))
    try:
        client = create_app(restored.settings, restored).test_client()
        assert client.get("/readyz").status_code == 200
        headers = {"Authorization": f"Bearer {scim.key}"}
        found = client.get('/scim/v2/Users?filter=userName eq "kept@backup.example"',
                           headers=headers)
        assert found.status_code == 200 and found.get_json()["totalResults"] == 1
        missing = client.get('/scim/v2/Users?filter=userName eq "later@backup.example"',
                             headers=headers)
        assert missing.get_json()["totalResults"] == 0
        # It takes writes again.
        assert client.post("/scim/v2/Users", json={"schemas": [USER],
                                                   "userName": "new@backup.example"},
                           headers={**headers, "Content-Type": "application/scim+json"}
                           ).status_code == 201
    finally:
        restored.db.dispose()


def test_backup_of_postgresql_points_to_its_own_tools(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.setenv("BRIDGE_DATABASE_URL", "postgresql+psycopg://u:p@127.0.0.1:1/db")
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    assert main(["backup", str(tmp_path / "x.db")]) == 1
    assert "pg_dump" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
