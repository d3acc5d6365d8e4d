"""Tables of licensing history, usage and its daily roll-up (issue 14).

- ``tier_changes``: every change of a user's (account, tier), with the engine's time, written
  in the change's own transaction by :mod:`bridge.store.licenses` (the one writer). No foreign
  key to ``users``: a deleted user's history stays, so a past month's bill is the same
  whenever it is computed.
- ``meetings`` / ``meeting_attendees`` / ``chat_counts``: usage as the meetings and chat
  service reports it, keyed by the service's meeting id (a re-post replaces the record).
- ``usage_days`` / ``usage_user_years``: the daily roll-up the reports read (one row per
  account and day; one row per user and year with a bitmask of active days per month, so
  "distinct active users over a range" reads one row per user, never one per day).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.models import Base, User, utcnow


class TierChange(Base):
    """From ``changed_at`` on, the user held ``tier`` (NULL: none, e.g. a directory user in
    no mapped group) in ``account_id`` (NULL: unmanaged)."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_user_time", "user_id", "changed_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(36))
    account_id: Mapped[str | None] = mapped_column(String(36), default=None)
    tier: Mapped[str | None] = mapped_column(String(8), default=None)
    changed_at: Mapped[datetime] = mapped_column()


class Meeting(Base):
    """One ended meeting as last reported (a correction replaces the row and its attendees).
    ``account_id`` is the organizer's account when the record was accepted (reports);
    billing reads the tier history instead."""

    __tablename__ = "meetings"
    __table_args__ = (
        Index("ix_meetings_account_day", "account_id", "end_day", "meeting_id"),
        Index("ix_meetings_organizer_end", "organizer_user_id", "ended_at"),
        Index("ix_meetings_end_day", "end_day"),
    )

    meeting_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    conference_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(String(36), default=None)
    organizer_user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    organizer: Mapped[str] = mapped_column(String(320))  # as reported (id or address)
    scheduled: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime] = mapped_column()
    end_day: Mapped[date] = mapped_column(Date)
    attendee_count: Mapped[int] = mapped_column(Integer)
    guest_count: Mapped[int] = mapped_column(Integer)
    # The attendees' join methods, sorted, comma-separated ("app,dial-in").
    join_methods: Mapped[str] = mapped_column(String(40))
    positive_feedback: Mapped[int] = mapped_column(Integer)
    negative_feedback: Mapped[int] = mapped_column(Integer)
    # [{"time": ISO 8601, "type": "RecordingStarted" | ...}] in time order
    recording_events: Mapped[list[Any]] = mapped_column(JSON)
    fingerprint: Mapped[str] = mapped_column(String(64))  # of the record as accepted
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class MeetingAttendee(Base):
    """One attendee's presence in a meeting (a rejoin is another row of the same person)."""

    __tablename__ = "meeting_attendees"
    __table_args__ = (Index("ix_meeting_attendees_user", "user_id", "meeting_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meeting_id: Mapped[str] = mapped_column(
        ForeignKey("meetings.meeting_id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # order in the record
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)  # None: a guest
    account_id: Mapped[str | None] = mapped_column(String(36), default=None)  # the user's
    address: Mapped[str | None] = mapped_column(String(320), default=None)
    join_method: Mapped[str] = mapped_column(String(16))
    client_type: Mapped[str | None] = mapped_column(String(64), default=None)
    # Seconds from the meeting's start (compact, and no timestamp to convert per row).
    join_offset_s: Mapped[int] = mapped_column(Integer)
    leave_offset_s: Mapped[int] = mapped_column(Integer)
    feedback: Mapped[str | None] = mapped_column(String(8), default=None)


class ChatCount(Base):
    """Chat messages a user sent on one UTC day (the service reports the day's total; a
    re-post replaces it)."""

    __tablename__ = "chat_counts"
    __table_args__ = (Index("ix_chat_counts_account_day", "account_id", "day"),)

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(36), default=None)
    messages: Mapped[int] = mapped_column(Integer)


class UsagePendingDay(Base):
    """A day whose usage changed since its last roll-up (the job drains these)."""

    __tablename__ = "usage_pending_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)


class UsageDay(Base):
    """The roll-up of one account's day: the dashboard's figures."""

    __tablename__ = "usage_days"

    account_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    registered_users: Mapped[int] = mapped_column(Integer)
    active_users: Mapped[int] = mapped_column(Integer)
    meetings_held: Mapped[int] = mapped_column(Integer)
    positive_feedback: Mapped[int] = mapped_column(Integer)
    negative_feedback: Mapped[int] = mapped_column(Integer)
    chat_messages: Mapped[int] = mapped_column(Integer)
    rolled_up_at: Mapped[datetime] = mapped_column()


class UsageUserYear(Base):
    """The days of one year a user was active (attended a meeting or sent a message) in an
    account: bit ``d - 1`` of ``mNN`` is day ``d`` of month ``NN``."""

    __tablename__ = "usage_user_years"
    # Clustered by the key on SQLite: a year's users of an account are read in one range
    # scan, without a look-up per row (the year's report of 100k users).
    __table_args__ = {"sqlite_with_rowid": False}

    account_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    m01: Mapped[int] = mapped_column(Integer, default=0)
    m02: Mapped[int] = mapped_column(Integer, default=0)
    m03: Mapped[int] = mapped_column(Integer, default=0)
    m04: Mapped[int] = mapped_column(Integer, default=0)
    m05: Mapped[int] = mapped_column(Integer, default=0)
    m06: Mapped[int] = mapped_column(Integer, default=0)
    m07: Mapped[int] = mapped_column(Integer, default=0)
    m08: Mapped[int] = mapped_column(Integer, default=0)
    m09: Mapped[int] = mapped_column(Integer, default=0)
    m10: Mapped[int] = mapped_column(Integer, default=0)
    m11: Mapped[int] = mapped_column(Integer, default=0)
    m12: Mapped[int] = mapped_column(Integer, default=0)


MONTH_COLUMNS = tuple(f"m{m:02d}" for m in range(1, 13))


# Registered users of an account as of a day, counted from the index alone (the reports'
# "Registered users" of an account of 100k users; defined here to keep the usage indexes in
# the usage module).
Index("ix_users_account_status_joined", User.account_id, User.status, User.joined_at,
      User.created_at)


def table(model: type[Base]) -> Table:
    """The Core table of a model: bulk inserts through it are one executemany (the ORM's
    bulk insert groups rows by which values are None and may emit one INSERT per row)."""
    return cast(Table, model.__table__)
