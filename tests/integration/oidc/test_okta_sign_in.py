"""Sign-in through Okta (issue 5) against a real OpenID Provider, end to end over HTTP."""

from __future__ import annotations

from flask.testing import FlaskClient

from bridge.app import Services
from bridge.domain import Actor
from tests.integration.oidc.conftest import (
    POST_LOGIN_URL,
    OktaAccount,
    session_of,
    sign_in,
)
from tests.servers.oidc_op import OpenIdProvider

JSON = {"Accept": "application/json"}


def test_pro_user_signs_in_with_a_session_cookie(web: FlaskClient, okta_op: OpenIdProvider,
                                                 okta_account: OktaAccount) -> None:
    resp = sign_in(web, okta_op, email="pro@okta.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert resp.headers["Location"] == POST_LOGIN_URL
    cookie = next(h for h in resp.headers.getlist("Set-Cookie")
                  if h.startswith("bridge_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the bridge is on http here
    body = session_of(web).get_json()
    assert body["user"] == {"id": okta_account.users["pro@okta.example"],
                            "email": "pro@okta.example"}
    assert body["account"] == {"id": okta_account.account.id, "type": "EnterpriseOIDC"}
    assert body["tier"] == "pro"
    assert body["expires"].endswith("Z")


def test_basic_user_gets_basic_from_the_groups_claim(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services) -> None:
    # SCIM put this user in no group; the ID token's groups claim (Sales → Basic) refreshes
    # the membership before the decision.
    resp = sign_in(web, okta_op, email="basic@okta.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert session_of(web).get_json()["tier"] == "basic"
    user = oidc_services.engine.get_user(okta_account.account.id,
                                         okta_account.users["basic@okta.example"])
    assert set(user.groups) == {"Sales"}


def test_truncated_groups_claim_keeps_the_groups_known_from_scim(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services) -> None:
    # Okta cut the claim at 100 groups (none of them mapped): SCIM's Engineering stands.
    resp = sign_in(web, okta_op, email="many@okta.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert session_of(web).get_json()["tier"] == "pro"
    user = oidc_services.engine.get_user(okta_account.account.id,
                                         okta_account.users["many@okta.example"])
    assert set(user.groups) == {"Engineering"}


def test_absent_groups_claim_keeps_the_groups_known_from_scim(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    resp = sign_in(web, okta_op, email="nogroupsclaim@okta.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert session_of(web).get_json()["tier"] == "basic"


def test_user_in_no_mapped_group_is_denied_with_the_reason(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    resp = sign_in(web, okta_op, email="nogroup@okta.example")
    assert resp.status_code == 403
    assert resp.mimetype == "text/html"
    assert '<code id="reason">no_mapped_group</code>' in resp.get_data(as_text=True)
    assert "bridge_session=" not in " ".join(resp.headers.getlist("Set-Cookie"))
    assert session_of(web).status_code == 401


def test_denial_is_json_when_the_client_asks_for_json(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    resp = sign_in(web, okta_op, email="nogroup@okta.example", headers=JSON)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "no_mapped_group"
    assert resp.get_json()["message"]


def test_user_deactivated_in_okta_is_denied(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    # Okta "suspends" a user by deactivating them (SCIM active=false).
    resp = sign_in(web, okta_op, email="disabled@okta.example", headers=JSON)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "disabled_in_directory"


def test_user_never_provisioned_is_denied_not_in_directory(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    resp = sign_in(web, okta_op, email="ghost@okta.example", headers=JSON)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "not_in_directory"


def test_address_on_an_unclaimed_domain_is_denied(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    # Signing in "to the account" with an Okta user whose address is on no claimed domain.
    resp = sign_in(web, okta_op, account=okta_account.account.id,
                   email="outsider@elsewhere.example", headers=JSON)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "domain_not_claimed"


def test_identity_link_is_stored_and_used(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services, admin: Actor) -> None:
    assert sign_in(web, okta_op, email="pro@okta.example").status_code == 302
    uid = okta_account.users["pro@okta.example"]
    from sqlalchemy import select

    from bridge.store.db import transaction
    from bridge.store.models import ExternalIdentity

    with transaction(oidc_services.sessions) as s:
        links = {(r.source, r.issuer, r.external_id) for r in s.scalars(
            select(ExternalIdentity).where(ExternalIdentity.user_id == uid))}
    assert ("oidc", okta_op.issuer, "00u-pro") in links
    # The issuer keeps its path (Okta custom authorization server).
    assert okta_op.issuer.endswith("/oauth2/default")


def test_every_decision_is_audited(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services) -> None:
    from bridge import audit
    from bridge.store.db import transaction

    sign_in(web, okta_op, email="pro@okta.example")
    sign_in(web, okta_op, email="nogroup@okta.example")
    with transaction(oidc_services.sessions) as s:
        events, _ = audit.lookup(s, audit.EventQuery(event_name="SignIn"))
    codes = [e.get("errorCode") for e in events]
    # One event per decision: the engine audits its denial, the door does not again.
    assert codes == [None, "no_mapped_group"]
    dumped = repr(events)
    assert "okta-client-secret-value" not in dumped and "eyJ" not in dumped


def test_login_initiated_by_okta_names_the_account_by_issuer(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    # Okta's "Login initiated by: Either (Okta or App)": Okta sends the browser to the
    # initiate-login URI with its issuer (OIDC Core 1.0 section 4).
    resp = sign_in(web, okta_op, iss=okta_op.issuer, login_hint="pro@okta.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert session_of(web).get_json()["account"]["id"] == okta_account.account.id
    unknown = web.get("/auth/login?iss=https://unknown.example/oauth2/default",
                      headers=JSON)
    assert unknown.status_code == 400 and unknown.get_json()["error"] == "unknown_issuer"
