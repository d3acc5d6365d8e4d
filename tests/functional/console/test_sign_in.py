"""Console sign-in: password (argon2), TOTP, the same answer for every failure, the
throttle, the session cookie, idle timeout and sign-out."""

from __future__ import annotations

from pathlib import Path

import pyotp
from flask.testing import FlaskClient

from bridge.app import Services, build_services, create_app
from tests.conftest import FakeClock, make_settings
from tests.functional.console.conftest import (
    OPERATOR,
    Console,
    csrf_token,
    events,
)


def test_sign_in_sets_a_strict_httponly_cookie_and_opens_the_accounts_page(
        console: Console, app_services: Services) -> None:
    console.make_admin("alice")
    response = console.post_sign_in("alice")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("bridge_console=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # the public URL is http in tests
    page = console.client.get("/console/accounts")
    assert page.status_code == 200
    assert "Signed in as" in page.text and "alice" in page.text
    [login] = events(app_services, "ConsoleLogin")
    assert login["errorCode"] is None
    identity = login["userIdentity"]
    assert identity["userName"] == "alice" and identity["source"] == "console"


def test_wrong_password_unknown_user_and_wrong_account_get_the_same_answer(
        console: Console, app_services: Services) -> None:
    console.make_admin("alice")
    wrong = console.post_sign_in("alice", "not the password at all")
    unknown = console.post_sign_in("mallory", "not the password at all")
    account = console.post_sign_in("alice", account_id="111111111111")
    for response in (wrong, unknown, account):
        assert response.status_code == 401
        assert "Your authentication information is incorrect" in response.text
        assert "bridge_console=" not in response.headers.get("Set-Cookie", "")
    names = [e["requestParameters"]["userName"] for e in events(app_services, "ConsoleLogin")]
    # The typed name is recorded only for an admin that exists (else it could be a
    # password typed into the wrong field), whatever the account ID typed.
    assert names == ["alice", "HIDDEN_DUE_TO_SECURITY_REASONS", "alice"]
    assert all(e["errorCode"] == "Unauthenticated"
               for e in events(app_services, "ConsoleLogin"))


def test_failures_are_throttled_per_user_even_with_the_right_password(
        console: Console, app_services: Services) -> None:
    console.make_admin("alice")
    for _ in range(5):
        assert console.post_sign_in("alice", "wrong password guess").status_code == 401
    refused = console.post_sign_in("alice")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in refused.text
    assert events(app_services, "ConsoleLogin")[-1]["errorCode"] == "RateLimited"


def test_failures_are_throttled_per_source_address(console: Console) -> None:
    # 20 failures from one address over several names: the next name is refused too.
    for i in range(20):
        assert console.post_sign_in(f"user{i}", "wrong password guess").status_code == 401
    assert console.post_sign_in("someone-else", "wrong password guess").status_code == 429


def test_mfa_code_is_required_and_works_once(console: Console, clock: FakeClock,
                                             app_services: Services) -> None:
    console.make_admin("alice")
    uri = console.credentials.enable_mfa(OPERATOR, "alice")
    totp = pyotp.TOTP(pyotp.parse_uri(uri).secret)
    response = console.post_sign_in("alice")
    assert response.status_code == 302 and response.headers["Location"] == "/console/mfa"
    assert "bridge_console=" not in response.headers.get("Set-Cookie", "")
    assert console.client.get("/console/accounts").status_code == 302  # not signed in yet
    bad = console.form("/console/mfa", {"code": "000000" if totp.at(clock.now) != "000000"
                                        else "111111"})
    assert bad.status_code == 401 and "not valid" in bad.text
    # Six non-ASCII digits were a 500 (compare_digest refuses non-ASCII text).
    for odd in ("\u00b2" * 6, "\u0661" * 6):
        refused = console.form("/console/mfa", {"code": odd})
        assert refused.status_code == 401 and "not valid" in refused.text
    good = console.form("/console/mfa", {"code": totp.at(clock.now)})
    assert good.status_code == 302 and good.headers["Location"] == "/console/accounts"
    assert console.client.get("/console/accounts").status_code == 200
    # The same code cannot sign in a second time (a replayed code).
    other = console.client.application.test_client()
    token = csrf_token(other.get("/console").text)
    other.post("/console", data={"csrf_token": token, "account_id": "000000000000",
                                 "username": "alice",
                                 "password": "correct horse battery staple"})
    again = other.post("/console/mfa", data={"csrf_token": csrf_token(
        other.get("/console/mfa").text), "code": totp.at(clock.now)})
    assert again.status_code == 401
    login = [e for e in events(app_services, "ConsoleLogin") if not e["errorCode"]]
    assert login[0]["requestParameters"]["MFAUsed"] == "Yes"


def test_idle_session_ends_and_says_so(console: Console, clock: FakeClock) -> None:
    console.sign_in("alice")
    clock.advance(minutes=29)
    assert console.client.get("/console/accounts").status_code == 200
    clock.advance(minutes=29)  # refreshed at the last page: still within 30 idle minutes
    assert console.client.get("/console/accounts").status_code == 200
    clock.advance(minutes=31)
    ended = console.client.get("/console/accounts")
    assert ended.status_code == 302 and "ended=idle" in ended.headers["Location"]
    assert "idle for too long" in console.client.get(ended.headers["Location"]).text


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(
        console: Console, client: FlaskClient, app_services: Services) -> None:
    console.sign_in("alice")
    stolen = client.get_cookie("bridge_console", path="/console")
    assert stolen is not None
    response = console.form("/console/signout", {}, page="/console/accounts")
    assert response.status_code == 302
    assert console.client.get("/console/accounts").status_code == 302
    replay = client.application.test_client()
    replay.set_cookie("bridge_console", stolen.value, path="/console")
    assert replay.get("/console/accounts").status_code == 302
    assert len(events(app_services, "ConsoleSignOut")) == 1


def test_a_form_post_without_its_token_is_refused(console: Console) -> None:
    console.make_admin("alice")
    response = console.client.post("/console", data={
        "account_id": "000000000000", "username": "alice",
        "password": "correct horse battery staple"})
    assert response.status_code == 403 and "invalid_form_token" in response.text


def test_signing_in_again_replaces_the_browsers_session(console: Console,
                                                        app_services: Services) -> None:
    from sqlalchemy import func, select

    from bridge.store.console_models import ConsoleSession
    from bridge.store.db import transaction

    console.sign_in("alice")
    first = console.client.get_cookie("bridge_console", path="/console")
    assert first is not None
    # (The sign-in form of another tab, opened before: its token is this browser's.)
    again = console.form("/console", {"account_id": "000000000000", "username": "alice",
                                      "password": "correct horse battery staple"},
                         page="/console/accounts")
    assert again.status_code == 302
    second = console.client.get_cookie("bridge_console", path="/console")
    assert second is not None and second.value != first.value
    with transaction(app_services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(ConsoleSession)) == 1
    replay = console.client.application.test_client()
    replay.set_cookie("bridge_console", first.value, path="/console")
    assert replay.get("/console/accounts").status_code == 302


def test_failed_sign_ins_are_console_events_too(console: Console,
                                                app_services: Services) -> None:
    console.post_sign_in("nobody", "wrong password here")
    [event] = events(app_services, "ConsoleLogin")
    assert event["userIdentity"]["source"] == "console"
    assert event["errorMessage"] == "Failed authentication"


def test_the_cookie_is_secure_behind_an_https_public_url(
        sqlite_url: str, tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, sqlite_url, public_url="https://bridge.example")
    services = build_services(settings, clock=clock)
    try:
        console = Console(services, create_app(settings, services).test_client(), clock)
        console.make_admin("alice")
        cookie = console.post_sign_in("alice").headers["Set-Cookie"]
        assert cookie.startswith("bridge_console=") and "Secure" in cookie
        assert "SameSite=Strict" in cookie and "HttpOnly" in cookie
    finally:
        services.db.dispose()


def test_a_new_password_ends_the_admin_s_console_sessions(console: Console) -> None:
    """A session taken before a password change (or an MFA change) does not outlive it."""
    console.sign_in("alice")
    assert console.client.get("/console/accounts").status_code == 200
    console.credentials.set_password(OPERATOR, "alice", "another long passphrase here")
    after = console.client.get("/console/accounts")
    assert after.status_code == 302 and after.headers["Location"].startswith("/console")
