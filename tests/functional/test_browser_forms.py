"""Browser forms (AD sign-in, invitation accept): a post from another site is refused and
changes nothing; the real form still works; every HTML and JSON answer carries the security
headers (:mod:`bridge.browser`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from bridge import audit
from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from bridge.store.db import transaction
from tests.conftest import FakeClock, make_settings

OWN = "http://127.0.0.1:8000"  # the default public URL (BRIDGE_HOST:BRIDGE_PORT)
EVIL = "https://evil.example"
# An address on an unclaimed domain: a processed post answers 401 and leaves a SignIn event.
LOGIN = {"email": "victim@unclaimed.test", "password": "attacker-password"}


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the form has no CSRF token"
    return found.group(1)


def _sign_in_events(services: Services) -> list[dict[str, object]]:
    with transaction(services.sessions) as session:
        events, _ = audit.lookup(session, audit.EventQuery(event_name="SignIn"))
    return events


def _cookie(client: FlaskClient) -> str | None:
    found = client.get_cookie("bridge_csrf")
    return found.value if found else None


# --- AD sign-in -----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},  # no token at all (a plain cross-site form post from an old browser)
    {"Origin": EVIL},
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Referer": EVIL + "/login.html"},
], ids=["no-token", "foreign-origin", "null-origin-cross-site", "same-site", "foreign-referer"])
def test_cross_site_sign_in_post_is_refused_and_changes_nothing(
        client: FlaskClient, app_services: Services, headers: dict[str, str]) -> None:
    response = client.post("/auth/ad/login", data=LOGIN, headers=headers)
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "This form cannot be accepted" in response.text
    assert re.search(r'id="reason">(cross_site_request|invalid_form_token)<', response.text)
    assert _sign_in_events(app_services) == []  # not looked up, not audited, not counted
    assert "bridge_session" not in response.headers.get("Set-Cookie", "")


def test_a_valid_token_does_not_excuse_a_foreign_origin(client: FlaskClient,
                                                        app_services: Services) -> None:
    token = _token(client.get("/auth/ad/login").text)
    response = client.post("/auth/ad/login", data={**LOGIN, "csrf_token": token},
                           headers={"Origin": EVIL})
    assert response.status_code == 403
    assert 'id="reason">cross_site_request<' in response.text
    assert _sign_in_events(app_services) == []


def test_a_token_is_bound_to_its_browser(app: Flask, app_services: Services) -> None:
    attacker, victim = app.test_client(), app.test_client()
    token = _token(attacker.get("/auth/ad/login").text)
    victim.get("/auth/ad/login")  # the victim has a cookie of their own
    response = victim.post("/auth/ad/login", data={**LOGIN, "csrf_token": token})
    assert response.status_code == 403
    assert 'id="reason">invalid_form_token<' in response.text
    assert _sign_in_events(app_services) == []


@pytest.mark.parametrize("headers", [
    {"Origin": OWN},
    # What browsers send from a page with Referrer-Policy: no-referrer.
    {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    {},  # no browser headers: a script driving the form
], ids=["own-origin", "null-origin-same-origin", "no-headers"])
def test_the_real_form_still_works(client: FlaskClient, app_services: Services,
                                   headers: dict[str, str]) -> None:
    page = client.get("/auth/ad/login")
    assert page.status_code == 200 and _cookie(client)
    response = client.post("/auth/ad/login",
                           data={**LOGIN, "csrf_token": _token(page.text)}, headers=headers)
    # Past the checks: the door itself answered (an unclaimed domain: wrong credentials).
    assert response.status_code == 401
    assert 'id="reason">invalid_credentials<' in response.text
    assert len(_sign_in_events(app_services)) == 1
    # The error page is a form again, with a token that works.
    again = client.post("/auth/ad/login",
                        data={**LOGIN, "csrf_token": _token(response.text)}, headers=headers)
    assert again.status_code == 401


def test_json_sign_in_needs_no_token_but_a_foreign_origin_is_refused(
        client: FlaskClient, app_services: Services) -> None:
    # A browser sends JSON cross-site only after a CORS preflight the bridge never grants.
    assert client.post("/auth/ad/login", json=LOGIN).status_code == 401
    refused = client.post("/auth/ad/login", json=LOGIN, headers={"Origin": EVIL})
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "cross_site_request"
    assert len(_sign_in_events(app_services)) == 1


# --- invitations ----------------------------------------------------------------------------


@pytest.fixture
def invitation(app_services: Services, admin: Actor) -> tuple[str, str, str]:
    engine = app_services.engine
    team = engine.create_account(admin, "Team")
    invites, errors = engine.invite_users(admin, team.id, "ann@gmail.test")
    assert not errors
    return team.id, invites[0].user_id, invites[0].token


def test_cross_site_invitation_accept_is_refused(
        app: Flask, app_services: Services, invitation: tuple[str, str, str]) -> None:
    account_id, user_id, token = invitation
    client = app.test_client()
    for headers in ({}, {"Origin": EVIL}):
        response = client.post(f"/invitations/{token}", headers=headers)
        assert response.status_code == 403
        assert "This form cannot be accepted" in response.text
    assert app_services.engine.get_user(account_id, user_id).status == "invited"


def test_the_invitation_form_registers(app: Flask, app_services: Services,
                                       invitation: tuple[str, str, str]) -> None:
    account_id, user_id, token = invitation
    client = app.test_client()
    page = client.get(f"/invitations/{token}")
    response = client.post(f"/invitations/{token}", data={"csrf_token": _token(page.text)},
                           headers={"Origin": OWN})
    # Accepting signs the person in: the session cookie, then the home page says who.
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "bridge_session=" in response.headers["Set-Cookie"]
    home = client.get("/")
    assert "You are signed in" in home.text and "ann@gmail.test" in home.text
    assert "Welcome to Team: your invitation is accepted" in home.text
    assert app_services.engine.get_user(account_id, user_id).status == "registered"


# --- tokens across workers and hosts --------------------------------------------------------


@pytest.fixture
def two_hosts(tmp_path: Path, sqlite_url: str,
              clock: FakeClock) -> Iterator[tuple[FlaskClient, FlaskClient]]:
    """Two apps (two workers or hosts) built apart from the same settings."""
    key = Fernet.generate_key().decode()
    built = [build_services(make_settings(tmp_path / str(i), sqlite_url, secret_key=key),
                            clock=clock) for i in range(2)]
    yield tuple(create_app(s.settings, s).test_client() for s in built)  # type: ignore[misc]
    for s in built:
        s.db.dispose()


def test_a_token_from_one_worker_is_accepted_by_another(
        two_hosts: tuple[FlaskClient, FlaskClient]) -> None:
    first, second = two_hosts
    token = _token(first.get("/auth/ad/login").text)
    cookie = _cookie(first)
    assert cookie
    second.set_cookie("bridge_csrf", cookie)
    response = second.post("/auth/ad/login", data={**LOGIN, "csrf_token": token})
    assert response.status_code == 401  # past the CSRF check, answered by the door


# --- headers --------------------------------------------------------------------------------


def test_every_html_answer_carries_the_page_headers(
        client: FlaskClient, invitation: tuple[str, str, str]) -> None:
    _, _, token = invitation
    pages = [client.get("/auth/ad/login"), client.get(f"/invitations/{token}"),
             client.post("/auth/ad/login", data=LOGIN),  # the refusal page
             client.get("/auth/login?email=ann@gmail.test"),  # an OIDC door error page
             client.get("/auth/login"), client.get("/"),  # the sign-in form, the home page
             client.get("/invitations/unknown-token")]  # an invitation refusal
    for page in pages:
        assert page.mimetype == "text/html", page.request.path
        csp = page.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["form-action"] == "'self'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["X-Frame-Options"] == "DENY"
        # Nothing inline that the policy would block: the one stylesheet is the app's own.
        assert "<script" not in page.text and "<style" not in page.text
        assert " style=" not in page.text
        assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text) == [
            "/pages/static/pages.css"]


def test_every_json_answer_carries_nosniff(client: FlaskClient) -> None:
    answers = [client.get("/healthz"), client.get("/auth/session"),
               client.get("/openapi.json"), client.get("/scim/v2/Users"),
               client.get("/accounts"), client.get("/.well-known/jwks.json"),
               client.post("/auth/ad/login", json={})]
    for answer in answers:
        assert answer.is_json, answer.request.path
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.request.path
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_form_action_allows_a_post_login_page_elsewhere(tmp_path: Path, sqlite_url: str,
                                                         clock: FakeClock) -> None:
    settings = make_settings(tmp_path, sqlite_url, post_login_url="https://app.example/home",
                             public_url="https://bridge.example")
    services = build_services(settings, clock=clock)
    try:
        page = create_app(settings, services).test_client().get("/auth/ad/login")
        assert "form-action 'self' https://app.example;" in (
            page.headers["Content-Security-Policy"] + ";")
    finally:
        services.db.dispose()


@pytest.mark.parametrize(("url", "origin"), [
    ("HTTPS://Bridge.Example:443/auth/ad/login", "https://bridge.example"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://[::1]:80/x", "http://[::1]"),
    ("null", None), ("/relative", None), ("ftp://host/", None), ("http://host:99999/", None),
])
def test_origin_of(url: str, origin: str | None) -> None:
    from bridge.browser import origin_of

    assert origin_of(url) == origin


def test_a_request_without_a_session_cookie_builds_no_cookie_signer(
        client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flask opens the cookie session before every request; without a cookie there is
    nothing to verify, so the signer is not built (issue 12: ~2 % of a SCIM GET). A form
    with its cookie is still checked as before (the tests above)."""
    built: list[str] = []
    interface = app.session_interface
    original = interface.get_signing_serializer

    def counted(app_: Flask) -> object:
        built.append(app_.name)
        return original(app_)

    monkeypatch.setattr(interface, "get_signing_serializer", counted)
    assert client.get("/healthz").status_code == 200
    assert built == []
    page = client.get("/auth/ad/login")
    assert page.status_code == 200
    token = _token(page.get_data(as_text=True))
    assert built, "the form's CSRF token is written into a signed session cookie"
    built.clear()
    # The next request carries the cookie: it is verified with the signer.
    assert client.get("/auth/ad/login").status_code == 200
    assert built and token
