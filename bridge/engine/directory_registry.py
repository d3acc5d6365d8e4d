"""The directory registry: Active Directories an organisation made available to its
accounts (the guide's AuthorizeDirectory, UnauthorizeDirectory and ListDirectories).

A registered directory is where and as whom to bind (URL, TLS settings, service account,
CA), checked by one bind before it is stored, and given an id (``d-`` and ten hex digits,
the shape of the guide's "Cloud directory ID"). Accounts of the same organisation then
connect to it by that id with their own BaseDn/GroupBaseDn/UserFilter
(:meth:`bridge.engine.ad_directories.AdDirectories.connect`); several accounts may share
one directory, and the sync daemon binds once per directory for all of them.

Each change is one transaction with its one audit event (the unit of work); the bind
password is sealed with the secret box passed in and appears in no view, error, log line
or event. Health (the last bind's outcome) is bookkeeping: recorded without an event.
"""

from __future__ import annotations

import secrets as random_ids
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from bridge.domain import Actor
from bridge.domain.ad_connection import validate_target
from bridge.engine.room import Clock, Room
from bridge.engine.secrets import Sealer
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import Conflict, NotFound, ValidationError
from bridge.store.ad_models import AdDirectory, AuthorizedDirectory
from bridge.store.models import Account
from bridge.store.repository import Repository

HEALTHY, FAILING, UNKNOWN = "Healthy", "Failing", "Unknown"


@dataclass(frozen=True)
class DirectoryTarget:
    """Where and as whom to bind (password in clear: keep it in memory only)."""

    ldap_url: str
    start_tls: bool
    bind_dn: str
    bind_password: str
    ca_certificate_pem: str | None
    tls_server_name: str | None

    def __repr__(self) -> str:  # never print the password
        return f"DirectoryTarget(ldap_url={self.ldap_url!r}, bind_dn={self.bind_dn!r})"


# AuthorizeDirectory's bind check (the AD door's, passed in by the composition root): binds
# as the service account and returns the directory's default naming context (None when it
# does not say); raises ValidationError with the LDAP error in words.
VerifyBind = Callable[[DirectoryTarget], str | None]


@dataclass(frozen=True)
class RegisteredDirectoryView:
    """A registered directory as ListDirectories shows it (no password, ever)."""

    id: str
    name: str
    ldap_url: str
    start_tls: bool
    bind_dn: str
    has_ca_certificate: bool
    tls_server_name: str | None
    naming_context: str | None
    created_at: datetime
    health: str
    checked_at: datetime | None
    health_error: str | None
    connected_account_ids: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "DirectoryId": self.id, "Name": self.name, "LdapUrl": self.ldap_url,
            "StartTls": self.start_tls, "BindDn": self.bind_dn,
            "HasCaCertificate": self.has_ca_certificate,
            "TlsServerName": self.tls_server_name,
            "DefaultNamingContext": self.naming_context,
            "CreatedTimestamp": self.created_at,
            "Health": {"Status": self.health, "CheckedTimestamp": self.checked_at,
                       "Message": self.health_error},
            "ConnectedAccountIds": list(self.connected_account_ids),
        }


def _name(body: Mapping[str, Any], ldap_url: str) -> str:
    value = body.get("Name")
    if value is None or (isinstance(value, str) and not value.strip()):
        return urlsplit(ldap_url).hostname or ldap_url
    if not isinstance(value, str) or len(value.strip()) > 255:
        raise ValidationError("Name must be a string of at most 255 characters.",
                              field="Name")
    return value.strip()


