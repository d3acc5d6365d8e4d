"""Every refused admin API call leaves one audit event and counts for a throttle, whatever
its body, at a bounded cost (issue 10, item 2). On both stores."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from werkzeug.test import TestResponse

from bridge import audit
from bridge.api.refusals import TOO_DEEP
from bridge.app import Services
from bridge.store.db import transaction
from tests.admin_client import admin_client
from tests.conftest import FakeClock
from tests.functional.admin_api.conftest import AppFactory

ADDRESS, OTHER_ADDRESS = "192.0.2.10", "192.0.2.20"  # TEST-NET-1: REMOTE_ADDR values only
DEEP_BRACKETS = b"[" * 3000  # RecursionError in json.loads
# Valid JSON nested 900 deep: parses, then used to break the audit step's recursion.
DEEP_MEMBER = b'{"Name": ' + b"[" * 900 + b"]" * 900 + b"}"


def _svc(app: Flask) -> Services:
    found: Services = app.extensions["bridge"]
    return found


def _events(app: Flask, name: str) -> list[dict[str, Any]]:
    with transaction(_svc(app).sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(event_name=name, limit=1000))
    return found


def _unsigned(app: Flask, path: str, *, address: str = ADDRESS, data: bytes = b"",
              headers: dict[str, str] | None = None) -> TestResponse:
    return app.test_client().post(path, data=data, headers=headers or {},
                                  environ_base={"REMOTE_ADDR": address})


def test_deeply_nested_bodies_are_audited_and_counted(make_store_app: AppFactory) -> None:
    """A ReadOnly principal's refused CreateAccount with hostile bodies: every call is
    audited (so the per-principal rate sees it), the sixth is throttled."""
    app = make_store_app(admin_api_max_requests_per_minute=5)
    reader = admin_client(app, "ReadOnly")
    headers = {"Content-Type": "application/json"}
    statuses = [reader.post("/accounts", data=body, headers=headers).status_code
                for body in [DEEP_BRACKETS, DEEP_MEMBER] * 3]
    assert statuses == [403, 403, 403, 403, 403, 429]
    events = _events(app, "CreateAccount")
    assert [e["errorCode"] for e in events] == ["AccessDenied"] * 5 + ["RateLimited"]
    assert all(e["userIdentity"]["userName"] == reader.name for e in events)
    # The nested member is recorded cut at a bounded depth.
    recorded = json.dumps(events[1]["requestParameters"])
    assert TOO_DEEP in recorded and len(recorded) < 200


def test_unauthenticated_refusals_store_about_1_kb(make_store_app: AppFactory) -> None:
    """No body, a truncated user agent and path, the reason: at most 1 KB an event."""
    app = make_store_app()
    account_path = "/accounts/" + "a" * 3000 + "/users?operation=add"
    body = json.dumps({"Marker": "BODY-MEMBER", "Filler": "x" * 4000}).encode()
    forged = ("AWS4-HMAC-SHA256 Credential=" + "K" * 64 + "/20261101/us-east-1/chime/"
              "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    refused = _unsigned(app, account_path, data=body, headers={
        "User-Agent": "U" * 7000, "Content-Type": "application/json",
        "Authorization": forged})
    assert refused.status_code == 401
    [event] = _events(app, "InviteUsers")
    stored = json.dumps(event)
    assert len(stored.encode()) <= 1024, len(stored)
    assert "BODY-MEMBER" not in stored and "Filler" not in stored
    assert event["requestParameters"]["method"] == "POST"
    assert event["requestParameters"]["path"].startswith("/accounts/aaaa")
    assert event["sourceIPAddress"] == ADDRESS
    assert event["userAgent"].startswith("UUUU") and len(event["userAgent"]) <= 100
    assert event["errorCode"] == "Unauthenticated"
    assert event["userIdentity"]["type"] == "Anonymous"


def test_unauthenticated_callers_are_throttled_per_address(make_store_app: AppFactory,
                                                           clock: FakeClock) -> None:
    app = make_store_app(admin_api_max_unauthenticated_per_minute=3)
    answers = [_unsigned(app, "/accounts", data=b'{"Name": "x"}') for _ in range(6)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429, 429]
    assert answers[3].headers["x-amzn-ErrorType"] == "ThrottledClientException"
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
    # One event per refusal within the limit, then one summary for the rest of the minute.
    events = _events(app, "CreateAccount")
    assert [e["errorCode"] for e in events] == ["Unauthenticated"] * 3 + ["RateLimited"]
    summary = events[-1]["requestParameters"]
    assert summary["summary"] is True and summary["limit"] == 3
    assert "stands for every such refusal" in events[-1]["errorMessage"]
    assert all(len(json.dumps(e).encode()) <= 1024 for e in events)
    # Another address has its own count; a signed call from the throttled address runs.
    assert _unsigned(app, "/accounts", address=OTHER_ADDRESS).status_code == 401
    admin = admin_client(app)
    signed = admin.signed_headers("GET", "/accounts", "", b"")
    assert app.test_client().get("/accounts", headers=signed,
                                 environ_base={"REMOTE_ADDR": ADDRESS}).status_code == 200
    # The next minute starts a new window.
    clock.advance(minutes=1)
    assert _unsigned(app, "/accounts").status_code == 401
    assert len(_events(app, "CreateAccount")) == 6


def test_oversized_bodies_are_audited_and_counted(make_store_app: AppFactory) -> None:
    """413 is answered before authentication: audited in bounded form, counted per
    address."""
    app = make_store_app(max_body_bytes=1024, admin_api_max_unauthenticated_per_minute=2)
    client = admin_client(app)
    statuses = [client.post("/accounts", json={"Name": "x" * 2000}).status_code
                for _ in range(4)]
    assert statuses == [413, 413, 429, 429]
    events = _events(app, "CreateAccount")
    assert [e["errorCode"] for e in events] == ["PayloadTooLarge"] * 2 + ["RateLimited"]
    assert all("x" * 100 not in json.dumps(e) for e in events)


def test_no_unauthenticated_limit_when_the_setting_is_zero(
        make_store_app: AppFactory) -> None:
    app = make_store_app(admin_api_max_unauthenticated_per_minute=0)
    assert {_unsigned(app, "/accounts").status_code for _ in range(8)} == {401}
    assert len(_events(app, "CreateAccount")) == 8
