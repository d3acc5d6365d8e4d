"""SyncDirectory (the console's **Sync now**) refusals and run bookkeeping that need no
directory server: the account's directory points at a loopback port nothing listens on, so
nothing here ever reaches a run that binds (the runs against a real DC are in
tests/integration/ad/test_sync_now.py). Another organisation's admin gets NotFound, a
ReadOnly admin and a form without its CSRF token are refused, hostile bodies are 400s
(never a 500, never a run); a report left ``running`` by a dead process is not
``InProgress``; a run that stops on an unexpected error says so instead of staying
``running``, and frees the directory's sync lock."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from flask import Flask

from ad_sync import background, client
from ad_sync.background import BackgroundSyncs, TooManySyncs
from ad_sync.locks import directory_lock
from ad_sync.records import SyncRecords
from bridge.api.principals import PrincipalStore
from bridge.app import Services
from bridge.domain import Actor
from tests.admin_client import admin_client
from tests.builders import claim
from tests.functional.console.conftest import OPERATOR, Console, csrf_token, events

SETUP = Actor(type="Test", principal_id="test", name="test")
OTHER_ORG = "222222222222"
SECRET = "bind-password-never-shown"


def _connected(svc: Services, domain: str = "example.com") -> str:
    """An enterprise account with an Active Directory connected (the bind check skipped:
    the URL is a loopback port nothing listens on)."""
    account = svc.engine.create_account(SETUP, "Example Corp")
    claim(svc.engine, SETUP, account.id, domain)
    svc.engine.ad_directories.connect(SETUP, account.id, {
        "LdapUrl": "ldaps://127.0.0.1:1", "BaseDn": "OU=Staff,DC=example,DC=com",
        "BindDn": "CN=sync,DC=example,DC=com", "BindPassword": SECRET}, lambda cfg: None)
    return account.id


def _reports(svc: Services, account_id: str) -> list[Any]:
    found = svc.engine.ad_sync_runs.reports(account_id)
    return [r for r in (found.last_run, found.last_dry_run) if r is not None]


def test_another_organisations_admin_gets_not_found(app: Flask, console: Console) -> None:
    svc = console.services
    account_id = _connected(svc)
    stranger = admin_client(app, "FullAccess", aws_account_id=OTHER_ORG)
    answer = stranger.post(f"/accounts/{account_id}/directory/syncs", json={})
    assert answer.status_code == 404, answer.get_json()
    # The console: an admin of the other organisation, signed in there.
    PrincipalStore(svc.engine.uow, svc.secrets).create(
        OPERATOR, "mallory", [{"Managed": "FullAccess"}], aws_account_id=OTHER_ORG)
    console.credentials.set_password(OPERATOR, "mallory", "correct horse battery staple")
    signed_in = console.post_sign_in("mallory", account_id=OTHER_ORG)
    assert signed_in.status_code == 302  # type: ignore[attr-defined]
    token = csrf_token(console.client.get("/console/accounts").text)
    page = console.client.post(f"/console/accounts/{account_id}/settings/directory/sync",
                               data={"csrf_token": token, "dry_run": "0"})
    assert page.status_code == 404
    assert _reports(svc, account_id) == []  # no run started
    refused = events(svc, "SyncDirectory")
    assert [e["errorCode"] for e in refused] == ["NotFound", "NotFound"]


def test_read_only_and_a_forged_form_are_refused(console: Console) -> None:
    svc = console.services
    account_id = _connected(svc)
    base = f"/console/accounts/{account_id}/settings/directory"
    console.sign_in("reader", "ReadOnly")
    page = console.client.get(base).text
    assert "Sync now" not in page and "Preview (dry run)" not in page
    token = csrf_token(console.client.get("/console/accounts").text)
    refused = console.client.post(base + "/sync", data={"csrf_token": token, "dry_run": "0"})
    assert refused.status_code == 403
    # No CSRF token (a form posted from another site's page).
    forged = console.client.post(base + "/sync", data={"dry_run": "0"})
    assert forged.status_code == 403
    assert _reports(svc, account_id) == []
    assert [e["errorCode"] for e in events(svc, "SyncDirectory")] == ["AccessDenied"]


@pytest.mark.parametrize("body", [
    b"[]", b'"x"', b"null", b"{", b'{"DryRun": "yes"}', b'{"DryRun": null}', b'{"Full": 1}',
    b'{"AllowMassChange": "true"}', b'{"AllowMassChange": [true]}',
    b'{"AllowMassChange": true, "MassChangeMaxUsers": "3"}',
    b'{"AllowMassChange": true, "MassChangeMaxUsers": -1}',
    b'{"AllowMassChange": true, "MassChangeMaxUsers": true}',
    b'{"AllowMassChange": true, "MassChangeMaxUsers": 2.5}',
    b'{"AllowMassChange": true, "MassChangeMaxUsers": 1e400}',
    b'{"AllowMassChange": true, "MassChangeMaxUsers": ' + b"9" * 4000 + b"}",
    b'{"DryRun": ' + b"[" * 5000 + b"]" * 5000 + b"}",
])
def test_hostile_bodies_are_refused_without_a_run(app: Flask, app_services: Services,
                                                  body: bytes) -> None:
    account_id = _connected(app_services)
    admin = admin_client(app, "FullAccess")
    answer = admin.post(f"/accounts/{account_id}/directory/syncs", data=body,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, (answer.status_code, answer.get_data(as_text=True))
    assert _reports(app_services, account_id) == []


def test_a_huge_body_is_refused_without_a_run(app: Flask, app_services: Services) -> None:
    account_id = _connected(app_services)
    admin = admin_client(app, "FullAccess")
    body = json.dumps({"DryRun": True, "Pad": "x" * (app_services.settings.max_body_bytes + 1)})
    answer = admin.post(f"/accounts/{account_id}/directory/syncs", data=body.encode(),
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert _reports(app_services, account_id) == []


def test_a_report_left_running_by_a_dead_process_is_not_in_progress(
        app: Flask, app_services: Services) -> None:
    svc = app_services
    account_id = _connected(svc)
    SyncRecords(svc.engine.uow).start_report(
        account_id, run_id="dead-run", mode="full", dry_run=False, allow_mass_change=False,
        requested_by="alice", now=svc.engine.now())
    admin = admin_client(app, "ReadOnly")

    def last_sync() -> dict[str, Any]:
        [directory] = admin.get(f"/accounts/{account_id}/directory").get_json()["Directories"]
        return dict(directory["LastSync"])

    dead = last_sync()
    assert (dead["State"], dead["InProgress"]) == ("running", False)
    with directory_lock(svc, account_id) as held:  # a run under way (another process)
        assert held
        assert last_sync()["InProgress"] is True


def test_a_run_stopped_by_an_unexpected_error_says_so_and_frees_the_lock(
        app_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug or a store error mid-run (here: opening the connection raises something no
    directory trouble raises) ends the run's report as ``failed`` with words that never
    carry the exception's text; the directory's sync lock is free for the next run."""
    svc = app_services
    account_id = _connected(svc)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"unexpected, with {SECRET} in it")

    monkeypatch.setattr(client, "open_connection", broken)
    syncs = BackgroundSyncs(svc, wait_seconds=120)
    started = syncs.start(account_id, dry_run=False, full=False, allow_mass_change=False,
                          requested_by="alice")
    assert started.finished  # waited on the run's end (an event), not on a clock
    last = svc.engine.ad_sync_runs.reports(account_id, syncs).last_run
    assert last is not None and last.run_id == started.run_id
    assert (last.state, last.status, last.in_progress) == ("done", "failed", False)
    assert started.run_id in last.report["error"] and SECRET not in json.dumps(last.report)
    assert not syncs.running(account_id)


