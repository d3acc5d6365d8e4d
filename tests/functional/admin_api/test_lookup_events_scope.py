"""LookupEvents returns only the events of accounts the caller may read the trail of: an
account-scoped Deny hides that account's events (issue 10, item 4). On both stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from tests.admin_client import AdminClient, admin_client


def _account(admin: AdminClient, name: str) -> str:
    response = admin.post("/accounts", json={"Name": name})
    assert response.status_code == 201
    account_id: str = response.get_json()["Account"]["AccountId"]
    return account_id


def _all_events(client: AdminClient, cutoff: str, **query: str) -> list[dict[str, Any]]:
    """Every page up to ``cutoff``, following NextToken (the cutoff keeps the LookupEvents
    calls' own events out, so the paging ends)."""
    found: list[dict[str, Any]] = []
    token = None
    while True:
        params = dict(query, **{"end-time": cutoff}, **({"next-token": token} if token else {}))
        response = client.get("/audit/events", query=params)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        found += page["Events"]
        token = page.get("NextToken")
        if not token:
            return found


def test_an_account_scoped_deny_hides_that_accounts_events(store_app: Flask) -> None:
    admin = admin_client(store_app, "FullAccess")
    hidden, shown = _account(admin, "Hidden"), _account(admin, "Shown")
    for account_id, email in ((hidden, "ann@hidden.example"), (shown, "bob@shown.example")):
        invited = admin.post(f"/accounts/{account_id}/users", query="operation=add",
                             json={"UserEmailList": [email]})
        assert invited.status_code == 201
        assert admin.get(f"/accounts/{account_id}/users").status_code == 200
    restricted = admin_client(store_app, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "chime:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "chime:*",
         "Resource": f"arn:aws:chime::000000000000:account/{hidden}"}]})
    assert restricted.get(f"/accounts/{hidden}").status_code == 403
    assert restricted.get(f"/accounts/{shown}").status_code == 200
    cutoff = datetime.now(UTC).isoformat()

    for query in ({}, {"max-results": "1"}, {"event-name": "InviteUsers"}):
        events = _all_events(restricted, cutoff, **query)
        accounts = {e["recipientAccountId"] for e in events}
        assert hidden not in accounts, query
        assert "ann@hidden.example" not in json.dumps(events)
        assert shown in accounts
    # CreateAccount is filed under the account it created (issue 16: an organisation never
    # sees another's accounts), so the Deny hides the hidden account's creation too.
    created = _all_events(restricted, cutoff, **{"event-name": "CreateAccount"})
    assert [e["requestParameters"]["name"] for e in created] == ["Shown"]
    # Paged or not, the same events; an unrestricted admin still sees everything.
    paged = _all_events(restricted, cutoff, **{"max-results": "1"})
    assert paged == _all_events(restricted, cutoff)
    everything = _all_events(admin, cutoff)
    assert hidden in {e["recipientAccountId"] for e in everything}
    assert "ann@hidden.example" in json.dumps(everything)
