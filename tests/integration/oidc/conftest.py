"""Fixtures for the OIDC door against a real OpenID Provider (npm ``oidc-provider``).

Two providers run for the whole package: ``okta_op`` (an Okta-style custom authorization
server, issuer path ``/oauth2/default``) and ``default_op`` (the service-wide default
provider, issuer at the root). Tests that restart or stop a provider start their own.

The bridge is driven through the Flask test client; its public URL is
``http://127.0.0.1:9`` (never served: :func:`follow_login` stops at the first redirect away
from the provider and the test hands that callback URL to the test client).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge.app import Services, build_services, create_app
from bridge.domain import Actor, DirectoryKind, IdentitySource, Tier
from bridge.engine import ResolutionEngine
from bridge.engine.results import AccountView
from tests.builders import claim
from tests.conftest import make_settings
from tests.servers.oidc_op import OpenIdProvider

PUBLIC_URL = "http://127.0.0.1:9"
PUBLIC_NETLOC = "127.0.0.1:9"
POST_LOGIN_URL = "/welcome"
OKTA_CLIENT_ID = "bridge-okta-client"
OKTA_CLIENT_SECRET = "okta-client-secret-value"
DEFAULT_CLIENT_ID = "bridge-default-client"
DEFAULT_CLIENT_SECRET = "default-client-secret-value"
OKTA_DOMAIN = "okta.example"
LWA_DOMAIN = "lwa.example"
REDIRECT_URIS = [PUBLIC_URL + "/auth/okta/callback", PUBLIC_URL + "/auth/callback"]


def okta_claims(sub: str, email: str, groups: list[str] | None,
                name: str = "Okta User") -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": sub, "email": email, "email_verified": True, "name": name}
    if groups is not None:
        claims["groups"] = groups
    return claims


# login_hint -> claims. Okta sends its user id as `sub` and as SCIM externalId.
OKTA_USERS: dict[str, dict[str, Any]] = {
    "pro@okta.example": okta_claims("00u-pro", "pro@okta.example", ["Engineering"]),
    "basic@okta.example": okta_claims("00u-basic", "basic@okta.example", ["Sales"]),
    "nogroup@okta.example": okta_claims("00u-nogroup", "nogroup@okta.example", ["Other"]),
    "disabled@okta.example": okta_claims("00u-disabled", "disabled@okta.example",
                                         ["Engineering"]),
    "ghost@okta.example": okta_claims("00u-ghost", "ghost@okta.example", ["Engineering"]),
    "outsider@elsewhere.example": okta_claims("00u-outsider", "outsider@elsewhere.example",
                                              ["Engineering"]),
    "many@okta.example": okta_claims("00u-many", "many@okta.example",
                                     [f"group-{i:03d}" for i in range(100)]),
    "nogroupsclaim@okta.example": okta_claims("00u-nogroupsclaim",
                                              "nogroupsclaim@okta.example", None),
}
DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "ann@lwa.example": {"sub": "amzn-ann", "email": "ann@lwa.example", "email_verified": True},
    "sam@lwa.example": {"sub": "amzn-sam", "email": "sam@lwa.example", "email_verified": True},
    "rel@lwa.example": {"sub": "amzn-rel", "email": "rel@lwa.example", "email_verified": True},
    "solo@free.example": {"sub": "amzn-solo", "email": "solo@free.example",
                          "email_verified": True},
    "unverified@free.example": {"sub": "amzn-unv", "email": "unverified@free.example",
                                "email_verified": False},
    "pro@okta.example": {"sub": "amzn-okta-pro", "email": "pro@okta.example",
                         "email_verified": True},
}


def make_okta_op(**kwargs: Any) -> OpenIdProvider:
    clients = [{"client_id": OKTA_CLIENT_ID, "client_secret": OKTA_CLIENT_SECRET,
                "redirect_uris": REDIRECT_URIS}]
    return OpenIdProvider(issuer_path="/oauth2/default", clients=clients,
                          accounts=OKTA_USERS, **kwargs)


def make_default_op(**kwargs: Any) -> OpenIdProvider:
    clients = [{"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                "redirect_uris": REDIRECT_URIS}]
    return OpenIdProvider(clients=clients, accounts=DEFAULT_USERS, **kwargs)


@pytest.fixture(scope="session")
def okta_op() -> Iterator[OpenIdProvider]:
    with make_okta_op() as op:
        yield op


@pytest.fixture(scope="session")
def default_op() -> Iterator[OpenIdProvider]:
    with make_default_op() as op:
        yield op


@pytest.fixture
def oidc_services(sqlite_url: str, tmp_path: Path, default_op: OpenIdProvider
                  ) -> Iterator[Services]:
    settings = make_settings(tmp_path, sqlite_url, public_url=PUBLIC_URL,
                             post_login_url=POST_LOGIN_URL,
                             default_oidc_issuer=default_op.issuer,
                             default_oidc_client_id=DEFAULT_CLIENT_ID,
                             default_oidc_client_secret=DEFAULT_CLIENT_SECRET)
    built = build_services(settings)
    yield built
    built.db.dispose()


@pytest.fixture
def oidc_app(oidc_services: Services) -> Flask:
    return create_app(oidc_services.settings, oidc_services)


@pytest.fixture
def web(oidc_app: Flask) -> FlaskClient:
    return oidc_app.test_client()


@dataclass
class OktaAccount:
    account: AccountView
    users: dict[str, str]  # login_hint -> bridge user id
    groups: dict[str, str]  # group name -> group id


def connect_okta(services: Services, admin: Actor, op: OpenIdProvider,
                 domains: tuple[str, ...] = (OKTA_DOMAIN,)) -> AccountView:
    """An enterprise account with verified domains, connected to ``op`` as its Okta."""
    engine = services.engine
    account = engine.create_account(admin, "Okta Corp")
    for domain in domains:
        claim(engine, admin, account.id, domain)
    services.engine.openid_configs.update(admin, account.id, issuer_uri=op.issuer,
                                         client_id=OKTA_CLIENT_ID,
                                         client_secret=OKTA_CLIENT_SECRET, connect=True)
    return engine.get_account(account.id)


def provision(engine: ResolutionEngine, admin: Actor, account_id: str, hint: str,
              groups: list[str], *, enabled: bool = True) -> str:
    """Provision an Okta user as SCIM would (externalId = Okta id = the ID token's sub)."""
    claims = OKTA_USERS[hint]
    result = engine.upsert_directory_user(
        admin, account_id, source=IdentitySource.SCIM, external_id=claims["sub"],
        primary_email=claims["email"], enabled=enabled)
    engine.set_user_groups(admin, account_id, result.user.id, groups)
    return result.user.id


@pytest.fixture
def okta_account(oidc_services: Services, admin: Actor, okta_op: OpenIdProvider
                 ) -> OktaAccount:
    """Okta account: groups Engineering→Pro, Sales→Basic, Other unmapped (pushed over SCIM
    first, as the guide requires), and the provisioned users."""
    engine = oidc_services.engine
    account = connect_okta(oidc_services, admin, okta_op)
    groups = {name: engine.upsert_group(admin, account.id, name=name).id
              for name in ("Engineering", "Sales", "Other")}
    engine.add_or_update_group_mappings(admin, account.id,
                                        {"Engineering": Tier.PRO, "Sales": Tier.BASIC})
    users = {
        "pro@okta.example": provision(engine, admin, account.id, "pro@okta.example",
                                      ["Engineering"]),
        # Known from SCIM in no group: the groups claim alone makes them Basic.
        "basic@okta.example": provision(engine, admin, account.id, "basic@okta.example", []),
        "nogroup@okta.example": provision(engine, admin, account.id, "nogroup@okta.example",
                                          ["Other"]),
        "disabled@okta.example": provision(engine, admin, account.id,
                                           "disabled@okta.example", ["Engineering"],
                                           enabled=False),
        "many@okta.example": provision(engine, admin, account.id, "many@okta.example",
                                       ["Engineering"]),
        "nogroupsclaim@okta.example": provision(engine, admin, account.id,
                                                "nogroupsclaim@okta.example", ["Sales"]),
    }
    assert engine.get_account(account.id).directory_kind == DirectoryKind.OKTA.value
    return OktaAccount(engine.get_account(account.id), users, groups)


def start_login(web: FlaskClient, **query: str) -> TestResponse:
    return web.get("/auth/login", query_string=query)


def provider_redirect(op: OpenIdProvider, authorize_url: str) -> str:
    """Walk the provider's login with a fresh browser session; return the callback URL."""
    with requests.Session() as http:
        final = op.follow_login(http, authorize_url)
    assert urlsplit(final).netloc == PUBLIC_NETLOC, final
    return final


def deliver(web: FlaskClient, callback_url: str, **headers: str) -> TestResponse:
    """Hand the provider's redirect to the bridge (the browser following it)."""
    parts = urlsplit(callback_url)
    return web.get(f"{parts.path}?{parts.query}", headers=headers)


def sign_in(web: FlaskClient, op: OpenIdProvider, *, headers: dict[str, str] | None = None,
            **query: str) -> TestResponse:
    """The whole flow: /auth/login → provider → callback; returns the callback's response."""
    start = start_login(web, **query)
    assert start.status_code == 302, start.get_data(as_text=True)
    return deliver(web, provider_redirect(op, start.headers["Location"]), **(headers or {}))


def session_of(web: FlaskClient) -> TestResponse:
    return web.get("/auth/session")
