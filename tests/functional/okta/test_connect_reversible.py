"""Connecting Okta is an explicit step an administrator can take back (issue 16): the
connecting call refuses to connect unasked and says what it would change; users keep their
tiers until a pushed, mapped group decides (or an administrator changes them); deleting the
OpenID configuration and the last SCIM key returns the account to console management with
every user and their current tier. Walked through the admin API and the SCIM door, on both
stores."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask

from bridge.app import Services, create_app
from bridge.domain import Actor, Tier
from tests.admin_client import AdminClient, admin_client
from tests.builders import default_identity, enterprise
from tests.functional.scim.conftest import GROUP, PATCH, SCIM_JSON, USER

SETUP = Actor(type="TestSetup", principal_id="setup")


def _tiers(api: AdminClient, account_id: str) -> dict[str, str | None]:
    users = api.get(f"/accounts/{account_id}/users").get_json()["Users"]
    return {u["PrimaryEmail"].split("@")[0]: u.get("LicenseType") for u in users}


def _scim(app: Flask, key: str, method: str, path: str, body: Any = None) -> Any:
    resp = app.test_client().open(
        f"/scim/v2{path}", method=method, data=json.dumps(body) if body else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": SCIM_JSON})
    assert resp.status_code < 300, resp.get_data(as_text=True)
    return resp.get_json(silent=True)


def test_connect_provision_disconnect_reconnect(services: Services) -> None:
    app = create_app(services.settings, services)
    engine = services.engine
    api = admin_client(app, "FullAccess")
    account = enterprise(engine, SETUP, ["corp.example"])
    ids = {p: engine.decide_sign_in(default_identity(f"{p}@corp.example"), SETUP).user_id
           for p in ("ann", "bob", "cy")}
    engine.update_user_licenses(SETUP, account.id, {ids["bob"]: Tier.BASIC})
    keys = f"/accounts/{account.id}/api-keys"

    # Before: what connecting would change, and a refusal to connect unasked.
    preview = api.get(f"/accounts/{account.id}/openid-config/connection-preview"
                      ).get_json()["Connection"]
    assert preview["AccountTypeBefore"] == "EnterpriseLWA"
    assert preview["AccountTypeAfter"] == "EnterpriseOIDC" and preview["UsersKept"] == 3
    refused = api.post(keys)
    assert refused.status_code == 409
    message = refused.get_json()["Message"]
    assert "3 users" in message and "ConnectOkta" in message and "taken back" in message
    assert api.get(keys).get_json()["ApiKeys"] == []
    assert api.get(f"/accounts/{account.id}").get_json()["Account"][
        "AccountType"] == "EnterpriseLWA"

    # Connect: the answer says what changed; every user keeps the tier they had.
    created = api.post(keys, json={"ConnectOkta": True})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["Connection"]["UsersKept"] == 3
    key = created.get_json()["ApiKey"]["Key"]
    assert api.get(f"/accounts/{account.id}").get_json()["Account"][
        "AccountType"] == "EnterpriseOIDC"
    assert _tiers(api, account.id) == {"ann": "Pro", "bob": "Basic", "cy": "Pro"}
    # A second key connects nothing more.
    second = api.post(keys).get_json()
    assert "Connection" not in second
    # The administrator may still change a kept tier.
    assert api.post(f"/accounts/{account.id}/users/{ids['cy']}",
                    json={"LicenseType": "Basic"}).status_code == 200

    # Provision: Okta pushes a group with ann and a new user; mapping it decides their tier.
    dan = _scim(app, key, "POST", "/Users", {
        "schemas": [USER], "userName": "dan@corp.example",
        "emails": [{"value": "dan@corp.example", "primary": True}]})
    # Okta pushes cy, a member from the console days: the pushed user IS cy (same id,
    # PIN and kept tier), not a clashing duplicate.
    cy = _scim(app, key, "POST", "/Users", {
        "schemas": [USER], "userName": "cy@corp.example", "externalId": "00u-cy",
        "emails": [{"value": "cy@corp.example", "primary": True}]})
    assert cy["id"] == ids["cy"]
    assert _tiers(api, account.id)["cy"] == "Basic"
    assert _scim(app, key, "GET", '/Users?filter=externalId eq "00u-cy"')[
        "totalResults"] == 1
    group = _scim(app, key, "POST", "/Groups", {
        "schemas": [GROUP], "displayName": "Staff",
        "members": [{"value": ids["ann"]}, {"value": dan["id"]}]})
    assert api.post(f"/accounts/{account.id}/groups", json={"Groups": [
        {"GroupName": "Staff", "LicenseType": "Basic"}]}).status_code == 200
    assert _tiers(api, account.id) == {"ann": "Basic", "bob": "Basic", "cy": "Basic",
                                       "dan": "Basic"}
    # ann's tier now comes from the group: the console may not change it any more.
    assert api.post(f"/accounts/{account.id}/users/{ids['ann']}",
                    json={"LicenseType": "Pro"}).status_code == 403
    _scim(app, key, "PATCH", f"/Groups/{group['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": f'members[value eq "{ids["ann"]}"]'}]})
    tiers = _tiers(api, account.id)
    assert tiers["ann"] is None and tiers["cy"] == "Basic"  # cy's kept tier stays

    # Disconnect: the last key goes (no OpenID configuration): console-managed again.
    key_ids = [k["KeyId"] for k in api.get(keys).get_json()["ApiKeys"]]
    assert api.delete(f"{keys}/{key_ids[0]}").status_code == 204
    assert api.get(f"/accounts/{account.id}").get_json()["Account"][
        "AccountType"] == "EnterpriseOIDC"  # one key left
    assert api.delete(f"{keys}/{key_ids[1]}").status_code == 204
    assert api.get(f"/accounts/{account.id}").get_json()["Account"][
        "AccountType"] == "EnterpriseLWA"
    # Every user kept, with their current tier (no tier at all: the account's default).
    assert _tiers(api, account.id) == {"ann": "Pro", "bob": "Basic", "cy": "Basic",
                                       "dan": "Basic"}
    assert api.post(f"/accounts/{account.id}/users/{ids['ann']}",
                    json={"LicenseType": "Basic"}).status_code == 200
    signed_in = engine.decide_sign_in(default_identity("bob@corp.example"), SETUP)
    assert signed_in.allowed and signed_in.tier is Tier.BASIC

    # Reconnect: explicit again, tiers kept again.
    assert api.post(keys, json={"ConnectOkta": False}).status_code == 409
    # (A member the call ignores: an identical request signed within the same second
    # would be refused as a replay.)
    again = api.post(keys, json={"ConnectOkta": True, "Reconnect": 1})
    assert again.status_code == 201 and again.get_json()["Connection"]["UsersKept"] == 4
    assert _tiers(api, account.id) == {"ann": "Basic", "bob": "Basic", "cy": "Basic",
                                       "dan": "Basic"}
    events = [e for e in _events(services) if e["eventName"] in
              ("CreateApiKey", "DeleteApiKey")]
    assert [(e["eventName"], e["errorCode"]) for e in events] == [
        ("CreateApiKey", "ConfirmationRequired"), ("CreateApiKey", None),
        ("CreateApiKey", None), ("DeleteApiKey", None), ("DeleteApiKey", None),
        ("CreateApiKey", "ConfirmationRequired"), ("CreateApiKey", None)]
    assert [e["responseElements"]["directoryDisconnected"]
            for e in events if e["eventName"] == "DeleteApiKey"] == [False, True]


def _events(svc: Services) -> list[dict[str, Any]]:
    from bridge import audit
    from bridge.store.db import transaction

    with transaction(svc.sessions) as session:
        events, _ = audit.lookup(session, audit.EventQuery(limit=1000))
    return sorted(events, key=lambda e: e["eventTime"])
