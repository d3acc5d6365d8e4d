"""Sign-in through the service-wide default provider (the guide's Login with Amazon role):
unmanaged users, EnterpriseLWA accounts joined by domain, suspended and released users."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from tests.builders import enterprise
from tests.conftest import make_settings
from tests.integration.oidc.conftest import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    LWA_DOMAIN,
    POST_LOGIN_URL,
    PUBLIC_URL,
    REDIRECT_URIS,
    OktaAccount,
    session_of,
    sign_in,
    start_login,
)
from tests.servers.oidc_op import OpenIdProvider

JSON = {"Accept": "application/json"}


def test_unclaimed_domain_signs_in_as_an_unmanaged_user_on_the_pro_trial(
        web: FlaskClient, default_op: OpenIdProvider) -> None:
    start = start_login(web, email="solo@free.example")
    assert start.headers["Location"].startswith(default_op.issuer + "/")
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fauth%2Fcallback" in start.headers[
        "Location"]
    resp = sign_in(web, default_op, email="solo@free.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    body = session_of(web).get_json()
    assert body["account"] is None and body["tier"] == "pro"
    assert body["user"]["email"] == "solo@free.example"


def test_first_sign_in_on_a_claimed_domain_joins_the_lwa_account(
        web: FlaskClient, default_op: OpenIdProvider, oidc_services: Services,
        admin: Actor) -> None:
    account = enterprise(oidc_services.engine, admin, [LWA_DOMAIN], name="LWA Corp")
    resp = sign_in(web, default_op, email="ann@lwa.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    body = session_of(web).get_json()
    assert body["account"] == {"id": account.id, "type": "EnterpriseLWA"}
    assert body["tier"] == "pro"


def test_suspended_user_is_denied_and_their_sessions_revoked(
        web: FlaskClient, default_op: OpenIdProvider, oidc_services: Services,
        admin: Actor) -> None:
    engine = oidc_services.engine
    account = enterprise(engine, admin, [LWA_DOMAIN], name="LWA Corp")
    assert sign_in(web, default_op, email="sam@lwa.example").status_code == 302
    user_id = session_of(web).get_json()["user"]["id"]
    engine.suspend_users(admin, account.id, [user_id])
    assert session_of(web).status_code == 401  # at once
    resp = sign_in(web, default_op, email="sam@lwa.example", headers=JSON)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "suspended"


def test_released_user_loses_the_session_and_starts_over_unmanaged(
        web: FlaskClient, default_op: OpenIdProvider, oidc_services: Services,
        admin: Actor) -> None:
    engine = oidc_services.engine
    account = enterprise(engine, admin, [LWA_DOMAIN], name="LWA Corp")
    assert sign_in(web, default_op, email="rel@lwa.example").status_code == 302
    before = session_of(web).get_json()
    assert before["account"]["id"] == account.id
    engine.delete_domain(admin, account.id, LWA_DOMAIN)  # the user is released
    revoked = session_of(web)
    assert revoked.status_code == 401
    resp = sign_in(web, default_op, email="rel@lwa.example")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    after = session_of(web).get_json()
    assert after["account"] is None  # a new unmanaged user (SPEC: DeleteDomain)
    assert after["user"]["id"] != before["user"]["id"]


def test_unverified_email_from_the_default_provider_is_refused(
        web: FlaskClient, default_op: OpenIdProvider) -> None:
    resp = sign_in(web, default_op, email="unverified@free.example", headers=JSON)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "email_not_verified"


def test_okta_users_cannot_use_the_default_provider(
        web: FlaskClient, default_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    # Home-realm discovery sends okta.example to Okta; forcing the default provider's
    # callback with that address is refused by the engine.
    start = start_login(web, email="pro@okta.example")
    assert "/oauth2/default/" in start.headers["Location"]
    lwa = web.application.test_client()
    team = web.application.extensions["bridge"].engine.create_account(
        Actor.system("test"), "A team")
    resp = sign_in(lwa, default_op, account=team.id, email="pro@okta.example", headers=JSON)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "directory_sign_in_required"


def test_no_default_provider_configured_is_a_clear_page(
        oidc_services: Services, tmp_path: object, sqlite_url: str) -> None:
    from pathlib import Path

    from bridge.app import build_services, create_app
    from tests.conftest import make_settings

    settings = make_settings(Path(str(tmp_path)) / "bare", sqlite_url)
    bare = build_services(settings)
    try:
        client = create_app(settings, bare).test_client()
        resp = client.get("/auth/login?email=solo@free.example", headers=JSON)
        assert resp.status_code == 503
        assert resp.get_json()["error"] == "provider_not_configured"
        assert client.get("/auth/login", headers=JSON).get_json()["error"] == "invalid_request"
        bad = client.get("/auth/login?email=not-an-address", headers=JSON)
        assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_email"
    finally:
        bare.db.dispose()


def test_a_long_name_claim_is_cut_and_a_long_subject_refused_on_both_stores(
        store_url: str, tmp_path: Path) -> None:
    """A provider's ``name`` has no length limit and a ``sub`` over 255 characters breaks
    OpenID Connect Core 2; both overflowed their columns on PostgreSQL (a 500 at the
    callback). The name is cut to 256 characters; the subject is invalid_id_token."""
    accounts = {
        "long@free.example": {"sub": "amzn-long", "email": "long@free.example",
                              "email_verified": True, "name": "N" * 300},
        "longsub@free.example": {"sub": "s" * 300, "email": "longsub@free.example",
                                 "email_verified": True}}
    clients = [{"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                "redirect_uris": REDIRECT_URIS}]
    with OpenIdProvider(clients=clients, accounts=accounts) as op:
        services = build_services(make_settings(
            tmp_path, store_url, public_url=PUBLIC_URL, post_login_url=POST_LOGIN_URL,
            default_oidc_issuer=op.issuer, default_oidc_client_id=DEFAULT_CLIENT_ID,
            default_oidc_client_secret=DEFAULT_CLIENT_SECRET))
        try:
            web = create_app(services.settings, services).test_client()
            resp = sign_in(web, op, email="long@free.example")
            assert resp.status_code == 302, resp.get_data(as_text=True)
            user = services.engine.get_user_by_email("long@free.example")
            assert user.display_name == "N" * 256
            refused = sign_in(web, op, email="longsub@free.example", headers=JSON)
            assert refused.status_code == 401, refused.get_data(as_text=True)
            assert refused.get_json()["error"] == "invalid_id_token"
        finally:
            services.db.dispose()
