"""Connecting a directory: TLS verified with the DC's CA, binds refused in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from ad_sync import client
from bridge.app import build_services
from bridge.domain import AccountType
from bridge.errors import ValidationError
from tests.builders import claim
from tests.conftest import FakeClock, make_settings
from tests.integration.ad.conftest import ADMIN, Bridge, Seed, directory_body
from tests.servers.samba_dc import SambaDC


def _connect(tmp_path: Path, url: str, clock: FakeClock, body: dict,
             domain: str = "example.com", **settings: object):
    services = build_services(make_settings(tmp_path, url, **settings), clock=clock)
    account = services.engine.create_account(ADMIN, "Corp")
    claim(services.engine, ADMIN, account.id, domain)
    allow = services.settings.allow_insecure_ldap
    try:
        view = services.engine.ad_directories.connect(ADMIN, account.id, body,
                             lambda cfg: client.verify_connection(cfg, allow_insecure=allow))
        return services, account.id, view
    finally:
        services.db.dispose()


def test_ldaps_with_the_dc_ca_connects_and_never_returns_the_password(
        tmp_path: Path, sqlite_url: str, clock: FakeClock, dc: SambaDC, seed: Seed) -> None:
    services, account_id, view = _connect(tmp_path, sqlite_url, clock, directory_body(dc, seed))
    assert view.has_ca_certificate and view.ldap_url == dc.ldaps_url
    assert dc.admin_password not in repr(view.as_json())
    assert services.engine.get_account(account_id).type == AccountType.ENTERPRISE_DIRECTORY
    # Sealed at rest.
    import sqlite3

    raw = sqlite3.connect(sqlite_url.removeprefix("sqlite:///")).execute(
        "select bind_password_sealed from ad_directories").fetchone()[0]
    assert dc.admin_password not in raw


def test_starttls_on_389_connects(tmp_path: Path, sqlite_url: str, clock: FakeClock,
                                 dc: SambaDC, seed: Seed) -> None:
    body = directory_body(dc, seed, LdapUrl=dc.ldap_url, StartTls=True)
    _connect(tmp_path, sqlite_url, clock, body)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize(("overrides", "words"), [
    ({"CaCertificatePem": None}, "certificate"),  # system CAs do not know Samba's CA
    ({"TlsServerName": "other.example.com"}, "certificate"),
    ({"BindPassword": "Wrong-Password-1"}, "invalid credentials (the password is wrong)"),
    ({"BindDn": "CN=nobody,CN=Users,DC=example,DC=com"}, "invalid credentials"),
    ({"BaseDn": "OU=Nope,DC=example,DC=com"}, "BaseDn"),
])
def test_unreachable_or_refused_directory_is_a_400_in_words(
        tmp_path: Path, sqlite_url: str, clock: FakeClock, dc: SambaDC, seed: Seed,
        overrides: dict, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _connect(tmp_path, sqlite_url, clock, directory_body(dc, seed, **overrides))
    assert words in caught.value.message
    assert dc.admin_password not in caught.value.message


def test_plain_ldap_without_starttls_is_refused_unless_allowed(
        tmp_path: Path, sqlite_url: str, clock: FakeClock, dc: SambaDC, seed: Seed) -> None:
    body = directory_body(dc, seed, LdapUrl=dc.ldap_url, StartTls=False)
    with pytest.raises(ValidationError, match="StartTls"):
        _connect(tmp_path, sqlite_url, clock, body)
    # Allowed by the setting; Samba itself then refuses a simple bind without TLS.
    with pytest.raises(ValidationError, match="encrypted connection"):
        _connect(tmp_path / "b", sqlite_url, clock, body, "example.net",
                 allow_insecure_ldap=True)


def test_wrong_bind_password_at_sync_time_is_unknown_not_deletions(bridge: Bridge) -> None:
    from bridge.store.ad_models import AdDirectory
    from bridge.store.db import transaction

    dc, seed = bridge.dc, bridge.seed
    dc.add_user("kept", ou_dn=seed.staff, mail="kept@example.com")
    assert bridge.sync().added == 1
    before = bridge.records.state(bridge.account_id)
    # The stored password no longer matches (rotated in AD, not in the bridge).
    with transaction(bridge.services.sessions) as session:
        row = session.get(AdDirectory, bridge.account_id)
        assert row is not None
        row.bind_password_sealed = bridge.services.secrets.seal("Not-The-Password-1")
    report = bridge.sync(full=True)
    assert report.status == "unknown"
    assert report.error == "invalid credentials (the password is wrong)"
    assert bridge.user("kept@example.com").in_directory
    after = bridge.records.state(bridge.account_id)
    assert (after.highest_usn, after.last_full_sync_at) == (before.highest_usn,
                                                            before.last_full_sync_at)
