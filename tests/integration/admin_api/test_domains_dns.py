"""Domain verification against a real DNS server on loopback (dnspython), the background
re-check, and the 24 h limit."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Flask

from bridge.app import Services
from bridge.dns_check import lookup_txt, recheck_job, recheck_pending
from bridge.jobs import JobLeases, JobRunner
from tests.admin_client import AdminClient, admin_client
from tests.conftest import FakeClock
from tests.functional.admin_api.conftest import AppFactory
from tests.servers.dns import DnsServer
from tests.servers.ports import free_port

_n = itertools.count()


def services_of(app: Flask) -> Services:
    svc: Services = app.extensions["bridge"]
    return svc


def claim(client: AdminClient, name: str = "example.com") -> tuple[str, dict[str, Any]]:
    # Distinct names: an identical signed mutation within one second is a replay.
    account_id = client.post("/accounts", json={"Name": f"Acme {next(_n)}"}).get_json()[
        "Account"]["AccountId"]
    response = client.post(f"/accounts/{account_id}/domains", json={"DomainName": name})
    assert response.status_code == 201
    return account_id, response.get_json()["Domain"]


def verify(client: AdminClient, account_id: str, name: str) -> Any:
    return client.post(f"/accounts/{account_id}/domains/{name}", query="operation=verify")


def test_verify_now_finds_the_published_record(make_app: AppFactory, dns: DnsServer) -> None:
    app = make_app(dns_nameservers=(dns.nameserver,), dns_timeout_seconds=2.0)
    client = admin_client(app)
    account_id, domain = claim(client)
    pending = verify(client, account_id, "example.com")
    assert pending.status_code == 200
    assert pending.get_json()["Domain"]["Status"] == "PendingVerification"
    record = domain["VerificationRecord"]
    dns.set_txt(record["Name"], ["v=unrelated", record["Value"]])
    verified = verify(client, account_id, "example.com").get_json()["Domain"]
    assert verified["Status"] == "Verified" and "VerifiedTimestamp" in verified
    account = client.get(f"/accounts/{account_id}").get_json()["Account"]
    assert account["AccountType"] == "EnterpriseLWA"


def test_a_domain_verified_elsewhere_first_is_a_conflict(make_app: AppFactory,
                                                         dns: DnsServer) -> None:
    app = make_app(dns_nameservers=(dns.nameserver,), dns_timeout_seconds=2.0)
    client = admin_client(app)
    first, first_domain = claim(client, "race.example")
    second, second_domain = claim(client, "race.example")
    dns.set_txt(first_domain["VerificationRecord"]["Name"],
                [first_domain["VerificationRecord"]["Value"],
                 second_domain["VerificationRecord"]["Value"]])
    assert verify(client, first, "race.example").get_json()["Domain"]["Status"] == "Verified"
    refused = verify(client, second, "race.example")
    assert refused.status_code == 409
    assert refused.headers["x-amzn-ErrorType"] == "ConflictException"


def test_background_recheck_until_verified(make_app: AppFactory, dns: DnsServer) -> None:
    app = make_app(dns_nameservers=(dns.nameserver,), dns_timeout_seconds=2.0)
    svc = services_of(app)
    client = admin_client(app)
    account_id, domain = claim(client, "later.example")
    rechecker = JobRunner(recheck_job(svc.engine, svc.settings, interval=0.05),
                          JobLeases(svc.sessions), poll=0.05).start()
    try:
        # A few passes without the record change nothing.
        assert rechecker.wait_for_passes(2, timeout=10), "the re-check does not run"
        assert svc.engine.get_domain(account_id, "later.example").status == (
            "pending_verification")
        dns.set_txt(domain["VerificationRecord"]["Name"], [domain["VerificationRecord"][
            "Value"]])
        # The first pass that starts after the record is published must verify it.
        assert rechecker.wait_for_passes(rechecker.passes + 2, timeout=10)
        assert svc.engine.get_domain(account_id, "later.example").status == "verified"
    finally:
        rechecker.stop()
    assert svc.engine.pending_domains() == []


def test_unverified_domain_fails_after_24_hours(make_app: AppFactory, dns: DnsServer,
                                                clock: FakeClock) -> None:
    app = make_app(dns_nameservers=(dns.nameserver,), dns_timeout_seconds=2.0)
    svc = services_of(app)
    client = admin_client(app)
    account_id, _ = claim(client, "never.example")
    clock.advance(hours=23)
    assert recheck_pending(svc.engine, svc.settings) == 0
    assert svc.engine.get_domain(account_id, "never.example").status == "pending_verification"
    clock.advance(hours=2)
    recheck_pending(svc.engine, svc.settings)
    got = client.get(f"/accounts/{account_id}/domains/never.example").get_json()["Domain"]
    assert got["Status"] == "Failed"
    assert svc.engine.pending_domains() == []


def test_unreachable_dns_counts_as_not_found(make_app: AppFactory) -> None:
    app = make_app(dns_nameservers=(f"127.0.0.1:{free_port()}",), dns_timeout_seconds=0.3)
    svc = services_of(app)
    assert lookup_txt(svc.settings, "_chime-bridge-verification.example.com") is None
    client = admin_client(app)
    account_id, _ = claim(client, "quiet.example")
    response = verify(client, account_id, "quiet.example")
    assert response.get_json()["Domain"]["Status"] == "PendingVerification"
