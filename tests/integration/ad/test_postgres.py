"""The sync on PostgreSQL (the scale-out store) and the one-sync-per-directory lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from ad_sync.locks import directory_lock
from bridge.app import build_services
from bridge.domain import Tier
from tests.conftest import FakeClock, make_settings
from tests.integration.ad.conftest import Seed, make_bridge
from tests.servers.samba_dc import SambaDC


def test_one_sync_per_directory_across_processes(store_url: str, tmp_path: Path) -> None:
    first = build_services(make_settings(tmp_path, store_url))
    second = build_services(make_settings(tmp_path, store_url))  # another daemon
    try:
        with directory_lock(first, "acct-1") as held:
            assert held
            with directory_lock(second, "acct-1") as other:
                assert not other
            with directory_lock(second, "acct-2") as unrelated:
                assert unrelated
        with directory_lock(second, "acct-1") as after:
            assert after
    finally:
        first.db.dispose()
        second.db.dispose()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated PostgreSQL database (the other tests here run on SQLite)."""
    from tests.conftest import _fresh_postgres

    return _fresh_postgres(request.getfixturevalue("postgres_server"),
                           request.getfixturevalue("_postgres_template"))


@pytest.mark.postgres
def test_sync_pages_and_watermark_on_postgresql(tmp_path: Path, clock: FakeClock, dc: SambaDC,
                                                seed: Seed, postgres_url: str) -> None:
    for bridge in make_bridge(tmp_path, postgres_url, clock, dc, seed):
        a = dc.add_user("pg-a", ou_dn=seed.staff, mail="pg-a@example.com")
        dc.add_user("pg-b", ou_dn=seed.staff, mail="pg-a@example.com")  # a clash
        dc.add_member(seed.pro_nested, a)
        report = bridge.sync(page_size=1)
        assert report.status == "ok" and report.added == 2 and report.pages >= 2
        assert len(report.conflicts) == 1
        record = bridge.records.known_users(bridge.account_id, [dc.get_guid(a)])[dc.get_guid(a)]
        assert record.user_id is not None
        user = bridge.services.engine.get_user(bridge.account_id, record.user_id)
        assert user.tier == Tier.PRO  # nested group, whoever won the clashing address
        dc.delete(a)
        assert bridge.sync(allow_mass_change=True).suspended == 1
        assert bridge.records.state(bridge.account_id).highest_usn == dc.highest_committed_usn()
        # A full run over known users: staged, guarded, then applied page by page.
        dc.add_user("pg-c", ou_dn=seed.staff, mail="pg-c@example.com")
        full = bridge.sync(full=True, page_size=1)
        assert (full.status, full.added, full.suspended) == ("ok", 1, 0)
        assert bridge.user("pg-c@example.com").in_directory
