"""Event history (filters, pages newest first, JSON-lines download, per-account visibility)
and Support (Submit request)."""

from __future__ import annotations

import json
import re

from bridge.api.principals import PrincipalStore
from bridge.app import Services
from bridge.domain import Actor
from tests.conftest import FakeClock
from tests.functional.console.conftest import OPERATOR, PASSWORD, Console, events

SETUP = Actor(type="Test", principal_id="test", name="test")


def test_event_history_filters_pages_and_downloads(console: Console, app_services: Services,
                                                   clock: FakeClock) -> None:
    engine = app_services.engine
    first = engine.create_account(SETUP, "First")
    for i in range(60):
        engine.create_account(SETUP, f"Bulk {i:02}")
    clock.advance(hours=1)
    console.sign_in("alice")
    console.form("/console/accounts/new", {"name": "Made in console"},
                 page="/console/accounts/new")
    page = console.client.get("/console/events?event_name=CreateAccount").text
    assert page.count("<tr>") == 51  # header + 50 events
    # Newest first: the console's own CreateAccount leads.
    assert page.index("Made in console") < page.index("Bulk 59")
    older = re.search(r'href="([^"]+)">Older events', page)
    assert older
    rest = console.client.get(older.group(1).replace("&amp;", "&")).text
    assert "First" in rest and "Made in console" not in rest
    mine = console.client.get("/console/events?principal=alice&event_name=CreateAccount").text
    assert mine.count("<tr>") == 2 and ">console<" in mine
    by_account = console.client.get(f"/console/events?account_id={first.id}").text
    assert by_account.count("<tr>") == 2
    download = console.client.get("/console/events/download?event_name=CreateAccount")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    lines = [json.loads(line) for line in download.text.splitlines()]
    assert len(lines) == 62 and "First" in json.dumps(lines[0])  # oldest first
    assert {e["eventName"] for e in lines} == {"CreateAccount"}
    # (Audit events carry the wall clock's time, not the test's clock.)
    past = console.client.get("/console/events?event_name=CreateAccount"
                              "&start=2001-01-01T00:00&end=2001-01-02T00:00").text
    assert "No events match these filters" in past
    bad = console.client.get("/console/events?start=2002-01-01T00:00&end=2001-01-01T00:00")
    assert bad.status_code == 400 and "start time is after the end time" in bad.text
    lookups = [e for e in events(app_services, "LookupEvents")
               if e["userIdentity"].get("source") == "console"]
    assert len(lookups) == 7
    assert lookups[-1]["errorCode"] == "ValidationError"


def test_events_of_a_denied_account_are_hidden(console: Console,
                                               app_services: Services) -> None:
    hidden = app_services.engine.create_account(SETUP, "Hidden")
    shown = app_services.engine.create_account(SETUP, "Shown")
    # Events filed under an account (a CreateAccount event names no account yet).
    app_services.engine.invite_users(SETUP, hidden.id, ["secret-hire@hidden.test"])
    app_services.engine.invite_users(SETUP, shown.id, ["ann@shown.test"])
    PrincipalStore(app_services.engine.uow, app_services.secrets).create(OPERATOR, "auditor", [
        {"Name": "audit-some", "Document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["chime:LookupEvents", "chime:List*"],
             "Resource": "*"},
            {"Effect": "Deny", "Action": "chime:*",
             "Resource": f"arn:aws:chime::000000000000:account/{hidden.id}"}]}}])
    console.credentials.set_password(OPERATOR, "auditor", PASSWORD)
    assert console.post_sign_in("auditor").status_code == 302
    page = console.client.get("/console/events?event_name=InviteUsers").text
    assert "ann@shown.test" in page and "secret-hire" not in page
    download = console.client.get("/console/events/download").text
    assert "ann@shown.test" in download and "secret-hire" not in download


def test_read_only_admin_has_no_event_history_nor_support(console: Console) -> None:
    console.sign_in("reader", "ReadOnly")
    page = console.client.get("/console/accounts").text
    assert "Event history" not in page and ">Support<" not in page
    assert console.client.get("/console/events").status_code == 403
    assert console.client.get("/console/support").status_code == 403


def test_submit_request(console: Console, app_services: Services) -> None:
    console.sign_in("alice")
    page = console.client.get("/console/support").text
    assert "Submit request" in page
    response = console.form("/console/support", {"subject": "Cannot invite",
                                                 "description": "Invitations bounce."})
    assert response.status_code == 302
    assert "was submitted" in console.client.get("/console/support").text
    [event] = events(app_services, "SubmitSupportRequest")
    assert event["errorCode"] is None and event["userIdentity"]["source"] == "console"
    empty = console.form("/console/support", {"subject": "", "description": "x"})
    assert empty.status_code == 400 and "must not be empty" in empty.text
