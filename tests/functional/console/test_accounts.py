"""The Accounts page: list, search, New account → Create account; the admin's policies
decide what shows and what the server does; one audit event per action, source console."""

from __future__ import annotations

from bridge.api.principals import PrincipalStore
from bridge.app import Services
from bridge.domain import Actor
from tests.functional.console.conftest import OPERATOR, PASSWORD, Console, events

SETUP = Actor(type="Test", principal_id="test", name="test")


def test_create_account_is_the_create_account_action_of_the_signed_in_admin(
        console: Console, app_services: Services) -> None:
    console.sign_in("alice")
    page = console.client.get("/console/accounts")
    assert "New account" in page.text
    form = console.client.get("/console/accounts/new")
    assert "Account Name" in form.text and "Create account" in form.text
    response = console.form("/console/accounts/new", {"name": "Example Corp"})
    assert response.status_code == 302
    assert "/users" in response.headers["Location"]
    [event] = events(app_services, "CreateAccount")
    assert event["errorCode"] is None
    assert event["userIdentity"]["userName"] == "alice"
    assert event["userIdentity"]["source"] == "console"
    listing = console.client.get("/console/accounts?name=exam")
    assert "Example Corp" in listing.text and "Team" in listing.text
    assert "Example Corp" not in console.client.get("/console/accounts?name=zzz").text


def test_a_refused_name_is_shown_and_audited_once(console: Console,
                                                  app_services: Services) -> None:
    console.sign_in("alice")
    response = console.form("/console/accounts/new", {"name": "   "},
                            page="/console/accounts/new")
    assert response.status_code == 400
    [event] = events(app_services, "CreateAccount")
    assert event["errorCode"] == "ValidationError"


def test_read_only_admin_sees_no_write_control_and_the_server_refuses_anyway(
        console: Console, app_services: Services) -> None:
    app_services.engine.create_account(SETUP, "Existing")
    console.sign_in("reader", "ReadOnly")
    page = console.client.get("/console/accounts")
    assert page.status_code == 200 and "Existing" in page.text
    assert "New account" not in page.text
    forged = console.form("/console/accounts/new", {"name": "Sneaky"},
                          page="/console/accounts")
    assert forged.status_code == 403
    [event] = [e for e in events(app_services, "CreateAccount")
               if e["userIdentity"]["principalId"] != "test"]
    assert event["errorCode"] == "AccessDenied"
    assert event["userIdentity"]["userName"] == "reader"
    assert [a.name for a in app_services.engine.list_accounts()] == ["Existing"]


def test_a_deny_on_an_account_hides_it_from_the_list(console: Console,
                                                     app_services: Services) -> None:
    hidden = app_services.engine.create_account(SETUP, "Hidden")
    app_services.engine.create_account(SETUP, "Shown")
    from bridge.api.principals import PrincipalStore
    from tests.functional.console.conftest import OPERATOR, PASSWORD

    PrincipalStore(app_services.engine.uow, app_services.secrets).create(OPERATOR, "narrow", [
        {"Managed": "FullAccess"},
        {"Name": "no-hidden", "Document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "chime:*",
             "Resource": f"arn:aws:chime::000000000000:account/{hidden.id}"}]}}])
    console.credentials.set_password(OPERATOR, "narrow", PASSWORD)
    assert console.post_sign_in("narrow").status_code == 302
    page = console.client.get("/console/accounts").text
    assert "Shown" in page and "Hidden" not in page
    assert console.client.get(f"/console/accounts/{hidden.id}/users").status_code == 403


def test_an_admin_sees_only_its_organisation_s_accounts(console: Console,
                                                        app_services: Services) -> None:
    """Organisations (issue 16) hold in the console as in the admin API: another
    organisation's account is neither listed nor reachable, and the sign-in asks for the
    admin's own organisation as the Account ID."""
    ours = app_services.engine.create_account(SETUP, "Ours")  # the default organisation
    PrincipalStore(app_services.engine.uow, app_services.secrets).create(
        OPERATOR, "bob", [{"Managed": "FullAccess"}], aws_account_id="222233334444")
    console.credentials.set_password(OPERATOR, "bob", PASSWORD)
    assert console.post_sign_in("bob").status_code == 401  # the default Account ID
    signed_in = console.post_sign_in("bob", account_id="222233334444")
    assert signed_in.status_code == 302
    listing = console.client.get("/console/accounts")
    assert listing.status_code == 200 and "Ours" not in listing.text
    for page in ("users", "settings/account", "settings/domains"):
        assert console.client.get(f"/console/accounts/{ours.id}/{page}").status_code == 404
    renamed = console.form(f"/console/accounts/{ours.id}/settings/account/rename",
                           {"name": "Taken"}, page="/console/accounts")
    assert renamed.status_code == 404
    assert app_services.engine.get_account(ours.id).name == "Ours"
    # The probes are bob's organisation's events, not written into our account's trail.
    probes = [e for e in events(app_services) if e["userIdentity"].get("userName") == "bob"
              and e["errorCode"] == "NotFound"]
    assert probes and all(e["recipientAccountId"] is None for e in probes)
