"""Real DNS and SMTP servers on loopback for the admin API's integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.functional.admin_api.conftest import make_app  # noqa: F401
from tests.servers.dns import DnsServer
from tests.servers.smtp import SmtpServer

SMTP_LOGIN = ("bridge-mailer", "mail-pass-123")


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer(ttl=0) as server:
        yield server


@pytest.fixture
def dns(dns_server: DnsServer) -> Iterator[DnsServer]:
    dns_server.clear()
    yield dns_server
    dns_server.clear()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer(starttls=True, auth=SMTP_LOGIN) as server:
        yield server


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    smtp_server.clear()
    yield smtp_server
    smtp_server.clear()
