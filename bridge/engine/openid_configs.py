"""The Okta room: per-account OpenID Connect configuration, the guide's
GetAccountWithOpenIdConfig, UpdateAccountWithOpenIdConfig and DeleteAccountWithOpenIdConfig.

The configuration is ``{"IssuerUri", "ClientId", "ClientSecret"}``. The secret is sealed with
the secret box passed in and never returned (not by :meth:`OpenIdConfigs.get`, not in the
audit trail, not in errors). Saving asks the issuer's discovery document (OpenID Connect
Discovery 1.0 section 4) through the ``discover`` function passed in (the composition root
gives :func:`bridge.oidc_discovery.fetch_discovery`; the engine does no HTTP itself) and
refuses, with a ValidationError (HTTP 400 at the admin API), an issuer that does not answer
or whose document names another ``issuer`` (section 4.3: they must be identical).
Connecting makes the account EnterpriseOIDC through the engine's one connect rule; only
enterprise accounts may, and only when the caller asks to connect (``connect=True``; else
ConfirmationRequired saying what it would change). Deleting the configuration of an
account that holds no SCIM key either disconnects Okta: the account is console-managed
again, every user kept with their current tier.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from bridge.domain import Actor, DirectoryKind
from bridge.domain.connect import ConnectPlan
from bridge.engine.room import Clock, Room
from bridge.engine.secrets import Sealer
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import BridgeError, Conflict, Forbidden, NotFound, ValidationError
from bridge.store.models import AccountOpenIdConfig
from bridge.store.repository import Repository

log = logging.getLogger(__name__)

_LOOPBACK_NAMES = {"localhost"}


class DiscoveryError(Exception):
    """The issuer's discovery document could not be used. ``unreachable`` tells a provider
    that did not answer (network error, timeout, 5xx) from one that answered wrongly."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.unreachable = unreachable


# ``discover(issuer)``: the issuer's checked discovery metadata, or DiscoveryError.
Discover = Callable[[str], Mapping[str, Any]]


def _no_discovery(issuer: str) -> Mapping[str, Any]:
    raise DiscoveryError(f"The issuer {issuer} cannot be checked: this engine was built "
                         "without OpenID discovery.", unreachable=True)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_issuer_uri(value: object) -> str:
    """Return the issuer URI as given (trimmed) or raise ValidationError.

    It must be an absolute https URL without query or fragment (OIDC Discovery section 2);
    plain http is accepted only for a loopback host (a provider on the same machine).
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("IssuerUri is required.", field="IssuerUri")
    issuer = value.strip()
    if len(issuer) > 512:
        raise ValidationError("IssuerUri is longer than 512 characters.", field="IssuerUri")
    parts = urlsplit(issuer)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise ValidationError("IssuerUri must be an https:// URL such as "
                              "https://example.okta.com/oauth2/default.", field="IssuerUri")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValidationError("IssuerUri must use https.", field="IssuerUri")
    if parts.query or parts.fragment:
        raise ValidationError("IssuerUri must not have a query or a fragment.",
                              field="IssuerUri")
    return issuer


@dataclass(frozen=True)
class OpenIdConfigView:
    """An account's OpenID configuration without its secret."""

    account_id: str
    issuer: str
    client_id: str
    created_at: datetime
    updated_at: datetime
    # What connecting Okta changed, when this change connected it (UpdateAccount...).
    connected: ConnectPlan | None = None

    def as_json(self) -> dict[str, Any]:
        """The admin API's ``OpenIdConfig`` attributes (never the secret)."""
        return {"IssuerUri": self.issuer, "ClientId": self.client_id}


@dataclass(frozen=True)
class OpenIdClient:
    """What the relying party needs for one account (the secret opened; keep it in memory
    only for the request; ``repr`` hides it)."""

    account_id: str | None
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)


