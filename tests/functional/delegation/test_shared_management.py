"""Shared management of an account across organisations (issue 16): each admin belongs to
an organisation (an AWS account id); it sees only the accounts its organisation owns or was
delegated. The owner asks, the other organisation validates and accepts, the owner lists
the delegates, either side ends it. A delegate acts under its own policies but never sees
the owner's other accounts, cannot delete the account or its domains, and cannot delegate
further. Three organisations, on both stores."""

from __future__ import annotations

from typing import Any

from flask import Flask

from bridge.app import Services
from tests.admin_client import AdminClient, admin_client

ALPHA, BETA, GAMMA = "111111111111", "222222222222", "333333333333"


def _orgs(app: Flask) -> dict[str, AdminClient]:
    return {
        "a": admin_client(app, "FullAccess", aws_account_id=ALPHA,
                          aws_account_name="Alpha Corp"),
        "a_um": admin_client(app, "UserManagement", aws_account_id=ALPHA),
        "b": admin_client(app, "FullAccess", aws_account_id=BETA, aws_account_name="Beta Ltd"),
        "b_ro": admin_client(app, "ReadOnly", aws_account_id=BETA),
        "c": admin_client(app, "FullAccess", aws_account_id=GAMMA, aws_account_name="Gamma"),
    }


def _create(api: AdminClient, name: str) -> str:
    resp = api.post("/accounts", json={"Name": name})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    account = resp.get_json()["Account"]
    return str(account["AccountId"])


def _names(api: AdminClient) -> set[str]:
    return {a["Name"] for a in api.get("/accounts").get_json()["Accounts"]}


def _status(resp: Any, code: int, text: str | None = None) -> None:
    assert resp.status_code == code, resp.get_data(as_text=True)
    if text is not None:
        assert text in resp.get_json()["Message"], resp.get_json()


def test_each_organisation_sees_only_its_own_accounts(store_app: Flask) -> None:
    o = _orgs(store_app)
    main = _create(o["a"], "A-main")
    _create(o["b"], "B-own")
    _create(o["c"], "C-own")
    assert _names(o["a"]) == _names(o["a_um"]) == {"A-main"}
    assert _names(o["b"]) == _names(o["b_ro"]) == {"B-own"}
    assert _names(o["c"]) == {"C-own"}
    account = o["a"].get(f"/accounts/{main}").get_json()["Account"]
    assert account["AwsAccountId"] == ALPHA  # the ARN's and the owner's organisation
    for path in (f"/accounts/{main}", f"/accounts/{main}/users",
                 f"/accounts/{main}/settings", f"/accounts/{main}/delegates"):
        _status(o["b"].get(path), 404)
        _status(o["c"].get(path), 404)
    _status(o["b"].delete(f"/accounts/{main}"), 404)
    # A caller whose policies deny the action learns nothing either (403 as for any id).
    _status(o["b_ro"].delete(f"/accounts/{main}"), 403)


