"""Console credentials of admin principals: a password (argon2id) and an optional TOTP
second factor (RFC 6238), set with ``bridge admin set-password`` / ``enable-mfa``.

Changes are audited with IAM's event names (CreateLoginProfile, UpdateLoginProfile,
EnableMFADevice, DeactivateMFADevice) through the unit of work; the password, its hash and
the TOTP secret never reach the trail or a log. Checking a password or a code changes no
administrative state and is not audited here: the console records the sign-in itself
(``ConsoleLogin``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update

from bridge.api.principals import PrincipalView
from bridge.crypto import SecretBox
from bridge.domain import Actor
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import NotFound, ValidationError
from bridge.store.console_models import AdminConsoleCredential, ConsoleSession
from bridge.store.models import AdminPrincipal, utcnow
from bridge.store.repository import Repository

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
TOTP_ISSUER = "Identity bridge"
# Codes of the previous and next 30-second step are accepted too (clock drift of the
# authenticator), each step once.
TOTP_DRIFT_STEPS = 1


@dataclass(frozen=True)
class PasswordCheck:
    """The outcome of :meth:`ConsoleCredentials.check_password`: the principal when the
    password is right (None for an unknown name or a wrong password alike), and whether a
    TOTP code must follow."""

    principal: PrincipalView | None
    mfa_required: bool = False
    known: bool = False  # an admin of that name with a console password exists


def validate_password(password: str) -> None:
    """Raise ValidationError unless ``password`` is an acceptable console password."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"A console password has at least {MIN_PASSWORD_LENGTH} "
                              "characters.", field="Password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"A console password has at most {MAX_PASSWORD_LENGTH} "
                              "characters.", field="Password")


