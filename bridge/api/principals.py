"""Admin principals (the guide's IAM users) and their SigV4 access keys.

A principal has a unique name, an organisation (the guide's AWS account id: it sees the
accounts its organisation owns or was delegated, see :mod:`bridge.domain.delegation`),
attached policies (managed names or custom documents, see :mod:`bridge.api.policy`) and
access keys. SigV4 verification needs the plain secret, so a
secret is sealed with the service's :class:`~bridge.crypto.SecretBox` at rest; it is shown
once, when the key is created, and never logged or audited. Changes are audited with IAM's
event names (CreateUser, DeleteUser, AttachUserPolicy, CreateAccessKey, DeleteAccessKey).
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge import audit
from bridge.api.policy import parse_policy, statements_of
from bridge.crypto import SecretBox
from bridge.domain import Actor
from bridge.domain.delegation import (
    default_organisation_name,
    validate_aws_account_id,
    validate_organisation_name,
)
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import Conflict, NotFound, ValidationError
from bridge.store.models import AdminAccessKey, AdminPrincipal, AdminRequestSignature, utcnow
from bridge.store.models_delegation import Organisation
from bridge.store.repository import Repository

_NAME_RE = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}\Z")  # \Z: "$" takes a final "\n"
ACCESS_KEY_PREFIX = "AKIA"
PRINCIPAL_PREFIX = "AIDA"
# How often (1 in N accepted requests) expired replay-guard rows are purged.
_PURGE_ONE_IN = 64


def _random_id(prefix: str) -> str:
    # AWS-shaped ids: a prefix and 16 characters of base32 (A-Z, 2-7).
    return prefix + base64.b32encode(secrets.token_bytes(10)).decode("ascii")[:16]


@dataclass(frozen=True)
class PrincipalView:
    id: str
    name: str
    policies: tuple[dict[str, Any], ...]
    created_at: datetime
    access_key_ids: tuple[str, ...]
    aws_account_id: str = "000000000000"

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (no secrets)."""
        return {"PrincipalId": self.id, "UserName": self.name,
                "AwsAccountId": self.aws_account_id,
                "Policies": [p.get("Managed") or p.get("Name") for p in self.policies],
                "AccessKeyIds": list(self.access_key_ids),
                "CreatedAt": self.created_at.isoformat()}


@dataclass(frozen=True)
class NewAccessKey:
    """A freshly created key: the only moment the secret is available in clear."""

    principal: PrincipalView
    access_key_id: str
    secret_access_key: str

    def as_json(self) -> dict[str, Any]:
        return {"UserName": self.principal.name, "PrincipalId": self.principal.id,
                "AwsAccountId": self.principal.aws_account_id,
                "AccessKeyId": self.access_key_id,
                "SecretAccessKey": self.secret_access_key}


@dataclass(frozen=True)
class Credential:
    """What authentication needs: the principal and the key's plain secret."""

    principal: PrincipalView
    access_key_id: str
    secret_access_key: str


def _validate_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    statements_of([policy])  # raises ValidationError for an unknown managed name
    if "Managed" not in policy:
        parse_policy(policy.get("Document"))
    return dict(policy)


