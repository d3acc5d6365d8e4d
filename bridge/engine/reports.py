"""The reports room: the guide's Reports actions, read from the roll-up and the records.

- the dashboard (ListAccountUsageReports): a date range's figures from ``usage_days`` (one
  row per day) and ``usage_user_years`` (one row per active user and year), so a year of an
  account of 100k users reads ~365 + ~100k small rows, never the records;
- meetings ended in a range (ListMeetingReports), a meeting's details (GetMeetingDetails)
  and its events (ListMeetingEvents) read the meeting records themselves;
- a user's activity summary (GetUserActivitySummary, GetUser) reads that user's records.
Every read is scoped to one account: a meeting or user of another account is NotFound.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, or_, select

from bridge.domain import UserStatus
from bridge.engine.room import Room
from bridge.engine.usage_results import (
    ActivitySummary,
    AttendeeView,
    MeetingDetails,
    MeetingEvent,
    MeetingView,
    UsageDayView,
    UsageSummary,
)
from bridge.errors import NotFound, ValidationError
from bridge.store.models import User
from bridge.store.repository import Repository
from bridge.store.usage_models import (
    MONTH_COLUMNS,
    ChatCount,
    Meeting,
    MeetingAttendee,
    UsageDay,
    UsageUserYear,
)

MAX_RANGE_DAYS = 366 * 2


def check_range(start: date, end: date) -> None:
    if end < start:
        raise ValidationError("The end date is before the start date.")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ValidationError(f"A report covers at most {MAX_RANGE_DAYS} days.")


def _month_mask(year: int, month: int, start: date, end: date) -> int:
    """Bits of the days of (year, month) inside [start, end]."""
    first = date(year, month, 1)
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))
    lo, hi = max(first, start), min(last, end)
    if lo > hi:
        return 0
    return ((1 << hi.day) - 1) & ~((1 << (lo.day - 1)) - 1)


def _meeting_view(row: Meeting) -> MeetingView:
    return MeetingView(row.meeting_id, row.conference_id, row.organizer,
                       row.organizer_user_id, row.scheduled, row.started_at, row.ended_at,
                       row.attendee_count, row.guest_count, row.positive_feedback,
                       row.negative_feedback)


class Reports(Room):
    """Read-only: the pipeline of each door audits the reads it serves."""

    def usage_summary(self, account_id: str, start: date, end: date) -> UsageSummary:
        """The dashboard's figures for [start, end] (UTC days, both included)."""
        check_range(start, end)

        def work(repo: Repository) -> UsageSummary:
            self._account(repo, account_id)
            session = repo.session
            meetings, positive, negative, chats, rolled = session.execute(
                select(func.coalesce(func.sum(UsageDay.meetings_held), 0),
                       func.coalesce(func.sum(UsageDay.positive_feedback), 0),
                       func.coalesce(func.sum(UsageDay.negative_feedback), 0),
                       func.coalesce(func.sum(UsageDay.chat_messages), 0),
                       func.max(UsageDay.rolled_up_at))
                .where(UsageDay.account_id == account_id, UsageDay.day >= start,
                       UsageDay.day <= end)).one()
            end_of_range = datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
            registered = session.scalar(
                select(func.count()).select_from(User)
                .where(User.account_id == account_id,
                       User.status == UserStatus.REGISTERED.value,
                       func.coalesce(User.joined_at, User.created_at) < end_of_range)) or 0
            return UsageSummary(start, end, registered, self._active(repo, account_id, start,
                                                                      end),
                                int(meetings), int(positive), int(negative), int(chats), rolled)

        return self._read(work, write_lock=False)

    @staticmethod
    def _active(repo: Repository, account_id: str, start: date, end: date) -> int:
        """Distinct users active on a day of the range: one row per user and year."""
        users: set[str] = set()
        for year in range(start.year, end.year + 1):
            conditions = []
            for month, column in enumerate(MONTH_COLUMNS, start=1):
                mask = _month_mask(year, month, start, end)
                if mask:
                    conditions.append(getattr(UsageUserYear, column).op("&")(mask) != 0)
            stmt = (select(UsageUserYear.user_id)
                    .where(UsageUserYear.account_id == account_id, UsageUserYear.year == year,
                           or_(*conditions)))
            if start.year == end.year:
                return repo.session.scalar(select(func.count()).select_from(
                    stmt.subquery())) or 0
            users.update(repo.session.scalars(stmt))
        return len(users)

    def usage_days(self, account_id: str, start: date, end: date, *,
                   after: date | None = None, limit: int = 100) -> list[UsageDayView]:
        """The range's rolled-up days (those with activity), oldest first, after ``after``."""
        check_range(start, end)

        def work(repo: Repository) -> list[UsageDayView]:
            self._account(repo, account_id)
            stmt = (select(UsageDay).where(UsageDay.account_id == account_id,
                                           UsageDay.day >= start, UsageDay.day <= end)
                    .order_by(UsageDay.day).limit(limit))
            if after is not None:
                stmt = stmt.where(UsageDay.day > after)
            return [UsageDayView(r.day, r.registered_users, r.active_users, r.meetings_held,
                                 r.positive_feedback, r.negative_feedback, r.chat_messages)
                    for r in repo.session.scalars(stmt)]

        return self._read(work, write_lock=False)

    def meetings(self, account_id: str, start: date, end: date, *,
                 after: tuple[date, str] | None = None, limit: int = 100) -> list[MeetingView]:
        """Meetings organised in the account that ended in [start, end], by (day, id)."""
        check_range(start, end)

        def work(repo: Repository) -> list[MeetingView]:
            self._account(repo, account_id)
            stmt = (select(Meeting).where(Meeting.account_id == account_id,
                                          Meeting.end_day >= start, Meeting.end_day <= end)
                    .order_by(Meeting.end_day, Meeting.meeting_id).limit(limit))
            if after is not None:
                stmt = stmt.where(or_(Meeting.end_day > after[0],
                                      (Meeting.end_day == after[0])
                                      & (Meeting.meeting_id > after[1])))
            return [_meeting_view(r) for r in repo.session.scalars(stmt)]

        return self._read(work, write_lock=False)

    def _meeting(self, repo: Repository, account_id: str, meeting_id: str) -> Meeting:
        self._account(repo, account_id)
        row = repo.session.get(Meeting, meeting_id)
        if row is None or row.account_id != account_id:
            raise NotFound(f"Meeting {meeting_id} was not found in account {account_id}.")
        return row

    def meeting_details(self, account_id: str, meeting_id: str) -> MeetingDetails:
        def work(repo: Repository) -> MeetingDetails:
            row = self._meeting(repo, account_id, meeting_id)
            attendees = repo.session.scalars(
                select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting_id)
                .order_by(MeetingAttendee.position))
            return MeetingDetails(_meeting_view(row), tuple(
                AttendeeView(a.user_id, a.address, a.join_method, a.client_type,
                             row.started_at + timedelta(seconds=a.join_offset_s),
                             row.started_at + timedelta(seconds=a.leave_offset_s), a.feedback)
                for a in attendees),
                tuple(row.recording_events))

        return self._read(work, write_lock=False)

    def meeting_events(self, account_id: str, meeting_id: str) -> list[MeetingEvent]:
        """The roster (joins, leaves) and recording events of a meeting, in time order."""
        details = self.meeting_details(account_id, meeting_id)
        events: list[MeetingEvent] = []
        for a in details.attendees:
            who = a.user_id or a.address
            events.append(MeetingEvent(a.joined_at, "AttendeeJoined", who, a.join_method,
                                       a.client_type))
            events.append(MeetingEvent(a.left_at, "AttendeeLeft", who, a.join_method,
                                       a.client_type))
        for event in details.recording_events:
            events.append(MeetingEvent(datetime.fromisoformat(event["time"]), event["type"],
                                       None))
        order = {"AttendeeJoined": 0, "AttendeeLeft": 2}
        return sorted(events, key=lambda e: (e.time, order.get(e.type, 1), e.attendee or ""))

    def activity_summary(self, account_id: str, user_id: str) -> ActivitySummary:
        """The user's activity from every record kept (not only rolled-up days)."""
        def work(repo: Repository) -> ActivitySummary:
            self._user(repo, account_id, user_id)
            return activity_of(repo, user_id)

        return self._read(work, write_lock=False)


def activity_of(repo: Repository, user_id: str) -> ActivitySummary:
    session = repo.session
    attended, positive, negative, last_meeting = session.execute(
        select(func.count(func.distinct(MeetingAttendee.meeting_id)),
               func.count().filter(MeetingAttendee.feedback == "positive"),
               func.count().filter(MeetingAttendee.feedback == "negative"),
               func.max(Meeting.ended_at))
        .join(Meeting, Meeting.meeting_id == MeetingAttendee.meeting_id)
        .where(MeetingAttendee.user_id == user_id)).one()
    organized = session.scalar(select(func.count()).select_from(Meeting)
                               .where(Meeting.organizer_user_id == user_id)) or 0
    chats, last_chat = session.execute(
        select(func.coalesce(func.sum(ChatCount.messages), 0), func.max(ChatCount.day))
        .where(ChatCount.user_id == user_id, ChatCount.messages > 0)).one()
    user = session.get(User, user_id)
    candidates = [t for t in (last_meeting, user.last_active_at if user else None) if t]
    if last_chat is not None:
        candidates.append(datetime.combine(last_chat, time(), tzinfo=UTC))
    return ActivitySummary(int(attended), int(organized), int(positive), int(negative),
                           int(chats), max(candidates) if candidates else None)
