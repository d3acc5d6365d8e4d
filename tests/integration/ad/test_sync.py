"""The AD sync against a real Samba AD DC."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from bridge.domain import Decision, Tier, UserStatus
from tests.conftest import FakeClock
from tests.integration.ad.conftest import PASSWORD, Bridge, Seed
from tests.servers.samba_dc import SambaDC


def test_full_sync_nested_pro_basic_and_both(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    pro = dc.add_user("pat", ou_dn=seed.staff, mail="pat@example.com", password=PASSWORD)
    nested = dc.add_user("nia", ou_dn=seed.staff, mail="nia@example.com")
    basic = dc.add_user("bea", ou_dn=seed.staff, mail="bea@example.com")
    both = dc.add_user("bo", ou_dn=seed.staff, mail="bo@example.com")
    dc.add_user("nog", ou_dn=seed.staff, mail="nog@example.com")
    dc.add_member(seed.pro, pro)
    dc.add_member(seed.pro_nested, nested)
    dc.add_member(seed.basic, basic)
    dc.add_member(seed.basic, both)
    dc.add_member(seed.pro, both)

    report = bridge.sync()
    assert report.status == "ok", report.as_json()
    assert report.mode == "full" and report.added == 5
    assert bridge.user("pat@example.com").tier == Tier.PRO
    assert bridge.user("nia@example.com").tier == Tier.PRO  # nested group counts
    assert bridge.user("bea@example.com").tier == Tier.BASIC
    assert bridge.user("bo@example.com").tier == Tier.PRO  # Pro wins
    assert bridge.user("nog@example.com").tier is None  # no mapped group: no sign-in
    assert bridge.user("pat@example.com").status == UserStatus.REGISTERED

    again = bridge.sync()
    assert again.mode == "incremental" and again.status == "ok"
    assert (again.added, again.updated, again.suspended) == (0, 0, 0)

    # Every audit event of a run carries the run's id as its requestID.
    from bridge import audit
    from bridge.store.db import transaction

    with transaction(bridge.services.sessions) as session:
        events, _ = audit.lookup(session, audit.EventQuery(event_name="SyncDirectoryUser"))
    assert len(events) == 5
    assert {e["requestID"] for e in events} == {report.run_id}
    assert report.run_id != again.run_id and report.as_json()["runId"] == report.run_id


def _decide(bridge: Bridge, email: str, guid: str) -> Decision:
    from bridge.domain import Actor
    from tests.builders import ad_identity

    return bridge.services.engine.decide_sign_in(ad_identity(bridge.account_id, guid, email),
                                                 Actor.system("test"))


def test_a_full_run_applies_its_pages_with_the_apps_objects_frozen_and_returns_them(
        bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    dc.add_user("gia", ou_dn=seed.staff, mail="gia@example.com")
    during: list[int] = []
    report = bridge.sync(full=True,
                         on_page=lambda _pages: during.append(gc.get_freeze_count()))
    assert report.status == "ok" and report.added == 1, report.as_json()
    assert during and all(frozen > 0 for frozen in during)
    assert gc.get_freeze_count() == 0


def test_shirley_rodriguez_aliases_follow_claimed_domains(bridge: Bridge) -> None:
    from tests.builders import claim
    from tests.integration.ad.conftest import ADMIN

    engine = bridge.services.engine
    claim(engine, ADMIN, bridge.account_id, "anotherdomain.com")
    dn = bridge.dc.add_user(
        "shirley.rodriguez", ou_dn=bridge.seed.staff, mail="shirley.rodriguez@example.com",
        proxy_addresses=["SMTP:shirley.rodriguez@example.com",
                         "smtp:shirley.rodriguez@example2.com",
                         "smtp:srodriguez@anotherdomain.com", "X500:/o=Example/cn=shirley",
                         "SIP:shirley@example.com"])
    bridge.dc.add_member(bridge.seed.pro, dn)
    assert bridge.sync().status == "ok"
    guid = bridge.dc.get_guid(dn)

    # Incorrect configuration: example2.com is not claimed.
    user = bridge.user("shirley.rodriguez@example.com")
    assert user.primary_email == "shirley.rodriguez@example.com"
    assert set(user.aliases) == {"srodriguez@anotherdomain.com"}
    assert engine.resolve_address("srodriguez@anotherdomain.com") == (user.id, bridge.account_id)
    assert engine.resolve_address("shirley.rodriguez@example2.com") == (None, None)
    assert _decide(bridge, "srodriguez@anotherdomain.com", guid).allowed
    denied = _decide(bridge, "shirley.rodriguez@example2.com", guid)
    assert not denied.allowed and denied.reason == "domain_not_claimed"

    # Correct configuration: claim example2.com; the alias takes effect.
    claim(engine, ADMIN, bridge.account_id, "example2.com")
    assert engine.resolve_address("shirley.rodriguez@example2.com") == (user.id,
                                                                         bridge.account_id)
    assert _decide(bridge, "shirley.rodriguez@example2.com", guid).allowed
    assert bridge.sync().status == "ok"
    assert set(bridge.user("shirley.rodriguez@example.com").aliases) == {
        "srodriguez@anotherdomain.com", "shirley.rodriguez@example2.com"}


def test_disabled_user_cannot_sign_in_and_disable_is_incremental(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    off = dc.add_user("off", ou_dn=seed.staff, mail="off@example.com", disabled=True)
    on = dc.add_user("on", ou_dn=seed.staff, mail="on@example.com")
    for dn in (off, on):
        dc.add_member(seed.pro, dn)
    assert bridge.sync().status == "ok"
    assert not bridge.user("off@example.com").directory_enabled
    denied = _decide(bridge, "off@example.com", dc.get_guid(off))
    assert denied.reason == "disabled_in_directory"
    assert _decide(bridge, "on@example.com", dc.get_guid(on)).allowed

    dc.disable_user(on)
    report = bridge.sync()
    assert report.mode == "incremental" and report.suspended == 1 and report.updated == 1
    assert _decide(bridge, "on@example.com", dc.get_guid(on)).reason == "disabled_in_directory"
    dc.enable_user(on)
    assert bridge.sync().updated == 1
    assert _decide(bridge, "on@example.com", dc.get_guid(on)).allowed


def test_deleted_user_is_suspended_then_purged_after_grace(bridge: Bridge) -> None:
    from bridge.errors import NotFound

    dc, seed = bridge.dc, bridge.seed
    gone = dc.add_user("gone", ou_dn=seed.staff, mail="gone@example.com")
    stay = dc.add_user("stay", ou_dn=seed.staff, mail="stay@example.com")
    for dn in (gone, stay):
        dc.add_member(seed.basic, dn)
    assert bridge.sync().added == 2
    guid = dc.get_guid(gone)
    dc.delete(gone)

    report = bridge.sync()  # incremental: the tombstone (Show Deleted control)
    assert report.mode == "incremental" and report.suspended == 1 and report.deleted == 0
    user = bridge.user("gone@example.com")
    assert not user.in_directory
    assert _decide(bridge, "gone@example.com", guid).reason == "not_in_directory"

    bridge.clock.advance(days=6)
    assert bridge.sync().deleted == 0
    bridge.clock.advance(days=1, seconds=1)
    assert bridge.sync().deleted == 1
    with pytest.raises(NotFound):
        bridge.user("gone@example.com")
    assert bridge.user("stay@example.com").in_directory
    assert bridge.sync(full=True).suspended == 0  # the purged user is not "gone" twice


def test_moved_out_of_base_dn_is_suspended_and_back_is_restored(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    dn = dc.add_user("mover", ou_dn=seed.staff, mail="mover@example.com")
    dc.add_user("stayer", ou_dn=seed.staff, mail="stayer@example.com")
    other = dc.add_user("other", ou_dn=seed.elsewhere, mail="other@example.com")
    dc.add_member(seed.pro, dn)
    dc.add_member(seed.pro, other)
    assert bridge.sync().added == 2  # OU=Elsewhere is out of scope
    guid = dc.get_guid(dn)
    moved = dc.move(dn, seed.elsewhere)

    report = bridge.sync()
    assert report.mode == "incremental" and report.suspended == 1
    assert _decide(bridge, "mover@example.com", guid).reason == "not_in_directory"

    dc.move(moved, seed.staff)
    report = bridge.sync()
    assert report.restored == 1
    assert _decide(bridge, "mover@example.com", guid).allowed

    # The periodic full reconciliation catches a move as well.
    dc.move(f"CN=mover,{seed.staff}", seed.elsewhere)
    full = bridge.sync(full=True)
    assert full.mode == "full" and full.suspended == 1
    assert not bridge.user("mover@example.com").in_directory


def test_address_conflicts_are_reported_not_merged(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    first = dc.add_user("first", ou_dn=seed.staff, mail="same@example.com")
    second = dc.add_user("second", ou_dn=seed.staff, mail="same@example.com")
    for dn in (first, second):
        dc.add_member(seed.pro, dn)
    report = bridge.sync()
    assert report.added == 2
    assert len(report.conflicts) == 1
    conflict = report.conflicts[0]
    assert conflict["addresses"] == ["same@example.com"]
    owner_id, _ = bridge.services.engine.resolve_address("same@example.com")
    assert owner_id is not None and conflict["userId"] != owner_id  # two users, not merged
    records = bridge.records.present_users(bridge.account_id)
    assert {r.user_id for r in records.values()} == {owner_id, conflict["userId"]}
    # Reported again on every run while it lasts; resolved once the owner lets go.
    assert len(bridge.sync(full=True).conflicts) == 1
    assert len(bridge.sync().conflicts) == 1
    owner_dn = next(r.dn for r in records.values() if r.user_id == owner_id)
    bridge.dc.replace(owner_dn, {"mail": "owner@example.com"})
    report = bridge.sync()
    assert report.conflicts == []
    assert bridge.services.engine.resolve_address("same@example.com")[0] == conflict["userId"]


def test_mass_deletion_guard_stops_before_changing_anything(
        tmp_path: Path, sqlite_url: str, clock: FakeClock, dc: SambaDC, seed: Seed) -> None:
    from bridge import audit
    from bridge.store.db import transaction
    from tests.integration.ad.conftest import make_bridge

    gen = make_bridge(tmp_path, sqlite_url, clock, dc, seed, ad_mass_change_max_users=2)
    bridge = next(gen)
    dns = [dc.add_user(f"u{i}", ou_dn=seed.staff, mail=f"u{i}@example.com") for i in range(5)]
    assert bridge.sync().added == 5
    before = bridge.records.state(bridge.account_id)
    for dn in dns[:3]:
        dc.delete(dn)

    stopped = bridge.sync()
    assert stopped.status == "mass_change_stopped" and stopped.would_suspend == 3
    assert "--allow-mass-change" in (stopped.error or "")
    assert all(bridge.user(f"u{i}@example.com").in_directory for i in range(5))
    assert bridge.records.state(bridge.account_id).highest_usn == before.highest_usn
    with transaction(bridge.services.sessions) as session:
        events, _ = audit.lookup(session, audit.EventQuery(event_name="AdSyncMassChangeStopped"))
    assert len(events) == 1
    assert events[0]["responseElements"]["wouldSuspend"] == 3

    applied = bridge.sync(allow_mass_change=True)
    assert applied.status == "ok" and applied.suspended == 3
    assert [bridge.user(f"u{i}@example.com").in_directory for i in range(5)] == [
        False, False, False, True, True]
    next(gen, None)


def test_empty_result_where_users_existed_is_unknown(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    dns = [dc.add_user(f"e{i}", ou_dn=seed.staff, mail=f"e{i}@example.com") for i in range(3)]
    assert bridge.sync().added == 3
    for dn in dns:
        dc.move(dn, seed.elsewhere)
    report = bridge.sync(full=True, allow_mass_change=True)
    assert report.status == "unknown" and "no users" in (report.error or "")
    assert all(bridge.user(f"e{i}@example.com").in_directory for i in range(3))


def test_incremental_after_modify_add_delete_and_membership_change(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    a = dc.add_user("a", ou_dn=seed.staff, mail="a@example.com", display_name="A")
    b = dc.add_user("b", ou_dn=seed.staff, mail="b@example.com")
    c = dc.add_user("c", ou_dn=seed.staff, mail="c@example.com")
    for dn in (a, b, c):
        dc.add_member(seed.basic, dn)
    assert bridge.sync().added == 3
    usn = bridge.records.state(bridge.account_id).highest_usn

    dc.replace(a, {"mail": "a.new@example.com", "displayName": "A New",
                   "proxyAddresses": ["SMTP:a.new@example.com", "smtp:a@example.com"]})
    d = dc.add_user("d", ou_dn=seed.staff, mail="d@example.com")
    dc.add_member(seed.pro, d)
    dc.delete(c)
    dc.add_member(seed.pro_nested, b)  # only the group's USN changes

    report = bridge.sync()
    assert report.mode == "incremental", report.as_json()
    assert (report.added, report.updated, report.suspended) == (1, 2, 1)
    user_a = bridge.user("a.new@example.com")
    assert user_a.display_name == "A New" and user_a.aliases == ("a@example.com",)
    assert bridge.user("d@example.com").tier == Tier.PRO
    assert bridge.user("b@example.com").tier == Tier.PRO  # nested Pro via the group change
    assert not bridge.user("c@example.com").in_directory
    state = bridge.records.state(bridge.account_id)
    assert state.highest_usn is not None and usn is not None and state.highest_usn > usn

    dc.remove_member(seed.pro_nested, b)
    assert bridge.sync().updated == 1
    assert bridge.user("b@example.com").tier == Tier.BASIC


def test_dry_run_reports_without_changing(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    dc.add_user("x", ou_dn=seed.staff, mail="x@example.com")
    report = bridge.sync(dry_run=True)
    assert report.status == "ok" and report.added == 1 and report.dry_run
    assert bridge.services.engine.resolve_address("x@example.com") == (None, None)
    assert bridge.records.state(bridge.account_id).highest_usn is None


def test_restored_dc_new_invocation_id_forces_a_full_run(bridge: Bridge) -> None:
    from bridge.store.ad_models import AdDirectory
    from bridge.store.db import transaction

    bridge.dc.add_user("r1", ou_dn=bridge.seed.staff, mail="r1@example.com")
    assert bridge.sync().mode == "full"
    assert bridge.sync().mode == "incremental"
    # As if the DC had been restored from a backup: its invocationID no longer matches.
    with transaction(bridge.services.sessions) as session:
        row = session.get(AdDirectory, bridge.account_id)
        assert row is not None
        row.invocation_id = "00000000-0000-0000-0000-000000000000"
    report = bridge.sync()
    assert report.mode == "full" and report.status == "ok"
    assert any("invocationID" in w for w in report.warnings)
    assert report.watermark is not None
    assert report.watermark["invocationId"] != "00000000-0000-0000-0000-000000000000"


def test_dry_run_of_a_full_run_over_known_users_changes_nothing(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    keep = dc.add_user("keep", ou_dn=seed.staff, mail="keep@example.com")
    gone = dc.add_user("gone", ou_dn=seed.staff, mail="gone@example.com")
    assert bridge.sync().added == 2
    dc.delete(gone)
    dc.disable_user(keep)
    dc.add_user("new", ou_dn=seed.staff, mail="new@example.com")
    report = bridge.sync(full=True, dry_run=True, allow_mass_change=True)
    assert (report.added, report.updated, report.suspended) == (1, 1, 2)
    assert bridge.user("gone@example.com").in_directory
    assert bridge.user("keep@example.com").directory_enabled
    assert bridge.services.engine.resolve_address("new@example.com") == (None, None)
    applied = bridge.sync(full=True, allow_mass_change=True)
    assert (applied.added, applied.updated, applied.suspended) == (1, 1, 2)


def test_user_recreated_with_a_new_guid_gets_the_old_profile_back(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    dn = dc.add_user("rec", ou_dn=seed.staff, mail="rec@example.com")
    dc.add_member(seed.pro, dn)
    dc.add_user("bystander", ou_dn=seed.staff, mail="bystander@example.com")
    assert bridge.sync().added == 2
    profile = bridge.user("rec@example.com").id
    dc.delete(dn)
    assert bridge.sync().suspended == 1
    assert not bridge.user("rec@example.com").in_directory

    # Recreated: a new objectGUID, the same address. Re-linked and re-enabled, not a clash.
    dn = dc.add_user("rec", ou_dn=seed.staff, mail="rec@example.com")
    dc.add_member(seed.pro, dn)
    report = bridge.sync()
    assert (report.restored, report.added, report.conflicts) == (1, 0, [])
    assert any("recreated" in w for w in report.warnings)
    user = bridge.user("rec@example.com")
    assert user.id == profile and user.in_directory and user.tier == Tier.PRO
    guid = dc.get_guid(dn)
    assert bridge.records.guid_for_user(bridge.account_id, profile) == guid
    assert _decide(bridge, "rec@example.com", guid).allowed

    # Deleted and recreated between two runs: the deletion is applied first, then re-linked.
    dc.delete(dn)
    dn = dc.add_user("rec", ou_dn=seed.staff, mail="rec@example.com")
    dc.add_member(seed.pro, dn)
    report = bridge.sync()
    assert (report.suspended, report.restored, report.conflicts) == (1, 1, [])
    assert bridge.user("rec@example.com").id == profile
    assert _decide(bridge, "rec@example.com", dc.get_guid(dn)).allowed


def _rid(dc: SambaDC, dn: str) -> int:
    from ad_sync.vendor import ms_ad

    dc.admin.search(dn, "(objectClass=*)", "BASE", attributes=["objectSid"])
    rid = ms_ad.rid_from_sid(dc.admin.response[0]["raw_attributes"]["objectSid"][0])
    assert rid is not None
    return rid


def test_primary_group_counts_though_memberof_never_lists_it(bridge: Bridge) -> None:
    """AD keeps a user's primary group in ``primaryGroupID`` (a RID), not in ``memberOf``:
    a mapped group that is a user's primary group still gives its tier, nested too."""
    dc, seed = bridge.dc, bridge.seed
    direct = dc.add_user("prim", ou_dn=seed.staff, mail="prim@example.com")
    nested = dc.add_user("prin", ou_dn=seed.staff, mail="prin@example.com")
    dc.add_member(seed.pro, direct)
    dc.add_member(seed.pro_nested, nested)
    # Membership first (AD requires it), then the group becomes the primary one and
    # leaves memberOf.
    dc.replace(direct, {"primaryGroupID": str(_rid(dc, seed.pro))})
    dc.replace(nested, {"primaryGroupID": str(_rid(dc, seed.pro_nested))})
    dc.admin.search(direct, "(objectClass=*)", "BASE", attributes=["memberOf"])
    member_of = [dn.lower() for dn in dc.admin.response[0]["attributes"].get("memberOf", [])]
    assert seed.pro.lower() not in member_of  # the old primary, Domain Users, is listed now

    assert bridge.sync().status == "ok"
    assert bridge.user("prim@example.com").tier == Tier.PRO
    assert bridge.user("prin@example.com").tier == Tier.PRO  # nested in the mapped group

    # Back to Domain Users as the primary group (Chime-Pro becomes an explicit membership,
    # removed next): the Pro tier goes.
    dc.replace(direct, {"primaryGroupID": "513"})
    dc.remove_member(seed.pro, direct)
    assert bridge.sync().status == "ok"
    assert bridge.user("prim@example.com").tier is None


