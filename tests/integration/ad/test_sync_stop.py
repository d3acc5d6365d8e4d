"""A serving process that stops (``bridge serve`` on SIGTERM, a gunicorn worker's graceful
exit) stops the AD syncs an administrator started there cleanly: each ends after the page
it is applying, its report says ``interrupted`` (never left ``running``), no new run starts
(503), and the next run completes the sync. Against the real Samba DC, on SQLite: the test
holds the store's writers' lock so that the run is certainly mid-way when the stop comes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from ad_sync.background import BackgroundSyncs, ServerStopping
from bridge.app import SYNCS_EXTENSION, create_app
from bridge.store.db import _writer_gate_path
from tests.admin_client import admin_client
from tests.conftest import FakeClock
from tests.integration.ad.conftest import Bridge, Seed, make_bridge
from tests.servers.samba_dc import SambaDC
from tests.writer_lock import holding


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str, clock: FakeClock, dc: SambaDC,
           seed: Seed) -> Iterator[tuple[Flask, Bridge]]:
    for bridge in make_bridge(tmp_path, sqlite_url, clock, dc, seed,
                              ad_sync_now_wait_seconds=0):
        yield create_app(bridge.services.settings, bridge.services), bridge


def _last_sync(app: Flask, account_id: str) -> dict[str, object]:
    admin = admin_client(app, "ReadOnly")
    [directory] = admin.get(f"/accounts/{account_id}/directory").get_json()["Directories"]
    return dict(directory["LastSync"])


def test_a_stopping_server_interrupts_its_runs_and_starts_none(
        served: tuple[Flask, Bridge]) -> None:
    app, bridge = served
    dc, seed, engine = bridge.dc, bridge.seed, bridge.services.engine
    for name in ("sam", "sue"):
        dc.add_user(name, ou_dn=seed.staff, mail=f"{name}@example.com")
    syncs: BackgroundSyncs = app.extensions[SYNCS_EXTENSION]
    gate = _writer_gate_path(bridge.services.sessions)
    assert gate is not None
    with holding(gate):  # the run blocks at its first write: certainly before its end
        started = syncs.start(bridge.account_id, dry_run=False, full=True,
                              allow_mass_change=False, requested_by="admin")
        assert not started.finished
        # The wait is bounded: a run that cannot end its page in time is left to die with
        # the process (it is made to be redone).
        assert syncs.stop(0.2) is False
        with pytest.raises(ServerStopping):
            syncs.start(bridge.account_id, dry_run=True, full=False,
                        allow_mass_change=False, requested_by="admin")
    assert syncs.stop(60) is True  # the lock is free: the run ends after its page

    report = _last_sync(app, bridge.account_id)
    assert (report["RunId"], report["Status"], report["InProgress"]) == (
        started.run_id, "interrupted", False)
    # Over the admin API the refusal is a 503 in the API's own format.
    admin = admin_client(app, "FullAccess")
    refused = admin.post(f"/accounts/{bridge.account_id}/directory/syncs", json={})
    assert refused.status_code == 503, refused.get_json()
    assert refused.get_json()["Code"] == "ServiceUnavailableException"

    # The next run (another process's; here a new server's) completes the sync.
    after = create_app(bridge.services.settings, bridge.services)
    again = after.extensions[SYNCS_EXTENSION].start(
        bridge.account_id, dry_run=False, full=True, allow_mass_change=False,
        requested_by="admin")
    after.extensions[SYNCS_EXTENSION].join(60)
    assert _last_sync(after, bridge.account_id)["RunId"] == again.run_id
    assert _last_sync(after, bridge.account_id)["Status"] == "ok"
    assert {engine.get_user_by_email(f"{n}@example.com").in_directory
            for n in ("sam", "sue")} == {True}


def test_a_run_accepted_as_the_server_stops_still_runs_and_is_waited_for(
        served: tuple[Flask, Bridge]) -> None:
    """A start whose request was accepted (its audit event written) when the stop comes
    runs and ends ``interrupted``, and stop() waits for it: the trail never names a run
    that then never started, under a second, refused event for the same request."""
    app, bridge = served
    syncs: BackgroundSyncs = app.extensions[SYNCS_EXTENSION]
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(syncs.stop(60)))

    def accepted(_run_id: str) -> None:  # the stop comes while the event is written
        stopper.start()
        assert syncs._stopping.wait(10), "stop() never began"

    started = syncs.start(bridge.account_id, dry_run=False, full=True,
                          allow_mass_change=False, requested_by="admin", accepted=accepted)
    stopper.join(60)
    assert stopped == [True]
    report = _last_sync(app, bridge.account_id)
    assert (report["RunId"], report["Status"], report["InProgress"]) == (
        started.run_id, "interrupted", False)
