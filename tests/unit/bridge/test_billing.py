"""The month's bill from meeting records and the tier history — both stores. The AD sync
moves a host from Pro to Basic mid-day; the bill charges only what was hosted under Pro."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from bridge.domain import Actor, DirectoryKind, IdentitySource, Tier
from bridge.domain.usage import JoinMethod
from bridge.engine import ResolutionEngine
from bridge.engine.results import DirectoryUserInput
from bridge.errors import NotFound
from tests.builders import default_identity, enterprise
from tests.conftest import FakeClock
from tests.unit.bridge.usage_builders import SERVICE, meeting

NOV10 = datetime(2026, 11, 10, tzinfo=UTC)
SYNC = Actor.system("ad-sync")


def _ad_page(engine: ResolutionEngine, account_id: str, users: dict[str, list[str]]
             ) -> dict[str, str]:
    outcomes = engine.apply_directory_users(
        SYNC, account_id, IdentitySource.ACTIVE_DIRECTORY,
        [DirectoryUserInput(f"guid-{mail}", mail, groups=groups)
         for mail, groups in users.items()], event_name="AdSyncUser")
    return {o.result.user.primary_email: o.result.user.id for o in outcomes
            if o.result is not None}


def test_the_bill_of_a_month(engine: ResolutionEngine, admin: Actor, clock: FakeClock) -> None:
    clock.now = datetime(2026, 10, 1, tzinfo=UTC)
    account = enterprise(engine, admin, ["corp.example"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups={"Pros": Tier.PRO, "Staff": Tier.BASIC})
    ids = _ad_page(engine, account.id, {"ann@corp.example": ["Pros"],
                                        "bob@corp.example": ["Pros"],
                                        "cat@corp.example": ["Staff"]})
    trial = engine.decide_sign_in(default_identity("tom@free.example"), admin)
    assert trial.account_id is None and trial.tier is Tier.PRO
    # 13:00 on Nov 10: the AD sync moves Ann from Pro to Basic
    clock.now = NOV10.replace(hour=13)
    _ad_page(engine, account.id, {"ann@corp.example": ["Staff"]})

    records = [
        # Ann: Pro at 12:30 (scheduled) → charged; Basic at 14:00 → not
        meeting("a1", "ann@corp.example", NOV10.replace(hour=12, minute=30), scheduled=True),
        meeting("a2", "ann@corp.example", NOV10.replace(hour=14), scheduled=True),
        # Cat is Basic: never charged
        meeting("c1", "cat@corp.example", NOV10.replace(hour=9), scheduled=True),
        # Tom, in his trial: charged to no account
        meeting("t1", "tom@free.example", NOV10.replace(hour=9), scheduled=True),
        # Bob: a plain 1:1 on Nov 2 (no condition) → not charged
        meeting("b0", "bob@corp.example", datetime(2026, 11, 2, 10, tzinfo=UTC),
                attendees=[("bob@corp.example", JoinMethod.APP),
                           ("ann@corp.example", JoinMethod.APP)]),
        # Bob: Nov 30 23:30 → Dec 1 00:20, dialled in: counts on Dec 1, not in November
        meeting("b9", "bob@corp.example", datetime(2026, 12, 1, 0, 20, tzinfo=UTC),
                minutes=50, attendees=[("bob@corp.example", JoinMethod.APP),
                                       (None, JoinMethod.DIAL_IN)]),
    ]
    # Bob: one condition each on six days → 6 x 3.00 capped at 15.00; two meetings a day
    # count once
    conditions = [{"scheduled": True}, {"recordings": 1},
                  {"attendees": [("bob@corp.example", JoinMethod.APP), (None, JoinMethod.H323)]},
                  {"attendees": [("bob@corp.example", JoinMethod.APP), (None, JoinMethod.SIP)]},
                  {"attendees": [("bob@corp.example", JoinMethod.APP), ("x@o.test",
                                 JoinMethod.APP), ("y@o.test", JoinMethod.APP)]},
                  {"scheduled": True}]
    for day, extra in enumerate(conditions, start=3):
        for n in range(2):
            records.append(meeting(f"b{day}-{n}", "bob@corp.example",
                                   datetime(2026, 11, day, 10 + n, tzinfo=UTC),
                                   **extra))  # type: ignore[arg-type]
    clock.now = datetime(2026, 12, 2, tzinfo=UTC)
    assert all(o.error is None for o in engine.put_usage(SERVICE, records, []))

    bill = engine.bill(account.id, 2026, 11)
    lines = {line.primary_email: (line.active_days, line.charge) for line in bill.lines}
    assert lines == {
        "ann@corp.example": ((date(2026, 11, 10),), Decimal("3.00")),
        "bob@corp.example": (tuple(date(2026, 11, d) for d in range(3, 9)), Decimal("15.00")),
    }
    assert (bill.total, bill.active_pro_days, bill.currency) == (Decimal("18.00"), 7, "USD")
    assert [line.user_id for line in engine.bill(account.id, 2026, 12).lines] == [
        ids["bob@corp.example"]]

    # Reproducible: later changes (Bob demoted in December) do not move November's bill.
    clock.now = datetime(2026, 12, 5, tzinfo=UTC)
    _ad_page(engine, account.id, {"bob@corp.example": ["Staff"]})
    engine.roll_up_usage()
    assert engine.bill(account.id, 2026, 11) == bill


def test_pricing_comes_from_the_settings(store_url: str, tmp_path: object,
                                         clock: FakeClock, admin: Actor) -> None:
    from pathlib import Path

    from bridge.services import build_services
    from tests.conftest import make_settings

    assert isinstance(tmp_path, Path)
    services = build_services(make_settings(tmp_path, store_url, billing_daily_rate="2.50",
                                            billing_monthly_cap="4.00",
                                            billing_currency="EUR"), clock=clock)
    try:
        engine = services.engine
        clock.now = datetime(2026, 10, 1, tzinfo=UTC)
        account = engine.create_account(admin, "Team")
        [invitation], _ = engine.invite_users(admin, account.id, ["amy@team.test"])
        engine.accept_invitation(admin, invitation.token)
        clock.now = datetime(2026, 12, 1, tzinfo=UTC)
        engine.put_usage(SERVICE, [meeting(f"m{d}", "amy@team.test",
                                           datetime(2026, 11, d, 9, tzinfo=UTC),
                                           scheduled=True) for d in (1, 2)], [])
        bill = engine.bill(account.id, 2026, 11)
        assert (bill.currency, bill.total, bill.lines[0].charge) == (
            "EUR", Decimal("4.00"), Decimal("4.00"))
        with pytest.raises(NotFound):
            engine.bill("no-such-account", 2026, 11)
    finally:
        services.db.dispose()


def test_a_month_without_usage_is_an_empty_bill(engine: ResolutionEngine, admin: Actor,
                                                clock: FakeClock) -> None:
    account = engine.create_account(admin, "Quiet")
    clock.now += timedelta(days=40)
    assert engine.bill(account.id, 2026, 11).lines == ()


def test_an_invited_user_is_charged_only_once_they_accept(
        engine: ResolutionEngine, admin: Actor, clock: FakeClock) -> None:
    """Until they accept, an invited unmanaged user signs in under their own trial: what
    they host then is charged to no account."""
    clock.now = NOV10
    engine.decide_sign_in(default_identity("ivy@free.example"), admin)  # trial starts
    account = engine.create_account(admin, "Team")
    [invitation], _ = engine.invite_users(admin, account.id, ["ivy@free.example"])
    clock.now = NOV10.replace(hour=12)
    engine.accept_invitation(admin, invitation.token)
    clock.now = datetime(2026, 12, 1, tzinfo=UTC)
    engine.put_usage(SERVICE, [
        meeting("i1", "ivy@free.example", NOV10.replace(hour=11), scheduled=True),
        meeting("i2", "ivy@free.example", NOV10 + timedelta(days=1, hours=9),
                scheduled=True)], [])
    [line] = engine.bill(account.id, 2026, 11).lines
    assert line.active_days == (date(2026, 11, 11),)
