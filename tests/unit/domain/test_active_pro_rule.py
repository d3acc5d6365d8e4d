"""The Active Pro rule and the monthly charge (bridge.domain.usage), exactly as the guide
states them: five conditions one by one and together, the day a meeting counts on, the
license held at the meeting's end, trial users charged to no account, the cap."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.domain import Tier
from bridge.domain.usage import (
    ActiveProDay,
    HostedMeeting,
    JoinMethod,
    License,
    Pricing,
    active_pro_days,
    bill_lines,
    charge,
    license_at,
    qualifies,
)

T0 = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
PRO = [License(T0 - timedelta(days=30), "acct", Tier.PRO)]
PRICING = Pricing(Decimal("3.00"), Decimal("15.00"), "USD")


def meeting(*, scheduled: bool = False, attendees: int = 2, recordings: int = 0,
            methods: frozenset[JoinMethod] = frozenset({JoinMethod.APP}),
            ended_at: datetime = T0 + timedelta(hours=12), host: str = "u1") -> HostedMeeting:
    return HostedMeeting(host, ended_at, scheduled, attendees, recordings, methods)


def test_a_plain_meeting_does_not_qualify() -> None:
    assert not qualifies(meeting())
    assert active_pro_days([meeting()], {"u1": PRO}) == set()


@pytest.mark.parametrize("condition", [
    {"scheduled": True},
    {"attendees": 3},
    {"recordings": 1},
    {"methods": frozenset({JoinMethod.APP, JoinMethod.DIAL_IN})},
    {"methods": frozenset({JoinMethod.H323})},
    {"methods": frozenset({JoinMethod.SIP})},
])
def test_each_condition_alone_makes_the_host_active_pro(condition: dict[str, object]) -> None:
    hosted = meeting(**condition)  # type: ignore[arg-type]
    assert qualifies(hosted)
    assert active_pro_days([hosted], {"u1": PRO}) == {
        ActiveProDay("acct", "u1", date(2026, 11, 10))}


def test_the_boundaries_of_the_conditions() -> None:
    assert not qualifies(meeting(attendees=2))  # "more than two"
    assert qualifies(meeting(attendees=3))
    assert not qualifies(meeting(recordings=0))
    assert not qualifies(meeting(methods=frozenset()))


conditions = st.fixed_dictionaries({
    "scheduled": st.booleans(), "attendees": st.integers(0, 10),
    "recordings": st.integers(0, 3),
    "methods": st.frozensets(st.sampled_from(list(JoinMethod))),
})


@given(conditions)
def test_any_combination_qualifies_iff_one_condition_holds(c: dict[str, object]) -> None:
    methods = c["methods"]
    assert isinstance(methods, frozenset)
    expected = (bool(c["scheduled"]) or int(c["attendees"]) > 2  # type: ignore[call-overload]
                or int(c["recordings"]) >= 1  # type: ignore[call-overload]
                or bool(methods & {JoinMethod.DIAL_IN, JoinMethod.H323, JoinMethod.SIP}))
    assert qualifies(meeting(**c)) is expected  # type: ignore[arg-type]


def test_a_meeting_across_midnight_counts_on_the_day_it_ended() -> None:
    late = meeting(scheduled=True, ended_at=T0 + timedelta(days=1, minutes=20))
    assert active_pro_days([late], {"u1": PRO}) == {
        ActiveProDay("acct", "u1", date(2026, 11, 11))}
    # an end at 23:59:59 stays on its day; midnight exactly is the next day
    assert {d.day for d in active_pro_days(
        [meeting(scheduled=True, ended_at=T0 + timedelta(hours=23, minutes=59, seconds=59)),
         meeting(scheduled=True, ended_at=T0 + timedelta(days=1))], {"u1": PRO})} == {
        date(2026, 11, 10), date(2026, 11, 11)}


def test_the_license_at_the_meetings_end_counts() -> None:
    demoted = [*PRO, License(T0 + timedelta(hours=13), "acct", Tier.BASIC)]
    before = meeting(scheduled=True, ended_at=T0 + timedelta(hours=12, minutes=59))
    after = meeting(scheduled=True, ended_at=T0 + timedelta(hours=14))
    assert active_pro_days([before], {"u1": demoted}) == {
        ActiveProDay("acct", "u1", date(2026, 11, 10))}
    assert active_pro_days([after], {"u1": demoted}) == set()
    # a change at the very instant the meeting ends is the license held at its end
    at_end = meeting(scheduled=True, ended_at=T0 + timedelta(hours=13))
    assert active_pro_days([at_end], {"u1": demoted}) == set()


def test_basic_hosts_and_hosts_without_history_are_not_charged() -> None:
    basic = [License(T0 - timedelta(days=1), "acct", Tier.BASIC)]
    assert active_pro_days([meeting(scheduled=True)], {"u1": basic}) == set()
    assert active_pro_days([meeting(scheduled=True)], {}) == set()
    later = [License(T0 + timedelta(days=2), "acct", Tier.PRO)]  # Pro only afterwards
    assert active_pro_days([meeting(scheduled=True)], {"u1": later}) == set()


def test_trial_users_are_charged_to_no_account() -> None:
    trial = [License(T0 - timedelta(days=3), None, Tier.PRO)]
    days = active_pro_days([meeting(scheduled=True)], {"u1": trial})
    assert days == {ActiveProDay(None, "u1", date(2026, 11, 10))}
    assert bill_lines(days, "acct", 2026, 11, PRICING) == []


def test_one_day_is_charged_once_however_many_meetings() -> None:
    many = [meeting(scheduled=True, ended_at=T0 + timedelta(hours=h)) for h in range(1, 10)]
    lines = bill_lines(active_pro_days(many, {"u1": PRO}), "acct", 2026, 11, PRICING)
    assert [(line.user_id, len(line.active_days), line.charge) for line in lines] == [
        ("u1", 1, Decimal("3.00"))]


def test_the_monthly_cap() -> None:
    assert charge(0, PRICING) == Decimal("0.00")
    assert charge(4, PRICING) == Decimal("12.00")
    assert charge(5, PRICING) == Decimal("15.00")
    assert charge(22, PRICING) == Decimal("15.00")


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 23), st.booleans(),
                          st.sampled_from(["u1", "u2", "u3"])), max_size=40),
       st.lists(st.tuples(st.integers(-5, 40), st.sampled_from([Tier.PRO, Tier.BASIC, None]),
                          st.sampled_from(["acct", "other", None])), max_size=6))
def test_bills_hold_the_rules_invariants(raw_meetings: list[tuple[int, int, bool, str]],
                                         raw_changes: list[tuple[int, Tier | None,
                                                                 str | None]]) -> None:
    history = sorted((License(T0 + timedelta(days=d), a, t) for d, t, a in raw_changes),
                     key=lambda h: h.since)
    meetings = [meeting(scheduled=s, ended_at=T0 + timedelta(days=d, hours=h), host=u)
                for d, h, s, u in raw_meetings]
    histories = {"u1": history, "u2": history, "u3": history}
    days = active_pro_days(meetings, histories)
    for entry in days:
        # every day charged comes from a qualifying meeting ended that day under Pro
        assert any(m.host_id == entry.user_id and m.ended_at.date() == entry.day
                   and qualifies(m) and (held := license_at(history, m.ended_at)) is not None
                   and held.tier is Tier.PRO and held.account_id == entry.account_id
                   for m in meetings)
    lines = bill_lines(days, "acct", 2026, 11, PRICING)
    for line in lines:
        assert Decimal("0") < line.charge <= PRICING.monthly_cap
        assert line.charge == min(PRICING.daily_rate * len(line.active_days),
                                  PRICING.monthly_cap)
        assert all(d.month == 11 and d.year == 2026 for d in line.active_days)
    # the same inputs give the same bill, in any order
    assert bill_lines(active_pro_days(list(reversed(meetings)), histories), "acct", 2026, 11,
                      PRICING) == lines
