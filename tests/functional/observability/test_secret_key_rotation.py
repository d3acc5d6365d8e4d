"""``bridge secret-key rotate``: every secret stored at rest re-encrypted with a new key in
one audited transaction; the bridge works with the new key and no longer with the old."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bridge import audit
from bridge.app import build_services
from bridge.cli import main
from bridge.store.db import transaction
from tests.builders import enterprise
from tests.conftest import make_settings
from tests.functional.observability.test_readiness_status_backup import ADMIN


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL", "BRIDGE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(data))
    return data


def test_rotation_reseals_every_secret(data_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["keys", "rotate"]) == 0
    assert main(["admin", "create-user", "alice", "--policy", "FullAccess"]) == 0
    created = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    # The embedded default: the key the CLI generated into the data directory.
    services = build_services(make_settings(tmp_path, "", data_dir=data_dir, secret_key=""))
    account = enterprise(services.engine, ADMIN, ["corp.test"], name="Corp")
    services.engine.ad_directories.connect(ADMIN, account.id, {
        "LdapUrl": "ldaps://dc.corp.test", "BaseDn": "DC=corp,DC=test",
        "BindDn": "CN=sync,DC=corp,DC=test", "BindPassword": "bind-pw-value"},
        verify=lambda _candidate: None)  # no DC here: the bind check is not the subject
    registered = services.engine.directory_registry.authorize(
        ADMIN, "123456789012", {"LdapUrl": "ldaps://dc2.corp.test",
                                "BindDn": "CN=sync,DC=corp,DC=test",
                                "BindPassword": "registry-pw-value"},
        verify_bind=lambda _target: None)
    services.db.dispose()

    new_key = Fernet.generate_key()
    key_file = tmp_path / "new.key"
    key_file.write_bytes(new_key + b"\n")
    assert main(["secret-key", "rotate", str(key_file)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts == {"account_openid_configs": 0, "ad_directories": 1,
                      "admin_access_keys": 1, "authorized_directories": 1,
                      "session_signing_keys": 1}
    # Run again with the old key: nothing opens, nothing changes.
    assert main(["secret-key", "rotate", str(key_file)]) == 1
    assert "nothing changed" in capsys.readouterr().err

    monkeypatch.setenv("BRIDGE_SECRET_KEY", f"file:{key_file}")
    rotated = build_services(make_settings(tmp_path, "", data_dir=data_dir,
                                           secret_key=new_key.decode()))
    try:
        assert rotated.engine.ad_directories.connection(account.id).bind_password == \
            "bind-pw-value"
        assert rotated.engine.directory_registry.target(
            "123456789012", registered.id).bind_password == "registry-pw-value"
        from bridge.api.principals import PrincipalStore

        credential = PrincipalStore(rotated.engine.uow, rotated.secrets).credential(
            created["AccessKeyId"])
        assert credential is not None
        assert credential.secret_access_key == created["SecretAccessKey"]
        assert main(["keys", "list"]) == 0  # the signing key opens with the new key
        with transaction(rotated.sessions) as session:
            events, _ = audit.lookup(session, audit.EventQuery(event_name="RotateSecretKey"))
        assert len(events) == 1 and events[0]["responseElements"] == counts
        assert "bind-pw-value" not in json.dumps(events)
        assert "registry-pw-value" not in json.dumps(events)
    finally:
        rotated.db.dispose()
    with pytest.raises(ValueError, match="cannot be decrypted"):
        stale = build_services(make_settings(tmp_path, "", data_dir=data_dir))
        try:
            stale.engine.ad_directories.connection(account.id)
        finally:
            stale.db.dispose()