class PrincipalStore:
    """Create, list, change and authenticate admin principals. Every change commits with
    its one audit event through the unit of work (refusals audited there too)."""

    def __init__(self, uow: UnitOfWork, secret_box: SecretBox,
                 clock: Callable[[], datetime] = utcnow, *,
                 organisation: str = "000000000000") -> None:
        self._uow = uow
        self._box = secret_box
        self._now = clock
        self._organisation = organisation

    @staticmethod
    def _view(session: Session, principal: AdminPrincipal) -> PrincipalView:
        keys = session.scalars(select(AdminAccessKey.access_key_id)
                               .where(AdminAccessKey.principal_id == principal.id)
                               .order_by(AdminAccessKey.created_at))
        return PrincipalView(principal.id, principal.name,
                             tuple(dict(p) for p in principal.policies or []),
                             principal.created_at, tuple(keys), principal.aws_account_id)

    @staticmethod
    def _by_name(session: Session, name: str) -> AdminPrincipal:
        principal = session.scalar(select(AdminPrincipal).where(AdminPrincipal.name == name))
        if principal is None:
            raise NotFound(f"Admin user {name!r} does not exist.")
        return principal

    def _new_key(self, session: Session, principal: AdminPrincipal) -> tuple[str, str]:
        key_id = _random_id(ACCESS_KEY_PREFIX)
        secret = secrets.token_urlsafe(30)  # 40 characters, like an AWS secret key
        session.add(AdminAccessKey(access_key_id=key_id, principal_id=principal.id,
                                   secret_sealed=self._box.seal(secret),
                                   created_at=self._now()))
        return key_id, secret

    def create(self, actor: Actor, name: str, policies: list[dict[str, Any]], *,
               aws_account_id: str | None = None,
               aws_account_name: str | None = None) -> NewAccessKey:
        """CreateUser + CreateAccessKey, in the organisation ``aws_account_id`` (default:
        the store's, the setting ``admin_aws_account_id``). The organisation is registered
        on its first user, named ``aws_account_name`` (the name a delegate sees when
        validating a request; given again, it renames it). Raises ValidationError for a bad
        name, policy or id, Conflict when the name is taken."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValidationError("An admin user name is 1-64 letters, digits or +=,.@_- "
                                  "characters.", field="UserName")
        clean = [_validate_policy(p) for p in policies]
        organisation = validate_aws_account_id(aws_account_id or self._organisation)
        org_name = (validate_organisation_name(aws_account_name)
                    if aws_account_name is not None else None)
        params = {"userName": name, "awsAccountId": organisation,
                  "policies": [p.get("Managed") or p.get("Name") for p in clean]}

        def work(repo: Repository) -> tuple[NewAccessKey, dict[str, Any]]:
            session = repo.session
            if session.scalar(select(AdminPrincipal.id).where(AdminPrincipal.name == name)):
                raise Conflict(f"An admin user named {name!r} already exists.")
            row = repo.organisation(organisation)
            if row is None:
                session.add(Organisation(
                    id=organisation, created_at=self._now(),
                    name=org_name or default_organisation_name(organisation)))
            elif org_name is not None:
                row.name = org_name
            principal = AdminPrincipal(id=_random_id(PRINCIPAL_PREFIX), name=name,
                                       policies=clean, created_at=self._now(),
                                       aws_account_id=organisation)
            session.add(principal)
            session.flush()
            key_id, secret = self._new_key(session, principal)
            session.flush()
            return (NewAccessKey(self._view(session, principal), key_id, secret),
                    {"principalId": principal.id, "accessKeyId": key_id})

        return self._uow.run(actor, "CreateUser", params, work)

    def list(self) -> list[PrincipalView]:
        def work(repo: Repository) -> list[PrincipalView]:
            rows = repo.session.scalars(select(AdminPrincipal).order_by(AdminPrincipal.name))
            return [self._view(repo.session, p) for p in rows]

        return self._uow.read(work)

    def get(self, name: str) -> PrincipalView:
        return self._uow.read(lambda repo: self._view(repo.session,
                                                      self._by_name(repo.session, name)))

    def find_id(self, name: str) -> str | None:
        """The id of the admin user named ``name``, or None (no error: a filter's look-up)."""
        return self._uow.read(lambda repo: repo.session.scalar(
            select(AdminPrincipal.id).where(AdminPrincipal.name == name)), write_lock=False)

    def delete(self, actor: Actor, name: str) -> None:
        """DeleteUser: the principal and all its keys (requests signed with them fail)."""

        def work(repo: Repository) -> tuple[None, None]:
            principal = self._by_name(repo.session, name)
            repo.session.execute(delete(AdminAccessKey)
                                 .where(AdminAccessKey.principal_id == principal.id))
            repo.session.delete(principal)
            return None, None

        self._uow.run(actor, "DeleteUser", {"userName": name}, work)

    def attach_policy(self, actor: Actor, name: str, policy: dict[str, Any]) -> PrincipalView:
        """AttachUserPolicy: add a policy (replacing a custom one of the same name)."""
        clean = _validate_policy(policy)
        label = clean.get("Managed") or clean.get("Name")

        def work(repo: Repository) -> tuple[PrincipalView, None]:
            principal = self._by_name(repo.session, name)
            kept = [p for p in principal.policies or []
                    if (p.get("Managed") or p.get("Name")) != label]
            principal.policies = [*kept, clean]
            return self._view(repo.session, principal), None

        return self._uow.run(actor, "AttachUserPolicy", {"userName": name, "policy": label},
                             work)

    def detach_policy(self, actor: Actor, name: str, label: str) -> PrincipalView:
        """DetachUserPolicy by managed name or custom policy name (NotFound if absent)."""

        def work(repo: Repository) -> tuple[PrincipalView, None]:
            principal = self._by_name(repo.session, name)
            kept = [p for p in principal.policies or []
                    if (p.get("Managed") or p.get("Name")) != label]
            if len(kept) == len(principal.policies or []):
                raise NotFound(f"Admin user {name!r} has no policy {label!r}.")
            principal.policies = kept
            return self._view(repo.session, principal), None

        return self._uow.run(actor, "DetachUserPolicy", {"userName": name, "policy": label},
                             work)

    def rotate_key(self, actor: Actor, name: str) -> NewAccessKey:
        """Create a new access key and delete the principal's previous keys at once."""
        old: list[str] = []

        def work(repo: Repository) -> tuple[NewAccessKey, dict[str, Any]]:
            session = repo.session
            principal = self._by_name(session, name)
            old[:] = session.scalars(select(AdminAccessKey.access_key_id)
                                     .where(AdminAccessKey.principal_id == principal.id))
            session.execute(delete(AdminAccessKey)
                            .where(AdminAccessKey.principal_id == principal.id))
            key_id, secret = self._new_key(session, principal)
            session.flush()
            return (NewAccessKey(self._view(session, principal), key_id, secret),
                    {"accessKeyId": key_id, "deletedAccessKeyIds": list(old)})

        return self._uow.run(actor, "CreateAccessKey", {"userName": name}, work)

    # --- authentication ------------------------------------------------------------------

    def credential(self, access_key_id: str) -> Credential | None:
        """The principal and plain secret of an access key, or None if unknown."""

        def work(repo: Repository) -> Credential | None:
            row = repo.session.execute(
                select(AdminAccessKey, AdminPrincipal)
                .join(AdminPrincipal, AdminPrincipal.id == AdminAccessKey.principal_id)
                .where(AdminAccessKey.access_key_id == access_key_id)
            ).first()
            if row is None:
                return None
            key, principal = row
            view = PrincipalView(principal.id, principal.name,
                                 tuple(dict(p) for p in principal.policies or []),
                                 principal.created_at, (key.access_key_id,),
                                 principal.aws_account_id)
            return Credential(view, key.access_key_id, self._box.open(key.secret_sealed))

        return self._uow.read(work)

    def accept_signature(self, access_key_id: str, signature: str,
                         expires_at: datetime) -> bool:
        """Remember the signature of a request that verified against ``access_key_id``
        until ``expires_at``; False if that key's signature was seen before (a replay).
        Stored in the database so every worker sees it. Call it only after verification:
        a row stands for a request the key's owner really signed."""
        digest = hashlib.sha256(signature.encode("ascii")).hexdigest()
        now = self._now()

        def work(repo: Repository) -> None:
            session = repo.session
            session.add(AdminRequestSignature(access_key_id=access_key_id,
                                              signature_hash=digest, expires_at=expires_at))
            key = session.get(AdminAccessKey, access_key_id)
            if key is not None:
                key.last_used_at = now
            # Randomised purging keeps the table small without a scheduler.
            if random.randrange(_PURGE_ONE_IN) == 0:  # noqa: S311 - not security related
                session.execute(delete(AdminRequestSignature)
                                .where(AdminRequestSignature.expires_at < now))

        try:
            self._uow.bookkeeping(work)
        except IntegrityError:
            return False
        return True

    def recent_calls(self, principal_id: str, since: datetime, *, cap: int) -> int:
        """Admin calls of ``principal_id`` since ``since`` (its audit events), up to
        ``cap``."""
        return self._uow.read(lambda repo: audit.count_since(repo.session, principal_id,
                                                             since, cap=cap),
                              write_lock=False)

    def forget_signature(self, access_key_id: str, signature: str) -> None:
        """Drop a remembered signature: only for the request that :meth:`accept_signature`
        remembered it for, once it verified with that key and executed nothing (it may
        then be resent as is)."""
        digest = hashlib.sha256(signature.encode("ascii")).hexdigest()
        self._uow.bookkeeping(lambda repo: repo.session.execute(
            delete(AdminRequestSignature).where(
                AdminRequestSignature.access_key_id == access_key_id,
                AdminRequestSignature.signature_hash == digest)))
