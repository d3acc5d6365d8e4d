"""Usage-based pricing: the Active Pro rule and the monthly charge, as pure functions.

The guide (Manage ProTrials; Getting Started): *Users with a Pro license are considered
Active Pro if they hosted a meeting that ended on a calendar day and at least one of the
following occurred: the meeting was scheduled; it included more than two attendees; it had
at least one recording event; it included an attendee that dialed in; it included an
attendee that joined with H.323 or SIP.* Basic users, attendees and chat users are not
charged; unmanaged users (in their 30-day trial) are charged to no account.

Here: the calendar day is the UTC date of the meeting's end; the license is the one the
engine had decided at that instant (the last tier change at or before it); the account
charged is the one the host belonged to at that instant (none for an unmanaged user).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from bridge.domain import Tier


class JoinMethod(StrEnum):
    APP = "app"
    DIAL_IN = "dial-in"
    H323 = "h323"
    SIP = "sip"


@dataclass(frozen=True)
class License:
    """From ``since`` on, the user held ``tier`` in ``account_id`` (None: unmanaged)."""

    since: datetime
    account_id: str | None
    tier: Tier | None


@dataclass(frozen=True)
class HostedMeeting:
    """The facts of one ended meeting the rule reads. ``attendees``: distinct attendees
    (people, the host included when they joined)."""

    host_id: str
    ended_at: datetime
    scheduled: bool
    attendees: int
    recording_events: int
    join_methods: frozenset[JoinMethod]


@dataclass(frozen=True, order=True)
class ActiveProDay:
    """``user_id`` was Active Pro on ``day``, charged to ``account_id`` (None: no account —
    an unmanaged user in their trial)."""

    account_id: str | None
    user_id: str
    day: date


def qualifies(meeting: HostedMeeting) -> bool:
    """At least one of the guide's five conditions holds."""
    return (meeting.scheduled
            or meeting.attendees > 2
            or meeting.recording_events >= 1
            or JoinMethod.DIAL_IN in meeting.join_methods
            or bool(meeting.join_methods & {JoinMethod.H323, JoinMethod.SIP}))


def end_day(ended_at: datetime) -> date:
    """The UTC calendar day a meeting counts on: the day it ended."""
    return ended_at.astimezone(UTC).date()


def license_at(history: Sequence[License], at: datetime) -> License | None:
    """The license in force at ``at``: the last change at or before it (None before the
    first). ``history`` is in time order."""
    current: License | None = None
    for entry in history:
        if entry.since > at:
            break
        current = entry
    return current


def active_pro_days(meetings: Iterable[HostedMeeting],
                    histories: Mapping[str, Sequence[License]]) -> set[ActiveProDay]:
    """Every (account, user, day) on which a host was Active Pro: a qualifying meeting
    they hosted ended that day while they held Pro."""
    days: set[ActiveProDay] = set()
    for meeting in meetings:
        if not qualifies(meeting):
            continue
        held = license_at(histories.get(meeting.host_id, ()), meeting.ended_at)
        if held is None or held.tier is not Tier.PRO:
            continue
        days.add(ActiveProDay(held.account_id, meeting.host_id, end_day(meeting.ended_at)))
    return days


@dataclass(frozen=True)
class Pricing:
    daily_rate: Decimal
    monthly_cap: Decimal
    currency: str


@dataclass(frozen=True)
class BillLine:
    user_id: str
    active_days: tuple[date, ...]
    charge: Decimal


def charge(days: int, pricing: Pricing) -> Decimal:
    """``days`` x the daily rate, at most the monthly cap, to the cent."""
    amount = min(pricing.daily_rate * days, pricing.monthly_cap)
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def bill_lines(days: Iterable[ActiveProDay], account_id: str, year: int, month: int,
               pricing: Pricing) -> list[BillLine]:
    """One account's bill for a month: its users' Active Pro days of that month and each
    user's charge, ordered by user id (the same inputs always give the same bill)."""
    per_user: dict[str, set[date]] = defaultdict(set)
    for entry in days:
        if entry.account_id == account_id and (entry.day.year, entry.day.month) == (year,
                                                                                 month):
            per_user[entry.user_id].add(entry.day)
    return [BillLine(uid, tuple(sorted(per_user[uid])), charge(len(per_user[uid]), pricing))
            for uid in sorted(per_user)]
