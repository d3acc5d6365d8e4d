"""End-to-end checks that the loopback test servers in tests/servers really work."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import dns.flags
import dns.rdatatype
import dns.resolver
import psycopg
import pytest
import sqlalchemy

from tests.servers.dns import DnsServer
from tests.servers.ports import free_port, wait_for_port
from tests.servers.postgres import PostgresServer
from tests.servers.smtp import SmtpServer

# -- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def dns_records(dns_server: DnsServer) -> Iterator[DnsServer]:
    """The module's DNS server with an empty record table before and after."""
    dns_server.clear()
    yield dns_server
    dns_server.clear()


def _resolver(server: DnsServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = 3.0
    resolver.timeout = 1.0
    return resolver


def _txt_values(answer: dns.resolver.Answer) -> list[str]:
    values = []
    for rdata in answer:
        assert rdata.rdtype == dns.rdatatype.TXT
        values.append(b"".join(rdata.strings).decode())
    return sorted(values)


def _mail(subject: str, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "bridge@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("héllo from the bridge\n")
    return msg


# -- ports ------------------------------------------------------------------


def test_wait_for_port_times_out_on_a_closed_port() -> None:
    port = free_port()
    with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}"):
        wait_for_port("127.0.0.1", port, timeout=0.3)


# -- PostgreSQL -------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_accepts_psycopg_and_sqlalchemy(postgres: PostgresServer) -> None:
    assert postgres.host == "127.0.0.1"
    wait_for_port(postgres.host, postgres.port, timeout=1.0)
    with psycopg.connect(postgres.conninfo()) as conn:
        row = conn.execute("SELECT current_user, 6 * 7").fetchone()
    assert row == ("postgres", 42)

    engine = sqlalchemy.create_engine(postgres.url("postgres"))
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_create_and_drop_database(postgres: PostgresServer) -> None:
    name = f"bridge_test_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name)
    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/{name}"

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE t (v text)"))
            conn.execute(sqlalchemy.text("INSERT INTO t VALUES ('ünïcode')"))
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT current_database()")).scalar_one() == name
            assert conn.execute(sqlalchemy.text("SELECT v FROM t")).scalar_one() == "ünïcode"
    finally:
        engine.dispose()

    postgres.drop_database(name)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(postgres.conninfo(name)).close()


@pytest.mark.postgres
def test_postgres_stop_is_idempotent_and_removes_everything() -> None:
    server = PostgresServer()
    server.stop()  # never started: no-op
    server.start()
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host=127.0.0.1 port={port} user=postgres connect_timeout=2").close()


# -- DNS --------------------------------------------------------------------


def test_dns_answers_txt_over_udp_and_tcp(dns_records: DnsServer) -> None:
    assert dns_records.nameserver == f"127.0.0.1:{dns_records.port}"
    dns_records.set_txt("_bridge.example.test", ["token-1", "v=spf1 -all"])
    resolver = _resolver(dns_records)

    udp = resolver.resolve("_bridge.example.test", "TXT")
    assert _txt_values(udp) == ["token-1", "v=spf1 -all"]
    assert udp.response.flags & dns.flags.AA
    tcp = resolver.resolve("_BRIDGE.Example.Test.", "TXT", tcp=True)
    assert _txt_values(tcp) == ["token-1", "v=spf1 -all"]


def test_dns_long_txt_values_round_trip(dns_records: DnsServer) -> None:
    value = "k=" + "x" * 600
    dns_records.set_txt("long.example.test", [value])
    answer = _resolver(dns_records).resolve("long.example.test", "TXT")
    assert _txt_values(answer) == [value]


def test_dns_nxdomain_after_remove_and_nodata_for_other_types(dns_records: DnsServer) -> None:
    resolver = _resolver(dns_records)
    dns_records.set_txt("gone.example.test", ["soon"])
    assert _txt_values(resolver.resolve("gone.example.test", "TXT")) == ["soon"]
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("gone.example.test", "A")

    dns_records.remove("gone.example.test")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("gone.example.test", "TXT")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("never-set.example.test", "TXT")

    dns_records.set_txt("a.example.test", ["1"])
    dns_records.clear()
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("a.example.test", "TXT")


def test_dns_set_txt_replaces_values(dns_records: DnsServer) -> None:
    resolver = _resolver(dns_records)
    dns_records.set_txt("r.example.test", ["old"])
    dns_records.set_txt("r.example.test", ["new"])
    assert _txt_values(resolver.resolve("r.example.test", "TXT")) == ["new"]


# -- SMTP -------------------------------------------------------------------


def test_smtp_receives_plain_mail() -> None:
    with SmtpServer() as server:
        assert server.url == f"smtp://127.0.0.1:{server.port}"
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.send_message(_mail("plain"), to_addrs=["bob@example.test", "eve@example.test"])
        (received,) = server.wait_for_messages(1, timeout=5)
    assert received.mail_from == "bridge@example.test"
    assert received.rcpt_tos == ("bob@example.test", "eve@example.test")
    assert received.message["Subject"] == "plain"
    body = received.message.get_body(("plain",))
    assert body is not None
    assert body.get_content() == "héllo from the bridge\n"


def test_smtp_wait_for_messages_times_out() -> None:
    with SmtpServer() as server, pytest.raises(TimeoutError, match="received 0"):
        server.wait_for_messages(1, timeout=0.2)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtp_starttls_and_auth(mechanism: str) -> None:
    with SmtpServer(starttls=True, auth=("mailer", "s3cr:t/pw")) as server:
        assert server.url == f"smtp://mailer:s3cr%3At%2Fpw@127.0.0.1:{server.port}?starttls=true"
        context = ssl.create_default_context(cafile=str(server.ca_cert_path))
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.starttls(context=context)
            client.ehlo()
            assert client.has_extn("auth")
            client.user, client.password = "mailer", "s3cr:t/pw"
            auth_object = client.auth_plain if mechanism == "PLAIN" else client.auth_login
            client.auth(mechanism, auth_object)
            client.send_message(_mail(f"tls-{mechanism}"))
        (received,) = server.wait_for_messages(1, timeout=5)
    assert received.message["Subject"] == f"tls-{mechanism}"


def test_smtp_starttls_rejects_mail_before_tls_and_unknown_ca() -> None:
    with SmtpServer(starttls=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            code, _ = client.mail("bridge@example.test")
            assert code == 530
        with (
            smtplib.SMTP(server.host, server.port, timeout=5) as client,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            client.starttls(context=ssl.create_default_context())
        assert server.messages == []


def test_smtp_auth_rejects_wrong_password_and_unauthenticated_mail() -> None:
    with SmtpServer(auth=("mailer", "right")) as server:
        assert server.url == f"smtp://mailer:right@127.0.0.1:{server.port}"
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("mailer", "wrong")
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.send_message(_mail("unauthenticated"))
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.login("mailer", "right")
            client.send_message(_mail("authenticated"))
        (received,) = server.wait_for_messages(1, timeout=5)
    assert received.message["Subject"] == "authenticated"
