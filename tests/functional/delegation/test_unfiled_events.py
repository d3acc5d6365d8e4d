"""LookupEvents across organisations for events filed under no account: an
administrator's own organisation's only; events of no organisation (end users, the CLI
operator, jobs) only to the operator's organisation (the setting admin_aws_account_id)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from bridge.app import Services
from bridge.domain import Actor
from tests.admin_client import AdminClient, admin_client

OPERATOR_ORG = "000000000000"  # the test settings' admin_aws_account_id
OTHER_ORG = "222233334444"


def _event_names(api: AdminClient) -> list[tuple[str, Any]]:
    response = api.get("/audit/events", query="max-results=50")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [(e["eventName"], e["userIdentity"].get("accountId"))
            for e in response.get_json()["Events"]]


def test_unfiled_events_stay_with_their_organisation(store_app: Flask) -> None:
    services: Services = store_app.extensions["bridge"]
    ours = admin_client(store_app, "FullAccess", aws_account_id=OPERATOR_ORG)
    theirs = admin_client(store_app, "FullAccess", aws_account_id=OTHER_ORG,
                          aws_account_name="Other Ltd")
    assert ours.get("/accounts").status_code == 200  # ListAccounts: filed under no account
    assert theirs.get("/accounts").status_code == 200
    services.engine.record_event(Actor(type="EndUser", principal_id="user-1"), "SignIn")

    seen_by_them = _event_names(theirs)
    assert ("ListAccounts", OTHER_ORG) in seen_by_them
    assert all(org == OTHER_ORG for _, org in seen_by_them)
    assert "SignIn" not in {name for name, _ in seen_by_them}

    seen_by_us = _event_names(ours)
    assert ("ListAccounts", OPERATOR_ORG) in seen_by_us
    assert "SignIn" in {name for name, _ in seen_by_us}
    assert all(org != OTHER_ORG for _, org in seen_by_us)


def test_a_probe_of_another_organisations_account_stays_in_the_probers_trail(
        store_app: Flask) -> None:
    ours = admin_client(store_app, "FullAccess", aws_account_id=OPERATOR_ORG)
    theirs = admin_client(store_app, "FullAccess", aws_account_id=OTHER_ORG,
                          aws_account_name="Other Ltd")
    created = ours.post("/accounts", json={"Name": "Ours"})
    assert created.status_code == 201, created.get_data(as_text=True)
    account_id = created.get_json()["Account"]["AccountId"]

    probe = theirs.get(f"/accounts/{account_id}/users")
    assert probe.status_code == 404  # NotFound: nothing learnt about our organisation

    ours_trail = ours.get("/audit/events", query=f"account-id={account_id}&max-results=50")
    assert ours_trail.status_code == 200, ours_trail.get_data(as_text=True)
    names = [(e["eventName"], e["userIdentity"].get("accountId"))
             for e in ours_trail.get_json()["Events"]]
    assert ("CreateAccount", OPERATOR_ORG) in names
    assert all(org != OTHER_ORG for _, org in names)
    assert ("ListUsers", OTHER_ORG) in _event_names(theirs)