class ConsoleCredentials:
    """Set and check admin principals' console passwords and TOTP codes."""

    def __init__(self, uow: UnitOfWork, secret_box: SecretBox,
                 clock: Callable[[], datetime] = utcnow,
                 hasher: PasswordHasher | None = None) -> None:
        self._uow = uow
        self._box = secret_box
        self._now = clock
        # argon2-cffi's defaults are RFC 9106's second recommendation (argon2id, 64 MiB).
        self._hasher = hasher or PasswordHasher()
        # Verified when the name is unknown, so that answer takes as long as a wrong
        # password (made on first use: building the app costs no hash).
        self._dummy: str | None = None

    @property
    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._hasher.hash("not a password of anyone")
        return self._dummy

    @staticmethod
    def _principal(repo: Repository, name: str) -> AdminPrincipal:
        principal = repo.session.scalar(select(AdminPrincipal)
                                        .where(AdminPrincipal.name == name))
        if principal is None:
            raise NotFound(f"Admin user {name!r} does not exist.")
        return principal

    @staticmethod
    def _credential(repo: Repository, principal_id: str) -> AdminConsoleCredential:
        row = repo.session.get(AdminConsoleCredential, principal_id)
        if row is None:
            row = AdminConsoleCredential(principal_id=principal_id)
            repo.session.add(row)
        return row

    # --- changes (audited) ---------------------------------------------------------------

    def set_password(self, actor: Actor, name: str, password: str) -> None:
        """Set (CreateLoginProfile) or replace (UpdateLoginProfile) the console password of
        admin user ``name``. Raises NotFound for an unknown user, ValidationError for a
        password that is too short or too long."""
        validate_password(password)
        hashed = self._hasher.hash(password)
        exists = self._uow.read(lambda repo: repo.session.scalar(
            select(AdminConsoleCredential.password_hash)
            .join(AdminPrincipal, AdminPrincipal.id == AdminConsoleCredential.principal_id)
            .where(AdminPrincipal.name == name)) is not None)

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            principal = self._principal(repo, name)
            row = self._credential(repo, principal.id)
            row.password_hash = hashed
            row.password_set_at = self._now()
            _end_console_sessions(repo, principal.id)
            return None, {"principalId": principal.id}

        self._uow.run(actor, "UpdateLoginProfile" if exists else "CreateLoginProfile",
                      {"userName": name}, work)

    def enable_mfa(self, actor: Actor, name: str) -> str:
        """Give admin user ``name`` a new TOTP secret (replacing any previous one) and
        return its ``otpauth://`` URI for an authenticator app (EnableMFADevice)."""
        secret = pyotp.random_base32()

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            principal = self._principal(repo, name)
            row = self._credential(repo, principal.id)
            row.totp_secret_sealed = self._box.seal(secret)
            row.totp_enabled_at = self._now()
            row.totp_last_step = None
            _end_console_sessions(repo, principal.id)
            return None, {"principalId": principal.id}

        self._uow.run(actor, "EnableMFADevice", {"userName": name}, work)
        return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=TOTP_ISSUER)

    def disable_mfa(self, actor: Actor, name: str) -> None:
        """Remove admin user ``name``'s TOTP secret (DeactivateMFADevice); NotFound when it
        has none."""

        def work(repo: Repository) -> tuple[None, None]:
            principal = self._principal(repo, name)
            row = repo.session.get(AdminConsoleCredential, principal.id)
            if row is None or row.totp_secret_sealed is None:
                raise NotFound(f"Admin user {name!r} has no MFA device.")
            row.totp_secret_sealed = row.totp_enabled_at = row.totp_last_step = None
            _end_console_sessions(repo, principal.id)
            return None, None

        self._uow.run(actor, "DeactivateMFADevice", {"userName": name}, work)

    # --- checks (not audited here) -------------------------------------------------------

    def check_password(self, name: str, password: str) -> PasswordCheck:
        """The principal named ``name`` if ``password`` is its console password. An unknown
        name, a principal without a console password and a wrong password all give
        ``PasswordCheck(None)`` after one argon2 verification each (same work, same
        answer)."""

        def work(repo: Repository) -> tuple[AdminPrincipal, AdminConsoleCredential] | None:
            row = repo.session.execute(
                select(AdminPrincipal, AdminConsoleCredential)
                .join(AdminConsoleCredential,
                      AdminConsoleCredential.principal_id == AdminPrincipal.id)
                .where(AdminPrincipal.name == name)).first()
            return None if row is None else (row[0], row[1])

        found = self._uow.read(work, write_lock=False)
        stored = found[1].password_hash if found else None
        try:
            self._hasher.verify(stored or self._dummy_hash, password[:MAX_PASSWORD_LENGTH])
            ok = stored is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or found is None:
            return PasswordCheck(None, known=found is not None)
        principal, credential = found
        if self._hasher.check_needs_rehash(stored or ""):
            rehashed = self._hasher.hash(password)
            self._uow.bookkeeping(lambda repo: repo.session.execute(
                update(AdminConsoleCredential)
                .where(AdminConsoleCredential.principal_id == principal.id)
                .values(password_hash=rehashed)))
        view = PrincipalView(principal.id, principal.name,
                             tuple(dict(p) for p in principal.policies or []),
                             principal.created_at, (), principal.aws_account_id)
        return PasswordCheck(view, credential.totp_secret_sealed is not None, known=True)

    def check_totp(self, principal_id: str, code: str) -> bool:
        """Whether ``code`` is the principal's current TOTP code (within one step of drift)
        and no code of that step or a later one was accepted before. Accepting records the
        step atomically, so a code works once even when sent twice in parallel."""
        code = (code or "").strip().replace(" ", "")
        # ASCII: "²" is isdigit(), and compare_digest raises TypeError for non-ASCII text.
        if not (code.isascii() and code.isdigit() and len(code) == 6):
            return False
        sealed = self._uow.read(lambda repo: repo.session.scalar(
            select(AdminConsoleCredential.totp_secret_sealed)
            .where(AdminConsoleCredential.principal_id == principal_id)), write_lock=False)
        if sealed is None:
            return False
        totp = pyotp.TOTP(self._box.open(sealed))
        now = self._now()
        if now.tzinfo is None:  # the store's times are naive UTC
            now = now.replace(tzinfo=UTC)
        current = totp.timecode(now)
        matched = None
        for offset in range(-TOTP_DRIFT_STEPS, TOTP_DRIFT_STEPS + 1):
            if hmac.compare_digest(totp.generate_otp(current + offset), code):
                matched = current + offset
        if matched is None:
            return False
        step = matched

        def accept(repo: Repository) -> bool:
            result = repo.session.execute(
                update(AdminConsoleCredential)
                .where(AdminConsoleCredential.principal_id == principal_id,
                       or_(AdminConsoleCredential.totp_last_step.is_(None),
                           AdminConsoleCredential.totp_last_step < step))
                .values(totp_last_step=step))
            return bool(getattr(result, "rowcount", 0) == 1)

        return self._uow.bookkeeping(accept)

    def principal(self, principal_id: str) -> PrincipalView | None:
        """The principal (name and policies as they are now), or None once deleted."""

        def work(repo: Repository) -> PrincipalView | None:
            p = repo.session.get(AdminPrincipal, principal_id)
            if p is None:
                return None
            return PrincipalView(p.id, p.name, tuple(dict(x) for x in p.policies or []),
                                 p.created_at, (), p.aws_account_id)

        return self._uow.read(work, write_lock=False)


def _end_console_sessions(repo: Repository, principal_id: str) -> None:
    """A changed password or MFA device ends the admin's console sessions everywhere (a
    session stolen before the change must not outlive it)."""
    repo.session.execute(delete(ConsoleSession).where(ConsoleSession.principal_id ==
                                                      principal_id))
