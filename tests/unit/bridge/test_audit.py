"""Audit trail: shape, redaction, queries, export."""

from __future__ import annotations

import io
import json
from datetime import timedelta

from bridge import audit
from bridge.domain import Actor
from bridge.engine import ResolutionEngine
from bridge.store.db import transaction
from tests.conftest import FakeClock


def test_redact_replaces_secret_values_recursively() -> None:
    value = {"ClientSecret": "abc", "nested": {"bind_password": "p", "x-api-key": "k",
                                               "mapping": "kept"},
             "list": [{"accessToken": "t"}], "Name": "visible", "empty_secret": ""}
    out = audit.redact(value)
    assert out["ClientSecret"] == "***"
    assert out["nested"] == {"bind_password": "***", "x-api-key": "***", "mapping": "kept"}
    assert out["list"] == [{"accessToken": "***"}]
    assert out["Name"] == "visible"
    assert out["empty_secret"] == ""


def test_redact_strips_credentials_written_into_urls() -> None:
    got = audit.redact({"LdapUrl": "ldaps://svc:pw@dc.corp.example:636",
                        "Notes": ["see smtp://mailer:s3cret@mail:25?starttls=true",
                                  "user@example.com", "https://idp.example/p@th", 7]})
    assert got == {"LdapUrl": "ldaps://***@dc.corp.example:636",
                   "Notes": ["see smtp://***@mail:25?starttls=true", "user@example.com",
                             "https://idp.example/p@th", 7]}


def test_secrets_in_parameters_never_reach_the_trail(engine: ResolutionEngine,
                                                     admin: Actor) -> None:
    engine.record_event(admin, "UpdateAccountWithOpenIdConfig",
                        params={"ClientSecret": "hunter2-secret", "IssuerUri": "https://x"})
    with transaction(engine.uow.session_factory) as session:
        out = io.StringIO()
        audit.export_jsonl(session, out)
    assert "hunter2-secret" not in out.getvalue()
    assert json.loads(out.getvalue().splitlines()[0])["requestParameters"]["IssuerUri"]


def test_lookup_filters_and_pages(engine: ResolutionEngine, admin: Actor,
                                  clock: FakeClock) -> None:
    other = Actor(type="AdminUser", principal_id="AIDAOTHER")
    for i in range(5):
        engine.create_account(admin if i % 2 == 0 else other, f"acct-{i}")
    with transaction(engine.uow.session_factory) as session:
        by_principal, _ = audit.lookup(session, audit.EventQuery(principal_id="AIDAOTHER"))
        assert len(by_principal) == 2
        page1, cursor = audit.lookup(session, audit.EventQuery(event_name="CreateAccount",
                                                               limit=3))
        page2, end = audit.lookup(session, audit.EventQuery(event_name="CreateAccount",
                                                            limit=3, after_seq=cursor))
        assert len(page1) == 3 and len(page2) == 2 and end is None
        assert {e["eventID"] for e in page1}.isdisjoint({e["eventID"] for e in page2})
        # Event times are wall-clock times (the trail records when things really happened).
        from bridge.store.models import utcnow

        now = utcnow()
        future, _ = audit.lookup(session, audit.EventQuery(start_time=now + timedelta(hours=1)))
        past, _ = audit.lookup(session, audit.EventQuery(end_time=now - timedelta(hours=1)))
        window, _ = audit.lookup(session, audit.EventQuery(
            start_time=now - timedelta(hours=1), end_time=now + timedelta(hours=1)))
        assert future == [] and past == [] and len(window) == 5


def test_lookup_hides_accounts_and_bounds_the_scan(engine: ResolutionEngine,
                                                   admin: Actor) -> None:
    """``visible`` hides accounts' events (events without an account stay); a page
    examines at most ``max_scanned`` events and then returns a cursor, possibly with
    fewer events than asked for; following the cursors yields every visible event."""
    for account in ["a", "h", "h", "h", None, "h", "a", "h", "a"]:
        engine.record_event(admin, "GetAccount", account_id=account)
    visible = {"a"}.__contains__
    with transaction(engine.uow.session_factory) as session:
        every, _ = audit.lookup(session, audit.EventQuery(limit=50), visible=visible)
        assert [e["recipientAccountId"] for e in every] == ["a", None, "a", "a"]
        pages: list[list[str | None]] = []
        cursor = None
        while True:
            page, cursor = audit.lookup(session, audit.EventQuery(limit=2, after_seq=cursor),
                                        visible=visible, max_scanned=3)
            pages.append([e["recipientAccountId"] for e in page])
            if cursor is None:
                break
        assert pages == [["a"], [None], ["a", "a"]]
