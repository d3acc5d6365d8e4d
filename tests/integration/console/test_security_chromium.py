"""Console sign-in and authorization in Chromium against `bridge serve`: keyboard-only
sign-in and user action, the same answer for an unknown user and a wrong password, MFA,
the throttle, sign-out, a ReadOnly admin who sees no write control and whose writes the
server refuses, and a form on another site that is refused."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page

from bridge import audit
from bridge.domain import Actor
from bridge.store.db import transaction
from tests.integration.console.conftest import (
    PASSWORD,
    LiveConsole,
    check_page,
    post_by_hand,
    sign_in,
)

SETUP = Actor(type="Test", principal_id="test", name="test")
ATTACKER = "http://attacker.test/"


def _events(live: LiveConsole, name: str) -> list[dict[str, Any]]:
    with transaction(live.services.sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(event_name=name, limit=1000))
    return found


@pytest.fixture(scope="module", autouse=True)
def _admins(live: LiveConsole) -> None:
    live.make_admin("alice")
    live.make_admin("reader", "ReadOnly")


def test_keyboard_only_sign_in_and_user_action(live: LiveConsole, page: Page) -> None:
    team = live.services.engine.create_account(SETUP, "Keyboard Team")
    invites, _ = live.services.engine.invite_users(SETUP, team.id, ["kim@example.test"])
    page.goto(f"{live.url}/console")
    check_page(page, live, "01-sign-in")
    # The user name field has the focus; Tab moves on, Enter submits.
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_role("heading", name="Accounts").is_visible()
    page.goto(f"{live.url}/console/accounts/{team.id}/users")
    # Tab to the user's check box, tick it with Space, open User actions with Enter,
    # then Tab to "Log out user" and press Enter — no mouse.
    checkbox = page.get_by_label("Select kim@example.test")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == (
                "Select kim@example.test"):
            break
    page.keyboard.press("Space")
    assert checkbox.is_checked()
    for _ in range(40):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.tagName") == "SUMMARY":
            break
    page.keyboard.press("Enter")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Log out user":
            break
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Logged out 1 user." in page.content()
    logouts = [e for e in _events(live, "LogoutUser")
               if e["requestParameters"]["userId"] == invites[0].user_id]
    assert len(logouts) == 1 and logouts[0]["userIdentity"]["source"] == "console"


def test_wrong_password_and_unknown_user_get_the_same_answer(live: LiveConsole,
                                                            page: Page) -> None:
    answers = []
    for name, password in (("alice", "a wrong password!"), ("nobody", PASSWORD)):
        page.goto(f"{live.url}/console")
        page.fill("#username", name)
        page.fill("#password", password)
        with page.expect_navigation() as navigation:
            page.get_by_role("button", name="Sign in").click()
        response = navigation.value
        assert response is not None
        answers.append((response.status, page.inner_text("#sign-in-error")))
    assert answers[0] == answers[1]
    assert answers[0] == (401, "Your authentication information is incorrect. "
                               "Please try again.")
    check_page(page, live, "11-sign-in-failed")


def test_mfa_sign_in(live: LiveConsole, page: Page) -> None:
    live.make_admin("mfa-admin")
    uri = live.bridge("admin", "enable-mfa", "mfa-admin").strip()
    totp = pyotp.TOTP(pyotp.parse_uri(uri).secret)
    sign_in(page, live, "mfa-admin")
    assert page.get_by_role("heading", name="Multi-factor authentication").is_visible()
    check_page(page, live, "12-mfa")
    page.get_by_label("MFA code").fill(totp.now())
    with page.expect_navigation():
        page.get_by_role("button", name="Submit").click()
    assert page.inner_text("#signed-in-as") == "mfa-admin"


def test_failed_sign_ins_are_throttled(live: LiveConsole, page: Page) -> None:
    live.make_admin("target")
    for _ in range(5):
        sign_in(page, live, "target", "guessing wrong")
        assert "incorrect" in page.inner_text("#sign-in-error")
    sign_in(page, live, "target")  # even the right password, now
    assert "Too many failed sign-in attempts" in page.inner_text("#sign-in-error")
    assert page.locator("#signed-in-as").count() == 0


def test_sign_out(live: LiveConsole, page: Page) -> None:
    sign_in(page, live, "alice")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert "You have signed out." in page.content()
    page.goto(f"{live.url}/console/accounts")
    assert page.get_by_role("button", name="Sign in").is_visible()


def test_read_only_admin_sees_no_write_control_and_writes_are_refused(
        live: LiveConsole, page: Page) -> None:
    engine = live.services.engine
    team = engine.create_account(SETUP, "Read Team")
    invites, _ = engine.invite_users(SETUP, team.id, ["liz@example.test"])
    sign_in(page, live, "reader")
    assert page.get_by_role("link", name="Read Team").is_visible()
    assert page.get_by_role("link", name="New account").count() == 0
    check_page(page, live, "13-read-only-accounts")
    page.goto(f"{live.url}/console/accounts/{team.id}/users")
    for control in ("Invite users", "User actions"):
        assert page.get_by_text(control).count() == 0
    assert page.locator("input[type=checkbox]").count() == 0
    page.goto(f"{live.url}/console/accounts/{team.id}/users/{invites[0].user_id}")
    assert page.get_by_text("Reset personal PIN").count() == 0
    check_page(page, live, "14-read-only-user-detail")
    # A hand-made post with this browser's valid form token: the server refuses it.
    token = page.get_attribute("input[name=csrf_token]", "value")
    post_by_hand(page, f"{live.url}/console/accounts/{team.id}/users/invite",
                 {"csrf_token": token or "", "emails": "x@example.test"})
    assert page.inner_text("#reason") == "AccessDenied"
    assert [u.primary_email for u in engine.list_users(team.id)] == ["liz@example.test"]


def test_a_form_on_another_site_is_refused(live: LiveConsole, page: Page) -> None:
    sign_in(page, live, "alice")  # a signed-in admin visits the attacker's page
    page.route(ATTACKER, lambda route: route.fulfill(content_type="text/html", body=(
        f'<form method="post" action="{live.url}/console/accounts/new">'
        '<input name="name" value="Forged"><button type="submit">Win a prize</button>'
        "</form>")))
    page.goto(ATTACKER)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("#reason") == "cross_site_request"
    assert live.services.engine.list_accounts(name_prefix="Forged") == []


def test_the_accessibility_check_finds_a_serious_violation(live: LiveConsole,
                                                          page: Page) -> None:
    # The check is not vacuous: the same axe-core run flags a page with an unlabeled field.
    page.route(ATTACKER, lambda route: route.fulfill(content_type="text/html", body=(
        '<!doctype html><html lang="en"><title>t</title><main>'
        '<input type="text"><img src="x.png"></main></html>')))
    page.goto(ATTACKER)
    with pytest.raises(AssertionError, match=r"image-alt|label"):
        check_page(page, live, "99-known-violations")
