"""The daily roll-up of usage for the reports (the named job ``usage-rollup``).

Ingestion queues every day whose usage changed (``usage_pending_days``); a pass rolls each
queued day up for every account — the day's row of ``usage_days`` and the day's bit in each
user's ``usage_user_years`` row — in one transaction per day, and takes the day off the
queue in the same transaction. Rolling a day up again gives the same rows (a correction is
re-rolled, never added twice).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

from sqlalchemy import delete, func, insert, select, union, update

from bridge.domain import UserStatus
from bridge.engine.room import Room, chunks
from bridge.store.models import User
from bridge.store.repository import Repository
from bridge.store.usage_models import (
    MONTH_COLUMNS,
    ChatCount,
    Meeting,
    MeetingAttendee,
    UsageDay,
    UsagePendingDay,
    UsageUserYear,
)
from bridge.store.usage_models import table as _t


class Rollup(Room):
    """Rolls queued days up; each day is one bookkeeping transaction (no audit event: the
    roll-up changes no administrative state, only a derived view of usage)."""

    def pending_days(self) -> list[date]:
        return self._read(lambda repo: list(repo.session.scalars(
            select(UsagePendingDay.day).order_by(UsagePendingDay.day))), write_lock=False)

    def roll_up(self, keep: Callable[[], None] = lambda: None) -> int:
        """Roll every queued day up; ``keep`` (the job lease's) is called before each day.
        Returns the number of days rolled up."""
        days = self.pending_days()
        for day in days:
            keep()
            self._uow.bookkeeping(partial(self.roll_up_day, day=day))
        return len(days)

    def roll_up_day(self, repo: Repository, *, day: date) -> None:
        """Recompute ``day`` for every account (in the caller's transaction)."""
        session, now = repo.session, self._now()
        meetings = (select(Meeting.account_id, func.count(), func.sum(Meeting.positive_feedback),
                           func.sum(Meeting.negative_feedback))
                    .where(Meeting.end_day == day, Meeting.account_id.is_not(None))
                    .group_by(Meeting.account_id))
        held: dict[str, tuple[int, int, int]] = {
            a: (n, p or 0, q or 0) for a, n, p, q in session.execute(meetings).tuples() if a}
        chats: dict[str, int] = {a: n or 0 for a, n in session.execute(
            select(ChatCount.account_id, func.sum(ChatCount.messages))
            .where(ChatCount.day == day, ChatCount.account_id.is_not(None))
            .group_by(ChatCount.account_id)).tuples() if a}
        attended = (select(MeetingAttendee.account_id, MeetingAttendee.user_id)
                    .join(Meeting, Meeting.meeting_id == MeetingAttendee.meeting_id)
                    .where(Meeting.end_day == day, MeetingAttendee.account_id.is_not(None)))
        chatted = (select(ChatCount.account_id, ChatCount.user_id)
                   .where(ChatCount.day == day, ChatCount.account_id.is_not(None),
                          ChatCount.messages > 0))
        active: dict[str, set[str]] = defaultdict(set)
        rows: list[Any] = list(session.execute(union(attended, chatted)).all())
        for account_id, user_id in rows:
            if account_id is not None and user_id is not None:
                active[account_id].add(user_id)
        accounts = sorted(set(held) | set(chats) | set(active))
        end_of_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        registered: dict[str, int] = {}
        for chunk in chunks(accounts):
            registered.update(list(session.execute(  # type: ignore[arg-type]
                select(User.account_id, func.count())
                .where(User.account_id.in_(chunk),
                       User.status == UserStatus.REGISTERED.value,
                       func.coalesce(User.joined_at, User.created_at) < end_of_day)
                .group_by(User.account_id)).tuples()))
        session.execute(delete(UsageDay).where(UsageDay.day == day))
        if accounts:
            session.execute(insert(_t(UsageDay)), [{
                "account_id": a, "day": day, "registered_users": registered.get(a, 0),
                "active_users": len(active.get(a, ())), "meetings_held": held.get(a, (0,))[0],
                "positive_feedback": held.get(a, (0, 0, 0))[1],
                "negative_feedback": held.get(a, (0, 0, 0))[2],
                "chat_messages": chats.get(a, 0) or 0, "rolled_up_at": now}
                for a in accounts])
        self._set_active_bits(repo, day, active)
        session.execute(delete(UsagePendingDay).where(UsagePendingDay.day == day))

    @staticmethod
    def _set_active_bits(repo: Repository, day: date, active: dict[str, set[str]]) -> None:
        """The day's bit: cleared everywhere, then set for the day's active users."""
        session = repo.session
        column = getattr(UsageUserYear, MONTH_COLUMNS[day.month - 1])
        bit = 1 << (day.day - 1)
        session.execute(update(UsageUserYear).where(UsageUserYear.year == day.year,
                                                     column.op("&")(bit) != 0)
                        .values({column: column.op("-")(bit)}))
        for account_id, users in active.items():
            ordered = sorted(users)
            existing: set[str] = set()
            for chunk in chunks(ordered):
                existing.update(session.scalars(select(UsageUserYear.user_id).where(
                    UsageUserYear.account_id == account_id,
                    UsageUserYear.year == day.year, UsageUserYear.user_id.in_(chunk))))
                session.execute(update(UsageUserYear).where(
                    UsageUserYear.account_id == account_id, UsageUserYear.year == day.year,
                    UsageUserYear.user_id.in_(chunk)).values({column: column.op("|")(bit)}))
            new = [{"account_id": account_id, "year": day.year, "user_id": uid,
                    **dict.fromkeys(MONTH_COLUMNS, 0), MONTH_COLUMNS[day.month - 1]: bit}
                   for uid in ordered if uid not in existing]
            if new:
                session.execute(insert(_t(UsageUserYear)), new)
