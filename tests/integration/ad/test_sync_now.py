"""SyncDirectory (the console's **Sync now** and its dry-run preview) through the admin API
against the real Samba DC, on SQLite and PostgreSQL: a dry run reports and applies nothing,
a run applies and its report is the account's last sync, a run over the mass-change limit
stops with what it would have done, and AllowMassChange applies it; one run at a time
(409 while the directory's sync lock is held); FullAccess only; one event per request."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from ad_sync.locks import directory_lock
from bridge.app import create_app
from bridge.domain import Tier
from bridge.errors import NotFound
from tests.admin_client import AdminClient, admin_client
from tests.conftest import FakeClock
from tests.functional.console.conftest import events
from tests.integration.ad.conftest import Bridge, Seed, make_bridge
from tests.servers.samba_dc import SambaDC


@pytest.fixture
def served(tmp_path: Path, store_url: str, clock: FakeClock, dc: SambaDC,
           seed: Seed) -> Iterator[tuple[Flask, Bridge]]:
    # The request waits for its run's end (an event, never a clock): its answer is the
    # report, so no test polls GetAccountDirectory.
    for bridge in make_bridge(tmp_path, store_url, clock, dc, seed,
                              ad_mass_change_max_users=2, ad_sync_now_wait_seconds=120):
        yield create_app(bridge.services.settings, bridge.services), bridge


_SENT = itertools.count(1)


def _post(admin: AdminClient, account_id: str, body: dict[str, Any]) -> Any:
    """POST SyncDirectory; padded with spaces so no two bodies (and signatures) are equal:
    an identical signed request within one second is refused as a replay."""
    data = (json.dumps(body) + " " * next(_SENT)).encode()
    return admin.post(f"/accounts/{account_id}/directory/syncs", data=data,
                      headers={"Content-Type": "application/json"})


def _sync(admin: AdminClient, account_id: str, **body: Any) -> dict[str, Any]:
    """POST a SyncDirectory; its answer is the run's report (the request waited for the
    run's end), the same as GetAccountDirectory's."""
    answer = _post(admin, account_id, body)
    assert answer.status_code == 202, answer.get_json()
    sync = dict(answer.get_json()["Sync"])
    assert (sync["State"], sync["InProgress"]) == ("done", False), sync
    [directory] = admin.get(f"/accounts/{account_id}/directory").get_json()["Directories"]
    assert directory["LastDryRun" if body.get("DryRun") else "LastSync"] == sync
    return sync


def test_preview_sync_now_mass_change_stop_and_apply(served: tuple[Flask, Bridge]) -> None:
    app, bridge = served
    dc, seed, engine = bridge.dc, bridge.seed, bridge.services.engine
    account_id = bridge.account_id
    admin = admin_client(app, "FullAccess")
    dns = [dc.add_user(name, ou_dn=seed.staff, mail=f"{name}@example.com")
           for name in ("sam", "sue", "sid")]
    dc.add_member(seed.pro, dns[0])

    preview = _sync(admin, account_id, DryRun=True)
    assert (preview["DryRun"], preview["Status"], preview["Report"]["added"]) == (
        True, "ok", 3)
    assert preview["RequestedBy"] == admin.name
    with pytest.raises(NotFound):
        engine.get_user_by_email("sam@example.com")  # nothing applied
    [directory] = admin.get(f"/accounts/{account_id}/directory").get_json()["Directories"]
    assert directory["LastSync"] is None

    run = _sync(admin, account_id)
    assert (run["Status"], run["Mode"], run["Report"]["added"]) == ("ok", "full", 3)
    assert engine.get_user_by_email("sam@example.com").tier == Tier.PRO

    for dn in dns:
        dc.delete(dn)
    stopped = _sync(admin, account_id)
    assert stopped["Status"] == "mass_change_stopped"
    assert stopped["Report"]["wouldSuspend"] == 3
    assert {u["dn"] for u in stopped["Report"]["wouldSuspendUsers"]} == set(dns)
    assert engine.get_user_by_email("sue@example.com").in_directory
    # A preview stops on the limit too; the trail tells the preview's stop from the run's.
    previewed = _sync(admin, account_id, DryRun=True)
    assert previewed["Status"] == "mass_change_stopped"
    assert [e["requestParameters"]["dryRun"]  # type: ignore[index]
            for e in events(bridge.services, "AdSyncMassChangeStopped")] == [False, True]

    # AllowMassChange bounded by a count it exceeds (the directory changed since the
    # count was confirmed): stopped all the same, nothing changed.
    capped = _sync(admin, account_id, AllowMassChange=True, MassChangeMaxUsers=2)
    assert (capped["Status"], capped["Report"]["wouldSuspend"]) == ("mass_change_stopped", 3)
    assert engine.get_user_by_email("sue@example.com").in_directory

    applied = _sync(admin, account_id, AllowMassChange=True, MassChangeMaxUsers=3)
    assert (applied["Status"], applied["Report"]["suspended"], applied["AllowMassChange"]) == (
        "ok", 3, True)
    assert not engine.get_user_by_email("sue@example.com").in_directory

    # One run at a time: another process holds the directory's sync lock.
    with directory_lock(bridge.services, account_id) as held:
        assert held
        busy = _post(admin, account_id, {})
        assert busy.status_code == 409, busy.get_json()
    # FullAccess only: ReadOnly reads the report, cannot sync.
    read_only = admin_client(app, "ReadOnly")
    assert read_only.post(f"/accounts/{account_id}/directory/syncs", json={}).status_code == 403
    [seen] = read_only.get(f"/accounts/{account_id}/directory").get_json()["Directories"]
    assert seen["LastSync"]["RunId"] == applied["RunId"]
    bad = _post(admin, account_id, {"DryRun": "yes"})
    assert bad.status_code == 400

    requested = events(bridge.services, "SyncDirectory")
    assert [e["errorCode"] for e in requested] == [
        None, None, None, None, None, None, "Conflict", "AccessDenied", "ValidationError"]
    assert [e["responseElements"]["runId"] for e in requested[:6]] == [
        preview["RunId"], run["RunId"], stopped["RunId"], previewed["RunId"], capped["RunId"],
        applied["RunId"]]
    assert requested[5]["requestParameters"]["massChangeMaxUsers"] == 3
    # The run's own changes carry its id.
    suspended = [e for e in events(bridge.services, "SyncDirectoryUserDeleted")]
    assert {e["requestID"] for e in suspended} == {applied["RunId"]}


def test_sync_needs_a_directory(served: tuple[Flask, Bridge]) -> None:
    app, bridge = served
    admin = admin_client(app, "FullAccess")
    assert admin.delete(f"/accounts/{bridge.account_id}/directory").status_code == 204
    answer = admin.post(f"/accounts/{bridge.account_id}/directory/syncs", json={})
    assert answer.status_code == 404
    assert events(bridge.services, "SyncDirectory")[-1]["errorCode"] == "NotFound"
