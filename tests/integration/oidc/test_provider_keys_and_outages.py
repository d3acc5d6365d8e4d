"""Key rotation at the provider, JWKS caching (counted by the provider itself) and the
provider being down: a clear page, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from bridge.app import Services
from bridge.domain import Actor
from tests.integration.oidc.conftest import (
    OKTA_CLIENT_ID,
    OKTA_CLIENT_SECRET,
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


@pytest.fixture
def own_op(okta_account: OktaAccount, oidc_services: Services) -> Iterator[OpenIdProvider]:
    """A provider of this test's own (it gets restarted or stopped), the account using it."""
    with make_okta_op() as op:
        oidc_services.engine.openid_configs.update(
            Actor.system("test"), okta_account.account.id, issuer_uri=op.issuer,
            client_id=OKTA_CLIENT_ID, client_secret=OKTA_CLIENT_SECRET)
        yield op


def test_jwks_is_fetched_once_per_rotation_not_per_sign_in(
        web: FlaskClient, own_op: OpenIdProvider) -> None:
    for _ in range(3):
        assert sign_in(web, own_op, email="pro@okta.example").status_code == 302
    stats = own_op.stats()
    assert stats["jwks"] == 1
    assert stats["token"] == 3
    # Discovery is cached too (one fetch when the config was saved, one by the door).
    assert stats["discovery"] <= 2

    old_kid = own_op.signing_kid()
    own_op.rotate_keys()  # restarts with [new, old]: the new key signs from now on
    assert own_op.signing_kid() != old_kid
    for _ in range(3):
        resp = sign_in(web, own_op, email="pro@okta.example")
        assert resp.status_code == 302, resp.get_data(as_text=True)
    # The unknown kid caused exactly one refetch, then the cache served the rest.
    assert own_op.stats()["jwks"] == 1
    assert session_of(web).get_json()["tier"] == "pro"


def test_provider_down_at_login_is_a_clear_page(
        web: FlaskClient, own_op: OpenIdProvider) -> None:
    own_op.stop()
    resp = web.get("/auth/login?email=pro@okta.example")
    assert resp.status_code == 503
    page = resp.get_data(as_text=True)
    assert '<code id="reason">provider_unavailable</code>' in page
    assert "did not answer" in page and "Traceback" not in page
    resp = web.get("/auth/login?email=pro@okta.example", headers=JSON)
    assert resp.status_code == 503
    assert resp.get_json()["error"] == "provider_unavailable"


def test_provider_down_at_the_callback_is_a_clear_page(
        web: FlaskClient, own_op: OpenIdProvider) -> None:
    start = start_login(web, email="pro@okta.example")
    callback = provider_redirect(own_op, start.headers["Location"])
    own_op.stop()  # the token endpoint is gone when the browser comes back
    resp = deliver(web, callback)
    assert resp.status_code == 503
    assert '<code id="reason">provider_unavailable</code>' in resp.get_data(as_text=True)
    assert session_of(web).status_code == 401


def test_provider_back_after_an_outage_signs_in_again(
        web: FlaskClient, own_op: OpenIdProvider) -> None:
    own_op.stop()
    assert web.get("/auth/login?email=pro@okta.example").status_code == 503
    own_op.start()
    assert sign_in(web, own_op, email="pro@okta.example").status_code == 302
