"""Console sessions: one database row per signed-in browser, so every worker and host
sees a sign-out at once and nothing lives in process memory.

The cookie carries 32 random bytes (URL-safe base64); the row is keyed by their SHA-256.
A session ends ``max_age`` after sign-in, or ``idle`` after the last request that
refreshed it (refreshed at most once a minute, so browsing costs no write per page).
Starting and ending a session are audited (``ConsoleLogin``, ``ConsoleSignOut``) with
the session change in one transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, update

from bridge.domain import Actor
from bridge.engine.unit_of_work import UnitOfWork
from bridge.store.console_models import ConsoleSession
from bridge.store.repository import Repository

# A refresh of last_seen_at is written at most this often.
TOUCH_EVERY = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _aware(moment: datetime) -> datetime:
    # SQLite hands times back without their zone; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SessionCheck:
    """A cookie's session: the principal while it stands, else why it ended."""

    principal_id: str | None
    ended: str | None = None  # "idle", "expired", "unknown"


class ConsoleSessions:
    """Start, check and end console sessions."""

    def __init__(self, uow: UnitOfWork, clock: Callable[[], datetime], *,
                 idle: timedelta, max_age: timedelta) -> None:
        self._uow = uow
        self._now = clock
        self.idle = idle
        self.max_age = max_age

    def start(self, actor: Actor, principal_id: str,
              params: dict[str, Any] | None = None) -> str:
        """A new session for ``principal_id``; returns the cookie's token. Audited as the
        successful ``ConsoleLogin`` in the same transaction."""
        token = secrets.token_urlsafe(32)
        now = self._now()

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            repo.session.add(ConsoleSession(token_hash=_digest(token),
                                            principal_id=principal_id, created_at=now,
                                            last_seen_at=now, expires_at=now + self.max_age))
            # Ended sessions of anyone (too old, or idle too long) are purged here: no
            # scheduler needed.
            repo.session.execute(delete(ConsoleSession).where(
                (ConsoleSession.expires_at < now)
                | (ConsoleSession.last_seen_at < now - self.idle)))
            return None, {"ConsoleLogin": "Success"}

        self._uow.run(actor, "ConsoleLogin", params, work)
        return token

    def check(self, token: str | None) -> SessionCheck:
        """The principal of the session ``token`` names, refreshing its idle clock; or why
        there is none (unknown token, idle too long, past its maximum age)."""
        if not token:
            return SessionCheck(None, "unknown")
        key = _digest(token)
        row = self._uow.read(lambda repo: repo.session.get(ConsoleSession, key),
                             write_lock=False)
        if row is None:
            return SessionCheck(None, "unknown")
        now = self._now()
        last_seen = _aware(row.last_seen_at)
        if now >= _aware(row.expires_at):
            self._drop(key)
            return SessionCheck(None, "expired")
        if now - last_seen >= self.idle:
            self._drop(key)
            return SessionCheck(None, "idle")
        if now - last_seen >= TOUCH_EVERY:
            self._uow.bookkeeping(lambda repo: repo.session.execute(
                update(ConsoleSession).where(ConsoleSession.token_hash == key)
                .values(last_seen_at=now)))
        return SessionCheck(row.principal_id)

    def end(self, actor: Actor, token: str) -> None:
        """Sign-out: the session ends at once for every worker (``ConsoleSignOut``)."""
        key = _digest(token)

        def work(repo: Repository) -> tuple[None, None]:
            repo.session.execute(delete(ConsoleSession)
                                 .where(ConsoleSession.token_hash == key))
            return None, None

        self._uow.run(actor, "ConsoleSignOut", None, work)

    def discard(self, token: str | None) -> None:
        """Forget the session ``token`` names, if any, without an event of its own (the
        browser signed in again: the new session's ConsoleLogin tells)."""
        if token:
            self._drop(_digest(token))

    def _drop(self, key: str) -> None:
        self._uow.bookkeeping(lambda repo: repo.session.execute(
            delete(ConsoleSession).where(ConsoleSession.token_hash == key)))
