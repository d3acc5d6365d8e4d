"""Active Directory connections, sync bookkeeping and sign-in throttling (bridge side).

The AD door (``ad_sync/``) speaks LDAP; this module owns what the bridge stores about an
account's directory: the connection settings (ConnectDirectory / ListDirectories /
DisconnectDirectory), the sync watermark and per-user sync records, and the failed sign-in
counters. It decides nothing about users: the engine does. Its transactions are the
engine's unit of work's (``uow.session()``); writes that must commit with a page of engine
changes take the session of :meth:`ResolutionEngine.single_transaction`.

Secrets: the bind password is sealed with ``services.secrets`` and only
:meth:`DirectoryStore.connection` (for the door) opens it; no view, error, log line or
audit event carries it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from bridge.domain import Actor, DirectoryKind
from bridge.errors import BridgeError, NotFound, ValidationError
from bridge.store.models import (
    AdDirectory,
    AdDirectoryUser,
    AdSyncPending,
    User,
)

if TYPE_CHECKING:
    from bridge.services import Services



@dataclass(frozen=True)
class DirectoryConnection:
    """Everything the door needs to reach and bind to a directory (password in clear:
    keep it in memory only)."""

    account_id: str
    ldap_url: str
    start_tls: bool
    base_dn: str
    bind_dn: str
    bind_password: str
    ca_certificate_pem: str | None
    tls_server_name: str | None
    user_filter: str | None
    group_base_dn: str | None

    def __repr__(self) -> str:  # never print the password
        return (f"DirectoryConnection(account_id={self.account_id!r}, "
                f"ldap_url={self.ldap_url!r}, base_dn={self.base_dn!r})")


@dataclass(frozen=True)
class DirectoryView:
    """ListDirectories' answer for one account (no password, ever)."""

    account_id: str
    ldap_url: str
    start_tls: bool
    base_dn: str
    bind_dn: str
    has_ca_certificate: bool
    tls_server_name: str | None
    user_filter: str | None
    group_base_dn: str | None
    created_at: datetime
    last_sync_at: datetime | None
    last_full_sync_at: datetime | None
    last_status: str | None
    dc_name: str | None
    invocation_id: str | None
    highest_usn: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "AccountId": self.account_id, "LdapUrl": self.ldap_url, "StartTls": self.start_tls,
            "BaseDn": self.base_dn, "BindDn": self.bind_dn,
            "HasCaCertificate": self.has_ca_certificate, "TlsServerName": self.tls_server_name,
            "UserFilter": self.user_filter, "GroupBaseDn": self.group_base_dn,
            "CreatedTimestamp": self.created_at,
            "LastSyncTimestamp": self.last_sync_at,
            "LastFullSyncTimestamp": self.last_full_sync_at,
            "LastSyncStatus": self.last_status,
            "Watermark": {"DcName": self.dc_name, "InvocationId": self.invocation_id,
                          "HighestCommittedUsn": self.highest_usn},
        }


@dataclass(frozen=True)
class SyncState:
    """The watermark and what the last runs left behind."""

    dc_name: str | None
    invocation_id: str | None
    highest_usn: int | None
    mappings_fingerprint: str | None
    last_full_sync_at: datetime | None
    last_sync_at: datetime | None
    full_run_started_usn: int | None


@dataclass(frozen=True)
class KnownUser:
    """What the last sync applied for one objectGUID."""

    guid: str
    user_id: str | None
    dn: str
    fingerprint: str
    enabled: bool
    present: bool
    groups: tuple[str, ...]


@dataclass(frozen=True)
class UserRecord:
    """A directory user as applied by the sync (written with the page's data)."""

    guid: str
    user_id: str | None
    dn: str
    fingerprint: str
    enabled: bool
    groups: tuple[str, ...]
    retry: bool = False  # an address clashed: apply it again on every run


