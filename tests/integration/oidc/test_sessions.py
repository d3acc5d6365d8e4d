"""Sessions the rest of the service trusts: GET /auth/session, POST /auth/logout, the
public keys, revocation by the engine and key rotation (``bridge keys rotate``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from bridge.app import Services
from bridge.domain import Actor
from bridge.sessions import SESSION_AUDIENCE, SESSION_COOKIE
from tests.integration.oidc.conftest import (
    PUBLIC_URL,
    OktaAccount,
    session_of,
    sign_in,
)
from tests.servers.oidc_op import OpenIdProvider


def signed_in(web: FlaskClient, op: OpenIdProvider, email: str = "pro@okta.example") -> str:
    resp = sign_in(web, op, email=email)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    cookie = web.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    return cookie.value


def test_session_jwt_verifies_offline_against_the_published_keys(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    token = signed_in(web, okta_op)
    jwks = web.get("/.well-known/jwks.json")
    assert jwks.status_code == 200 and "max-age" in jwks.headers["Cache-Control"]
    keys = jwks.get_json()["keys"]
    assert all("d" not in k for k in keys)  # public halves only
    decoded = jwt.decode(token, KeySet.import_key_set({"keys": keys}), algorithms=["ES256"])
    assert decoded.header["alg"] == "ES256" and decoded.header["kid"] == keys[0]["kid"]
    claims = decoded.claims
    assert claims["iss"] == PUBLIC_URL and claims["aud"] == SESSION_AUDIENCE
    assert claims["sub"] == okta_account.users["pro@okta.example"]
    assert claims["tier"] == "pro" and claims["account_type"] == "EnterpriseOIDC"
    assert claims["exp"] - claims["iat"] == 8 * 3600


def test_bearer_token_works_without_the_cookie(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    token = signed_in(web, okta_op)
    other = web.application.test_client()
    assert other.get("/auth/session").status_code == 401
    resp = other.get("/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.get_json()["user"]["email"] == "pro@okta.example"
    assert resp.headers["Cache-Control"] == "no-store"


def test_logout_ends_the_current_session_only(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    laptop = signed_in(web, okta_op)
    phone_client = web.application.test_client()
    signed_in(phone_client, okta_op)
    resp = web.post("/auth/logout")
    assert resp.status_code == 204
    assert any(h.startswith(f"{SESSION_COOKIE}=;") for h in resp.headers.getlist("Set-Cookie"))
    gone = web.get("/auth/session", headers={"Authorization": f"Bearer {laptop}"})
    assert gone.status_code == 401
    assert gone.headers["WWW-Authenticate"].startswith("Bearer")
    assert session_of(phone_client).status_code == 200
    # Idempotent.
    assert web.post("/auth/logout").status_code == 204


def test_logout_user_revokes_every_session_at_once(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services, admin: Actor) -> None:
    signed_in(web, okta_op)
    second = web.application.test_client()
    signed_in(second, okta_op)
    oidc_services.engine.logout_user(admin, okta_account.account.id,
                                     okta_account.users["pro@okta.example"])
    assert session_of(web).status_code == 401
    assert session_of(second).status_code == 401
    # A new sign-in after the logout is a new, valid session.
    signed_in(web, okta_op)
    assert session_of(web).status_code == 200


def test_tier_change_shows_at_once_and_removal_from_groups_revokes(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services, admin: Actor) -> None:
    engine = oidc_services.engine
    account_id = okta_account.account.id
    uid = okta_account.users["nogroupsclaim@okta.example"]
    signed_in(web, okta_op, "nogroupsclaim@okta.example")
    assert session_of(web).get_json()["tier"] == "basic"
    engine.set_user_groups(admin, account_id, uid, ["Engineering"])
    assert session_of(web).get_json()["tier"] == "pro"
    engine.set_user_groups(admin, account_id, uid, [])
    assert session_of(web).status_code == 401


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "\u00e9.\u00e9.\u00e9",
                                   "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
                                   "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"])
def test_malformed_tokens_are_401_not_500(web: FlaskClient, token: str) -> None:
    resp = web.get("/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401


def test_token_signed_by_another_key_is_refused(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    genuine = signed_in(web, okta_op)
    claims = jwt.decode(genuine, KeySet.import_key_set(
        web.get("/.well-known/jwks.json").get_json()), algorithms=["ES256"]).claims
    forger = ECKey.generate_key("P-256", {"alg": "ES256"}, auto_kid=True)
    forged = jwt.encode({"alg": "ES256", "kid": forger.kid}, claims, forger)
    resp = web.get("/auth/session", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401
    # Same kid as the real key, wrong signature.
    real_kid = jwt.decode(genuine, KeySet.import_key_set(
        web.get("/.well-known/jwks.json").get_json()), algorithms=["ES256"]).header["kid"]
    forged = jwt.encode({"alg": "ES256", "kid": real_kid}, claims, forger)
    assert web.get("/auth/session",
                   headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_keys_rotate_keeps_old_sessions_and_signs_new_ones_with_the_new_key(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import main

    old_token = signed_in(web, okta_op)
    old_kid = jwt.decode(old_token, KeySet.import_key_set(
        web.get("/.well-known/jwks.json").get_json()), algorithms=["ES256"]).header["kid"]
    settings = oidc_services.settings
    monkeypatch.setenv("BRIDGE_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(Path(settings.data_dir)))
    monkeypatch.setenv("BRIDGE_SECRET_KEY", settings.secret_key)
    assert main(["keys", "rotate"]) == 0
    new_kid = json.loads(capsys.readouterr().out)["kid"]
    assert new_kid != old_kid
    # This worker still accepts the sessions the retired key signed...
    assert web.get("/auth/session",
                   headers={"Authorization": f"Bearer {old_token}"}).status_code == 200
    # ...a worker that starts now signs with the new key...
    from bridge.app import create_app

    new_worker = create_app(oidc_services.settings, oidc_services).test_client()
    new_token = signed_in(new_worker, okta_op)
    kids = KeySet.import_key_set(new_worker.get("/.well-known/jwks.json").get_json())
    assert {k.kid for k in kids} >= {old_kid, new_kid}
    assert jwt.decode(new_token, kids, algorithms=["ES256"]).header["kid"] == new_kid
    # ...and the old worker verifies it at once (an unknown kid makes it reload the keys).
    assert web.get("/auth/session",
                   headers={"Authorization": f"Bearer {new_token}"}).status_code == 200


def test_no_session_is_401_json(web: FlaskClient) -> None:
    resp = web.get("/auth/session")
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "unauthenticated"


def test_domain_removal_and_account_deletion_take_sessions_and_config_along(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount,
        oidc_services: Services, admin: Actor) -> None:
    from sqlalchemy import func, select

    from bridge.store.db import transaction
    from bridge.store.models import AccountOpenIdConfig, SignInSession

    signed_in(web, okta_op)
    engine = oidc_services.engine
    account_id = okta_account.account.id
    # In an OIDC account, removing the domain of a user's primary address deletes the
    # profile (the guide): the session goes with it.
    engine.delete_domain(admin, account_id, "okta.example")
    assert session_of(web).status_code == 401
    engine.delete_account(admin, account_id)
    with transaction(oidc_services.sessions) as s:
        assert s.scalar(select(func.count()).select_from(SignInSession)) == 0
        assert s.get(AccountOpenIdConfig, account_id) is None


def test_signing_in_again_in_the_same_browser_ends_the_previous_session(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    first = signed_in(web, okta_op, "pro@okta.example")
    second = signed_in(web, okta_op, "basic@okta.example")
    assert first != second
    assert web.get("/auth/session",
                   headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert session_of(web).get_json()["user"]["email"] == "basic@okta.example"
