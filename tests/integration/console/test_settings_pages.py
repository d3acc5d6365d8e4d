"""The console's Settings pages (Account, Domains, Policies) through Flask's test client,
with a real DNS server on loopback for domain verification: each control is the admin API
action of the same name, audited once with the console as source, and a ReadOnly admin
sees no write control and is refused by the server anyway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from tests.conftest import FakeClock, make_settings
from tests.functional.console.conftest import Console, events
from tests.servers.dns import DnsServer

SETUP = Actor(type="Test", principal_id="test", name="test")


@pytest.fixture
def svc(sqlite_url: str, tmp_path: Path, clock: FakeClock,
        dns: DnsServer) -> Iterator[Services]:
    built = build_services(make_settings(tmp_path, sqlite_url,
                                         dns_nameservers=(dns.nameserver,),
                                         dns_timeout_seconds=2.0), clock=clock)
    yield built
    built.db.dispose()


@pytest.fixture
def console(svc: Services, clock: FakeClock) -> Console:
    client: FlaskClient = create_app(svc.settings, svc).test_client()
    return Console(svc, client, clock)


def _mine(svc: Services, name: str) -> list[dict[str, object]]:
    return [e for e in events(svc, name) if e["userIdentity"]["principalId"] != "test"]


def test_claim_publish_verify_and_remove_a_domain(console: Console, svc: Services,
                                                  dns: DnsServer) -> None:
    account = svc.engine.create_account(SETUP, "Example Corp")
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/domains"
    page = console.client.get(base)
    assert "Claim a new domain" in page.text and "No domains yet" in page.text
    form = console.client.get(base + "?claim=1")
    assert "Verify a new domain" in form.text and 'id="domain"' in form.text
    claimed = console.form(base, {"domain": "Example.COM"}, page=base + "?claim=1")
    assert claimed.status_code == 302
    page = console.client.get(base)
    assert "example.com" in page.text and "Pending verification" in page.text
    [domain] = svc.engine.list_domains(account.id)
    assert domain.verification_record_value in page.text  # the TXT record to publish
    assert domain.verification_record_name in page.text
    assert domain.last_checked_at is not None  # looked up at once when claimed
    [added] = _mine(svc, "AddDomain")
    assert added["errorCode"] is None and added["userIdentity"]["source"] == "console"

    dns.set_txt(domain.verification_record_name, [domain.verification_record_value])
    verified = console.form(f"{base}/example.com/verify", {}, page=base)
    assert verified.status_code == 302
    page = console.client.get(base)
    assert "Verified" in page.text and "Remove domain" in page.text
    assert svc.engine.get_domain(account.id, "example.com").status == "verified"
    assert _mine(svc, "VerifyDomain")  # the check is audited under its own name

    confirm = console.client.get(base + "?remove=example.com")
    assert "signed out of all devices" in confirm.text and "Released" in confirm.text
    removed = console.form(f"{base}/example.com/remove", {}, page=base + "?remove=example.com")
    assert removed.status_code == 302
    assert svc.engine.list_domains(account.id) == []
    [deleted] = _mine(svc, "DeleteDomain")
    assert deleted["errorCode"] is None and deleted["userIdentity"]["userName"] == "alice"


def test_a_bad_domain_name_is_shown_on_the_form_and_audited_once(
        console: Console, svc: Services) -> None:
    account = svc.engine.create_account(SETUP, "Example Corp")
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/domains"
    response = console.form(base, {"domain": "not a domain"}, page=base + "?claim=1")
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.text
    [event] = _mine(svc, "AddDomain")
    assert event["errorCode"] == "ValidationError"
    assert svc.engine.list_domains(account.id) == []


def test_rename_and_delete_account(console: Console, svc: Services) -> None:
    account = svc.engine.create_account(SETUP, "Old name")
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/account"
    page = console.client.get(base)
    assert "Account actions" in page.text and "Rename account" in page.text
    assert "Delete account" in page.text
    renamed = console.form(base + "/rename", {"name": "New name"}, page=base + "?rename=1")
    assert renamed.status_code == 302
    assert svc.engine.get_account(account.id).name == "New name"
    [event] = _mine(svc, "RenameAccount")
    assert event["errorCode"] is None and event["userIdentity"]["source"] == "console"

    wrong = console.form(base + "/delete", {"confirm_name": "Old name"}, page=base + "?delete=1")
    assert wrong.status_code == 400 and "Type the account" in wrong.text
    assert svc.engine.get_account(account.id).name == "New name"  # nothing deleted
    deleted = console.form(base + "/delete", {"confirm_name": "New name"},
                           page=base + "?delete=1")
    assert deleted.status_code == 302 and deleted.headers["Location"] == "/console/accounts"
    assert [a.id for a in svc.engine.list_accounts()] == []
    [event] = _mine(svc, "DeleteAccount")
    assert event["errorCode"] is None


def test_an_account_with_a_verified_domain_is_not_deleted_and_says_why(
        console: Console, svc: Services, dns: DnsServer) -> None:
    account = svc.engine.create_account(SETUP, "Enterprise")
    domain = svc.engine.add_domain(SETUP, account.id, "corp.example")
    dns.set_txt(domain.verification_record_name, [domain.verification_record_value])
    console.sign_in("alice")
    console.form(f"/console/accounts/{account.id}/settings/domains/corp.example/verify", {},
                 page=f"/console/accounts/{account.id}/settings/domains")
    base = f"/console/accounts/{account.id}/settings/account"
    assert "Remove the domains" in console.client.get(base + "?delete=1").text
    refused = console.form(base + "/delete", {"confirm_name": "Enterprise"},
                           page=base + "?delete=1")
    assert refused.status_code == 409
    assert svc.engine.get_account(account.id).name == "Enterprise"
    [event] = _mine(svc, "DeleteAccount")
    assert event["errorCode"] == "Conflict"


def test_policies_page_saves_both_settings(console: Console, svc: Services) -> None:
    account = svc.engine.create_account(SETUP, "Example Corp")
    console.sign_in("alice")
    base = f"/console/accounts/{account.id}/settings/policies"
    before = svc.engine.get_account_settings(account.id)
    assert "Allow remote control" in console.client.get(base).text
    # Remote control off (box absent from the post), call me on.
    saved = console.form(base, {"call_me": "on"})
    assert saved.status_code == 302
    after = svc.engine.get_account_settings(account.id)
    assert (after.remote_control_enabled, after.call_me_enabled) == (False, True)
    assert (before.remote_control_enabled, before.call_me_enabled) != (False, True)
    [event] = _mine(svc, "UpdateAccountSettings")
    assert event["errorCode"] is None and event["userIdentity"]["source"] == "console"


def test_read_only_admin_sees_settings_without_write_controls_and_is_refused(
        console: Console, svc: Services) -> None:
    account = svc.engine.create_account(SETUP, "Example Corp")
    svc.engine.add_domain(SETUP, account.id, "example.com")
    console.sign_in("reader", "ReadOnly")
    settings = f"/console/accounts/{account.id}/settings"
    account_page = console.client.get(settings + "/account")
    assert account_page.status_code == 200 and "Example Corp" in account_page.text
    assert "Rename account" not in account_page.text
    assert "Delete account" not in account_page.text
    domains = console.client.get(settings + "/domains")
    assert "example.com" in domains.text
    assert "Claim a new domain" not in domains.text and "Remove domain" not in domains.text
    policies = console.client.get(settings + "/policies")
    assert "disabled" in policies.text and "Save" not in policies.text
    for path, data in ((settings + "/account/rename", {"name": "Hacked"}),
                       (settings + "/account/delete", {"confirm_name": "Example Corp"}),
                       (settings + "/domains", {"domain": "evil.example"}),
                       (settings + "/domains/example.com/remove", {}),
                       (settings + "/policies", {"call_me": "on"})):
        assert console.form(path, data, page=settings + "/account").status_code == 403, path
    assert svc.engine.get_account(account.id).name == "Example Corp"
    assert [d.name for d in svc.engine.list_domains(account.id)] == ["example.com"]
    refused = {e["eventName"] for e in _mine(svc, None) if e["errorCode"] == "AccessDenied"}
    assert refused == {"RenameAccount", "DeleteAccount", "AddDomain", "DeleteDomain",
                       "UpdateAccountSettings"}


def test_settings_navigation_lists_the_guide_s_pages_in_order(console: Console,
                                                              svc: Services) -> None:
    account = svc.engine.create_account(SETUP, "Example Corp")
    console.sign_in("alice")
    page = console.client.get(f"/console/accounts/{account.id}/users").text
    positions = [page.index(f">{label}</a>") for label in ("Account", "Domains", "Policies")]
    assert positions == sorted(positions)
