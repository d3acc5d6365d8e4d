"""Active Directory connection records: the guide's ConnectDirectory, the account's
connection (ListDirectories' per-account view) and DisconnectDirectory.

The room keeps what the bridge stores about an account's directory connection: where and
as whom to bind, and the scope the account reads. Connecting follows the one connect rule
(:meth:`Room._connect`) and commits the settings with the account's new kind and its ONE
``ConnectDirectory`` event; disconnecting drops the settings and the AD sync's records of
the account with its ``DisconnectDirectory`` event. The sync's own bookkeeping (records,
watermark) is the AD door's (``ad_sync/records.py``).

Secrets: the bind password is sealed with the secret box passed in; only
:meth:`AdDirectories.connection` (for the AD door) opens it. No view, error, log line or
audit event carries it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from bridge.domain import Actor, DirectoryKind
from bridge.domain.ad_connection import validate_connection_request, validate_scope
from bridge.engine.directory_registry import DirectoryRegistry
from bridge.engine.room import Clock, Room
from bridge.engine.secrets import Sealer
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import NotFound, ValidationError
from bridge.store.ad_models import AdDirectory, AdDirectoryUser, AdSyncPending, AuthorizedDirectory
from bridge.store.ad_sync_report_models import AdSyncReport
from bridge.store.repository import Repository


@dataclass(frozen=True)
class DirectoryConnection:
    """Everything the AD door needs to reach and bind to a directory (password in clear:
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
    # The registered directory the connection uses (AuthorizeDirectory), None for inline
    # settings: accounts with the same id share one bind of the sync daemon.
    directory_id: str | None = None

    def __repr__(self) -> str:  # never print the password
        return (f"DirectoryConnection(account_id={self.account_id!r}, "
                f"ldap_url={self.ldap_url!r}, base_dn={self.base_dn!r})")


@dataclass(frozen=True)
class DirectoryView:
    """The account's connection as ListDirectories shows it (no password, ever)."""

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
    directory_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "AccountId": self.account_id, "DirectoryId": self.directory_id,
            "LdapUrl": self.ldap_url, "StartTls": self.start_tls,
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


Verify = Callable[[DirectoryConnection], None]
# The inline settings a ConnectDirectory by DirectoryId must not repeat.
_INLINE = ("LdapUrl", "StartTls", "BindDn", "BindPassword", "CaCertificatePem",
           "TlsServerName")


class AdDirectories(Room):
    """The bridge's records about accounts' Active Directory connections."""

    def __init__(self, uow: UnitOfWork, clock: Clock, secrets: Sealer,
                 registry: DirectoryRegistry, *, allow_insecure_ldap: bool = False) -> None:
        super().__init__(uow, clock)
        self._secrets = secrets
        self._registry = registry
        self._allow_insecure = allow_insecure_ldap

    def connect(self, actor: Actor, account_id: str, body: Mapping[str, Any],
                verify: Verify, *, organisation: str | None = None) -> DirectoryView:
        """ConnectDirectory: validate, bind once (``verify`` raises ValidationError with
        the LDAP error in words when the directory cannot be reached or bound to, or the
        BaseDn cannot be read), then store the settings and make the account
        EnterpriseDirectory, in one transaction with its one event.

        The body is either inline settings (LdapUrl, BindDn, BindPassword, ...) or a
        ``DirectoryId`` that ``organisation`` registered (AuthorizeDirectory) plus the
        account's own BaseDn/GroupBaseDn/UserFilter, never both (ValidationError).

        Raises ValidationError (bad field, unreachable directory), Forbidden (not an
        enterprise account), Conflict (another directory kind connected), NotFound (the
        account, or a directory id the organisation did not register).
        """
        if body.get("DirectoryId") is not None:
            return self._connect_registered(actor, account_id, body, verify, organisation)
        fields = validate_connection_request(body, allow_insecure=self._allow_insecure)
        self._read(lambda repo: self._account(repo, account_id))  # NotFound before a bind
        verify(DirectoryConnection(account_id=account_id, **fields))
        fields["bind_password_sealed"] = self._secrets.seal(fields.pop("bind_password"))
        fields["directory_id"] = None
        return self._store(actor, account_id, fields)

    def _connect_registered(self, actor: Actor, account_id: str, body: Mapping[str, Any],
                            verify: Verify, organisation: str | None) -> DirectoryView:
        directory_id = body.get("DirectoryId")
        if not isinstance(directory_id, str) or not directory_id.strip():
            raise ValidationError("DirectoryId must be a directory id such as d-0123456789.",
                                  field="DirectoryId")
        given = [name for name in _INLINE if body.get(name) is not None]
        if given:
            raise ValidationError(
                f"Give either DirectoryId or the directory's settings, not both ({given[0]} "
                "belongs to the registered directory: AuthorizeDirectory).", field=given[0])
        scope = validate_scope(body)
        self._read(lambda repo: self._account(repo, account_id))  # NotFound before a bind
        if organisation is None:
            raise NotFound(f"Directory {directory_id} was not found.")
        target = self._registry.target(organisation, directory_id.strip())
        verify(DirectoryConnection(
            account_id=account_id, ldap_url=target.ldap_url, start_tls=target.start_tls,
            bind_dn=target.bind_dn, bind_password=target.bind_password,
            ca_certificate_pem=target.ca_certificate_pem,
            tls_server_name=target.tls_server_name, directory_id=directory_id.strip(),
            **scope))
        return self._store(actor, account_id, {
            **scope, "directory_id": directory_id.strip(), "ldap_url": None,
            "start_tls": False, "bind_dn": None, "bind_password_sealed": None,
            "ca_certificate_pem": None, "tls_server_name": None},
            organisation=organisation)

    def _store(self, actor: Actor, account_id: str, fields: dict[str, Any], *,
               organisation: str | None = None) -> DirectoryView:
        """Connect (the one connect rule) and write the connection row: one change, one
        ``ConnectDirectory`` event (its fields are the connect rule's, no setting)."""

        def work(repo: Repository) -> tuple[DirectoryView, dict[str, Any]]:
            connected = self._connect(repo, account_id, DirectoryKind.ACTIVE_DIRECTORY)
            account = connected.account
            if fields["directory_id"] is not None:
                # Still registered (and still this organisation's) when the change commits.
                registered = repo.session.get(AuthorizedDirectory, fields["directory_id"])
                if registered is None or registered.organisation != organisation:
                    raise NotFound(f"Directory {fields['directory_id']} was not found.")
            now = self._now()
            row = repo.session.get(AdDirectory, account_id)
            if row is None:
                row = AdDirectory(account_id=account_id, created_at=now)
                repo.session.add(row)
            elif (row.directory_id, row.ldap_url, row.base_dn) != (
                    fields["directory_id"], fields["ldap_url"], fields["base_dn"]):
                # Another DC or scope: the watermark means nothing there; start with a full.
                row.dc_name = row.invocation_id = None
                row.highest_usn = None
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = now
            repo.session.flush()
            view = self._view(repo, row)
            return view, {"accountType": self._account_view(repo, account).type.value,
                          **connected.detail}

        params: dict[str, Any] = {"accountId": account_id,
                                  "directory": DirectoryKind.ACTIVE_DIRECTORY.value}
        if fields["directory_id"] is not None:
            params["directoryId"] = fields["directory_id"]
        return self._run(actor, "ConnectDirectory", params, work, account_id=account_id)

    def disconnect(self, actor: Actor, account_id: str) -> None:
        """DisconnectDirectory: forget the settings and the sync's records; the account
        becomes console-managed (users keep their tiers). NotFound (not audited: nothing
        was asked of a directory) when none is connected."""
        if self.get(account_id) is None:
            self._read(lambda repo: self._account(repo, account_id))
            raise NotFound(f"Account {account_id} has no Active Directory connected.")

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            self._disconnect(repo, account)
            for model in (AdDirectoryUser, AdSyncPending, AdSyncReport, AdDirectory):
                repo.session.execute(delete(model).where(model.account_id == account_id))
            return None, {"accountType": self._account_view(repo, account).type.value}

        self._run(actor, "DisconnectDirectory", {"accountId": account_id, "directory": None},
                  work, account_id=account_id)

    def get(self, account_id: str) -> DirectoryView | None:
        """The account's connection, or None."""

        def work(repo: Repository) -> DirectoryView | None:
            row = repo.session.get(AdDirectory, account_id)
            return self._view(repo, row) if row is not None else None

        return self._read(work, write_lock=False)

    def connection(self, account_id: str) -> DirectoryConnection:
        """The settings with the password opened (for the AD door). NotFound without."""

        def work(repo: Repository) -> DirectoryConnection:
            row = repo.session.get(AdDirectory, account_id)
            if row is None:
                raise NotFound(f"Account {account_id} has no Active Directory connected.")
            target = self._target(repo, row)
            return DirectoryConnection(
                account_id=row.account_id, ldap_url=target.ldap_url,
                start_tls=target.start_tls, base_dn=row.base_dn, bind_dn=target.bind_dn,
                bind_password=self._secrets.open(target.bind_password_sealed),
                ca_certificate_pem=target.ca_certificate_pem,
                tls_server_name=target.tls_server_name, user_filter=row.user_filter,
                group_base_dn=row.group_base_dn, directory_id=row.directory_id)

        return self._read(work, write_lock=False)

    def account_ids(self) -> list[str]:
        """Every account with a directory connected (the sync daemon's work list)."""
        return self._read(lambda repo: list(repo.session.scalars(
            select(AdDirectory.account_id).order_by(AdDirectory.account_id))),
            write_lock=False)

    # --- rows to views ----------------------------------------------------------------------

    @staticmethod
    def _target(repo: Repository, row: AdDirectory) -> Any:
        """Where the row binds: its own settings, or those of the registered directory it
        names (one place for every account that shares it)."""
        if row.directory_id is None:
            return row
        return repo.session.get(AuthorizedDirectory, row.directory_id)

    def _view(self, repo: Repository, row: AdDirectory) -> DirectoryView:
        target = self._target(repo, row)
        return DirectoryView(
            account_id=row.account_id, ldap_url=target.ldap_url, start_tls=target.start_tls,
            base_dn=row.base_dn, bind_dn=target.bind_dn,
            has_ca_certificate=bool(target.ca_certificate_pem),
            tls_server_name=target.tls_server_name, user_filter=row.user_filter,
            group_base_dn=row.group_base_dn, created_at=row.created_at,
            last_sync_at=row.last_sync_at, last_full_sync_at=row.last_full_sync_at,
            last_status=row.last_status, dc_name=row.dc_name,
            invocation_id=row.invocation_id, highest_usn=row.highest_usn,
            directory_id=row.directory_id)
