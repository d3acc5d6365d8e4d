"""The secret key: a shared database needs one configured key, never one per host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bridge.crypto import KEY_FILE_NAME, SecretBox, load_or_create_key
from config import SettingsError, load_settings


def test_embedded_database_generates_its_key_once_beside_it(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"data_dir": tmp_path})
    key = load_or_create_key(settings)
    assert (tmp_path / KEY_FILE_NAME).read_bytes().strip() == key
    assert (tmp_path / KEY_FILE_NAME).stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(settings) == key


@pytest.mark.parametrize("url", ["postgresql+psycopg://bridge@db.internal/bridge",
                                 "sqlite:////srv/bridge/bridge.db"])
def test_named_database_without_a_key_is_refused(tmp_path: Path, url: str) -> None:
    settings = load_settings(env={}, overrides={"data_dir": tmp_path, "database_url": url})
    with pytest.raises(SettingsError) as info:
        load_or_create_key(settings)
    message = str(info.value)
    assert message.startswith("BRIDGE_SECRET_KEY: must be set when BRIDGE_DATABASE_URL is")
    assert "\n" not in message and "Fernet.generate_key()" in message
    assert not (tmp_path / KEY_FILE_NAME).exists()  # no per-host key was made


def test_named_database_with_a_key_uses_it(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    settings = load_settings(env={}, overrides={
        "data_dir": tmp_path, "database_url": "sqlite:///x.db", "secret_key": key})
    box = SecretBox(load_or_create_key(settings))
    assert SecretBox(key.encode()).open(box.seal("pw")) == "pw"
    assert not (tmp_path / KEY_FILE_NAME).exists()


def _bridge(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args],
                          env={**base, "BRIDGE_DATA_DIR": str(tmp_path / "data"), **env},
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("argv", [["serve", "--migrate"], ["keys", "list"],
                                  ["admin", "list-users"], ["sync-ad", "--daemon"]])
def test_commands_needing_the_key_stop_with_one_line(tmp_path: Path, argv: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    done = _bridge(tmp_path, *argv, BRIDGE_DATABASE_URL=url, BRIDGE_PORT="1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "bridge: configuration error: BRIDGE_SECRET_KEY: must be set when "
        "BRIDGE_DATABASE_URL is, the same on every host and worker (make one with: python -c "
        "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'; "
        "may be file:/path)"]
    assert not (tmp_path / "data" / KEY_FILE_NAME).exists()


def test_commands_not_needing_the_key_still_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    done = _bridge(tmp_path, "db", "upgrade", BRIDGE_DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
