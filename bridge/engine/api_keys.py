"""SCIM API keys: the guide's CreateApiKey / ListApiKeys / DeleteApiKey, and bearer-key
authentication for the SCIM door.

A key reads ``bsk_<key id>_<secret>``: a recognisable prefix (secret scanners and people can
tell what leaked), a 16-hex-digit key id (looked up, shown in ListApiKeys and named in the
audit trail) and a 256-bit URL-safe secret. Only the SHA-256 of the secret is stored; the
comparison is constant-time. A malformed, unknown or revoked key yields *no identity* (None),
never an exception, so the door answers 401 the same way whatever was wrong.

Keys fall under the one connect rule (:meth:`Room._connect`): only enterprise accounts (a
verified claimed domain) may hold keys. An account that gets a key is provisioned over SCIM,
so it becomes directory-managed (EnterpriseOIDC). Connecting Okta is an explicit step: the
first key of a console-managed account is created only when the caller asks to connect
(``connect=True``; else ConfirmationRequired saying what it would change), in the same
transaction as the key and its one CreateApiKey event; an Active Directory account is
refused. Revoking the last key of an account that has no OpenID configuration either
disconnects Okta: the account is console-managed again, every user kept with their tier.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import OperationalError

from bridge.domain import Actor, DirectoryKind
from bridge.domain.connect import ConnectPlan
from bridge.engine.room import Room
from bridge.errors import Conflict, NotFound
from bridge.store.models import ApiKey
from bridge.store.repository import Repository

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "bsk"
_KEY = re.compile(r"^bsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# last_used_at is refreshed at most this often: a write on every request would serialise
# SQLite writers and cost PostgreSQL a row version per lookup.
LAST_USED_RESOLUTION = timedelta(seconds=60)
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()
_LOOKUP = select(ApiKey.account_id, ApiKey.secret_hash, ApiKey.last_used_at).where(
    ApiKey.id == bindparam("key_id"))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_key(presented: str | None) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None. Never raises."""
    if not isinstance(presented, str) or len(presented) > 200:
        return None
    match = _KEY.match(presented.strip())
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True)
class ApiKeyView:
    """What ListApiKeys shows: never the secret nor its hash."""

    key_id: str
    account_id: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    """CreateApiKey's result. ``key`` is the only copy of the key: it is shown once.
    ``connected``: what connecting Okta changed, when this key connected it."""

    view: ApiKeyView
    key: str
    connected: ConnectPlan | None = None


@dataclass(frozen=True)
class KeyIdentity:
    """Who a valid key speaks for."""

    key_id: str
    account_id: str


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(row.id, row.account_id, row.created_at, row.last_used_at)


class ApiKeys(Room):
    """Create, list, revoke and verify SCIM API keys; each change one transaction with its
    one audit event through the unit of work."""

    def create(self, actor: Actor, account_id: str, *, connect: bool = False) -> NewApiKey:
        """CreateApiKey: a new key for an enterprise account, returned once.

        Raises NotFound (no such account), Forbidden (a team account: no verified claimed
        domain), Conflict (the account's users come from Active Directory),
        ConfirmationRequired (Okta is not connected and ``connect`` was not asked: the
        message says what connecting changes). With ``connect`` the Okta directory is
        connected first, in the same transaction; the result and the event's response say
        so (``connected``, ``directoryConnected``).
        """
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)

        def work(repo: Repository) -> tuple[NewApiKey, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            if account.directory_kind not in (None, DirectoryKind.OKTA.value):
                raise Conflict("The account's users come from Active Directory; SCIM "
                               "provisioning keys are for Okta (EnterpriseOIDC) accounts.")
            plan = (self._okta_plan(repo, account)
                    if account.directory_kind is None and connect else None)
            connected = self._connect(repo, account_id, DirectoryKind.OKTA, confirmed=connect)
            row = ApiKey(id=key_id, account_id=account_id, secret_hash=_hash(secret),
                         created_at=self._now())
            repo.session.add(row)
            repo.session.flush()
            return NewApiKey(_view(row), f"{PREFIX}_{key_id}_{secret}", plan), {
                "keyId": key_id, "directoryConnected": plan is not None, **connected.detail}

        return self._run(actor, "CreateApiKey", {"accountId": account_id, "connect": connect},
                         work, account_id=account_id)

    def list(self, account_id: str) -> list[ApiKeyView]:
        """ListApiKeys: the account's keys, oldest first. Raises NotFound."""

        def work(repo: Repository) -> list[ApiKeyView]:
            self._account(repo, account_id)
            rows = repo.session.scalars(select(ApiKey).where(ApiKey.account_id == account_id)
                                        .order_by(ApiKey.created_at, ApiKey.id))
            return [_view(r) for r in rows]

        return self._read(work)

    def delete(self, actor: Actor, account_id: str, key_id: str) -> bool:
        """DeleteApiKey: revoke at once (the next request with the key is 401). Revoking
        the last key of an Okta account without an OpenID configuration disconnects Okta
        (console-managed again, every user kept with their current tier): returns whether
        it did. Raises NotFound for an unknown key or a key of another account."""

        def work(repo: Repository) -> tuple[bool, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            row = repo.session.get(ApiKey, key_id) if isinstance(key_id, str) else None
            if row is None or row.account_id != account_id:
                raise NotFound(f"API key {key_id} was not found in account {account_id}.")
            repo.session.delete(row)
            repo.session.flush()
            disconnected = self._disconnect_okta_if_unused(repo, account)
            return disconnected, {"keyId": key_id, "directoryDisconnected": disconnected}

        return self._run(actor, "DeleteApiKey", {"accountId": account_id, "keyId": key_id},
                         work, account_id=account_id)

    def authenticate(self, presented: str | None) -> KeyIdentity | None:
        """The identity of a valid key, or None for a missing, malformed, unknown or revoked
        key (never raises for bad input). Refreshes the key's last-used time."""
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        # Core, a statement built once: this runs before every SCIM request. In the unit of
        # work's reading block (a SCIM GET opens one) it is the block's first query, on the
        # connection and in the transaction its search then uses: one pool checkout and one
        # transaction per lookup; in a writing block (a SCIM write) it is the first query of
        # the write's transaction. (A read transaction of its own otherwise. It commits:
        # psycopg 3 drops a connection's prepared statements on every rollback.)
        with self._uow.reading() as session:
            row = session.connection().execute(_LOOKUP, {"key_id": key_id}).first()
        # Compare even for an unknown id so both paths cost the same.
        stored = row.secret_hash if row is not None else _DUMMY_HASH
        if not hmac.compare_digest(_hash(secret), stored) or row is None:
            return None
        now = self._now()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
            # After the reading block, if one is open: in a transaction of its own, and
            # without a second connection while the block holds one.
            self._uow.after_reading(lambda: self._touch(key_id, now))
        return KeyIdentity(key_id, row.account_id)

    def _touch(self, key_id: str, now: datetime) -> None:
        """Record the last use (bookkeeping, no audit event). Advisory: a request is never
        refused because this write lost a race (SQLite busy), and concurrent requests
        write it once."""
        cutoff = now - LAST_USED_RESOLUTION

        def work(repo: Repository) -> None:
            repo.session.execute(update(ApiKey).where(
                ApiKey.id == key_id,
                (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at <= cutoff))
                .values(last_used_at=now))

        try:
            self._uow.bookkeeping(work)
        except OperationalError as exc:
            log.info("last-used time of API key %s not recorded: %s", key_id, exc.orig)


__all__ = ["PREFIX", "ApiKeyView", "ApiKeys", "KeyIdentity", "NewApiKey", "parse_key"]
