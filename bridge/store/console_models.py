"""Tables of the console (issue 13): admin principals' console credentials and console
sessions. Kept apart from :mod:`bridge.store.models` (same metadata) so the principal
table itself is unchanged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.models import Base, utcnow


class AdminConsoleCredential(Base):
    """An admin principal's console password and optional TOTP secret.

    ``password_hash`` is an argon2id hash (argon2-cffi's encoded form, parameters
    included). ``totp_secret_sealed`` is the base32 TOTP secret sealed with the service's
    SecretBox (the server needs it in clear to compute codes); ``totp_last_step`` is the
    RFC 6238 time step of the last accepted code, so a code is accepted once.
    """

    __tablename__ = "admin_console_credentials"

    principal_id: Mapped[str] = mapped_column(
        ForeignKey("admin_principals.id", ondelete="CASCADE"), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(256), default=None)
    password_set_at: Mapped[datetime | None] = mapped_column(default=None)
    totp_secret_sealed: Mapped[str | None] = mapped_column(String(512), default=None)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(default=None)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, default=None)


class ConsoleSession(Base):
    """A signed-in console session. The cookie carries a random token; only its SHA-256 is
    stored, so a copy of the table signs nobody in. Ends at ``expires_at`` or after the
    idle timeout since ``last_seen_at``; sign-out deletes the row."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[str] = mapped_column(
        ForeignKey("admin_principals.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
