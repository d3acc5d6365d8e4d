"""`bridge admin` console verbs through the real command: create-user --console-password,
set-password (file, stdin, prompt), enable-mfa / disable-mfa; bad passwords change nothing."""

from __future__ import annotations

import getpass
from pathlib import Path

import pyotp
import pytest

from bridge.api.console_credentials import ConsoleCredentials
from bridge.app import build_services
from bridge.cli import main
from bridge.store.db import upgrade
from config import load_settings

PASSWORD = "correct horse battery staple"


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    upgrade(f"sqlite:///{directory / 'bridge.db'}")
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(directory))
    monkeypatch.delenv("BRIDGE_DATABASE_URL", raising=False)
    return directory


def _check(data: Path, name: str, password: str) -> tuple[bool, bool]:
    services = build_services(load_settings(env={}, overrides={"data_dir": data}))
    try:
        found = ConsoleCredentials(services.engine.uow, services.secrets).check_password(
            name, password)
        return found.principal is not None, found.mfa_required
    finally:
        services.db.dispose()


def test_create_user_with_console_password_and_change_it(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    assert main(["admin", "create-user", "alice", "--policy", "FullAccess",
                 "--console-password", "--password-file", str(secret)]) == 0
    assert '"SecretAccessKey"' in capsys.readouterr().out
    assert _check(data, "alice", PASSWORD) == (True, False)
    # At the prompt: asked twice; two different answers change nothing.
    answers = iter(["another long password", "a different one!!"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert main(["admin", "set-password", "alice"]) == 1
    assert "differ" in capsys.readouterr().err
    assert _check(data, "alice", PASSWORD) == (True, False)
    answers = iter(["another long password"] * 2)
    assert main(["admin", "set-password", "alice"]) == 0
    assert _check(data, "alice", "another long password") == (True, False)
    assert _check(data, "alice", PASSWORD) == (False, False)


def test_a_short_password_is_refused_before_the_user_is_created(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "pw"
    secret.write_text("short\n")
    assert main(["admin", "create-user", "bob", "--policy", "ReadOnly",
                 "--console-password", "--password-file", str(secret)]) == 1
    assert "at least 12 characters" in capsys.readouterr().err
    assert main(["admin", "list-users"]) == 0
    assert "bob" not in capsys.readouterr().out


def test_enable_and_disable_mfa(data: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    main(["admin", "create-user", "carol", "--policy", "FullAccess", "--console-password",
          "--password-file", str(secret)])
    capsys.readouterr()
    assert main(["admin", "enable-mfa", "carol"]) == 0
    uri = capsys.readouterr().out.strip()
    assert pyotp.parse_uri(uri).name == "carol"
    assert _check(data, "carol", PASSWORD) == (True, True)
    assert main(["admin", "disable-mfa", "carol"]) == 0
    assert _check(data, "carol", PASSWORD) == (True, False)
    assert main(["admin", "enable-mfa", "nobody"]) == 1
