"""The domain re-check runs once per pass however many workers and hosts serve: two real
processes (two gunicorn workers, or two hosts) on one database, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from bridge.app import build_services
from bridge.dns_check import RECHECK_JOB
from bridge.domain import Actor
from bridge.jobs import JobLeases
from bridge.store.db import transaction
from bridge.store.models import AuditEvent
from tests.conftest import TEST_SECRET_KEY, make_settings
from tests.servers.dns import DnsServer

ROOT = Path(__file__).resolve().parents[3]
DOMAINS = ("one.example", "two.example", "three.example")


def _worker(env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.admin_api.recheck_worker"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def test_two_processes_one_pass(store_url: str, tmp_path: Path, dns: DnsServer) -> None:
    # Real clock: the processes below use it too (a pass must find the claims pending).
    services = build_services(make_settings(tmp_path, store_url))
    setup = Actor.system("test-setup")
    for name in DOMAINS:
        account = services.engine.create_account(setup, f"Owner of {name}")
        services.engine.add_domain(setup, account.id, name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update({"BRIDGE_DATABASE_URL": store_url, "BRIDGE_SECRET_KEY": TEST_SECRET_KEY,
                "BRIDGE_DATA_DIR": str(tmp_path / "data"), "BRIDGE_LOG_LEVEL": "WARNING",
                "BRIDGE_DNS_NAMESERVERS": dns.nameserver, "BRIDGE_DNS_TIMEOUT_SECONDS": "2",
                "BRIDGE_DOMAIN_RECHECK_INTERVAL_SECONDS": "3600"})
    workers = [_worker(env), _worker(env)]
    for proc in workers:  # release both at once
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in workers:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    # Both tried; exactly one ran the pass, and it looked each pending domain up once.
    assert sorted(r["passes"] for r in reports) == [0, 1]
    with transaction(services.sessions) as session:
        checks = [e.body for e in session.scalars(
            select(AuditEvent).where(AuditEvent.event_name == "VerifyDomain"))]
    assert sorted(e["requestParameters"]["domainName"] for e in checks) == sorted(DOMAINS)
    assert {e["userIdentity"]["principalId"] for e in checks} == {RECHECK_JOB}
    [lease] = JobLeases(services.sessions).list()
    winner = next(r["holder"] for r in reports if r["passes"])
    assert (lease.name, lease.holder) == (RECHECK_JOB, winner)
    assert lease.last_finished_at is not None
    # What an operator sees.
    listed = subprocess.run([sys.executable, "-m", "bridge.cli", "jobs", "list"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60, check=True)
    assert [(j["name"], j["holder"]) for j in json.loads(listed.stdout)] == [
        (RECHECK_JOB, winner)]
    services.db.dispose()
