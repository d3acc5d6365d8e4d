"""The callback's checks (state, RFC 9207 iss, code, nonce, issuer, expiry) against a real
provider: each attack or fault ends on a refusal page, never on a session."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from flask.testing import FlaskClient

from bridge.app import Services
from bridge.store.db import transaction
from bridge.store.models import AccountOpenIdConfig
from oidc.flow import FLOW_COOKIE, FLOW_COOKIE_PATH
from tests.integration.oidc.conftest import (
    OktaAccount,
    deliver,
    make_okta_op,
    provider_redirect,
    session_of,
    sign_in,
    start_login,
)
from tests.servers.oidc_op import OpenIdProvider

JSON = {"Accept": "application/json"}


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def no_session(web: FlaskClient) -> bool:
    return session_of(web).status_code == 401


def test_login_redirect_carries_pkce_state_nonce_and_login_hint(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    resp = start_login(web, email="pro@okta.example")
    assert resp.status_code == 302
    url = resp.headers["Location"]
    assert url.startswith(okta_op.issuer + "/")
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert q["response_type"] == "code" and q["client_id"] == "bridge-okta-client"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32
    assert q["login_hint"] == "pro@okta.example"
    assert q["redirect_uri"] == "http://127.0.0.1:9/auth/okta/callback"
    assert set(q["scope"].split()) >= {"openid", "email", "groups"}
    # The flow state is in a sealed, HttpOnly cookie, not in the server's memory.
    cookie = next(h for h in resp.headers.getlist("Set-Cookie")
                  if h.startswith(FLOW_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/auth" in cookie
    assert q["state"] not in cookie and q["nonce"] not in cookie


def test_wrong_state_is_refused(web: FlaskClient, okta_op: OpenIdProvider,
                                okta_account: OktaAccount) -> None:
    start = start_login(web, email="pro@okta.example")
    callback = provider_redirect(okta_op, start.headers["Location"])
    for forged in ("forged-state", "\u00e9t\u00e9", ""):
        resp = deliver(web, with_query(callback, state=forged), **JSON)
        assert resp.status_code == 400
        assert resp.get_json()["error"] == "invalid_state"
    assert no_session(web)


def test_callback_without_the_flow_cookie_is_refused(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    start = start_login(web, email="pro@okta.example")
    callback = provider_redirect(okta_op, start.headers["Location"])
    other_browser = web.application.test_client()
    resp = deliver(other_browser, callback, **JSON)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_state"


def test_replayed_code_is_refused(web: FlaskClient, okta_op: OpenIdProvider,
                                  okta_account: OktaAccount) -> None:
    start = start_login(web, email="pro@okta.example")
    flow_cookie = web.get_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    assert flow_cookie is not None
    callback = provider_redirect(okta_op, start.headers["Location"])
    assert deliver(web, callback).status_code == 302
    # The same authorization response again, with the old flow cookie put back (an
    # attacker who captured both): the provider's codes are single-use.
    attacker = web.application.test_client()
    attacker.set_cookie(FLOW_COOKIE, flow_cookie.value, path=FLOW_COOKIE_PATH)
    resp = deliver(attacker, callback, **JSON)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "code_rejected"
    assert no_session(attacker)
    # And the spent flow is gone from the real browser's cookie: replay there is refused too.
    resp = deliver(web, callback, **JSON)
    assert resp.get_json()["error"] == "invalid_state"


def test_nonce_mismatch_is_refused(web: FlaskClient, okta_op: OpenIdProvider,
                                   okta_account: OktaAccount) -> None:
    # A code obtained with another nonce (an injected authorization response).
    start = start_login(web, email="pro@okta.example")
    tampered = with_query(start.headers["Location"], nonce="attacker-chosen-nonce")
    resp = deliver(web, provider_redirect(okta_op, tampered), **JSON)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "nonce_mismatch"
    assert no_session(web)


def test_rfc9207_iss_from_another_issuer_is_refused(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    start = start_login(web, email="pro@okta.example")
    callback = provider_redirect(okta_op, start.headers["Location"])
    assert parse_qs(urlsplit(callback).query)["iss"] == [okta_op.issuer]
    resp = deliver(web, with_query(callback, iss="https://evil.example/oauth2/default"),
                   **JSON)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "issuer_mismatch"
    assert no_session(web)


def test_configured_issuer_differing_from_the_providers_is_refused(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services) -> None:
    # A stored issuer that is not character-for-character the provider's (trailing slash):
    # the discovery document names another issuer, so no request is sent to it.
    with transaction(oidc_services.sessions) as s:
        row = s.get(AccountOpenIdConfig, okta_account.account.id)
        assert row is not None
        row.issuer = okta_op.issuer + "/"
    resp = web.get("/auth/login?email=pro@okta.example", headers=JSON)
    assert resp.status_code == 502
    assert resp.get_json()["error"] == "provider_misconfigured"
    assert "names the issuer" in resp.get_json()["message"]


def test_provider_error_response_is_a_clear_page(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    # The provider refuses (unknown login_hint → error=access_denied at the redirect_uri).
    start = start_login(web, account=okta_account.account.id, email="nobody@okta.example")
    resp = deliver(web, provider_redirect(okta_op, start.headers["Location"]))
    assert resp.status_code == 401
    assert '<code id="reason">provider_error</code>' in resp.get_data(as_text=True)
    assert "access_denied" in resp.get_data(as_text=True)


def test_expired_id_token_is_refused(web: FlaskClient, okta_account: OktaAccount) -> None:
    # The bridge's clock is 10 minutes past the ID token's expiry (beyond the 120 s leeway).
    door = web.application.extensions["oidc"]
    op_ttl = 60
    with make_okta_op(id_token_ttl=op_ttl) as op:
        _point_account_at(web, okta_account, op)
        door.clock = lambda: time.time() + op_ttl + 600
        resp = sign_in(web, op, email="pro@okta.example", headers=JSON)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "token_expired"
    assert no_session(web)


def test_id_token_within_the_clock_leeway_is_accepted(
        web: FlaskClient, okta_account: OktaAccount) -> None:
    door = web.application.extensions["oidc"]
    with make_okta_op(id_token_ttl=60) as op:
        _point_account_at(web, okta_account, op)
        door.clock = lambda: time.time() + 60 + 100  # 100 s past exp < 120 s leeway
        resp = sign_in(web, op, email="pro@okta.example")
    assert resp.status_code == 302


def _point_account_at(web: FlaskClient, okta_account: OktaAccount, op: OpenIdProvider) -> None:
    from bridge.domain import Actor

    services = web.application.extensions["bridge"]
    services.engine.openid_configs.update(
        Actor.system("test"), okta_account.account.id, issuer_uri=op.issuer,
        client_id="bridge-okta-client", client_secret="okta-client-secret-value")


def test_refusals_of_a_started_sign_in_are_audited_anonymous_ones_are_not(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services) -> None:
    from bridge import audit

    start = start_login(web, email="pro@okta.example")
    tampered = with_query(start.headers["Location"], nonce="attacker-chosen-nonce")
    deliver(web, provider_redirect(okta_op, tampered))
    for _ in range(3):
        web.application.test_client().get("/auth/okta/callback?state=x&code=y")
    with transaction(oidc_services.sessions) as s:
        events, _ = audit.lookup(s, audit.EventQuery(event_name="SignIn"))
    assert [e["errorCode"] for e in events] == ["nonce_mismatch"]
    assert events[0]["requestParameters"]["accountId"] == okta_account.account.id


def test_sign_in_started_on_one_worker_finishes_on_another(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services) -> None:
    # Another worker: its own app, door and caches, built from the same settings (same
    # database, same secret key), as another process or host would.
    from bridge.app import build_services, create_app

    other_services = build_services(oidc_services.settings)
    try:
        worker_b = create_app(other_services.settings, other_services).test_client()
        start = start_login(web, email="pro@okta.example")
        flow = web.get_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
        assert flow is not None
        worker_b.set_cookie(FLOW_COOKIE, flow.value, path=FLOW_COOKIE_PATH)
        resp = deliver(worker_b, provider_redirect(okta_op, start.headers["Location"]))
        assert resp.status_code == 302, resp.get_data(as_text=True)
        assert session_of(worker_b).get_json()["tier"] == "pro"
        # And the session worker B issued is good on worker A.
        token = worker_b.get_cookie("bridge_session")
        assert token is not None
        assert web.get("/auth/session", headers={
            "Authorization": f"Bearer {token.value}"}).status_code == 200
    finally:
        other_services.db.dispose()
