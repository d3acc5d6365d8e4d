"""The billing room: an account's month under usage-based pricing.

Reads only what is kept for good — the meeting records and the tier history — and applies
the pure rule (:mod:`bridge.domain.usage`), so a month's bill is the same whenever it is
computed: later tier changes, sign-ins or roll-ups do not move it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select

from bridge.domain.usage import HostedMeeting, JoinMethod, Pricing, active_pro_days, bill_lines
from bridge.engine.room import Clock, Room, chunks
from bridge.engine.unit_of_work import UnitOfWork
from bridge.engine.usage_results import Bill, BillUserLine
from bridge.errors import NotFound, ValidationError
from bridge.store import licenses
from bridge.store.models import EmailAddress
from bridge.store.repository import Repository
from bridge.store.usage_models import Meeting, TierChange


def parse_month(text: str | None) -> tuple[int, int]:
    """``YYYY-MM`` → (year, month). Raises ValidationError."""
    try:
        if text is None or len(text) != 7 or text[4] != "-":
            raise ValueError
        year, month = int(text[:4]), int(text[5:])
        date(year, month, 1)
    except ValueError:
        raise ValidationError("month must be YYYY-MM, e.g. 2026-11.", field="month") from None
    return year, month


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in UTC."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def hosted(row: Meeting) -> HostedMeeting:
    methods = frozenset(JoinMethod(m) for m in row.join_methods.split(",") if m)
    assert row.organizer_user_id is not None  # noqa: S101 - selected on it
    return HostedMeeting(row.organizer_user_id, row.ended_at, row.scheduled,
                         row.attendee_count, len(row.recording_events), methods)


class Billing(Room):
    """Active Pro days and charges per account and month."""

    def __init__(self, uow: UnitOfWork, clock: Clock, pricing: Pricing) -> None:
        super().__init__(uow, clock)
        self.pricing = pricing

    def bill(self, account_id: str, year: int, month: int) -> Bill:
        """The account's bill for the month: for each user with at least one Active Pro
        day charged to the account, the days and the charge (daily rate, monthly cap).
        Raises NotFound for an unknown account."""
        start, end = month_bounds(year, month)

        def work(repo: Repository) -> Bill:
            self._account(repo, account_id)
            session = repo.session
            # Hosts who held a license in this account before the month ended: only their
            # meetings can be charged to it.
            hosts = sorted(set(session.scalars(
                select(TierChange.user_id).where(TierChange.account_id == account_id,
                                                 TierChange.changed_at < end).distinct())))
            meetings: list[HostedMeeting] = []
            for chunk in chunks(hosts):
                meetings.extend(hosted(row) for row in session.scalars(
                    select(Meeting).where(Meeting.organizer_user_id.in_(chunk),
                                          Meeting.ended_at >= start, Meeting.ended_at < end)))
            histories = licenses.timelines(session, {m.host_id for m in meetings}, end)
            lines = bill_lines(active_pro_days(meetings, histories), account_id, year, month,
                               self.pricing)
            emails: dict[str, str] = {}
            for chunk in chunks([line.user_id for line in lines]):
                emails.update(list(session.execute(
                    select(EmailAddress.user_id, EmailAddress.address)
                    .where(EmailAddress.user_id.in_(chunk),
                           EmailAddress.is_primary.is_(True))).tuples()))
            return Bill(account_id, f"{year:04d}-{month:02d}", self.pricing.currency,
                        self.pricing.daily_rate, self.pricing.monthly_cap,
                        tuple(BillUserLine(line.user_id, emails.get(line.user_id),
                                           line.active_days, line.charge)
                              for line in lines))

        return self._read(work, write_lock=False)

    def bills(self, year: int, month: int) -> list[Bill]:
        """Every account's bill for the month (accounts with a charge), by account id."""
        _start, end = month_bounds(year, month)
        accounts = self._read(lambda repo: sorted({a for a in repo.session.scalars(
            select(TierChange.account_id).where(TierChange.account_id.is_not(None),
                                                TierChange.changed_at < end).distinct())
            if a is not None}), write_lock=False)
        out: list[Bill] = []
        for account_id in accounts:
            try:
                bill = self.bill(account_id, year, month)
            except NotFound:  # deleted meanwhile: no bill
                continue
            if bill.lines:
                out.append(bill)
        return out


PUBLISHED_PRICING = Pricing(Decimal("3.00"), Decimal("15.00"), "USD")


def pricing_of(daily_rate: str, monthly_cap: str, currency: str) -> Pricing:
    """The pricing of the settings (validated by config: decimal strings)."""
    return Pricing(Decimal(daily_rate), Decimal(monthly_cap), currency)
