"""StartDataExport / RetrieveDataExport and the pre-signed download links, on each store
(SQLite and a real PostgreSQL): the archive's content and manifest, the 7-day rule, link
expiry, account deletion, tampered links, an interrupted build, the managed policies."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from bridge.app import Services, create_app
from bridge.data_export import export_job, export_store, run_exports
from bridge.domain import Actor, DirectoryKind, Tier
from bridge.jobs import JobLeases, JobRunner, LeaseLost
from bridge.store.models import AuditEvent
from tests.admin_client import AdminClient, admin_client
from tests.builders import ad_user, enterprise
from tests.conftest import FakeClock

SETUP = Actor(type="TestSetup", principal_id="setup")
BIND_PASSWORD = "bind-pw-value-7f3a"


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app(services.settings, services)


@pytest.fixture
def admin(app: Flask) -> AdminClient:
    return admin_client(app, "FullAccess")


def build(services: Services, *, expect_pass: bool = True) -> int:
    """One pass of the named ``data-export`` job, through its lease (on the test's clock;
    interval 0: a pass is due whenever the lease is free)."""
    runner = JobRunner(export_job(services.engine, export_store(services.settings),
                                  interval_seconds=0),
                       JobLeases(services.sessions, clock=services.engine.now))
    assert runner.run_once() is expect_pass
    return int(expect_pass)


def fetch(client: FlaskClient, url: str) -> TestResponse:
    """Follow a download link as anyone would: no signature, no credentials."""
    parts = urlsplit(url)
    return client.get(parts.path, query_string=parts.query)


def start(admin: AdminClient, account_id: str) -> TestResponse:
    """StartDataExport, signed afresh each time (a distinct header: the replay guard would
    refuse the same signed request twice within one second)."""
    start.calls += 1  # type: ignore[attr-defined]
    return admin.post(f"/accounts/{account_id}/data-export",
                      headers={"X-Test-Call": str(start.calls)})  # type: ignore[attr-defined]


start.calls = 0  # type: ignore[attr-defined]


def retrieve(admin: AdminClient, account_id: str) -> dict[str, Any]:
    response = admin.get(f"/accounts/{account_id}/data-export")
    assert response.status_code == 200, response.json
    answer: dict[str, Any] = response.json["DataExport"]  # type: ignore[index]
    return answer


def ready_export(services: Services, admin: AdminClient, account_id: str) -> dict[str, Any]:
    assert start(admin, account_id).status_code == 202
    build(services)
    answer = retrieve(admin, account_id)
    assert answer["Status"] == "Completed"
    return answer


def test_export_holds_the_accounts_data_with_a_manifest_and_no_secret(
        services: Services, app: Flask, admin: AdminClient, clock: FakeClock) -> None:
    engine = services.engine
    account = enterprise(engine, SETUP, ["corp.test"], DirectoryKind.ACTIVE_DIRECTORY,
                         name="Corp", groups={"Staff": Tier.PRO, "Guests": Tier.BASIC})
    engine.ad_directories.connect(SETUP, account.id, {
        "LdapUrl": "ldaps://dc.corp.test", "BaseDn": "DC=corp,DC=test",
        "BindDn": "CN=sync,DC=corp,DC=test", "BindPassword": BIND_PASSWORD},
        verify=lambda _candidate: None)  # no DC here: the bind check is not the subject
    alice = ad_user(engine, SETUP, account.id, "guid-alice", "alice@corp.test",
                    ["al@corp.test"], groups=["Staff"])
    ad_user(engine, SETUP, account.id, "guid-bob", "bob@corp.test", groups=["Guests"])
    other = enterprise(engine, SETUP, ["other.test"], name="Other")  # not exported

    started = start(admin, account.id)
    assert started.status_code == 202
    pending = started.json["DataExport"]  # type: ignore[index]
    assert pending["Status"] == "Pending"
    assert pending["NextRequestAllowedTimestamp"] == "2026-11-08T12:00:00Z"  # 7 days
    assert "DownloadLinks" not in retrieve(admin, account.id)

    build(services)
    answer = retrieve(admin, account.id)
    assert answer["Status"] == "Completed"
    assert answer["ExpiresTimestamp"] == "2026-11-07T12:00:00Z"  # 6 days after it was built
    links = {link["Name"]: link for link in answer["DownloadLinks"]}
    archive_response = fetch(app.test_client(), links["archive.zip"]["Url"])
    assert archive_response.status_code == 200
    assert archive_response.headers["Content-Type"] == "application/zip"
    data = archive_response.data
    assert hashlib.sha256(data).hexdigest() == links["archive.zip"]["Sha256"]
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest == answer["Manifest"]
    files = {f["name"]: f for f in manifest["files"]}
    assert set(files) == {"account.jsonl", "users.jsonl", "groups.jsonl",
                          "group_mappings.jsonl", "domains.jsonl", "directory.jsonl",
                          "audit_events.jsonl"}
    content = {name: archive.read(name) for name in files}
    for name, raw in content.items():  # counts and checksums say what the files hold
        assert hashlib.sha256(raw).hexdigest() == files[name]["sha256"]
        assert len(raw) == files[name]["bytes"]
        assert raw.count(b"\n") == files[name]["records"]
    rows = {name: [json.loads(line) for line in raw.splitlines()]
            for name, raw in content.items()}
    users = {u["primaryEmail"]: u for u in rows["users.jsonl"]}
    assert set(users) == {"alice@corp.test", "bob@corp.test"}
    assert users["alice@corp.test"]["userId"] == alice.id
    assert users["alice@corp.test"]["aliases"] == ["al@corp.test"]
    assert users["alice@corp.test"]["groups"] == ["Staff"]
    assert users["alice@corp.test"]["tier"] == "pro"
    assert [h["tier"] for h in users["alice@corp.test"]["tierHistory"]] == ["pro"]
    assert users["bob@corp.test"]["tier"] == "basic"
    assert "personalPin" not in users["bob@corp.test"]
    assert {m["groupName"]: m["tier"] for m in rows["group_mappings.jsonl"]} == {
        "Staff": "pro", "Guests": "basic"}
    assert {g["name"]: g["members"] for g in rows["groups.jsonl"]} == {
        "Staff": 1, "Guests": 1}
    assert [d["domain"] for d in rows["domains.jsonl"]] == ["corp.test"]
    assert rows["directory.jsonl"][0]["ldapUrl"] == "ldaps://dc.corp.test"
    assert [(a["accountId"], a["name"]) for a in rows["account.jsonl"]] == [
        (account.id, "Corp")]
    events = [e["eventName"] for e in rows["audit_events.jsonl"]]
    assert "ConnectDirectory" in events and "StartDataExport" in events
    assert {e["recipientAccountId"] for e in rows["audit_events.jsonl"]} == {account.id}
    everything = b"".join(content.values())
    assert BIND_PASSWORD.encode() not in everything
    assert b"bind_password" not in everything.lower() and other.id.encode() not in everything
    # Each file has a link of its own, with the manifest's checksum.
    users_file = fetch(app.test_client(), links["users.jsonl"]["Url"])
    assert users_file.status_code == 200
    assert hashlib.sha256(users_file.data).hexdigest() == files["users.jsonl"]["sha256"]


def test_one_request_per_7_days_and_the_answer_says_when(
        services: Services, admin: AdminClient, clock: FakeClock) -> None:
    account = services.engine.create_account(SETUP, "Team")
    assert start(admin, account.id).status_code == 202
    clock.advance(days=6, hours=23)
    refused = start(admin, account.id)
    assert refused.status_code == 429
    assert refused.json["Code"] == "ThrottledClientException"  # type: ignore[index]
    assert "2026-11-08T12:00:00Z" in refused.json["Message"]  # type: ignore[index]
    assert refused.headers["Retry-After"] == str(3600 + 1)
    refusals = services.engine.uow.read(lambda repo: repo.session.scalars(
        select(AuditEvent.error_code).where(AuditEvent.event_name == "StartDataExport")
        .order_by(AuditEvent.seq)).all())
    assert refusals == [None, "DataExportTooSoon"]
    clock.advance(hours=1)
    assert start(admin, account.id).status_code == 202


def test_a_failed_export_may_be_requested_again_at_once(
        services: Services, admin: AdminClient) -> None:
    account = services.engine.create_account(SETUP, "Team")
    assert start(admin, account.id).status_code == 202
    claimed = services.engine.exports.claim_next_export()
    assert claimed is not None
    services.engine.exports.fail_data_export(claimed.id, "The disk was full.")
    answer = retrieve(admin, account.id)
    assert (answer["Status"], answer["FailureReason"]) == ("Failed", "The disk was full.")
    assert start(admin, account.id).status_code == 202


def test_links_stop_working_after_6_days_and_the_archive_is_removed(
        services: Services, app: Flask, admin: AdminClient, clock: FakeClock) -> None:
    account = services.engine.create_account(SETUP, "Team")
    answer = ready_export(services, admin, account.id)
    url = answer["DownloadLinks"][0]["Url"]
    clock.advance(days=5, hours=23)
    assert fetch(app.test_client(), url).status_code == 200
    clock.advance(hours=1)
    expired = fetch(app.test_client(), url)
    assert expired.status_code == 403
    assert "expired" in expired.json["Message"]  # type: ignore[index]
    assert "DownloadLinks" not in retrieve(admin, account.id)  # before the job noticed
    assert retrieve(admin, account.id)["Status"] == "Expired"
    build(services)  # the next pass expires the export and deletes its archive
    assert retrieve(admin, account.id)["Status"] == "Expired"
    assert export_store(services.settings).stored_keys() == []


def test_links_stop_working_when_the_account_is_deleted(
        services: Services, app: Flask, admin: AdminClient) -> None:
    account = services.engine.create_account(SETUP, "Team")
    answer = ready_export(services, admin, account.id)
    url = answer["DownloadLinks"][0]["Url"]
    assert fetch(app.test_client(), url).status_code == 200
    assert admin.delete(f"/accounts/{account.id}").status_code == 204
    gone = fetch(app.test_client(), url)
    assert gone.status_code == 404
    assert gone.json["Code"] == "NotFoundException"  # type: ignore[index]
    build(services)  # the next pass deletes the orphaned archive
    assert export_store(services.settings).stored_keys() == []


def test_a_changed_link_is_refused(services: Services, app: Flask,
                                   admin: AdminClient) -> None:
    account = services.engine.create_account(SETUP, "Team")
    link = ready_export(services, admin, account.id)["DownloadLinks"][0]["Url"]
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    client = app.test_client()
    for changed in ({**query, "expires": str(int(query["expires"]) + 86400)},
                    {**query, "signature": "0" * 64}, {"expires": query["expires"]}):
        refused = client.get(parts.path, query_string=urlencode(changed))
        assert refused.status_code == 403
    other_file = parts.path.replace("archive.zip", "users.jsonl")
    assert client.get(other_file, query_string=parts.query).status_code == 403
    # Text that is not ASCII digits or hex was a 500 (an HTML page) for anyone.
    for odd in ({**query, "expires": "\u00b2"}, {**query, "signature": "\u00e9" * 64}):
        refused = client.get(parts.path, query_string=urlencode(odd))
        assert refused.status_code == 403 and refused.get_json()["Code"] == \
            "ForbiddenException"


def test_an_interrupted_build_leaves_nothing_and_is_built_again(
        services: Services, admin: AdminClient) -> None:
    account = services.engine.create_account(SETUP, "Team")
    for i in range(3):
        services.engine.invite_users(SETUP, account.id, [f"u{i}@team.test"])
    assert start(admin, account.id).status_code == 202
    store = export_store(services.settings)

    def lose_lease() -> None:
        raise LeaseLost("taken over")

    with pytest.raises(LeaseLost):
        run_exports(services.engine, store, keep=lose_lease)
    assert retrieve(admin, account.id)["Status"] == "InProgress"
    assert store.stored_keys() == [] and not list(store.directory.iterdir())
    assert run_exports(services.engine, store) == 1
    answer = retrieve(admin, account.id)
    assert answer["Status"] == "Completed"
    counts = {f["name"]: f["records"] for f in answer["Manifest"]["files"]}
    assert counts["users.jsonl"] == 3


def test_one_runner_at_a_time_builds_exports(services: Services,
                                             admin: AdminClient) -> None:
    account = services.engine.create_account(SETUP, "Team")
    assert start(admin, account.id).status_code == 202
    leases = JobLeases(services.sessions, clock=services.engine.now)
    # Another worker (or host) holds the job's lease: this one builds nothing.
    assert leases.claim("data-export", "other-host:1:abc", interval=timedelta(0),
                        lease=timedelta(minutes=2))
    assert build(services, expect_pass=False) == 0
    assert retrieve(admin, account.id)["Status"] == "Pending"
    leases.release("data-export", "other-host:1:abc", finished=True)
    assert build(services) == 1
    assert retrieve(admin, account.id)["Status"] == "Completed"


@pytest.mark.parametrize("policy", ["ReadOnly", "UserManagement"])
def test_the_managed_policies_grant_both_actions(services: Services, app: Flask,
                                                 policy: str) -> None:
    account = services.engine.create_account(SETUP, "Team")
    client = admin_client(app, policy)
    assert client.post(f"/accounts/{account.id}/data-export").status_code == 202
    assert client.get(f"/accounts/{account.id}/data-export").status_code == 200


def test_a_custom_policy_without_the_actions_is_refused(services: Services,
                                                        app: Flask) -> None:
    account = services.engine.create_account(SETUP, "Team")
    client = admin_client(app, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["chime:Get*", "chime:List*"], "Resource": "*"}]})
    assert client.post(f"/accounts/{account.id}/data-export").status_code == 403
    assert client.get(f"/accounts/{account.id}/data-export").status_code == 403
    assert client.get(f"/accounts/{account.id}").status_code == 200
