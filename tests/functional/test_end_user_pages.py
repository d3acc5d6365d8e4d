"""The end-user pages through the Flask test client: home-realm discovery sends an Active
Directory address on to the password form, the home page follows the session (signed in,
signed out, revoked), sign-out is a checked form, and invitation links say whether they
are unknown (404), used, expired or withdrawn (410). The same pages in a browser, with axe-core:
tests/integration/test_end_user_pages_chromium.py."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from bridge.app import Services
from bridge.domain import Actor, DirectoryKind, Identity, IdentitySource
from bridge.sessions import SESSION_COOKIE, session_manager
from tests.builders import claim
from tests.conftest import FakeClock

JSON = {"Accept": "application/json"}


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the form has no CSRF token"
    return found.group(1)


def _directory_account(services: Services, admin: Actor) -> None:
    account = services.engine.create_account(admin, "Directory Corp")
    claim(services.engine, admin, account.id, "ad.example")
    services.engine.set_directory(admin, account.id, DirectoryKind.ACTIVE_DIRECTORY,
                                  event_name="ConnectDirectory")


def test_an_active_directory_address_goes_on_to_the_password_form(
        client: FlaskClient, app_services: Services, admin: Actor) -> None:
    _directory_account(app_services, admin)
    for path in ("/auth/login?email=Jo@ad.example", "/auth/login/continue?email=Jo@ad.example"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"] == "/auth/ad/login?email=Jo%40ad.example"
    form = client.get("/auth/ad/login?email=Jo@ad.example")
    assert 'value="Jo@ad.example"' in form.text
    # An API client still gets the reason, not a page.
    refused = client.get("/auth/login?email=jo@ad.example", headers=JSON)
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "directory_sign_in_required"


def test_the_sign_in_form_without_parameters_and_what_is_wrong_with_an_address(
        client: FlaskClient) -> None:
    for path in ("/auth/login", "/auth/login/continue", "/"):
        page = client.get(path)
        assert page.status_code == 200 and '<h1>Sign in</h1>' in page.text, path
        assert 'action="/auth/login/continue"' in page.text
    bad = client.get("/auth/login/continue?email=not-an-address")
    assert bad.status_code == 400
    assert 'id="reason">invalid_email<' in bad.text and 'value="not-an-address"' in bad.text
    assert client.get("/auth/login", headers=JSON).get_json()["error"] == "invalid_request"


def _signed_in(app: Flask, app_services: Services, client: FlaskClient) -> str:
    """An unmanaged user signed in through the default provider (the engine's decision, the
    session the OIDC door would issue)."""
    identity = Identity(source=IdentitySource.DEFAULT_PROVIDER, issuer="https://op.test",
                        subject="solo", email="solo@free.test")
    decision = app_services.engine.decide_sign_in(identity, Actor(type="EndUser",
                                                                  principal_id="solo"))
    with app.app_context():
        issued = session_manager().issue(decision, source="default")
    client.set_cookie(SESSION_COOKIE, issued.token)
    return issued.token


def test_home_shows_the_session_and_signs_out(app: Flask, app_services: Services,
                                              client: FlaskClient) -> None:
    _signed_in(app, app_services, client)
    home = client.get("/")
    assert home.status_code == 200 and "You are signed in" in home.text
    assert 'id="email">solo@free.test<' in home.text
    assert "you use the service on your own" in home.text
    assert 'id="tier">Pro<' in home.text  # the unmanaged user's trial
    assert home.headers["Cache-Control"] == "no-store"
    # Sign-out is a form: without its token it is refused and the session stands.
    assert client.post("/sign-out").status_code == 403
    assert client.get("/auth/session").status_code == 200
    out = client.post("/sign-out", data={"csrf_token": _token(home.text)})
    assert out.status_code == 303 and out.headers["Location"] == "/"
    assert client.get_cookie(SESSION_COOKIE) is None
    after = client.get("/")
    assert "You are signed out." in after.text and "<h1>Sign in</h1>" in after.text


def test_a_revoked_session_shows_the_sign_in_form_and_clears_the_cookie(
        app: Flask, app_services: Services, client: FlaskClient) -> None:
    token = _signed_in(app, app_services, client)
    with app.app_context():
        session_manager().end(token)
    page = client.get("/")
    assert "<h1>Sign in</h1>" in page.text
    assert f"{SESSION_COOKIE}=;" in page.headers["Set-Cookie"]


def test_invitation_links_say_what_they_are(client: FlaskClient, app_services: Services,
                                            admin: Actor, clock: FakeClock) -> None:
    engine = app_services.engine
    team = engine.create_account(admin, "Team Rocket")
    invites, _ = engine.invite_users(admin, team.id, "ann@gmail.test;bob@gmail.test")
    ann, bob = (i.token for i in invites)
    page = client.get(f"/invitations/{ann}")
    assert page.status_code == 200
    assert '<strong id="email">ann@gmail.test</strong>' in page.text
    assert '<strong id="account">Team Rocket</strong>' in page.text
    done = client.post(f"/invitations/{ann}", data={"csrf_token": _token(page.text)})
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert '<dd id="email">ann@gmail.test</dd>' in client.get("/").text  # signed in
    used = client.get(f"/invitations/{ann}")
    assert used.status_code == 410 and 'id="reason">invitation_used<' in used.text
    again = client.post(f"/invitations/{ann}", data={"csrf_token": _token(page.text)})
    assert again.status_code == 410 and 'id="reason">invitation_used<' in again.text
    unknown = client.get("/invitations/not-a-real-token")
    assert unknown.status_code == 404 and 'id="reason">invitation_not_found<' in unknown.text
    clock.now += timedelta(days=15)
    expired = client.get(f"/invitations/{bob}")
    assert expired.status_code == 410 and 'id="reason">invitation_expired<' in expired.text
    assert engine.get_user(team.id, invites[1].user_id).status == "invited"


def test_withdrawn_invitation_links_say_why_and_lead_to_the_sign_in(
        client: FlaskClient, app_services: Services, admin: Actor) -> None:
    engine = app_services.engine
    team = engine.create_account(admin, "Team Rocket")
    [ann] = [i.token for i in engine.invite_users(admin, team.id, "ann@rocket.test")[0]]
    other = engine.create_account(admin, "Team Magma")
    [bob] = [i.token for i in engine.invite_users(admin, other.id, "bob@corp.test")[0]]
    form = client.get(f"/invitations/{ann}")
    claim(engine, admin, team.id, "rocket.test")
    engine.set_directory(admin, team.id, DirectoryKind.ACTIVE_DIRECTORY,
                         event_name="ConnectDirectory")
    for page in (client.get(f"/invitations/{ann}"),
                 client.post(f"/invitations/{ann}", data={"csrf_token": _token(form.text)})):
        assert page.status_code == 410
        assert 'id="reason">invitation_withdrawn_directory<' in page.text
        assert "Team Rocket now signs its users in through its own directory" in page.text
        assert "it takes you to your organisation&#39;s directory" in page.text
        assert 'href="/auth/login?email=ann%40rocket.test"' in page.text
    corp = engine.create_account(admin, "Corp")
    claim(engine, admin, corp.id, "corp.test")
    page = client.get(f"/invitations/{bob}")
    assert page.status_code == 410
    assert 'id="reason">invitation_withdrawn_claimed<' in page.text
    assert "another organisation claimed the domain of bob@corp.test" in page.text
    assert 'href="/auth/login?email=bob%40corp.test"' in page.text


def test_the_stylesheet_is_served_by_the_bridge(client: FlaskClient) -> None:
    css = client.get("/pages/static/pages.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert css.headers["X-Content-Type-Options"] == "nosniff"


def test_an_oversized_form_gets_a_page_that_says_so(client: FlaskClient) -> None:
    page = client.get("/auth/ad/login")
    response = client.post("/auth/ad/login", data={
        "csrf_token": _token(page.text), "email": "a@example.com",
        "password": "x" * 2_000_000})  # over BRIDGE_MAX_BODY_BYTES
    assert response.status_code == 413 and response.mimetype == "text/html"
    assert 'id="reason">request_too_large<' in response.text
    assert 'id="back" href="/auth/ad/login"' in response.text
