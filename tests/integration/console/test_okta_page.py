"""The console's **Okta single-sign on configuration** page through Flask's test client,
against a real OpenID Provider on loopback (node oidc-provider) for **Set up incoming
keys**: each control is the admin API action of the same name, audited once with the
console as source; connecting Okta is confirmed explicitly after the plan is shown; the
access key is shown once; the client secret appears in no page and no event; a ReadOnly
admin sees no write control and is refused by the server anyway; every form needs its
CSRF token."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge.api.principals import PrincipalStore
from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from tests.builders import claim
from tests.conftest import FakeClock, make_settings
from tests.functional.console.conftest import OPERATOR, PASSWORD, Console, events
from tests.integration.oidc.conftest import OKTA_CLIENT_ID, OKTA_CLIENT_SECRET, make_okta_op
from tests.servers.oidc_op import OpenIdProvider

SETUP = Actor(type="Test", principal_id="test", name="test")


@pytest.fixture(scope="module")
def op() -> Iterator[OpenIdProvider]:
    with make_okta_op() as provider:
        yield provider


@pytest.fixture
def svc(sqlite_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Services]:
    built = build_services(make_settings(tmp_path, sqlite_url), clock=clock)
    yield built
    built.db.dispose()


@pytest.fixture
def console(svc: Services, clock: FakeClock) -> Console:
    client: FlaskClient = create_app(svc.settings, svc).test_client()
    return Console(svc, client, clock)


def _mine(svc: Services, name: str | None) -> list[dict[str, object]]:
    return [e for e in events(svc, name)
            if e["userIdentity"]["principalId"] != "test"]  # type: ignore[index]


def _enterprise(svc: Services) -> str:
    account = svc.engine.create_account(SETUP, "Okta Corp")
    claim(svc.engine, SETUP, account.id, "okta.example")
    return account.id


def test_set_up_incoming_keys_shows_the_plan_and_connects_only_when_confirmed(
        console: Console, svc: Services, op: OpenIdProvider) -> None:
    account_id = _enterprise(svc)
    console.sign_in("alice")
    base = f"/console/accounts/{account_id}/settings/okta"
    page = console.client.get(base)
    assert "Set up incoming keys" in page.text and "Create access key" in page.text
    assert "this console" in page.text
    form = console.client.get(base + "?setup=1")
    for label in ("Issuer", "Client ID", "Client secret"):
        assert f">{label}</label>" in form.text
    assert "EnterpriseOIDC" in form.text and "Connect Okta and make these changes" in form.text
    data = {"issuer": op.issuer, "client_id": OKTA_CLIENT_ID,
            "client_secret": OKTA_CLIENT_SECRET}

    unconfirmed = console.form(base, data, page=base + "?setup=1")
    assert unconfirmed.status_code == 409  # type: ignore[attr-defined]
    assert "ConnectOkta" in unconfirmed.text  # type: ignore[attr-defined]
    assert svc.engine.get_account(account_id).directory_kind is None  # nothing changed

    connected = console.form(base, {**data, "connect_okta": "on"}, page=base + "?setup=1")
    assert connected.status_code == 302  # type: ignore[attr-defined]
    assert svc.engine.get_account(account_id).directory_kind == "okta"
    page = console.client.get(base)
    assert op.issuer in page.text and OKTA_CLIENT_ID in page.text
    assert "Okta is connected" in page.text and "Stored (never shown)" in page.text
    updates = _mine(svc, "UpdateAccountWithOpenIdConfig")
    assert [e["errorCode"] for e in updates] == ["ConfirmationRequired", None]
    assert {e["userIdentity"]["source"] for e in updates} == {"console"}  # type: ignore[index]

    # Deleting the configuration with no key left returns the account to the console.
    confirm = console.client.get(base + "?delete_config=1")
    assert "the account returns to console management" in confirm.text
    deleted = console.form(base + "/delete", {}, page=base)
    assert deleted.status_code == 302  # type: ignore[attr-defined]
    assert svc.engine.get_account(account_id).directory_kind is None
    [event] = _mine(svc, "DeleteAccountWithOpenIdConfig")
    assert event["errorCode"] is None
    # The secret is in no event and was on no page.
    dump = json.dumps(events(svc), default=str)
    assert OKTA_CLIENT_SECRET not in dump
    for path in (base, base + "?setup=1", base + "?delete_config=1"):
        assert OKTA_CLIENT_SECRET not in console.client.get(path).text


def test_an_unreachable_issuer_is_refused_in_words_without_the_secret(
        console: Console, svc: Services) -> None:
    account_id = _enterprise(svc)
    console.sign_in("alice")
    base = f"/console/accounts/{account_id}/settings/okta"
    secret = "never-show-this-secret-0042"
    refused = console.form(base, {"issuer": "http://127.0.0.1:9/oauth2/default",
                                  "client_id": "abc", "client_secret": secret,
                                  "connect_okta": "on"}, page=base + "?setup=1")
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert "IssuerUri was refused" in refused.text  # type: ignore[attr-defined]
    assert secret not in refused.text  # type: ignore[attr-defined]
    [event] = _mine(svc, "UpdateAccountWithOpenIdConfig")
    assert event["errorCode"] == "ValidationError"
    assert secret not in json.dumps(events(svc), default=str)


def test_create_access_key_connects_when_confirmed_shows_the_key_once_and_delete(
        console: Console, svc: Services) -> None:
    account_id = _enterprise(svc)
    console.sign_in("alice")
    base = f"/console/accounts/{account_id}/settings/okta"
    confirm = console.client.get(base + "?create_key=1")
    assert "EnterpriseOIDC" in confirm.text and 'name="connect_okta"' in confirm.text
    unconfirmed = console.form(base + "/keys", {}, page=base + "?create_key=1")
    assert unconfirmed.status_code == 409  # type: ignore[attr-defined]
    assert svc.engine.api_keys.list(account_id) == []

    created = console.form(base + "/keys", {"connect_okta": "on"}, page=base + "?create_key=1")
    assert created.status_code == 200  # type: ignore[attr-defined]
    assert created.headers["Cache-Control"] == "no-store"  # type: ignore[attr-defined]
    found = re.search(r'<code id="new-key">([^<]+)</code>', created.text)  # type: ignore
    assert found and 'data-copy="new-key"' in created.text  # type: ignore[attr-defined]
    key = found.group(1)
    assert svc.engine.api_keys.authenticate(key) is not None  # the real key
    assert "Okta is connected" in created.text  # type: ignore[attr-defined]
    [key_view] = svc.engine.api_keys.list(account_id)
    page = console.client.get(base)
    assert key not in page.text  # shown once
    assert key_view.key_id in page.text and key_view.last_used_at is not None
    assert key_view.last_used_at.strftime("%Y-%m-%d %H:%M UTC") in page.text  # last use
    assert key not in json.dumps(events(svc), default=str)
    assert [e["errorCode"] for e in _mine(svc, "CreateApiKey")] == [
        "ConfirmationRequired", None]

    # A second key needs no confirmation (Okta is connected).
    second = console.form(base + "/keys", {}, page=base)
    assert second.status_code == 200  # type: ignore[attr-defined]
    keys = svc.engine.api_keys.list(account_id)
    assert len(keys) == 2
    one = console.client.get(f"{base}?delete_key={keys[0].key_id}")
    assert "returns to console management" not in one.text
    assert console.form(f"{base}/keys/{keys[0].key_id}/delete", {},
                        page=base).status_code == 302  # type: ignore[attr-defined]
    last = console.client.get(f"{base}?delete_key={keys[1].key_id}")
    assert "the account returns to console management" in last.text
    assert console.form(f"{base}/keys/{keys[1].key_id}/delete", {},
                        page=base).status_code == 302  # type: ignore[attr-defined]
    assert svc.engine.get_account(account_id).directory_kind is None
    deletes = _mine(svc, "DeleteApiKey")
    assert [e["errorCode"] for e in deletes] == [None, None]
    assert {e["userIdentity"]["source"] for e in deletes} == {"console"}  # type: ignore[index]


def _reader(console: Console, name: str, actions: list[str]) -> None:
    """Sign in an admin whose custom policy allows only ``actions``."""
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": [f"chime:{a}" for a in actions], "Resource": "*"}]}
    PrincipalStore(console.services.engine.uow, console.services.secrets).create(
        OPERATOR, name, [{"Name": "OktaReader", "Document": document}])
    console.credentials.set_password(OPERATOR, name, PASSWORD)
    assert console.post_sign_in(name).status_code == 302  # type: ignore[attr-defined]


def _okta_posts(base: str, key_id: str) -> list[tuple[str, dict[str, object]]]:
    return [(base, {"issuer": "https://x.example", "client_id": "c", "client_secret": "s",
                    "connect_okta": "on"}),
            (base + "/delete", {}), (base + "/keys", {"connect_okta": "on"}),
            (f"{base}/keys/{key_id}/delete", {})]


def test_an_admin_who_may_only_read_sees_no_write_control_and_is_refused(
        console: Console, svc: Services) -> None:
    account_id = _enterprise(svc)
    created = svc.engine.api_keys.create(SETUP, account_id, connect=True)
    _reader(console, "auditor", ["GetAccountWithOpenIdConfig", "ListApiKeys", "ListUsers"])
    base = f"/console/accounts/{account_id}/settings/okta"
    page = console.client.get(base)
    assert page.status_code == 200 and created.view.key_id in page.text
    for control in ("Set up incoming keys", "Create access key", ">Delete",
                    f'action="{base}'):
        assert control not in page.text, control
    for path, data in _okta_posts(base, created.view.key_id):
        token_page = f"/console/accounts/{account_id}/users"
        assert console.form(path, data, page=token_page).status_code == 403, path
    assert len(svc.engine.api_keys.list(account_id)) == 1
    refused = {e["eventName"] for e in _mine(svc, None) if e["errorCode"] == "AccessDenied"}
    assert refused == {"UpdateAccountWithOpenIdConfig", "DeleteAccountWithOpenIdConfig",
                       "CreateApiKey", "DeleteApiKey"}


def test_read_only_admin_is_refused_the_page_and_its_posts(
        console: Console, svc: Services) -> None:
    # The guide's table grants the Okta actions to FullAccess only.
    account_id = _enterprise(svc)
    created = svc.engine.api_keys.create(SETUP, account_id, connect=True)
    console.sign_in("reader", "ReadOnly")
    base = f"/console/accounts/{account_id}/settings/okta"
    assert console.client.get(base).status_code == 403
    for path, data in _okta_posts(base, created.view.key_id):
        token_page = f"/console/accounts/{account_id}/users"
        assert console.form(path, data, page=token_page).status_code == 403, path
    assert len(svc.engine.api_keys.list(account_id)) == 1
    assert svc.engine.get_account(account_id).directory_kind == "okta"


def test_every_okta_form_needs_its_csrf_token(console: Console, svc: Services) -> None:
    account_id = _enterprise(svc)
    created = svc.engine.api_keys.create(SETUP, account_id, connect=True)
    console.sign_in("alice")
    base = f"/console/accounts/{account_id}/settings/okta"
    for path in (base, base + "/delete", base + "/keys",
                 f"{base}/keys/{created.view.key_id}/delete"):
        refused = console.client.post(path, data={"connect_okta": "on"})
        assert refused.status_code == 403 and "expired" in refused.text, path
    assert len(svc.engine.api_keys.list(account_id)) == 1
    assert _mine(svc, "CreateApiKey") == []
