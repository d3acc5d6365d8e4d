"""An account's Users page: search, server-side pages, Invite users, User actions, the
User detail page and Reset personal PIN — each the admin API's action under the admin's
policies, one audit event each with source console."""

from __future__ import annotations

import re

from flask import Flask

from bridge.app import Services
from bridge.domain import Actor, DirectoryKind
from tests.admin_client import admin_client
from tests.builders import default_identity, enterprise
from tests.functional.console.conftest import Console, events

SETUP = Actor(type="Test", principal_id="test", name="test")


def _console_events(services: Services, name: str) -> list[dict[str, object]]:
    return [e for e in events(services, name) if e["userIdentity"].get("source") == "console"]


def _team(services: Services, *emails: str) -> tuple[str, dict[str, str]]:
    team = services.engine.create_account(SETUP, "Team A")
    invitations, errors = services.engine.invite_users(SETUP, team.id, list(emails))
    assert not errors
    return team.id, {i.email: i.user_id for i in invitations}


def test_invite_users_separated_by_semicolons_and_new_lines(console: Console,
                                                           app_services: Services) -> None:
    team = app_services.engine.create_account(SETUP, "Team A")
    console.sign_in("alice")
    page = console.client.get(f"/console/accounts/{team.id}/users")
    assert "Invite users" in page.text
    response = console.form(f"/console/accounts/{team.id}/users/invite",
                            {"emails": "ann@example.test; bob@example.test\ncid@example.test"},
                            page=f"/console/accounts/{team.id}/users")
    assert response.status_code == 302
    listing = console.client.get(f"/console/accounts/{team.id}/users").text
    assert "Invited 3 users" in listing
    for email in ("ann@example.test", "bob@example.test", "cid@example.test"):
        assert email in listing
    assert "Unregistered" in listing
    [event] = _console_events(app_services, "InviteUsers")
    assert event["errorCode"] is None and event["recipientAccountId"] == team.id


def test_an_invitation_withdrawn_by_another_accounts_claim_shows_as_expired(
        console: Console, app_services: Services) -> None:
    account_id, ids = _team(app_services, "ann@claimed.test", "bob@example.test")
    enterprise(app_services.engine, SETUP, ["claimed.test"], name="Claimer")
    console.sign_in("alice")
    listing = console.client.get(f"/console/accounts/{account_id}/users").text
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r'>([a-z]+@[a-z.]+)</a></td>\s*<td>[^<]*</td>\s*<td[^>]*>([^<]*)</td>', listing)}
    assert rows == {"ann@claimed.test": "Unregistered (invitation expired)",
                    "bob@example.test": "Unregistered"}
    detail = console.client.get(
        f"/console/accounts/{account_id}/users/{ids['ann@claimed.test']}").text
    assert 'id="user-status">Unregistered (invitation expired)<' in detail


def test_search_by_email_and_pages_of_fifty(console: Console, app_services: Services) -> None:
    account_id, _ = _team(app_services, *[f"u{i:03}@example.test" for i in range(120)])
    console.sign_in("alice")
    first = console.client.get(f"/console/accounts/{account_id}/users").text
    assert first.count('name="user_id"') == 50
    nxt = re.search(r'href="([^"]+after=[^"]+)">Next page', first)
    assert nxt
    second = console.client.get(nxt.group(1).replace("&amp;", "&")).text
    assert second.count('name="user_id"') == 50
    assert not set(re.findall(r'value="([0-9a-f-]{36})"', first)) & set(
        re.findall(r'value="([0-9a-f-]{36})"', second))
    found = console.client.get(f"/console/accounts/{account_id}/users?email=u007@example.test")
    assert found.text.count('name="user_id"') == 1 and "u007@example.test" in found.text
    # A prefix (any case): matches in address order, paged by address.
    prefix = console.client.get(f"/console/accounts/{account_id}/users?email=U0").text
    shown = re.findall(r">(u\d{3})@example.test<", prefix)
    assert shown == [f"u{i:03}" for i in range(50)]
    nxt = re.search(r'href="([^"]+after=[^"]+)">Next page', prefix)
    assert nxt
    rest = console.client.get(nxt.group(1).replace("&amp;", "&")).text
    assert re.findall(r">(u\d{3})@example.test<", rest) == [f"u{i:03}" for i in range(50, 100)]
    assert "Next page" not in rest


