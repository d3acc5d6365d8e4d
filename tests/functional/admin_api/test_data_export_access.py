"""What a data export shows, on each store (SQLite and a real PostgreSQL): the audit
events only to whoever may read them with LookupEvents (the export is no way around it),
and each user's real tier history in the account."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bridge.api.framework import DEFAULT_AWS_ACCOUNT_ID
from bridge.api.policy import account_arn
from bridge.app import Services, create_app
from bridge.domain import Tier
from bridge.store.models import AuditEvent
from tests.admin_client import AdminClient, admin_client
from tests.conftest import FakeClock
from tests.functional.admin_api.test_data_export import (
    SETUP,
    build,
    fetch,
    ready_export,
    retrieve,
    start,
)


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app(services.settings, services)


@pytest.fixture
def admin(app: Flask) -> AdminClient:
    return admin_client(app, "FullAccess")


def _client(app: Flask, policy: str, account_id: str) -> AdminClient:
    """A managed policy's admin; "DenyEventsOfThisAccount": FullAccess with LookupEvents
    denied on this one account (its LookupEvents hides the account's events);
    "EventsOnlyOnThisAccountArn": the export actions and LookupEvents allowed on this
    account's ARN alone (LookupEvents, checked on ``*``, refuses it)."""
    arn = account_arn(DEFAULT_AWS_ACCOUNT_ID, account_id)
    if policy == "DenyEventsOfThisAccount":
        return admin_client(app, ["FullAccess", {"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "chime:LookupEvents", "Resource": arn}]}])
    if policy == "EventsOnlyOnThisAccountArn":
        return admin_client(app, {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["chime:StartDataExport",
                                           "chime:RetrieveDataExport",
                                           "chime:LookupEvents"], "Resource": arn}]})
    return admin_client(app, policy)


def _reads_events_of(client: AdminClient, account_id: str) -> bool:
    """Whether LookupEvents shows ``client`` any event of the account."""
    response = client.get("/audit/events")
    return response.status_code == 200 and any(
        e["recipientAccountId"] == account_id
        for e in response.json["Events"])  # type: ignore[index]


def _withheld_marks(services: Services) -> list[bool]:
    """Per audited RetrieveDataExport, oldest first: whether it withheld event links."""
    bodies = services.engine.uow.read(lambda repo: repo.session.scalars(
        select(AuditEvent.body).where(AuditEvent.event_name == "RetrieveDataExport")
        .order_by(AuditEvent.seq)).all())
    return [bool((b.get("responseElements") or {}).get("auditEventLinksWithheld"))
            for b in bodies]


def _archive(app: Flask, answer: dict[str, Any]) -> zipfile.ZipFile:
    links = {link["Name"]: link["Url"] for link in answer["DownloadLinks"]}
    response = fetch(app.test_client(), links["archive.zip"])
    assert response.status_code == 200
    return zipfile.ZipFile(io.BytesIO(response.data))


@pytest.mark.parametrize("policy", ["UserManagement", "ReadOnly", "DenyEventsOfThisAccount",
                                    "EventsOnlyOnThisAccountArn"])
def test_a_requester_not_allowed_lookup_events_gets_an_archive_without_them(
        services: Services, app: Flask, admin: AdminClient, policy: str) -> None:
    account = services.engine.create_account(SETUP, "Team")
    requester = _client(app, policy, account.id)
    started = start(requester, account.id)
    assert started.status_code == 202
    # The account has events now (this request's), which LookupEvents hides from it.
    assert _reads_events_of(admin, account.id)
    assert not _reads_events_of(requester, account.id)
    assert started.json["DataExport"]["IncludesAuditEvents"] is False  # type: ignore[index]
    build(services)
    answer = retrieve(requester, account.id)
    assert answer["IncludesAuditEvents"] is False
    assert "DownloadLinksNote" not in answer  # nothing in it is withheld from anyone
    archive = _archive(app, answer)
    assert "audit_events.jsonl" not in archive.namelist()
    manifest = json.loads(archive.read("manifest.json"))
    assert "audit_events.jsonl" not in {f["name"] for f in manifest["files"]}
    assert manifest["auditEvents"]["included"] is False
    assert "chime:LookupEvents" in manifest["auditEvents"]["reason"]
    # A FullAccess admin sees the same export, and why it holds no events.
    seen = retrieve(admin, account.id)
    assert seen["IncludesAuditEvents"] is False
    assert seen["Manifest"]["auditEvents"] == manifest["auditEvents"]
    assert "archive.zip" in {link["Name"] for link in seen["DownloadLinks"]}


def test_a_requester_allowed_lookup_events_gets_them_and_says_so(
        services: Services, app: Flask, admin: AdminClient) -> None:
    account = services.engine.create_account(SETUP, "Team")
    answer = ready_export(services, admin, account.id)
    assert answer["IncludesAuditEvents"] is True
    archive = _archive(app, answer)
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["auditEvents"] == {"included": True}
    events = [json.loads(line)["eventName"]
              for line in archive.read("audit_events.jsonl").splitlines()]
    assert "StartDataExport" in events


@pytest.mark.parametrize("policy", ["UserManagement", "ReadOnly", "DenyEventsOfThisAccount"])
def test_links_to_audit_events_go_only_to_callers_allowed_lookup_events(
        services: Services, app: Flask, admin: AdminClient, policy: str) -> None:
    account = services.engine.create_account(SETUP, "Team")
    full = ready_export(services, admin, account.id)  # holds the audit events
    every_file = {link["Name"] for link in full["DownloadLinks"]}
    assert {"archive.zip", "audit_events.jsonl", "users.jsonl"} <= every_file
    reader = _client(app, policy, account.id)
    assert not _reads_events_of(reader, account.id)
    other = retrieve(reader, account.id)
    assert other["Status"] == "Completed" and other["IncludesAuditEvents"] is True
    links = {link["Name"]: link["Url"] for link in other["DownloadLinks"]}
    assert set(links) == every_file - {"archive.zip", "audit_events.jsonl"}
    assert "chime:LookupEvents" in other["DownloadLinksNote"]
    assert "DownloadLinksNote" not in full
    # The links it does get work; the events are in none of them.
    for url in links.values():
        got = fetch(app.test_client(), url)
        assert got.status_code == 200
        assert b"StartDataExport" not in got.data
    assert _withheld_marks(services)[-2:] == [False, True]  # audited as withheld


def test_each_user_carries_their_tier_history_in_the_account(
        services: Services, app: Flask, admin: AdminClient, clock: FakeClock) -> None:
    engine = services.engine
    account = engine.create_account(SETUP, "Team")
    [invitation], _ = engine.invite_users(SETUP, account.id, ["dee@team.test"])
    clock.advance(hours=1)  # 13:00: accepted, Pro in the account
    user = engine.accept_invitation(SETUP, invitation.token)
    clock.advance(days=2)  # Basic
    engine.update_user_licenses(SETUP, account.id, {user.id: Tier.BASIC})
    clock.advance(days=3)  # Pro again
    engine.update_user_licenses(SETUP, account.id, {user.id: Tier.PRO})
    engine.invite_users(SETUP, account.id, ["eve@team.test"])
    answer = ready_export(services, admin, account.id)
    users = {u["primaryEmail"]: u for u in (
        json.loads(line) for line in _archive(app, answer).read("users.jsonl").splitlines())}
    # Before accepting, dee held her own trial outside the account: not this account's data.
    assert users["dee@team.test"]["tierHistory"] == [
        {"tier": "pro", "from": "2026-11-01T13:00:00Z", "to": "2026-11-03T13:00:00Z"},
        {"tier": "basic", "from": "2026-11-03T13:00:00Z", "to": "2026-11-06T13:00:00Z"},
        {"tier": "pro", "from": "2026-11-06T13:00:00Z", "to": None}]
    assert users["eve@team.test"]["tierHistory"] == []  # invited: no license here yet
