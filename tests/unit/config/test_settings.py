"""Settings: precedence, file: secrets, and one clear line for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings(env={})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8000, Path("./var"))
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("/var/bridge.db")


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    toml = tmp_path / "bridge.toml"
    toml.write_text('port = 9000\nhost = "10.1.2.3"\ndns_nameservers = ["127.0.0.1:5353"]\n')
    s = load_settings(env={"BRIDGE_CONFIG": str(toml), "BRIDGE_PORT": "9100"})
    assert (s.host, s.port, s.dns_nameservers) == ("10.1.2.3", 9100, ("127.0.0.1:5353",))
    s2 = load_settings(env={"BRIDGE_CONFIG": str(toml)}, overrides={"port": 9200})
    assert s2.port == 9200


def test_secret_from_file_and_redacted(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("s3cr3t-value\n")
    s = load_settings(env={"BRIDGE_DEFAULT_OIDC_CLIENT_SECRET": f"file:{secret}"})
    assert s.default_oidc_client_secret == "s3cr3t-value"
    assert s.redacted()["default_oidc_client_secret"] == "***"
    assert "s3cr3t" not in repr(s.redacted())


@pytest.mark.parametrize(("env", "message"), [
    ({"BRIDGE_PORT": "abc"}, "BRIDGE_PORT: must be an integer"),
    ({"BRIDGE_PORT": "70000"}, "BRIDGE_PORT: must be between 1 and 65535"),
    ({"BRIDGE_ALLOW_INSECURE_LDAP": "maybe"}, "BRIDGE_ALLOW_INSECURE_LDAP: must be true or false"),
    ({"BRIDGE_DATABASE_URL": "mysql://x"}, "BRIDGE_DATABASE_URL"),
    ({"BRIDGE_DNS_NAMESERVERS": "127.0.0.1:notaport"}, "BRIDGE_DNS_NAMESERVERS"),
    ({"BRIDGE_SMTP_URL": "http://mail"}, "BRIDGE_SMTP_URL"),
    ({"BRIDGE_LOG_LEVEL": "LOUD"}, "BRIDGE_LOG_LEVEL"),
    ({"BRIDGE_SECRET_KEY": "file:/nonexistent/key"}, "BRIDGE_SECRET_KEY: cannot read"),
    ({"BRIDGE_LOG_FORMAT": "xml"}, "BRIDGE_LOG_FORMAT: must be text or json"),
    ({"BRIDGE_METRICS_PORT": "8000"}, "BRIDGE_METRICS_PORT: must be 0 (the main port) or "),
    ({"BRIDGE_METRICS_PORT": "70000"}, "BRIDGE_METRICS_PORT"),
    ({"BRIDGE_AD_SYNC_NOW_MAX_RUNS": "0"}, "BRIDGE_AD_SYNC_NOW_MAX_RUNS: must be at least 1"),
    ({"BRIDGE_AD_SYNC_NOW_WAIT_SECONDS": "-1"}, "BRIDGE_AD_SYNC_NOW_WAIT_SECONDS: must be "),
    ({"BRIDGE_AD_SYNC_NOW_WAIT_SECONDS": "3600"}, "BRIDGE_AD_SYNC_NOW_WAIT_SECONDS: must be "),
])
def test_bad_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "bridge.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="unknown setting 'prot'"):
        load_settings(env={"BRIDGE_CONFIG": str(toml)})