class DirectoryRegistry(Room):
    """AuthorizeDirectory, UnauthorizeDirectory, ListDirectories; the health record."""

    def __init__(self, uow: UnitOfWork, clock: Clock, secrets: Sealer, *,
                 allow_insecure_ldap: bool = False) -> None:
        super().__init__(uow, clock)
        self._secrets = secrets
        self._allow_insecure = allow_insecure_ldap

    def authorize(self, actor: Actor, organisation: str, body: Mapping[str, Any],
                  verify_bind: VerifyBind, *, directory_id: str | None = None
                  ) -> RegisteredDirectoryView:
        """AuthorizeDirectory: validate the settings, bind once as the service account
        (``verify_bind`` raises ValidationError when the directory cannot be reached,
        verified or bound to), then register it for ``organisation`` with a new id, in one
        transaction with its one event. Conflict when the organisation already registered
        the same URL and service account (the answer names its id).

        With ``directory_id``, the settings of that registered directory are replaced
        instead (a new service-account password, a renewed CA), after the same
        bind check: every connected account uses them from its next bind. NotFound when
        the organisation has no directory with that id."""
        existing_id = directory_id
        if existing_id is not None:
            self._read(lambda repo: self._row(repo, organisation, existing_id))
        fields = validate_target(body, allow_insecure=self._allow_insecure)
        name = _name(body, fields["ldap_url"])
        naming_context = verify_bind(DirectoryTarget(**fields))
        sealed = self._secrets.seal(fields.pop("bind_password"))
        params = {"organisation": organisation, "name": name, "ldapUrl": fields["ldap_url"],
                  "startTls": fields["start_tls"], "bindDn": fields["bind_dn"],
                  "hasCaCertificate": fields["ca_certificate_pem"] is not None,
                  "tlsServerName": fields["tls_server_name"]}
        if existing_id is not None:
            params["directoryId"] = existing_id

        def work(repo: Repository) -> tuple[RegisteredDirectoryView, dict[str, Any]]:
            same = repo.session.scalars(select(AuthorizedDirectory).where(
                AuthorizedDirectory.organisation == organisation,
                AuthorizedDirectory.ldap_url == fields["ldap_url"],
                AuthorizedDirectory.bind_dn == fields["bind_dn"])).first()
            if same is not None and same.id != existing_id:
                raise Conflict(f"This directory and service account are already authorized "
                               f"as {same.id}; send its DirectoryId to change its settings.")
            now = self._now()
            if existing_id is not None:
                row = self._row(repo, organisation, existing_id)
                for key, value in fields.items():
                    setattr(row, key, value)
                row.name, row.bind_password_sealed = name, sealed
                row.naming_context, row.updated_at = naming_context, now
            else:
                row = AuthorizedDirectory(
                    id=f"d-{random_ids.token_hex(5)}", organisation=organisation, name=name,
                    bind_password_sealed=sealed, naming_context=naming_context,
                    created_at=now, updated_at=now, **fields)
                repo.session.add(row)
            row.checked_at, row.healthy, row.health_error = now, True, None
            repo.session.flush()
            view = self._view(row, self._connected(repo, [row.id]).get(row.id, ()))
            return view, {"directoryId": view.id}

        return self._run(actor, "AuthorizeDirectory", params, work)

    def unauthorize(self, actor: Actor, organisation: str, directory_id: str) -> None:
        """UnauthorizeDirectory: forget a registered directory. Conflict (naming them)
        while any account is connected to it; NotFound when the organisation has no
        directory with that id."""

        def work(repo: Repository) -> tuple[None, None]:
            row = self._row(repo, organisation, directory_id)
            connected = self._connected(repo, [directory_id]).get(directory_id, ())
            if connected:
                names = ", ".join(
                    f"{name} ({account_id})" for account_id, name in repo.session.execute(
                        select(Account.id, Account.name).where(Account.id.in_(connected))
                        .order_by(Account.name, Account.id)))
                raise Conflict(f"Directory {directory_id} is connected to {names}; "
                               "disconnect them (DisconnectDirectory) first.")
            repo.session.delete(row)
            return None, None

        self._run(actor, "UnauthorizeDirectory",
                  {"organisation": organisation, "directoryId": directory_id}, work)

    def list_directories(self, organisation: str) -> list[RegisteredDirectoryView]:
        """ListDirectories: the organisation's registered directories with their health
        and the accounts connected to each, oldest first."""

        def work(repo: Repository) -> list[RegisteredDirectoryView]:
            rows = list(repo.session.scalars(select(AuthorizedDirectory).where(
                AuthorizedDirectory.organisation == organisation)
                .order_by(AuthorizedDirectory.created_at, AuthorizedDirectory.id)))
            connected = self._connected(repo, [r.id for r in rows])
            return [self._view(r, connected.get(r.id, ())) for r in rows]

        return self._read(work, write_lock=False)

    def target(self, organisation: str, directory_id: str) -> DirectoryTarget:
        """The registered directory's bind settings, password opened (for a connect's bind
        check). NotFound when the organisation has no directory with that id."""

        def work(repo: Repository) -> DirectoryTarget:
            row = self._row(repo, organisation, directory_id)
            return DirectoryTarget(row.ldap_url, row.start_tls, row.bind_dn,
                                   self._secrets.open(row.bind_password_sealed),
                                   row.ca_certificate_pem, row.tls_server_name)

        return self._read(work, write_lock=False)

    def record_health(self, directory_id: str, *, error: str | None) -> None:
        """Note the outcome of a bind to a registered directory (the sync daemon's): None
        is healthy, else the error in words (it must carry no secret). Bookkeeping: no
        event; a directory unauthorized meanwhile is ignored."""

        def work(repo: Repository) -> None:
            row = repo.session.get(AuthorizedDirectory, directory_id)
            if row is not None:
                row.checked_at = self._now()
                row.healthy = error is None
                row.health_error = error[:2000] if error else None

        self._uow.bookkeeping(work)

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _row(repo: Repository, organisation: str, directory_id: str) -> AuthorizedDirectory:
        row = repo.session.get(AuthorizedDirectory, directory_id) \
            if isinstance(directory_id, str) else None
        if row is None or row.organisation != organisation:
            # Another organisation's directory is as unknown as a missing one.
            raise NotFound(f"Directory {directory_id} was not found.")
        return row

    @staticmethod
    def _connected(repo: Repository, ids: list[str]) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        if ids:
            for directory_id, account_id in repo.session.execute(
                    select(AdDirectory.directory_id, AdDirectory.account_id)
                    .where(AdDirectory.directory_id.in_(ids))
                    .order_by(AdDirectory.account_id)):
                found.setdefault(directory_id, []).append(account_id)
        return {k: tuple(v) for k, v in found.items()}

    @staticmethod
    def _view(row: AuthorizedDirectory, connected: tuple[str, ...]) -> RegisteredDirectoryView:
        health = UNKNOWN if row.healthy is None else HEALTHY if row.healthy else FAILING
        return RegisteredDirectoryView(
            id=row.id, name=row.name, ldap_url=row.ldap_url, start_tls=row.start_tls,
            bind_dn=row.bind_dn, has_ca_certificate=bool(row.ca_certificate_pem),
            tls_server_name=row.tls_server_name, naming_context=row.naming_context,
            created_at=row.created_at, health=health, checked_at=row.checked_at,
            health_error=row.health_error, connected_account_ids=connected)