def test_assign_permissions_and_remove_user_in_a_team_account(
        console: Console, app_services: Services) -> None:
    account_id, ids = _team(app_services, "ann@example.test", "bob@example.test")
    console.sign_in("alice")
    page = console.client.get(f"/console/accounts/{account_id}/users").text
    assert "Remove user" in page and "Suspend user" not in page  # team: no suspension
    users = f"/console/accounts/{account_id}/users"
    response = console.form(f"{users}/actions", {"user_id": [ids["ann@example.test"]],
                                                 "action": "assign", "license": "Basic"},
                            page=users)
    assert response.status_code == 302
    assert app_services.engine.get_user(account_id, ids["ann@example.test"]).tier.value == "basic"
    console.form(f"{users}/actions", {"user_id": [ids["bob@example.test"]], "action": "remove"},
                 page=users)
    remaining = [u.primary_email for u in app_services.engine.list_users(account_id)]
    assert remaining == ["ann@example.test"]
    assert len(_console_events(app_services, "UpdateUserLicenses")) == 1
    [removed] = _console_events(app_services, "SuspendUsers")  # removal on a team account
    assert removed["errorCode"] is None


def test_suspend_activate_and_log_out_in_an_enterprise_account(
        console: Console, app_services: Services) -> None:
    engine = app_services.engine
    account = enterprise(engine, SETUP, ["corp.test"])
    decision = engine.decide_sign_in(default_identity("jane@corp.test"), SETUP)
    assert decision.allowed
    user_id = decision.user_id
    console.sign_in("alice")
    users = f"/console/accounts/{account.id}/users"
    page = console.client.get(users).text
    assert "Suspend user" in page and "Remove user" not in page
    console.form(f"{users}/actions", {"user_id": [user_id], "action": "suspend"}, page=users)
    assert engine.get_user(account.id, user_id).status == "suspended"
    assert "Suspended 1 user." in console.client.get(users).text
    console.form(f"{users}/actions", {"user_id": [user_id], "action": "activate"}, page=users)
    assert engine.get_user(account.id, user_id).status == "registered"
    console.form(f"{users}/actions", {"user_id": [user_id], "action": "logout"}, page=users)
    for name in ("SuspendUsers", "ActivateUsers", "LogoutUser"):
        [event] = _console_events(app_services, name)
        assert event["errorCode"] is None
        assert event["userIdentity"]["userName"] == "alice"


def test_user_detail_and_reset_personal_pin_after_confirm(console: Console,
                                                         app_services: Services) -> None:
    account_id, ids = _team(app_services, "ann@example.test")
    user_id = ids["ann@example.test"]
    before = app_services.engine.get_user(account_id, user_id).personal_pin
    console.sign_in("alice")
    detail = f"/console/accounts/{account_id}/users/{user_id}"
    page = console.client.get(detail).text
    for label in ("User detail", "Aliases", "Status", "Permissions", "From a directory",
                  "Invited", "Registered", "Last sign-in", "Groups", "Reset personal PIN"):
        assert label in page
    assert "Confirm" not in page
    confirm = console.client.get(f"{detail}?confirm=reset-pin").text
    assert "Confirm" in confirm
    response = console.form(f"{detail}/reset-pin", {}, page=f"{detail}?confirm=reset-pin")
    assert response.status_code == 302
    after = app_services.engine.get_user(account_id, user_id).personal_pin
    assert after != before
    assert after in console.client.get(detail).text
    assert len(_console_events(app_services, "ResetPersonalPin")) == 1
    assert len(_console_events(app_services, "GetUser")) >= 1


