"""The guide's console procedures, end to end in Chromium against `bridge serve`, each page
checked with axe-core and photographed: create an account, invite users (and accept the
mailed invitation), the User actions, the User detail page with Reset personal PIN, the
Event history with its download, and Support."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page

from bridge.domain import Actor
from tests.builders import default_identity, enterprise
from tests.integration.console.conftest import (
    SUPPORT,
    LiveConsole,
    check_page,
    invitation_link,
    sign_in,
)

SETUP = Actor(type="Test", principal_id="test", name="test")


@pytest.fixture(scope="module", autouse=True)
def _admin(live: LiveConsole) -> None:
    live.make_admin("alice")


def _users_page(page: Page, live: LiveConsole, account_name: str) -> None:
    page.goto(f"{live.url}/console/accounts")
    with page.expect_navigation():
        page.get_by_role("link", name=account_name).click()


def test_create_an_account_invite_users_and_they_accept(live: LiveConsole, page: Page) -> None:
    sign_in(page, live, "alice")
    check_page(page, live, "02-accounts-empty")
    # "On the Accounts page, choose New account."
    with page.expect_navigation():
        page.get_by_role("link", name="New account").click()
    check_page(page, live, "03-new-account")
    # "For Account Name, type a name for the account and choose Create account."
    page.get_by_label("Account Name").fill("Example Team")
    with page.expect_navigation():
        page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("heading", name="Users").is_visible()
    assert "Account Example Team created." in page.content()
    # "On the Users page, choose Invite users. Type the email addresses ... choose Invite users."
    page.locator("summary", has_text="Invite users").click()
    page.get_by_label("Email addresses").fill("ann@example.test; bob@example.test\n"
                                              "cid@example.test")
    check_page(page, live, "04-invite-users")
    with page.expect_navigation():
        page.get_by_role("button", name="Invite users").click()
    assert "Invited 3 users" in page.content()
    check_page(page, live, "05-users")
    # The invited person follows the mailed link and accepts.
    invitee = page.context.new_page()
    invitee.goto(invitation_link(live, "ann@example.test"))
    with invitee.expect_navigation():
        invitee.locator("button[type=submit]").click()
    invitee.close()
    page.reload()
    row = page.get_by_role("row").filter(has_text="ann@example.test")
    assert "Registered" in row.inner_text()
    account = live.services.engine.list_accounts(name_prefix="Example Team")[0]
    assert {u.primary_email for u in live.services.engine.list_users(account.id)} == {
        "ann@example.test", "bob@example.test", "cid@example.test"}
    with page.expect_navigation():
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Accounts").click()
    assert page.get_by_role("link", name="Example Team").is_visible()
    check_page(page, live, "02-accounts")


def test_user_actions_assign_remove_and_log_out_in_a_team_account(live: LiveConsole,
                                                                  page: Page) -> None:
    engine = live.services.engine
    team = engine.create_account(SETUP, "Team Actions")
    invites, _ = engine.invite_users(SETUP, team.id, ["dan@example.test", "eve@example.test"])
    ids = {i.email: i.user_id for i in invites}
    sign_in(page, live, "alice")
    _users_page(page, live, "Team Actions")
    # "Select the check boxes ... choose User actions, Assign permissions, Basic, and Assign."
    page.get_by_label("Select dan@example.test").check()
    page.locator("summary", has_text="User actions").click()
    page.get_by_label("Basic").check()
    check_page(page, live, "06-user-actions")
    with page.expect_navigation():
        page.get_by_role("button", name="Assign", exact=True).click()
    assert "Assigned Basic permissions to 1 user." in page.content()
    assert engine.get_user(team.id, ids["dan@example.test"]).tier.value == "basic"
    page.get_by_label("Select dan@example.test").check()
    page.locator("summary", has_text="User actions").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Log out user").click()
    assert "Logged out 1 user." in page.content()
    # "Select the users to remove and choose User actions, Remove user."
    page.get_by_label("Select eve@example.test").check()
    page.locator("summary", has_text="User actions").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Remove user").click()
    assert "Removed 1 user." in page.content()
    assert [u.primary_email for u in engine.list_users(team.id)] == ["dan@example.test"]


def test_suspend_and_activate_in_an_enterprise_account(live: LiveConsole, page: Page) -> None:
    engine = live.services.engine
    account = enterprise(engine, SETUP, ["corp.test"], name="Corp Enterprise")
    decision = engine.decide_sign_in(default_identity("jane@corp.test"), SETUP)
    assert decision.allowed and decision.user_id
    sign_in(page, live, "alice")
    _users_page(page, live, "Corp Enterprise")
    page.get_by_label("Select jane@corp.test").check()
    page.locator("summary", has_text="User actions").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Suspend user").click()
    assert engine.get_user(account.id, decision.user_id).status == "suspended"
    assert "Suspended" in page.get_by_role("row").filter(has_text="jane@corp.test").inner_text()
    page.get_by_label("Select jane@corp.test").check()
    page.locator("summary", has_text="User actions").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Activate user").click()
    assert engine.get_user(account.id, decision.user_id).status == "registered"


def test_user_detail_and_reset_personal_pin(live: LiveConsole, page: Page) -> None:
    engine = live.services.engine
    team = engine.create_account(SETUP, "Team Detail")
    invites, _ = engine.invite_users(SETUP, team.id, ["fay@example.test"])
    before = engine.get_user(team.id, invites[0].user_id).personal_pin
    sign_in(page, live, "alice")
    _users_page(page, live, "Team Detail")
    with page.expect_navigation():
        page.get_by_role("link", name="fay@example.test").click()
    assert page.get_by_role("heading", name="User detail").is_visible()
    check_page(page, live, "07-user-detail")
    with page.expect_navigation():
        page.get_by_role("link", name="Reset personal PIN").click()
    check_page(page, live, "08-reset-personal-pin")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm").click()
    after = engine.get_user(team.id, invites[0].user_id).personal_pin
    assert after != before and page.inner_text("#personal-pin") == after


def test_event_history_filters_and_downloads(live: LiveConsole, page: Page) -> None:
    sign_in(page, live, "alice")
    with page.expect_navigation():
        page.get_by_role("link", name="Event history").click()
    page.get_by_label("Event name").fill("CreateAccount")
    page.get_by_label("User name or principal").fill("alice")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    assert rows.count() >= 1
    assert all("CreateAccount" in rows.nth(i).inner_text() for i in range(rows.count()))
    check_page(page, live, "09-event-history")
    with page.expect_download() as downloaded:
        page.get_by_role("link", name="Download (JSON lines)").click()
    path = downloaded.value.path()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert events and {e["eventName"] for e in events} == {"CreateAccount"}
    assert {e["userIdentity"]["userName"] for e in events} == {"alice"}
    assert {e["userIdentity"]["source"] for e in events} == {"console"}


def test_submit_a_support_request(live: LiveConsole, page: Page) -> None:
    sign_in(page, live, "alice")
    with page.expect_navigation():
        page.get_by_role("link", name="Support").click()
    page.get_by_label("Subject").fill("Invitations are slow")
    page.get_by_label("Description").fill("They arrive after an hour.")
    check_page(page, live, "10-support")
    with page.expect_navigation():
        page.get_by_role("button", name="Submit request").click()
    assert "was submitted" in page.content() and "mailed to the support team" in page.content()
    mails = [m for m in live.smtp.messages if SUPPORT in m.rcpt_tos]
    assert len(mails) == 1 and "Invitations are slow" in mails[0].message["Subject"]