def test_delegation_flow_refusals_and_isolation(store_app: Flask, services: Services) -> None:
    o = _orgs(store_app)
    main = _create(o["a"], "A-main")
    other = _create(o["a"], "A-other")
    _create(o["b"], "B-own")
    _create(o["c"], "C-own")
    o["a"].post(f"/accounts/{other}/users", query="operation=add",
                json={"UserEmailList": ["hidden@mail.example"]})
    delegates = f"/accounts/{main}/delegates"

    # The owner asks; refusals first.
    _status(o["a_um"].post(delegates, json={"AwsAccountId": BETA}), 403)  # FullAccess only
    _status(o["a"].post(delegates, json={"AwsAccountId": "12ab"}), 400)
    _status(o["a"].post(delegates, json={"AwsAccountId": ALPHA}), 400, "owns it")
    _status(o["a"].post(delegates, json={"AwsAccountId": "444444444444"}), 404)
    _status(o["b"].post(delegates, json={"AwsAccountId": BETA}), 404)  # not B's to share
    asked = o["a"].post(delegates, json={"AwsAccountId": BETA})
    _status(asked, 201)
    request = asked.get_json()["Delegation"]
    assert request["Status"] == "Pending" and request["DelegateAwsAccountName"] == "Beta Ltd"
    _status(o["a"].post(delegates, json={"AwsAccountId": BETA, "Again": 1}), 409)
    delegation = f"/delegations/{request['DelegationId']}"

    # Pending: B does not see the account yet; C sees nothing of the request.
    _status(o["b"].get(f"/accounts/{main}"), 404)
    _status(o["c"].get(delegation), 404)
    _status(o["c"].post(delegation, query="operation=accept"), 404)
    _status(o["c"].delete(delegation), 404)
    assert o["c"].get("/delegations").get_json()["Delegations"] == []

    # B validates (sees the owner organisation's name and the account's name), accepts.
    _status(o["b_ro"].get(delegation), 403)  # ValidateDelegation is FullAccess
    listed = o["b"].get("/delegations").get_json()["Delegations"]
    assert [(d["OwnerAwsAccountName"], d["AccountName"]) for d in listed] == [
        ("Alpha Corp", "A-main")]
    seen = o["b"].get(delegation).get_json()["Delegation"]
    assert seen["OwnerAwsAccountId"] == ALPHA and seen["AccountName"] == "A-main"
    _status(o["a"].post(delegation, query="operation=accept"), 404)  # only B accepts
    accepted = o["b"].post(delegation, query="operation=accept")
    _status(accepted, 200)
    assert accepted.get_json()["Delegation"]["Status"] == "Accepted"
    _status(o["b"].post(delegation, query="operation=accept", json={}), 409)

    # B sees A-main (never A-other) and acts under its own policies.
    assert _names(o["b"]) == _names(o["b_ro"]) == {"B-own", "A-main"}
    assert o["b"].get(f"/accounts/{main}").get_json()["Account"]["AwsAccountId"] == ALPHA
    _status(o["b"].get(f"/accounts/{other}"), 404)
    _status(o["b"].get("/users", query={"email": "hidden@mail.example"}), 404)
    _status(o["b"].post(f"/accounts/{main}", json={"Name": "A-main (shared)"}), 200)
    _status(o["b_ro"].post(f"/accounts/{main}", json={"Name": "nope"}), 403)
    _status(o["b"].post(f"/accounts/{main}/domains", json={"DomainName": "alpha.example"}),
            201)
    # ... but cannot delete the account or its domains, nor share it further.
    _status(o["b"].delete(f"/accounts/{main}"), 403, "delegate")
    _status(o["b"].delete(f"/accounts/{main}/domains/alpha.example"), 403, "delegate")
    _status(o["b"].post(delegates, json={"AwsAccountId": GAMMA}), 403, "delegate")
    # C still sees nothing of A's.
    assert _names(o["c"]) == {"C-own"}
    _status(o["c"].get(f"/accounts/{main}"), 404)
    c_events = o["c"].get("/audit/events", query={"max-results": 200}).get_json()["Events"]
    # C's trail holds C's own probe (the id it sent, refused NotFound) and nothing else
    # that names A's accounts.
    leaked = [e for e in c_events if (main in str(e) or other in str(e))
              and e["userIdentity"].get("accountId") != GAMMA]
    assert not leaked, [(e["eventName"], e["requestParameters"]) for e in leaked]
    assert [(e["eventName"], e["errorCode"]) for e in c_events if main in str(e)] == [
        ("GetAccount", "NotFound")]

    # ListDelegates: the owner sees every delegate, the delegate its own entry.
    for who in ("a", "a_um"):
        rows = o[who].get(delegates).get_json()["Delegates"]
        assert [(r["DelegateAwsAccountId"], r["Status"]) for r in rows] == [
            (BETA, "Accepted")]
    assert [r["DelegateAwsAccountId"] for r in o["b_ro"].get(delegates).get_json()[
        "Delegates"]] == [BETA]

    # Either side ends it: B does; then B loses the account at once.
    _status(o["b"].delete(delegation), 204)
    _status(o["b"].get(f"/accounts/{main}"), 404)
    assert _names(o["b"]) == {"B-own"}
    assert o["a"].get(delegates).get_json()["Delegates"] == []
    # The owner shares again, then withdraws it itself.
    # (A member the call ignores: an identical signed request within the same second
    # would be refused as a replay.)
    again = o["a"].post(delegates, json={"AwsAccountId": BETA, "Again": 2}
                        ).get_json()["Delegation"]
    o["b"].post(f"/delegations/{again['DelegationId']}", query="operation=accept")
    assert "A-main (shared)" in _names(o["b"])
    _status(o["a"].delete(f"/delegations/{again['DelegationId']}"), 204)
    assert _names(o["b"]) == {"B-own"}

    # The owner keeps every right: its domain and its account go, with any request.
    _status(o["a"].post(delegates, json={"AwsAccountId": GAMMA}), 201)
    _status(o["a"].delete(f"/accounts/{main}/domains/alpha.example"), 204)
    _status(o["a"].delete(f"/accounts/{main}"), 204)
    assert o["c"].get("/delegations").get_json()["Delegations"] == []

    names = [e["eventName"] for e in _events(services)]
    for event in ("CreateDelegation", "ValidateDelegation", "AcceptDelegation",
                  "ListDelegates", "DeleteDelegation"):
        assert event in names, event


def _events(svc: Services) -> list[dict[str, Any]]:
    from bridge import audit
    from bridge.store.db import transaction

    with transaction(svc.sessions) as session:
        events, _ = audit.lookup(session, audit.EventQuery(limit=1000))
    return list(events)