def fingerprint(*facts: Any) -> str:
    """A stable hash of the facts the sync gave the engine for one user."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def validate_connection_request(body: Mapping[str, Any], *, allow_insecure: bool
                                ) -> dict[str, Any]:
    """Check a ConnectDirectory body; return the clean fields (ValidationError names the
    first bad one). Plain ``ldap://`` needs ``StartTls`` unless ``allow_insecure``.

    Runs before any bind. No message repeats ``LdapUrl``: a URL with a user name or password
    in it (``ldaps://svc:pw@dc``) is refused with a message saying where those go instead.
    """

    def text(name: str, *, required: bool, limit: int = 1024) -> str | None:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise ValidationError(f"{name} is required.", field=name)
            return None
        if not isinstance(value, str) or len(value) > limit:
            raise ValidationError(f"{name} must be a string of at most {limit} characters.",
                                  field=name)
        return value.strip()

    url = text("LdapUrl", required=True, limit=512) or ""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValidationError(
            "LdapUrl must not contain a user name or password: put the bind account's DN in "
            "BindDn and its password in BindPassword (stored encrypted, never returned).",
            field="LdapUrl")
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ValidationError("LdapUrl must look like ldaps://host:636 or ldap://host:389.",
                              field="LdapUrl")
    try:
        _ = parts.port
    except ValueError:
        raise ValidationError("LdapUrl has an invalid port.", field="LdapUrl") from None
    if parts.path not in ("", "/") or parts.query:
        raise ValidationError("LdapUrl must not have a path or query.", field="LdapUrl")
    start_tls = body.get("StartTls", False)
    if not isinstance(start_tls, bool):
        raise ValidationError("StartTls must be true or false.", field="StartTls")
    if parts.scheme == "ldaps" and start_tls:
        raise ValidationError("StartTls is for ldap:// URLs; ldaps:// is already TLS.",
                              field="StartTls")
    if parts.scheme == "ldap" and not start_tls and not allow_insecure:
        raise ValidationError(
            "Plain ldap:// without StartTls would send passwords in clear; use ldaps:// or "
            "StartTls (or set BRIDGE_ALLOW_INSECURE_LDAP=1 for a test directory).",
            field="LdapUrl")
    password = body.get("BindPassword")
    if not isinstance(password, str) or not password:
        raise ValidationError("BindPassword is required.", field="BindPassword")
    if len(password) > 512:
        raise ValidationError("BindPassword is too long.", field="BindPassword")
    pem = text("CaCertificatePem", required=False, limit=65536)
    if pem is not None:
        try:
            with warnings.catch_warnings():
                # Samba's self-made CA has a negative serial; cryptography only warns.
                warnings.simplefilter("ignore")
                x509.load_pem_x509_certificates(pem.encode("ascii"))
        except (ValueError, UnicodeError):
            raise ValidationError("CaCertificatePem is not a PEM certificate.",
                                  field="CaCertificatePem") from None
    user_filter = text("UserFilter", required=False, limit=2048)
    if user_filter is not None and not (user_filter.startswith("(")
                                        and user_filter.endswith(")")
                                        and user_filter.count("(") == user_filter.count(")")):
        raise ValidationError("UserFilter must be an LDAP filter in parentheses.",
                              field="UserFilter")
    return {
        "ldap_url": url, "start_tls": start_tls,
        "base_dn": text("BaseDn", required=True), "bind_dn": text("BindDn", required=True),
        "bind_password": password, "ca_certificate_pem": pem,
        "tls_server_name": text("TlsServerName", required=False, limit=253),
        "user_filter": user_filter, "group_base_dn": text("GroupBaseDn", required=False),
    }


class DirectoryStore:
    """The bridge's records about accounts' Active Directories."""

    def __init__(self, services: Services) -> None:
        self._svc = services

    # --- connection settings ------------------------------------------------------------

    def connect(self, actor: Actor, account_id: str, body: Mapping[str, Any],
                verify: Callable[[DirectoryConnection], None]) -> DirectoryView:
        """ConnectDirectory: validate, bind once (``verify`` raises ValidationError with the
        LDAP error in words when the directory cannot be reached or bound to), then store
        the settings and make the account EnterpriseDirectory, in one transaction.

        Raises ValidationError (bad field, unreachable directory), Forbidden (not an
        enterprise account), Conflict (another directory kind connected), NotFound.
        """
        fields = validate_connection_request(
            body, allow_insecure=self._svc.settings.allow_insecure_ldap)
        engine = self._svc.engine
        engine.get_account(account_id)  # NotFound before any network traffic
        candidate = DirectoryConnection(account_id=account_id, **fields)
        verify(candidate)
        sealed = self._svc.secrets.seal(fields.pop("bind_password"))
        refused: BridgeError | None = None
        with engine.single_transaction() as session:
            try:
                engine.set_directory(actor, account_id, DirectoryKind.ACTIVE_DIRECTORY,
                                     event_name="ConnectDirectory")
            except BridgeError as exc:
                refused = exc  # its audit event commits; nothing else changed
            else:
                return self._store(session, account_id, fields, sealed)
        raise refused if refused is not None else RuntimeError("unreachable")

    def _store(self, session: Session, account_id: str, fields: dict[str, Any],
               sealed: str) -> DirectoryView:
        now = self._svc.engine.now()
        row = session.get(AdDirectory, account_id)
        if row is None:
            row = AdDirectory(account_id=account_id, created_at=now)
            session.add(row)
        elif (row.ldap_url, row.base_dn) != (fields["ldap_url"], fields["base_dn"]):
            # Another DC or scope: the watermark means nothing there; start with a full.
            row.dc_name = row.invocation_id = None
            row.highest_usn = None
        for name, value in fields.items():
            setattr(row, name, value)
        row.bind_password_sealed = sealed
        row.updated_at = now
        session.flush()
        return _view(row)

    def disconnect(self, actor: Actor, account_id: str) -> None:
        """DisconnectDirectory: forget the settings and sync records; the account becomes
        console-managed (users keep their tiers). NotFound when none is connected."""
        engine = self._svc.engine
        refused: BridgeError | None = None
        with engine.single_transaction() as session:
            row = session.get(AdDirectory, account_id)
            if row is None:
                raise NotFound(f"Account {account_id} has no Active Directory connected.")
            try:
                engine.set_directory(actor, account_id, None, event_name="DisconnectDirectory")
            except BridgeError as exc:
                refused = exc
            else:
                session.execute(delete(AdDirectoryUser).where(
                    AdDirectoryUser.account_id == account_id))
                session.execute(delete(AdSyncPending).where(
                    AdSyncPending.account_id == account_id))
                session.delete(row)
        if refused is not None:
            raise refused

    def get(self, account_id: str) -> DirectoryView | None:
        with self._svc.engine.uow.session() as session:
            row = session.get(AdDirectory, account_id)
            return _view(row) if row is not None else None

    def connection(self, account_id: str) -> DirectoryConnection:
        """The settings with the password opened (for the door). NotFound without one."""
        with self._svc.engine.uow.session() as session:
            row = session.get(AdDirectory, account_id)
            if row is None:
                raise NotFound(f"Account {account_id} has no Active Directory connected.")
            return DirectoryConnection(
                account_id=row.account_id, ldap_url=row.ldap_url, start_tls=row.start_tls,
                base_dn=row.base_dn, bind_dn=row.bind_dn,
                bind_password=self._svc.secrets.open(row.bind_password_sealed),
                ca_certificate_pem=row.ca_certificate_pem,
                tls_server_name=row.tls_server_name, user_filter=row.user_filter,
                group_base_dn=row.group_base_dn)

    def account_ids(self) -> list[str]:
        """Every account with a directory connected (the daemon's work list)."""
        with self._svc.engine.uow.session() as session:
            return list(session.scalars(select(AdDirectory.account_id)
                                        .order_by(AdDirectory.account_id)))

    # --- sync state -----------------------------------------------------------------------

    def state(self, account_id: str) -> SyncState:
        with self._svc.engine.uow.session() as session:
            row = session.get(AdDirectory, account_id)
            if row is None:
                raise NotFound(f"Account {account_id} has no Active Directory connected.")
            return SyncState(row.dc_name, row.invocation_id, row.highest_usn,
                             row.mappings_fingerprint, row.last_full_sync_at, row.last_sync_at,
                             row.full_run_started_usn)

    def known_users(self, account_id: str, guids: Sequence[str]) -> dict[str, KnownUser]:
        """Sync records of these objectGUIDs (one query)."""
        if not guids:
            return {}
        t = cast(Table, AdDirectoryUser.__table__)
        # Core rows, not ORM objects: a full run asks this for every page (at 10k users
        # the ORM instances cost ~2 s of a ~3.5 s page loop).
        with self._svc.engine.uow.session() as session:
            rows = session.execute(select(
                t.c.guid, t.c.user_id, t.c.dn, t.c.fingerprint, t.c.enabled, t.c.present,
                t.c.groups).where(t.c.account_id == account_id, t.c.guid.in_(guids)))
            return {r.guid: KnownUser(r.guid, r.user_id, r.dn, r.fingerprint, r.enabled,
                                      r.present, tuple(r.groups or ()))
                    for r in rows}

    def present_users(self, account_id: str) -> dict[str, KnownUser]:
        """Every user the directory had at the last sync (for group and guard checks)."""
        with self._svc.engine.uow.session() as session:
            rows = session.scalars(select(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True)))
            return {r.guid: _known(r) for r in rows}

    def guid_for_user(self, account_id: str, user_id: str) -> str | None:
        """The objectGUID the sync linked to ``user_id`` (None when the user is not from the
        account's directory)."""
        with self._svc.engine.uow.session() as session:
            return session.scalars(select(AdDirectoryUser.guid).where(
                AdDirectoryUser.account_id == account_id,
                AdDirectoryUser.user_id == user_id).limit(1)).first()

    def records_of_user(self, account_id: str, user_id: str) -> list[KnownUser]:
        """Sync records linked to a user profile (normally one)."""
        with self._svc.engine.uow.session() as session:
            rows = session.scalars(select(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.user_id == user_id))
            return [_known(r) for r in rows]

    @staticmethod
    def forget_users(session: Session, account_id: str, guids: Sequence[str]) -> None:
        """Drop sync records of objectGUIDs that no longer exist (a recreated user's old
        GUID), in the transaction that re-links the profile."""
        if guids:
            session.execute(delete(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.guid.in_(guids)))

    def retry_guids(self, account_id: str) -> list[str]:
        """Users whose last apply skipped a clashing address (tried again every run)."""
        with self._svc.engine.uow.session() as session:
            return list(session.scalars(select(AdDirectoryUser.guid).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.retry.is_(True),
                AdDirectoryUser.present.is_(True))))

    def count_present(self, account_id: str) -> tuple[int, int]:
        """(users present at the last sync, of which enabled)."""
        with self._svc.engine.uow.session() as session:
            base = select(func.count()).select_from(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True))
            total = session.scalar(base) or 0
            enabled = session.scalar(base.where(AdDirectoryUser.enabled.is_(True))) or 0
            return int(total), int(enabled)

    def plan_page(self, account_id: str, run_id: str, seen: Sequence[str],
                  staged: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """A full run's reading pass over one page: note ``seen`` (sync bookkeeping) and
        stage the changed users' facts (nothing about users changes yet)."""
        with self._svc.engine.uow.session() as session:
            self.mark_seen(session, account_id, seen, run_id)
            for guid, facts in staged:
                session.merge(AdSyncPending(account_id=account_id, guid=guid, run_id=run_id,
                                            facts=facts))

    def drop_pending(self, account_id: str) -> None:
        """Forget changes staged by an earlier run that did not finish (it is redone)."""
        with self._svc.engine.uow.session() as session:
            session.execute(delete(AdSyncPending).where(AdSyncPending.account_id == account_id))

    def pending_pages(self, account_id: str, run_id: str, size: int
                      ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """The staged changes of ``run_id`` in pages (keyset by objectGUID)."""
        after = ""
        while True:
            with self._svc.engine.uow.session() as session:
                rows = list(session.execute(
                    select(AdSyncPending.guid, AdSyncPending.facts).where(
                        AdSyncPending.account_id == account_id,
                        AdSyncPending.run_id == run_id, AdSyncPending.guid > after)
                    .order_by(AdSyncPending.guid).limit(size)))
            if not rows:
                return
            yield [(g, dict(f)) for g, f in rows]
            after = rows[-1][0]

    @staticmethod
    def clear_pending(session: Session, account_id: str, guids: Sequence[str]) -> None:
        """Remove applied staged changes (same transaction as the engine changes)."""
        if guids:
            session.execute(delete(AdSyncPending).where(
                AdSyncPending.account_id == account_id, AdSyncPending.guid.in_(guids)))

    def count_not_seen(self, account_id: str, run_id: str) -> int:
        with self._svc.engine.uow.session() as session:
            return int(session.scalar(select(func.count()).select_from(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True),
                (AdDirectoryUser.seen_run.is_(None)) | (AdDirectoryUser.seen_run != run_id)))
                or 0)

    def present_not_seen(self, account_id: str, run_id: str) -> list[KnownUser]:
        """Users present before a full run that the run did not see (gone or out of scope)."""
        with self._svc.engine.uow.session() as session:
            rows = session.scalars(select(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True),
                (AdDirectoryUser.seen_run.is_(None)) | (AdDirectoryUser.seen_run != run_id)))
            return [_known(r) for r in rows]

    @staticmethod
    def record_users(session: Session, account_id: str, records: Iterable[UserRecord],
                     run_id: str | None) -> None:
        """Write the sync records of applied users (same transaction as the page): one
        bulk INSERT for new objectGUIDs, one executemany UPDATE for known ones."""
        records = list(records)
        if not records:
            return
        table = cast(Table, AdDirectoryUser.__table__)
        existing = set(session.scalars(select(AdDirectoryUser.guid).where(
            AdDirectoryUser.account_id == account_id,
            AdDirectoryUser.guid.in_([rec.guid for rec in records]))))
        fresh = [{"account_id": account_id, "guid": rec.guid, "user_id": rec.user_id,
                  "dn": rec.dn, "fingerprint": rec.fingerprint, "enabled": rec.enabled,
                  "present": True, "groups": list(rec.groups), "seen_run": run_id,
                  "retry": rec.retry}
                 for rec in records if rec.guid not in existing]
        known = [{"b_guid": rec.guid, "b_user_id": rec.user_id, "b_dn": rec.dn,
                  "b_fingerprint": rec.fingerprint, "b_enabled": rec.enabled,
                  "b_groups": list(rec.groups), "b_retry": rec.retry}
                 for rec in records if rec.guid in existing]
        if fresh:
            session.execute(insert(table), fresh)
        if known:
            session.execute(
                update(table).where(table.c.account_id == account_id,
                                    table.c.guid == bindparam("b_guid"))
                .values(user_id=bindparam("b_user_id"), dn=bindparam("b_dn"),
                        fingerprint=bindparam("b_fingerprint"),
                        enabled=bindparam("b_enabled"), present=True,
                        retry=bindparam("b_retry"),
                        groups=bindparam("b_groups", type_=table.c.groups.type),
                        seen_run=run_id), known)

    @staticmethod
    def mark_seen(session: Session, account_id: str, guids: Sequence[str], run_id: str) -> None:
        if guids:
            session.execute(update(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.guid.in_(guids)
            ).values(seen_run=run_id))

    @staticmethod
    def mark_gone(session: Session, account_id: str, guids: Sequence[str]) -> None:
        if guids:
            session.execute(update(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.guid.in_(guids)
            ).values(present=False))

    @staticmethod
    def save_progress(session: Session, account_id: str, *, full_run_started_usn: int | None
                      ) -> None:
        """Note that a full run is under way (a crashed one makes the next run a full)."""
        row = session.get(AdDirectory, account_id)
        if row is not None:
            row.full_run_started_usn = full_run_started_usn

    @staticmethod
    def save_watermark(session: Session, account_id: str, *, dc_name: str, invocation_id: str,
                       highest_usn: int, mappings_fingerprint: str, now: datetime,
                       full: bool, status: str) -> None:
        """Advance the watermark in the transaction of the run's last page."""
        row = session.get(AdDirectory, account_id)
        if row is None:
            raise NotFound(f"Account {account_id} has no Active Directory connected.")
        row.dc_name, row.invocation_id, row.highest_usn = dc_name, invocation_id, highest_usn
        row.mappings_fingerprint = mappings_fingerprint
        row.last_sync_at, row.last_status, row.last_error = now, status, None
        if full:
            row.last_full_sync_at = now
            row.full_run_started_usn = None

    def record_failure_status(self, account_id: str, status: str, error: str | None) -> None:
        """Remember why the last run did not complete (no data changed)."""
        with self._svc.engine.uow.session() as session:
            row = session.get(AdDirectory, account_id)
            if row is not None:
                row.last_status, row.last_error = status, (error or "")[:2000] or None

    def forget_purged(self, account_id: str) -> int:
        """Drop sync records whose user profile was purged after the grace period."""
        with self._svc.engine.uow.session() as session:
            gone = select(AdDirectoryUser.guid).where(
                AdDirectoryUser.account_id == account_id,
                AdDirectoryUser.present.is_(False),
                ~select(User.id).where(User.id == AdDirectoryUser.user_id).exists())
            guids = list(session.scalars(gone))
            if guids:
                session.execute(delete(AdDirectoryUser).where(
                    AdDirectoryUser.account_id == account_id, AdDirectoryUser.guid.in_(guids)))
            return len(guids)


def _known(row: AdDirectoryUser) -> KnownUser:
    return KnownUser(row.guid, row.user_id, row.dn, row.fingerprint, row.enabled, row.present,
                     tuple(row.groups or ()))


def _view(row: AdDirectory) -> DirectoryView:
    return DirectoryView(
        account_id=row.account_id, ldap_url=row.ldap_url, start_tls=row.start_tls,
        base_dn=row.base_dn, bind_dn=row.bind_dn,
        has_ca_certificate=bool(row.ca_certificate_pem), tls_server_name=row.tls_server_name,
        user_filter=row.user_filter, group_base_dn=row.group_base_dn,
        created_at=row.created_at, last_sync_at=row.last_sync_at,
        last_full_sync_at=row.last_full_sync_at, last_status=row.last_status,
        dc_name=row.dc_name, invocation_id=row.invocation_id, highest_usn=row.highest_usn)