class OpenIdConfigs(Room):
    """Get/Update/Delete an account's OpenID configuration. Each change is one transaction
    with its one audit event through the engine's unit of work (refusals audited there
    too); connecting Okta follows the engine's one connect rule. ``discover`` checks an
    issuer (see :data:`Discover`); ``secrets`` seals the client secret."""

    def __init__(self, uow: UnitOfWork, clock: Clock, secrets: Sealer,
                 discover: Discover = _no_discovery) -> None:
        super().__init__(uow, clock)
        self._secrets = secrets
        self._discover = discover

    @staticmethod
    def _view(row: AccountOpenIdConfig) -> OpenIdConfigView:
        return OpenIdConfigView(row.account_id, row.issuer, row.client_id, row.created_at,
                                row.updated_at)

    def get(self, account_id: str) -> OpenIdConfigView:
        """GetAccountWithOpenIdConfig's configuration part. Raises NotFound when the account
        does not exist or has no OpenID configuration."""

        def work(repo: Repository) -> OpenIdConfigView:
            self._account(repo, account_id)
            row = repo.session.get(AccountOpenIdConfig, account_id)
            if row is None:
                raise NotFound(f"Account {account_id} has no OpenID Connect configuration.")
            return self._view(row)

        return self._read(work)

    def client_for(self, account_id: str) -> OpenIdClient | None:
        """The relying-party credentials of an account, or None when not configured."""

        def work(repo: Repository) -> OpenIdClient | None:
            row = repo.session.get(AccountOpenIdConfig, account_id)
            if row is None:
                return None
            return OpenIdClient(row.account_id, row.issuer, row.client_id,
                                self._secrets.open(row.client_secret_sealed))

        return self._read(work)

    def accounts_for_issuer(self, issuer: str) -> list[str]:
        """Ids of the accounts configured with exactly ``issuer`` (for sign-ins the provider
        starts, OpenID Connect Core 1.0 section 4)."""
        return self._read(lambda repo: list(repo.session.scalars(
            select(AccountOpenIdConfig.account_id).where(AccountOpenIdConfig.issuer == issuer))))

    def update(self, actor: Actor, account_id: str, *, issuer_uri: object, client_id: object,
               client_secret: object = None, connect: bool = False) -> OpenIdConfigView:
        """UpdateAccountWithOpenIdConfig: validate, check the issuer, then connect and store
        in ONE transaction with its one audit event.

        ``client_secret`` may be omitted to keep the stored one when a configuration exists.
        Raises NotFound (no account), Forbidden (not an enterprise account), Conflict (Active
        Directory connected), ConfirmationRequired (Okta not connected yet and ``connect``
        not asked: the message says what connecting changes), ValidationError (bad input,
        or an issuer whose discovery document does not answer or names another issuer:
        HTTP 400 with the reason). The
        discovery document is fetched before the transaction (no network wait holds it);
        the rules are checked again inside it.
        """
        params = {"accountId": account_id, "issuerUri": issuer_uri, "clientId": client_id,
                  "clientSecret": client_secret, "connect": connect}

        def check(repo: Repository) -> tuple[str, str]:
            issuer = validate_issuer_uri(issuer_uri)
            if not isinstance(client_id, str) or not client_id.strip() or len(client_id) > 256:
                raise ValidationError("ClientId must be 1 to 256 characters.", field="ClientId")
            if client_secret is not None and (not isinstance(client_secret, str)
                                              or not client_secret or len(client_secret) > 1024):
                raise ValidationError("ClientSecret must be 1 to 1024 characters.",
                                      field="ClientSecret")
            account = self._account(repo, account_id)
            if not repo.has_verified_domain(account_id):
                raise Forbidden("Only enterprise accounts (with a verified claimed domain) can "
                                "connect Okta.")
            if account.directory_kind not in (None, DirectoryKind.OKTA.value):
                raise Conflict("The account has Active Directory connected; disconnect it "
                               "before connecting Okta.")
            has_config = repo.session.get(AccountOpenIdConfig, account_id) is not None
            if client_secret is None and not has_config:
                raise ValidationError("ClientSecret is required.", field="ClientSecret")
            return issuer, client_id.strip()

        def work(repo: Repository) -> tuple[OpenIdConfigView, dict[str, Any]]:
            # Lock the account first: the connect rule below is checked on what the lock
            # protects (a concurrent ConnectDirectory waits, or is seen).
            account = self._account(repo, account_id, lock=True)
            issuer, clean_id = check(repo)
            if discovery_error is not None:
                raise ValidationError(f"IssuerUri was refused: {discovery_error.message}",
                                      field="IssuerUri")
            plan = (self._okta_plan(repo, account)
                    if account.directory_kind is None and connect else None)
            connected = self._connect(repo, account_id, DirectoryKind.OKTA, confirmed=connect)
            row = repo.session.get(AccountOpenIdConfig, account_id)
            now = self._now()
            if row is None:
                row = AccountOpenIdConfig(account_id=account_id, created_at=now)
                repo.session.add(row)
            row.issuer = issuer
            row.client_id = clean_id
            if isinstance(client_secret, str):
                row.client_secret_sealed = self._secrets.seal(client_secret)
            row.updated_at = now
            repo.session.flush()
            view = replace(self._view(row), connected=plan)
            return view, {"accountId": account_id, "issuerUri": view.issuer,
                          "clientId": view.client_id, "directoryConnected": plan is not None,
                          **connected.detail}

        discovery_error: DiscoveryError | None = None
        try:
            # Input errors first (audited by the unit of work like any refusal), then the
            # provider: only a valid configuration costs a network round trip.
            self._read(check)
        except BridgeError:
            pass  # raised again, and audited, by the change below
        else:
            try:
                self._discover(validate_issuer_uri(issuer_uri))
            except DiscoveryError as exc:
                discovery_error = exc
        return self._run(actor, "UpdateAccountWithOpenIdConfig", params, work,
                         account_id=account_id)

    def delete(self, actor: Actor, account_id: str) -> bool:
        """DeleteAccountWithOpenIdConfig: remove the configuration (Okta sign-in stops).
        While the account holds a SCIM key the Okta directory stays connected (provisioning
        and tiers untouched); without one Okta is disconnected — the account is
        console-managed again, every user kept with their current tier. Returns whether it
        disconnected. Raises NotFound when the account or its configuration does not
        exist."""

        def work(repo: Repository) -> tuple[bool, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            row = repo.session.get(AccountOpenIdConfig, account_id)
            if row is None:
                raise NotFound(f"Account {account_id} has no OpenID Connect configuration.")
            repo.session.delete(row)
            repo.session.flush()
            disconnected = self._disconnect_okta_if_unused(repo, account)
            return disconnected, {"directoryDisconnected": disconnected}

        return self._run(actor, "DeleteAccountWithOpenIdConfig", {"accountId": account_id},
                         work, account_id=account_id)
