"""Whether a session the bridge issued still stands, with the user's current facts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from bridge.domain import (
    AccountType,
    DenyReason,
    Tier,
    UserStatus,
    trial_tier,
)
from bridge.engine.room import Room
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


# SessionCheck reasons about the sign-in session row itself
# (SessionChecks.check_sign_in_session). The other reasons are about the user:
# "user_deleted", "revoked" (sessions_valid_after) or a DenyReason value.
SESSION_UNKNOWN = "session_unknown"
SESSION_ENDED = "session_ended"
SESSION_EXPIRED = "session_expired"


@dataclass(frozen=True)
class SessionCheck:
    """Whether a session still stands, and with what: the user's current facts when
    ``valid``; ``expires_at`` is the session row's expiry when the row was read
    (:meth:`SessionChecks.check_sign_in_session` only)."""

    valid: bool
    reason: str
    user_id: str | None = None
    email: str | None = None
    account_id: str | None = None
    account_type: AccountType | None = None
    tier: Tier | None = None
    expires_at: datetime | None = None


class SessionChecks(Room):
    """Whether a session the bridge issued still stands, with the user's current facts."""

    def check_session(self, user_id: str, issued_at: datetime) -> SessionCheck:
        """Whether a session issued at ``issued_at`` still stands: not revoked (LogoutUser,
        suspension, domain removal), the user still allowed, and with the current tier."""
        return self._read(lambda repo: self._user_session_check(repo, user_id, issued_at))

    def check_sign_in_session(self, session_id: str, user_id: str) -> SessionCheck:
        """Whether the sign-in session ``session_id`` (a session JWT's ``jti``) issued to
        ``user_id`` (its ``sub``) still stands, read in ONE read transaction.

        The session row must exist for that user (else :data:`SESSION_UNKNOWN`), not have
        been ended by ``POST /auth/logout`` (:data:`SESSION_ENDED`) nor have expired on the
        engine's clock (:data:`SESSION_EXPIRED`); then :meth:`check_session`'s rules apply
        to the row's ``issued_at``, with their reasons. Checked in that order. A standing
        row's ``expires_at`` is returned with the user's current facts. Never raises for a
        refused session; the caller turns the reason into its protocol's answer.
        """

        def work(repo: Repository) -> SessionCheck:
            row = repo.sign_in_session(session_id)
            # A session named with another user's id is as unknown as a missing one.
            if row is None or row.user_id != user_id:
                return SessionCheck(False, SESSION_UNKNOWN)
            if row.ended_at is not None:
                return SessionCheck(False, SESSION_ENDED)
            if row.expires_at <= self._now():
                return SessionCheck(False, SESSION_EXPIRED)
            check = self._user_session_check(repo, user_id, row.issued_at)
            return replace(check, expires_at=row.expires_at)

        # Every GET /auth/session lands here: a plain read transaction, so verifications
        # neither take SQLite's write lock nor wait behind sign-ins and provisioning.
        return self._read(work, write_lock=False)

    def _user_session_check(self, repo: Repository, user_id: str,
                            issued_at: datetime) -> SessionCheck:
        """The user's side of a session check (see :meth:`check_session`), on ``repo``."""
        user = repo.user(user_id)
        if user is None:
            return SessionCheck(False, "user_deleted")
        if user.sessions_valid_after is not None and issued_at <= user.sessions_valid_after:
            return SessionCheck(False, "revoked")
        deny = self._status_denial(user)
        if deny is not None:
            return SessionCheck(False, deny.value)
        account_type = None
        tier: Tier | None
        if user.account_id is not None and user.status != UserStatus.INVITED.value:
            account = self._account(repo, user.account_id)
            account_type = self._account_view(repo, account).type
            if account.directory_kind is not None:
                if not user.in_directory:
                    return SessionCheck(False, DenyReason.NOT_IN_DIRECTORY.value)
                if not user.directory_enabled:
                    return SessionCheck(False, DenyReason.DISABLED_IN_DIRECTORY.value)
                if user.tier is None:
                    return SessionCheck(False, DenyReason.NO_MAPPED_GROUP.value)
            tier = Tier(user.tier) if user.tier else None
            account_id: str | None = user.account_id
        else:
            tier = trial_tier(user.trial_started_at, user.trial_ended_at, self._now())
            account_id = None
        return SessionCheck(True, "ok", user.id, user.primary_email, account_id,
                            account_type, tier)
