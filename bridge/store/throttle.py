"""Fixed-window rate counters shared by every worker and host through the database.

One row of ``rate_counters`` per (scope, subject, window); :func:`hit` adds one to it with
a single atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (SQLite and PostgreSQL
both have it), so concurrent workers never lose a hit and each caller learns the count
including its own hit. The caller decides what a count means (over a limit, first over
it, ...) and can act in the same transaction (write an audit event, refuse).

Scopes in use: ``admin-unauth`` (admin API refusals of unauthenticated callers, per
source address); ``ad-sign-in-user`` and ``ad-sign-in-address`` (AD password attempts,
reserved before the bind and released when they did not fail:
:meth:`bridge.engine.sign_in.SignIn.begin_password_attempt`). The admin API's
per-principal rate still counts its audit events.

Windows are fixed (aligned on multiples of their length since the epoch): a caller can
reach at most twice the limit across a window boundary, which is what a per-minute
throttle needs, at one row per subject and window.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bridge.store.models import RateCounter

_MAX_SUBJECT = 200
# How often (1 in N hits) rows of ended windows are purged: no scheduler needed.
_PURGE_ONE_IN = 64


@dataclass(frozen=True)
class Hit:
    """The count of one (scope, subject) in the current window, this hit included."""

    count: int
    window_start: datetime
    window_end: datetime

    def over(self, limit: int) -> bool:
        """More hits than ``limit`` in this window (``limit`` 0: no limit)."""
        return limit > 0 and self.count > limit

    def first_over(self, limit: int) -> bool:
        """This hit is the first one over ``limit`` in this window."""
        return limit > 0 and self.count == limit + 1

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the window ends (at least 1), for ``Retry-After``."""
        return max(1, math.ceil((self.window_end - now).total_seconds()))


def window_of(now: datetime, length: timedelta) -> tuple[datetime, datetime]:
    """The fixed window of ``length`` that contains ``now``: (start, end)."""
    seconds = int(length.total_seconds())
    if seconds <= 0:
        raise ValueError("a throttle window is at least one second long")
    start = int(now.timestamp()) // seconds * seconds
    begin = datetime.fromtimestamp(start, UTC)
    return begin, begin + timedelta(seconds=seconds)


def _subject(subject: str) -> str:
    # Subjects come from requests (addresses, user names): long ones are hashed so a row
    # stays small and the key fits its column.
    if len(subject) <= _MAX_SUBJECT:
        return subject
    return "sha256:" + hashlib.sha256(subject.encode("utf-8", "replace")).hexdigest()


def hit(session: Session, scope: str, subject: str, *, window: timedelta,
        now: datetime) -> Hit:
    """Count one hit of (``scope``, ``subject``) in the window containing ``now``.

    Runs in the caller's transaction (open it with ``write=True`` on SQLite so the write
    lock is taken up front); the row stays locked until it commits, so hits of one subject
    serialise and every caller gets a distinct count.
    """
    start, end = window_of(now, window)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (insert(RateCounter)
            .values(scope=scope, subject=_subject(subject), window_start=start, hits=1,
                    window_end=end)
            .on_conflict_do_update(index_elements=["scope", "subject", "window_start"],
                                   set_={"hits": RateCounter.hits + 1})
            .returning(RateCounter.hits))
    count = int(session.execute(stmt).scalar_one())
    if random.randrange(_PURGE_ONE_IN) == 0:  # noqa: S311 - not security related
        session.execute(delete(RateCounter).where(RateCounter.window_end < start))
    return Hit(count, start, end)


def release(session: Session, scope: str, subject: str, *, window: timedelta,
            start: datetime) -> None:
    """Take back one hit of (``scope``, ``subject``) in the window that starts at ``start``
    (a reserved attempt that turned out not to count); never below zero."""
    session.execute(update(RateCounter).where(
        RateCounter.scope == scope, RateCounter.subject == _subject(subject),
        RateCounter.window_start == start, RateCounter.hits > 0)
        .values(hits=RateCounter.hits - 1))


def sliding_count(session: Session, scope: str, subject: str, current: Hit, *,
                  now: datetime) -> float:
    """The sliding-window estimate of (``scope``, ``subject``) at ``now``: the current
    window's count (``current``, as :func:`hit` returned it) plus the previous window's,
    weighted by how much of the previous window the last ``window`` still covers. Without
    it a caller could make twice the limit across a window boundary."""
    length = current.window_end - current.window_start
    previous = session.execute(select(RateCounter.hits).where(
        RateCounter.scope == scope, RateCounter.subject == _subject(subject),
        RateCounter.window_start == current.window_start - length)).scalar()
    covered = 1.0 - (now - current.window_start) / length
    return current.count + (previous or 0) * max(0.0, covered)
