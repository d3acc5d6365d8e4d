"""Metric values of the services behind the doors: domain checks against a real DNS
server, mail against a real SMTP server, the AD sync's report (asserted by handing the
sync's reporting function report objects: the Samba DC is not started here), the pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ad_sync.sync import SyncReport
from bridge.app import Services
from bridge.dns_check import check_domain
from bridge.domain import Actor
from bridge.mailer import MailError, send_mail
from bridge.observability.metrics import observe_sync_report
from bridge.store.db import transaction
from tests.functional.observability.conftest import value
from tests.servers.dns import DnsServer
from tests.servers.ports import free_port
from tests.servers.smtp import SmtpServer

ADMIN = Actor(type="TestSetup", principal_id="test-setup", name="test-setup")


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer(ttl=0) as server:
        yield server


def test_domain_checks_by_outcome(services: Services, dns: DnsServer) -> None:
    from dataclasses import replace

    from tests.builders import enterprise

    settings = replace(services.settings, dns_nameservers=(dns.nameserver,),
                       dns_timeout_seconds=2.0)
    account = enterprise(services.engine, ADMIN, [], name="Corp")
    domain = services.engine.add_domain(ADMIN, account.id, "checked.example")
    outcomes = ("pending_verification", "verified", "dns_error")
    before = {o: value("bridge_domain_checks_total", outcome=o) for o in outcomes}
    assert check_domain(services.engine, settings, ADMIN, domain).status == (
        "pending_verification")
    dns.set_txt(domain.verification_record_name, [domain.verification_record_value])
    assert check_domain(services.engine, settings, ADMIN, domain).status == "verified"
    silent = replace(settings, dns_nameservers=(f"127.0.0.1:{free_port()}",),
                     dns_timeout_seconds=0.3)
    check_domain(services.engine, silent, ADMIN, domain)
    for outcome in outcomes:
        assert value("bridge_domain_checks_total", outcome=outcome) == before[outcome] + 1


def test_mails_sent_and_failed(services: Services) -> None:
    from dataclasses import replace

    sent, failed = value("bridge_mails_total", outcome="sent"), value("bridge_mails_total",
                                                                       outcome="failed")
    with SmtpServer() as smtp:
        settings = replace(services.settings, smtp_url=f"smtp://{smtp.host}:{smtp.port}")
        send_mail(settings, "ann@example.com", "Hello", "text")
        smtp.wait_for_messages(1)
    closed = replace(services.settings, smtp_url=f"smtp://127.0.0.1:{free_port()}",
                     smtp_timeout_seconds=2.0)
    with pytest.raises(MailError):
        send_mail(closed, "ann@example.com", "Hello", "text")
    assert value("bridge_mails_total", outcome="sent") == sent + 1
    assert value("bridge_mails_total", outcome="failed") == failed + 1


def _report(account: str, **fields: object) -> SyncReport:
    report = SyncReport(account, "incremental", False, run_id="run-1")
    for name, field_value in fields.items():
        setattr(report, name, field_value)
    return report


def test_ad_sync_report_metrics() -> None:
    account = "acct-metrics-1"
    observe_sync_report(_report(account, added=3, updated=2, suspended=1, deleted=1,
                                duration_seconds=4.0,
                                watermark={"highestCommittedUsn": 12345}), now=1000.0)
    observe_sync_report(_report(account, status="mass_change_stopped", would_suspend=600,
                                duration_seconds=2.0), now=2000.0)
    observe_sync_report(_report(account, status="unknown", error="LDAP down"), now=3000.0)
    dry = SyncReport(account, "full", True, run_id="run-4", added=50)
    observe_sync_report(dry, now=4000.0)
    dry_stop = SyncReport(account, "full", True, run_id="run-5", status="mass_change_stopped")
    observe_sync_report(dry_stop, now=5000.0)

    def runs(mode: str, outcome: str) -> float:
        return value("bridge_ad_sync_runs_total", account_id=account, mode=mode,
                     outcome=outcome)

    assert runs("incremental", "ok") == 1
    assert runs("incremental", "mass_change_stopped") == 1
    assert runs("incremental", "unknown") == 1
    assert runs("full", "dry_run") == 2
    # Only the applied run's stop pages someone; the dry run's does not.
    assert value("bridge_ad_sync_mass_change_stops_total", account_id=account) == 1
    for change, count in (("added", 3), ("updated", 2), ("suspended", 1), ("deleted", 1),
                          ("restored", 0)):
        # The dry run's 50 "added" changed nothing and are not counted.
        assert value("bridge_ad_sync_users_total", account_id=account, change=change) == count
    # Only the applied, successful run moves the last-success time and the watermark.
    assert value("bridge_ad_sync_last_success_timestamp_seconds", account_id=account) == 1000
    assert value("bridge_ad_sync_watermark_usn", account_id=account) == 12345
    assert value("bridge_ad_sync_watermark_timestamp_seconds", account_id=account) == 1000
    assert value("bridge_ad_sync_duration_seconds_count", account_id=account,
                 mode="incremental") == 3
    assert value("bridge_ad_sync_duration_seconds_sum", account_id=account,
                 mode="incremental") == 6.0


def test_pool_connections_in_use(services: Services, tmp_path: Path) -> None:
    from bridge.observability.setup import watch_pool

    watch_pool(services.db)
    idle = value("bridge_db_pool_connections_in_use")
    with transaction(services.sessions) as one, transaction(services.sessions) as two:
        one.connection()
        two.connection()
        assert value("bridge_db_pool_connections_in_use") == idle + 2
    assert value("bridge_db_pool_connections_in_use") == idle


def test_pool_saturation_is_counted(store_url: str) -> None:
    from bridge.observability.setup import watch_pool
    from bridge.store.db import make_engine

    db = make_engine(store_url, pool_size=1, max_overflow=2)
    watch_pool(db)
    before = value("bridge_db_pool_saturated_checkouts_total")
    try:
        with db.connect():
            assert value("bridge_db_pool_saturated_checkouts_total") == before
            with db.connect():  # the one pooled connection is taken: overflow
                assert value("bridge_db_pool_saturated_checkouts_total") == before + 1
    finally:
        db.dispose()
