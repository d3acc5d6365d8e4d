"""Group membership changes read incrementally (ad_sync/groups.py) against a real Samba DC:
the tiers follow, and an incremental run reads the changed member values, never the
members of a group nor every user (counted on the real ldap3 connection)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from ldap3 import Connection
from sqlalchemy import update

from bridge.domain import Tier
from bridge.store.ad_models import AdSyncGroups
from tests.integration.ad.conftest import ADMIN, Bridge
from tests.servers.samba_ldif import ldif_entry, users_ldif

BIG = 300  # members of the big mapped group: an incremental run must read far fewer


@dataclass
class Reads:
    searches: int = 0
    entries: int = 0
    values: int = 0  # attribute values received, all entries together


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    """Counts what every ldap3 search of this process received (the real connection)."""
    counted = Reads()
    original = Connection.search

    def search(self: Connection, *args: object, **kwargs: object) -> object:
        ok = original(self, *args, **kwargs)  # type: ignore[arg-type]
        counted.searches += 1
        for entry in self.response or []:
            if entry.get("type") == "searchResEntry":
                counted.entries += 1
                counted.values += sum(len(v) for v in (entry.get("raw_attributes") or {})
                                      .values())
        return ok

    monkeypatch.setattr(Connection, "search", search)
    yield counted


def _load_big_group(bridge: Bridge, name: str = "Chime-Big") -> str:
    """BIG users user00001.. in OU=Staff, all members of a new group *name* (offline)."""
    dc, seed = bridge.dc, bridge.seed
    group = f"CN={name},{seed.groups_ou}"
    text = users_ldif(BIG, dc.base_dn, seed.staff, groups=0, nest_groups=False,
                      create_ou=False)
    members = [f"CN=user{i:05d},{seed.staff}" for i in range(1, BIG + 1)]
    text += ldif_entry(group, {"objectClass": "group", "sAMAccountName": name,
                               "member": members})
    dc.load_ldif_offline(text)
    return group


def _mail(i: int) -> str:
    from tests.servers.samba_ldif import bulk_user

    return bulk_user(i, "OU=x").mail


def test_member_added_and_removed_in_a_big_mapped_group(bridge: Bridge, reads: Reads) -> None:
    dc, seed = bridge.dc, bridge.seed
    group = _load_big_group(bridge)
    bridge.services.engine.add_or_update_group_mappings(ADMIN, bridge.account_id,
                                                        {"Chime-Big": Tier.BASIC})
    outsider = dc.add_user("outsider", ou_dn=seed.staff, mail="outsider@example.com")
    first = bridge.sync()
    assert first.status == "ok" and first.mode == "full", first.as_json()
    assert first.added == BIG + 1
    assert bridge.user(_mail(7)).tier == Tier.BASIC
    assert bridge.user("outsider@example.com").tier is None

    dc.remove_member(group, f"CN=user00007,{seed.staff}")
    dc.add_member(group, outsider)
    reads.searches = reads.entries = reads.values = 0
    report = bridge.sync()
    assert report.status == "ok" and report.mode == "incremental", report.as_json()
    assert (report.updated, report.unchanged) == (2, 0)
    assert bridge.user(_mail(7)).tier is None
    assert bridge.user("outsider@example.com").tier == Tier.BASIC
    assert bridge.user(_mail(8)).tier == Tier.BASIC
    # The two changed values and the two users, not the group's 300 members nor every user.
    assert reads.entries < 20 and reads.values < 150, reads

    # Nothing changed: no group read at all beyond DirSync's empty answer.
    reads.searches = reads.entries = reads.values = 0
    again = bridge.sync()
    assert (again.updated, again.added) == (0, 0), again.as_json()
    assert reads.entries < 10, reads


def test_nested_group_in_and_out_of_a_mapped_group(bridge: Bridge, reads: Reads) -> None:
    dc, seed = bridge.dc, bridge.seed
    team = dc.add_group("Team", seed.groups_ou)
    tina = dc.add_user("tina", ou_dn=seed.staff, mail="tina@example.com")
    tom = dc.add_user("tom", ou_dn=seed.staff, mail="tom@example.com")
    dc.add_member(team, tina)
    assert bridge.sync().added == 2
    assert bridge.user("tina@example.com").tier is None

    dc.add_member(seed.pro, team)  # Team is now nested in a mapped group
    report = bridge.sync()
    assert report.mode == "incremental" and report.updated == 1, report.as_json()
    assert bridge.user("tina@example.com").tier == Tier.PRO

    # A member added to the nested group: read as a value of a closure group.
    dc.add_member(team, tom)
    reads.searches = reads.entries = reads.values = 0
    report = bridge.sync()
    assert report.updated == 1, report.as_json()
    assert bridge.user("tom@example.com").tier == Tier.PRO
    assert reads.entries < 10, reads

    # A group nested in the nested group (two levels below the mapped one).
    inner = dc.add_group("Team-Inner", seed.groups_ou)
    ivy = dc.add_user("ivy", ou_dn=seed.staff, mail="ivy@example.com")
    dc.add_member(inner, ivy)
    dc.add_member(team, inner)
    report = bridge.sync()
    assert bridge.user("ivy@example.com").tier == Tier.PRO, report.as_json()

    dc.remove_member(seed.pro, team)  # out again: every member loses Pro
    report = bridge.sync()
    assert report.mode == "incremental" and report.updated == 3, report.as_json()
    for mail in ("tina@example.com", "tom@example.com", "ivy@example.com"):
        assert bridge.user(mail).tier is None


def test_a_group_outside_the_mapped_ones_changes_nothing(bridge: Bridge,
                                                         reads: Reads) -> None:
    dc, seed = bridge.dc, bridge.seed
    other = dc.add_group("Unmapped", seed.groups_ou)
    una = dc.add_user("una", ou_dn=seed.staff, mail="una@example.com")
    dc.add_member(seed.basic, una)
    assert bridge.sync().added == 1

    dc.add_member(other, una)
    reads.searches = reads.entries = reads.values = 0
    report = bridge.sync()
    assert (report.updated, report.unchanged) == (0, 0), report.as_json()
    assert bridge.user("una@example.com").tier == Tier.BASIC
    assert reads.entries < 10, reads


def test_without_a_dirsync_cookie_every_users_groups_are_compared(bridge: Bridge) -> None:
    """State from before the cookie was kept (or a DC that refused DirSync): a group
    change is still found, by comparing every user's groups, and a cookie is taken."""
    dc, seed = bridge.dc, bridge.seed
    ann = dc.add_user("ann", ou_dn=seed.staff, mail="ann@example.com")
    dc.add_member(seed.basic, ann)
    assert bridge.sync().added == 1
    with bridge.services.engine.single_transaction() as session:
        session.execute(update(AdSyncGroups).values(cookie=None))

    dc.add_member(seed.pro_nested, ann)
    report = bridge.sync()
    assert report.mode == "incremental" and report.updated == 1, report.as_json()
    assert bridge.user("ann@example.com").tier == Tier.PRO
    with bridge.services.engine.uow.session() as session:
        row = session.get(AdSyncGroups, bridge.account_id)
        assert row is not None and row.cookie  # the next run reads deltas again

    dc.remove_member(seed.pro_nested, ann)
    assert bridge.sync().updated == 1
    assert bridge.user("ann@example.com").tier == Tier.BASIC