def test_read_only_admin_sees_users_but_no_controls_and_writes_are_refused(
        console: Console, app_services: Services) -> None:
    account_id, ids = _team(app_services, "ann@example.test")
    console.sign_in("reader", "ReadOnly")
    users = f"/console/accounts/{account_id}/users"
    page = console.client.get(users).text
    assert "ann@example.test" in page
    for control in ("Invite users", "User actions", "Remove user", "Assign", 'type="checkbox"'):
        assert control not in page
    detail = console.client.get(f"{users}/{ids['ann@example.test']}?confirm=reset-pin").text
    assert "Reset personal PIN" not in detail and "Confirm" not in detail
    for path, data in ((f"{users}/invite", {"emails": "x@example.test"}),
                       (f"{users}/actions", {"user_id": [ids["ann@example.test"]],
                                             "action": "remove"}),
                       (f"{users}/{ids['ann@example.test']}/reset-pin", {})):
        assert console.form(path, data, page=users).status_code == 403
    refused = [e for e in events(app_services) if e["errorCode"] == "AccessDenied"]
    assert sorted(e["eventName"] for e in refused) == ["InviteUsers", "ResetPersonalPin",
                                                       "SuspendUsers"]
    assert [u.primary_email for u in app_services.engine.list_users(account_id)] == [
        "ann@example.test"]


def test_an_unknown_account_is_a_not_found_page(console: Console) -> None:
    console.sign_in("alice")
    response = console.client.get("/console/accounts/no-such-account/users")
    assert response.status_code == 404 and "Not found" in response.text


def test_a_tier_held_since_okta_was_connected_is_said_in_words(
        console: Console, app_services: Services, app: Flask) -> None:
    """A user's tier kept since Okta was connected (``User.tier_held``) is shown as held on
    User detail and as ``TierHeld`` by GetUser; a tier set by a mapped group is not."""
    engine = app_services.engine
    account = enterprise(engine, SETUP, ["held.test"], name="Held Corp")
    assert engine.decide_sign_in(default_identity("hal@held.test"), SETUP).allowed
    user_id = engine.get_user_by_email("hal@held.test").id
    detail = f"/console/accounts/{account.id}/users/{user_id}"
    console.sign_in("alice")
    assert "held since Okta" not in console.client.get(detail).text
    engine.set_directory(SETUP, account.id, DirectoryKind.OKTA, event_name="ConnectDirectory")
    assert engine.get_user(account.id, user_id).tier_held
    tier = re.sub(r"\s+", " ", console.client.get(detail).text)
    assert ("Pro — held since Okta was connected, until a mapped group decides" in tier
            or "Basic — held since Okta was connected, until a mapped group decides" in tier)
    shape = admin_client(app, "ReadOnly").get(f"/accounts/{account.id}/users/{user_id}")
    assert shape.get_json()["User"]["TierHeld"] is True


def test_a_back_address_with_a_line_break_goes_back_to_the_users_page(
        console: Console, app_services: Services) -> None:
    """The hidden ``back`` field is posted by the client: CR/LF in it (header injection)
    once made the redirect raise (a 500 and the action not done); now the action is done
    and the answer goes back to the Users page."""
    engine = app_services.engine
    account = enterprise(engine, SETUP, ["corp.test"])
    user_id = engine.decide_sign_in(default_identity("jane@corp.test"), SETUP).user_id
    console.sign_in("alice")
    users = f"/console/accounts/{account.id}/users"
    for back in (f"{users}\r\nSet-Cookie: session=attacker", f"{users}\n", f"{users}\x7f",
                 "https://evil.example/console/", "/console/\\evil.example"):
        response = console.form(f"{users}/actions", {"user_id": [user_id],
                                                     "action": "suspend", "back": back},
                                page=users)
        assert response.status_code == 302, response.text  # type: ignore[attr-defined]
        assert response.headers["Location"] == users  # type: ignore[attr-defined]
        assert "Set-Cookie: session" not in str(response.headers)  # type: ignore[attr-defined]
    assert engine.get_user(account.id, user_id).status == "suspended"
    assert len(_console_events(app_services, "SuspendUsers")) == 5
