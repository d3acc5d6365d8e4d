"""Fixtures for the AD door's tests: ONE real Samba AD DC for the whole package (this
engineer's tests are the only ones that start it here), restored to its seeded snapshot
before each test (~0.5 s), and a bridge on SQLite with an enterprise account whose
directory is that DC over LDAPS, verified with the DC's own CA.

Seeded snapshot: ``OU=Staff`` (the account's BaseDn), ``OU=Elsewhere`` (outside it), the
groups ``Chime-Pro`` (with the nested ``Chime-Pro-Nested``) and ``Chime-Basic`` in
``OU=Groups``. Nothing contacts an address other than the DC's own loopback address:
the referrals Samba returns name ``example.com`` and are never followed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ad_sync import client
from ad_sync.records import SyncRecords
from ad_sync.sync import DirectorySync, SyncReport
from bridge.app import Services, build_services
from bridge.domain import Actor, Tier
from tests.builders import claim
from tests.conftest import FakeClock, make_settings
from tests.servers.samba_dc import SambaDC

PASSWORD = "Correct-Horse-42"
ADMIN = Actor(type="AdminUser", principal_id="AIDATESTADMIN", name="alice")


@dataclass
class Seed:
    staff: str
    elsewhere: str
    groups_ou: str
    pro: str
    pro_nested: str
    basic: str


@pytest.fixture(scope="package")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SambaDC, Seed]]:
    with SambaDC(base_dir=tmp_path_factory.mktemp("samba-ad")) as dc:
        dc.start()
        staff = dc.add_ou("Staff")
        elsewhere = dc.add_ou("Elsewhere")
        groups_ou = dc.add_ou("Groups")
        pro = dc.add_group("Chime-Pro", groups_ou)
        nested = dc.add_group("Chime-Pro-Nested", groups_ou)
        dc.add_member(pro, nested)
        basic = dc.add_group("Chime-Basic", groups_ou)
        dc.snapshot()
        yield dc, Seed(staff, elsewhere, groups_ou, pro, nested, basic)


@pytest.fixture
def dc(samba: tuple[SambaDC, Seed]) -> SambaDC:
    samba[0].restore()
    return samba[0]


@pytest.fixture
def seed(samba: tuple[SambaDC, Seed], dc: SambaDC) -> Seed:
    return samba[1]


def directory_body(dc: SambaDC, seed: Seed, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "LdapUrl": dc.ldaps_url, "StartTls": False, "BaseDn": seed.staff,
        "BindDn": dc.admin_dn, "BindPassword": dc.admin_password,
        "CaCertificatePem": dc.ca_cert_path.read_text(),
        "TlsServerName": dc.tls_server_name, "GroupBaseDn": seed.groups_ou,
    }
    body.update(overrides)
    return body


@dataclass
class Bridge:
    services: Services
    account_id: str
    dc: SambaDC
    seed: Seed
    clock: FakeClock

    @property
    def records(self) -> SyncRecords:
        """The AD sync's bookkeeping (watermark, records per objectGUID)."""
        return SyncRecords(self.services.engine.uow)

    def sync(self, *, full: bool = False, **kwargs: Any) -> SyncReport:
        return DirectorySync(self.services, self.account_id, **kwargs).run(full=full)

    def user(self, email: str) -> Any:
        return self.services.engine.get_user_by_email(email)


def make_bridge(tmp_path: Path, db_url: str, clock: FakeClock, dc: SambaDC, seed: Seed,
                **settings: Any) -> Iterator[Bridge]:
    services = build_services(make_settings(tmp_path, db_url, **settings), clock=clock)
    engine = services.engine
    account = engine.create_account(ADMIN, "Example Corp")
    claim(engine, ADMIN, account.id, "example.com")
    services.engine.ad_directories.connect(
        ADMIN, account.id, directory_body(dc, seed),
        lambda cfg: client.verify_connection(cfg, allow_insecure=False))
    engine.add_or_update_group_mappings(ADMIN, account.id,
                                        {"Chime-Pro": Tier.PRO, "Chime-Basic": Tier.BASIC})
    yield Bridge(services, account.id, dc, seed, clock)
    services.db.dispose()


@pytest.fixture
def bridge(tmp_path: Path, sqlite_url: str, clock: FakeClock, dc: SambaDC,
           seed: Seed) -> Iterator[Bridge]:
    yield from make_bridge(tmp_path, sqlite_url, clock, dc, seed)
