"""``bridge sync-ad`` as an operator runs it: a real process, its JSON report and exit code,
a kill -9 in the middle of a run, and the daemon's graceful stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.store.db import transaction
from bridge.store.models import ExternalIdentity, User
from tests.integration.ad.conftest import Bridge

ROOT = Path(__file__).resolve().parents[3]


def _env(bridge: Bridge, **extra: str) -> dict[str, str]:
    settings = bridge.services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update({"BRIDGE_DATABASE_URL": settings.effective_database_url,
                "BRIDGE_DATA_DIR": str(settings.data_dir), "BRIDGE_LOG_LEVEL": "WARNING",
                "BRIDGE_SECRET_KEY": settings.secret_key})
    env.update(extra)
    return env


def _bridge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge.cli", *args]


def _run(bridge: Bridge, *args: str, **extra: str) -> tuple[int, dict]:
    done = subprocess.run(_bridge_cmd("sync-ad", "--account", bridge.account_id, "--once",
                                      *args),
                          cwd=ROOT, env=_env(bridge, **extra), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def _counts(bridge: Bridge) -> tuple[int, int]:
    with transaction(bridge.services.sessions) as session:
        users = session.scalar(select(func.count()).select_from(User).where(
            User.account_id == bridge.account_id))
        links = session.scalar(select(func.count()).select_from(ExternalIdentity).where(
            ExternalIdentity.source == "ad"))
    return int(users or 0), int(links or 0)


def test_once_prints_the_report_and_mass_change_exits_non_zero(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    dns = [dc.add_user(f"c{i}", ou_dn=seed.staff, mail=f"c{i}@example.com") for i in range(4)]
    code, report = _run(bridge)
    assert code == 0 and report["status"] == "ok" and report["added"] == 4
    assert set(report) >= {"added", "updated", "suspended", "deleted", "skipped",
                           "durationSeconds", "watermark"}
    assert report["watermark"]["highestCommittedUsn"] > 0

    for dn in dns[:3]:
        dc.delete(dn)
    code, report = _run(bridge, "--dry-run", BRIDGE_AD_MASS_CHANGE_MAX_USERS="2")
    assert code == 3 and report["status"] == "mass_change_stopped"
    code, report = _run(bridge, "--full", BRIDGE_AD_MASS_CHANGE_MAX_USERS="2")
    assert code == 3 and report["wouldSuspend"] == 3
    code, report = _run(bridge, "--full", "--allow-mass-change",
                        BRIDGE_AD_MASS_CHANGE_MAX_USERS="2")
    assert code == 0 and report["suspended"] == 3


def test_kill_9_mid_run_then_restart_loses_and_doubles_nothing(bridge: Bridge) -> None:
    """The cold import commits two pages of five per transaction here: killed after its
    third page (applied in the open second transaction), it leaves the first two pages
    committed and nothing of the third."""
    dc, seed = bridge.dc, bridge.seed
    for i in range(23):
        dn = dc.add_user(f"k{i:02d}", ou_dn=seed.staff, mail=f"k{i:02d}@example.com")
        if i % 2:
            dc.add_member(seed.pro, dn)
    proc = subprocess.Popen(
        _bridge_cmd("sync-ad", "--account", bridge.account_id, "--once", "--page-size", "5",
                    "--debug-transaction-users", "10", "--debug-stall-after-pages", "3"),
        cwd=ROOT, env=_env(bridge), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line and "stalled" not in line:
            line = proc.stderr.readline()
        assert "stalled after 3 pages" in line
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert _counts(bridge) == (10, 10)  # one committed transaction of two pages of five
    state = bridge.records.state(bridge.account_id)
    assert state.highest_usn is None and state.full_run_started_usn is not None

    code, report = _run(bridge, "--page-size", "5")
    assert code == 0 and report["mode"] == "full", report
    assert report["added"] == 13 and report["unchanged"] == 10
    assert _counts(bridge) == (23, 23)
    state = bridge.records.state(bridge.account_id)
    assert state.full_run_started_usn is None and state.highest_usn == \
        report["watermark"]["highestCommittedUsn"]
    tiers = [bridge.user(f"k{i:02d}@example.com").tier for i in range(23)]
    assert tiers == [("pro" if i % 2 else None) for i in range(23)]


@pytest.fixture
def daemon(bridge: Bridge) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(_bridge_cmd("sync-ad", "--daemon", "--interval", "0.3"), cwd=ROOT,
                            env=_env(bridge), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def test_daemon_syncs_every_directory_and_stops_on_sigterm(
        bridge: Bridge, daemon: subprocess.Popen[str]) -> None:
    dc, seed = bridge.dc, bridge.seed
    dc.add_user("d1", ou_dn=seed.staff, mail="d1@example.com")
    assert daemon.stdout is not None
    runs: list[dict] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(runs) < 2:
        line = daemon.stdout.readline()
        if line.startswith("{") and "accountId" in line:
            runs.append(json.loads(line))
            if len(runs) == 1:
                dc.add_user("d2", ou_dn=seed.staff, mail="d2@example.com")
    assert runs[0]["mode"] == "full" and runs[0]["added"] == 1
    # The next runs are incremental from the watermark; d2 arrives in one of them.
    while time.monotonic() < deadline and not any(r["added"] for r in runs[1:]):
        line = daemon.stdout.readline()
        if line.startswith("{") and "accountId" in line:
            runs.append(json.loads(line))
    assert all(r["mode"] == "incremental" and r["status"] == "ok" for r in runs[1:])
    assert bridge.user("d2@example.com").in_directory
    daemon.send_signal(signal.SIGTERM)
    out, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0 and '"daemon": "stopped"' in out
