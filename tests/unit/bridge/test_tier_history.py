"""The tier history: every license change, from any door, with the engine's time, in the
change's own transaction — on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain import Actor, DirectoryKind, IdentitySource, Tier
from bridge.domain.usage import License, license_at
from bridge.engine import ResolutionEngine
from bridge.engine.results import DirectoryUserInput
from bridge.errors import BridgeError
from tests.builders import enterprise
from tests.conftest import FakeClock

MORNING = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


def tiers(history: list[License]) -> list[tuple[datetime, str | None, Tier | None]]:
    return [(h.since, h.account_id, h.tier) for h in history]


@pytest.fixture
def at_nine(clock: FakeClock) -> FakeClock:
    clock.now = MORNING
    return clock


def test_an_ad_group_change_moves_a_user_from_pro_to_basic_mid_day(
        engine: ResolutionEngine, admin: Actor, at_nine: FakeClock) -> None:
    """The AD sync's page entry point (what ad_sync.sync calls): memberships change at
    13:00, the license at 12:59 was Pro, from 13:00 Basic."""
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups={"Pros": Tier.PRO, "Staff": Tier.BASIC})
    sync = Actor.system("ad-sync")

    def page(groups: list[str]) -> str:
        [outcome] = engine.apply_directory_users(
            sync, account.id, IdentitySource.ACTIVE_DIRECTORY,
            [DirectoryUserInput("guid-1", "ann@example.com", groups=groups)],
            event_name="AdSyncUser")
        assert outcome.result is not None
        return outcome.result.user.id

    user_id = page(["Pros", "Staff"])
    at_nine.now = MORNING.replace(hour=13)
    assert page(["Staff"]) == user_id
    at_nine.now = MORNING.replace(hour=15)
    page(["Staff"])  # no change: no row
    history = engine.license_history(user_id)
    assert tiers(history) == [(MORNING, account.id, Tier.PRO),
                              (MORNING.replace(hour=13), account.id, Tier.BASIC)]
    assert license_at(history, MORNING.replace(hour=12, minute=59)).tier is Tier.PRO  # type: ignore[union-attr]
    assert license_at(history, MORNING.replace(hour=13)).tier is Tier.BASIC  # type: ignore[union-attr]


def test_the_ad_sync_per_user_path_records_too(engine: ResolutionEngine, admin: Actor,
                                                at_nine: FakeClock) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups={"Pros": Tier.PRO, "Staff": Tier.BASIC})
    result = engine.upsert_directory_user(
        admin, account.id, source=IdentitySource.ACTIVE_DIRECTORY, external_id="g",
        primary_email="bo@example.com", other_emails=[], enabled=True)
    engine.set_user_groups(admin, account.id, result.user.id, ["Pros"], create_missing=True)
    at_nine.advance(hours=4)
    engine.set_user_groups(admin, account.id, result.user.id, ["Staff"], create_missing=True)
    assert tiers(engine.license_history(result.user.id)) == [
        (MORNING, account.id, Tier.PRO), (MORNING + timedelta(hours=4), account.id, Tier.BASIC)]


def test_a_scim_group_push_changes_the_tier_with_its_time(
        engine: ResolutionEngine, admin: Actor, at_nine: FakeClock) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.OKTA)
    okta = Actor.system("okta")
    user = engine.upsert_directory_user(
        okta, account.id, source=IdentitySource.SCIM, external_id="00u1",
        primary_email="cy@example.com", other_emails=[], enabled=True).user
    pros = engine.upsert_group(okta, account.id, name="Pros")
    staff = engine.upsert_group(okta, account.id, name="Staff")
    engine.add_or_update_group_mappings(admin, account.id, {"Pros": Tier.PRO,
                                                             "Staff": Tier.BASIC})
    engine.change_group_members(okta, account.id, pros.id, add=[user.id])
    engine.change_group_members(okta, account.id, staff.id, add=[user.id])
    at_nine.advance(hours=5)
    engine.change_group_members(okta, account.id, pros.id, remove=[user.id])
    at_nine.advance(hours=1)
    engine.change_group_members(okta, account.id, staff.id, remove=[user.id])
    assert tiers(engine.license_history(user.id)) == [
        (MORNING, account.id, Tier.PRO),
        (MORNING + timedelta(hours=5), account.id, Tier.BASIC),
        (MORNING + timedelta(hours=6), account.id, None)]


def test_console_license_changes_invitations_and_removal(
        engine: ResolutionEngine, admin: Actor, at_nine: FakeClock) -> None:
    account = engine.create_account(admin, "Team")
    [invitation], _ = engine.invite_users(admin, account.id, ["dee@team.test"])
    at_nine.advance(hours=1)
    user = engine.accept_invitation(admin, invitation.token)
    at_nine.advance(hours=1)
    engine.update_user_licenses(admin, account.id, {user.id: Tier.BASIC})
    engine.update_user_licenses(admin, account.id, {user.id: Tier.BASIC})  # no change
    at_nine.advance(hours=1)
    engine.remove_users(admin, account.id, [user.id])
    assert tiers(engine.license_history(user.id)) == [
        (MORNING, None, Tier.PRO),  # invited: not in the account's license until accepted
        (MORNING + timedelta(hours=1), account.id, Tier.PRO),
        (MORNING + timedelta(hours=2), account.id, Tier.BASIC),
        (MORNING + timedelta(hours=3), None, Tier.BASIC)]


def test_a_refused_change_records_nothing(engine: ResolutionEngine, admin: Actor,
                                          at_nine: FakeClock) -> None:
    """The history is written in the change's transaction: a refusal rolls it back."""
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.OKTA)
    okta = Actor.system("okta")
    user = engine.upsert_directory_user(
        okta, account.id, source=IdentitySource.SCIM, external_id="00u2",
        primary_email="ed@example.com", other_emails=[], enabled=True).user
    pros = engine.upsert_group(okta, account.id, name="Pros")
    engine.add_or_update_group_mappings(admin, account.id, {"Pros": Tier.PRO})
    with pytest.raises(BridgeError):  # an unknown member: the whole change is refused
        engine.change_group_members(okta, account.id, pros.id, add=[user.id, "nobody"])
    assert engine.license_history(user.id) == []