def test_domain_users_mapped_to_basic_covers_everyone(bridge: Bridge) -> None:
    from tests.integration.ad.conftest import ADMIN, directory_body

    dc, seed = bridge.dc, bridge.seed
    bridge.services.engine.ad_directories.connect(ADMIN, bridge.account_id,
                         directory_body(dc, seed, GroupBaseDn=dc.base_dn),
                         lambda cfg: None)
    bridge.services.engine.add_or_update_group_mappings(
        ADMIN, bridge.account_id, {"Domain Users": Tier.BASIC})
    dc.add_user("plain", ou_dn=seed.staff, mail="plain@example.com")
    pro = dc.add_user("propl", ou_dn=seed.staff, mail="propl@example.com")
    dc.add_member(seed.pro, pro)

    report = bridge.sync(full=True)
    assert report.status == "ok", report.as_json()
    assert bridge.user("plain@example.com").tier == Tier.BASIC
    assert bridge.user("propl@example.com").tier == Tier.PRO


def test_deleting_a_mapped_group_takes_its_tier_away_incrementally(bridge: Bridge) -> None:
    """Deleting a group removes its members' memberOf back-links without changing the
    users' uSNChanged: the incremental run must notice the group's tombstone."""
    dc, seed = bridge.dc, bridge.seed
    dn = dc.add_user("gina", ou_dn=seed.staff, mail="gina@example.com")
    dc.add_member(seed.basic, dn)
    assert bridge.sync().added == 1
    assert bridge.user("gina@example.com").tier == Tier.BASIC

    dc.delete(seed.basic)
    report = bridge.sync()
    assert report.mode == "incremental" and report.status == "ok", report.as_json()
    assert bridge.user("gina@example.com").tier is None
    assert any("Chime-Basic" in w for w in report.warnings)