@pytest.mark.parametrize("cap", ["abc", "-1", "3.0", "\uff11\uff12", "9" * 40])
def test_a_hand_made_mass_change_bound_is_refused_without_a_run(console: Console,
                                                                cap: str) -> None:
    svc = console.services
    account_id = _connected(svc)
    console.sign_in("alice")
    base = f"/console/accounts/{account_id}/settings/directory"
    refused = console.form(base + "/sync", {"dry_run": "0", "allow_mass_change": "1",
                                            "mass_change_max": cap}, page=base)
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert _reports(svc, account_id) == []
    assert [e["errorCode"] for e in events(svc, "SyncDirectory")] == ["ValidationError"]


def test_a_process_runs_at_most_max_runs_syncs_at_a_time(
        app_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """An administrator of many accounts (or a script) cannot fill the server with runs:
    beyond ``max_runs`` under way, a start is refused (429) without taking the directory's
    lock; once a run ends its slot is free again."""
    svc = app_services
    first, second = _connected(svc), _connected(svc, "example.org")
    gate, reached = threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:  # the run stays under way until the gate
        reached.set()
        assert gate.wait(60)
        raise client.DirectoryError("bind", "nothing listens there")

    monkeypatch.setattr(client, "open_connection", held)
    syncs = BackgroundSyncs(svc, wait_seconds=0, max_runs=1)
    try:
        syncs.start(first, dry_run=True, full=False, allow_mass_change=False,
                    requested_by="alice")
        assert reached.wait(60)
        with pytest.raises(TooManySyncs):
            syncs.start(second, dry_run=True, full=False, allow_mass_change=False,
                        requested_by="alice")
        assert not syncs.running(second)  # its lock was never taken
    finally:
        gate.set()
        syncs.join(60)
    again = syncs.start(second, dry_run=True, full=False, allow_mass_change=False,
                        requested_by="alice")
    syncs.join(60)
    last = svc.engine.ad_sync_runs.reports(second).last_dry_run
    assert last is not None and last.run_id == again.run_id and last.status == "unknown"


def test_the_request_is_audited_before_its_run_changes_anything(
        app_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SyncDirectory event (who asked, the runId) is in the trail when the run starts,
    not after the request's wait: the run's changes follow it, and a process that dies
    mid-run still leaves who asked."""
    svc = app_services
    account_id = _connected(svc)
    seen: list[list[dict[str, object]]] = []

    def reached(*args: Any, **kwargs: Any) -> Any:  # where a run binds, before any change
        seen.append(events(svc, "SyncDirectory"))
        raise client.DirectoryError("bind", "nothing listens there")

    monkeypatch.setattr(client, "open_connection", reached)
    started = svc.engine.ad_sync_runs.start(SETUP, account_id,
                                            BackgroundSyncs(svc, wait_seconds=120))
    assert started.finished
    [[event]] = seen
    assert event["responseElements"] == {"runId": started.run_id}
    assert event["errorCode"] is None
    assert len(events(svc, "SyncDirectory")) == 1


def test_a_run_that_cannot_be_built_leaves_the_lock_and_its_slot_free(
        app_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = app_services
    account_id = _connected(svc)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("cannot build the run")

    monkeypatch.setattr(background.DirectorySync, "__init__", broken)
    syncs = BackgroundSyncs(svc, max_runs=1)
    with pytest.raises(RuntimeError) as raised:
        syncs.start(account_id, dry_run=True, full=False, allow_mass_change=False,
                    requested_by="alice")
    assert raised.value is not None  # the traceback (and the request's frame) still alive
    assert not syncs.running(account_id)
    monkeypatch.undo()
    assert syncs.start(account_id, dry_run=True, full=False, allow_mass_change=False,
                       requested_by="alice").run_id
    syncs.join(60)


def test_a_page_view_probes_the_sync_lock_only_when_a_report_says_running(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probing a free lock takes it for a moment (a daemon or a Sync now starting then
    would skip or be refused): the Active directory page probes it only when a stored
    report says a run is under way."""
    svc = console.services
    account_id = _connected(svc)
    probes: list[str] = []
    real = BackgroundSyncs.running

    def counted(self: BackgroundSyncs, account: str) -> bool:
        probes.append(account)
        return real(self, account)

    monkeypatch.setattr(BackgroundSyncs, "running", counted)
    console.sign_in("alice")
    base = f"/console/accounts/{account_id}/settings/directory"
    assert "Sync now" in console.client.get(base).text
    assert probes == []
    SyncRecords(svc.engine.uow).start_report(
        account_id, run_id="dead-run", mode="full", dry_run=False, allow_mass_change=False,
        requested_by="alice", now=svc.engine.now())
    page = console.client.get(base).text
    assert probes == [account_id]
    assert "Did not finish" in page and "Sync now" in page
