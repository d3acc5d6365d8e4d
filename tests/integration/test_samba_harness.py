"""End-to-end checks that the Samba AD DC harness (tests/servers/samba_dc.py) is real.

One domain is provisioned per module; every test starts from the provisioned snapshot
(``restore`` before each test, ~0.5 s), so tests may create and change entries freely.
"""

from __future__ import annotations

import gc
import ipaddress
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3 import BASE, MODIFY_REPLACE, NONE, SIMPLE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPSocketOpenError

from tests.servers import samba_dc, samba_process
from tests.servers.samba_dc import SambaDC, SambaDCError, SambaNotInstalledError, iter_paged
from tests.servers.samba_ldif import bulk_user, groups_ldif, ldif_entry, users_ldif

IN_CHAIN = "1.2.840.113556.1.4.1941"
USER_PASSWORD = "Correct-Horse-42"

# -- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="module")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """One provisioned, running DC for the whole module (stopped afterwards)."""
    with SambaDC(base_dir=tmp_path_factory.mktemp("samba")) as dc:
        yield dc


@pytest.fixture
def dc(samba: SambaDC) -> SambaDC:
    """The module's DC, reset to its provisioned snapshot."""
    samba.restore()
    assert samba.running
    return samba


def _bind(
    dc: SambaDC, user: str, password: str, *, ldaps: bool = True, start_tls: bool = False
) -> dict[str, Any]:
    """Try a SIMPLE bind as *user* and return the LDAP bind result."""
    conn = Connection(
        dc.server(ldaps=ldaps),
        user=user,
        password=password,
        authentication=SIMPLE,
        auto_referrals=False,
    )
    conn.open()
    if start_tls:
        assert conn.start_tls()
    conn.bind()
    result: dict[str, Any] = dict(conn.result)
    conn.unbind()
    return result


def _root_dse(conn: Connection) -> dict[str, Any]:
    assert conn.search("", "(objectClass=*)", BASE, attributes=["*"])
    response = conn.response or []
    attributes: dict[str, Any] = response[0]["attributes"]
    return attributes


# -- TLS and binds ----------------------------------------------------------


def test_ldaps_verifies_samba_ca_and_certificate_name(dc: SambaDC) -> None:
    conn = dc.connection()
    try:
        dse = _root_dse(conn)
        assert dse["dsServiceName"][0].startswith("CN=NTDS Settings,CN=DC1,")
        assert dse["defaultNamingContext"] == [dc.base_dn]
        assert conn.server.ssl and conn.tls_started is False  # LDAPS, not StartTLS
    finally:
        conn.unbind()
    assert dc.ldaps_url == f"ldaps://{dc.address}:636"
    assert ipaddress.ip_address(dc.address).is_loopback

    # The standard library agrees: CA-signed, CN-only certificate named tls_server_name.
    context = ssl.create_default_context(cafile=str(dc.ca_cert_path))
    with (
        socket.create_connection((dc.host, 636), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=dc.tls_server_name) as tls,
    ):
        cert: dict[str, Any] = dict(tls.getpeercert() or {})
    subject = {name: value for rdn in cert["subject"] for name, value in rdn}
    assert subject["commonName"] == dc.tls_server_name == "DC1.example.com"
    assert "subjectAltName" not in cert


# ldap3 drops (without closing) the TLS socket whose certificate check failed.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_ldaps_rejects_wrong_name_and_unknown_ca(dc: SambaDC) -> None:
    wrong_name = Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_file=str(dc.ca_cert_path),
        valid_names=["other.example.com"],
    )
    no_samba_ca = Tls(validate=ssl.CERT_REQUIRED, valid_names=[dc.tls_server_name])
    for tls in (wrong_name, no_samba_ca):
        server = Server(dc.host, port=636, use_ssl=True, tls=tls, get_info=NONE)
        conn = Connection(
            server, user=dc.admin_dn, password=dc.admin_password, auto_referrals=False
        )
        with pytest.raises(LDAPSocketOpenError):
            conn.open()
    gc.collect()  # let the leaked sockets' ResourceWarnings fire here, where ignored


def test_starttls_on_389(dc: SambaDC) -> None:
    assert dc.ldap_url == f"ldap://{dc.address}:389"
    conn = dc.connection(dc.admin_upn, dc.admin_password, start_tls=True)
    try:
        assert conn.tls_started and conn.bound
        assert conn.server.port == 389 and not conn.server.ssl
        assert int(_root_dse(conn)["highestCommittedUSN"][0]) > 0
    finally:
        conn.unbind()


def test_simple_bind_without_tls_is_refused(dc: SambaDC) -> None:
    result = _bind(dc, dc.admin_dn, dc.admin_password, ldaps=False)
    assert result["description"] == "strongerAuthRequired"
    assert "Transport encryption required" in result["message"]


def test_user_binds_with_own_password_over_tls(dc: SambaDC) -> None:
    dn = dc.add_user("alice", given_name="Alice", surname="Liddell", password=USER_PASSWORD)
    assert dn == f"CN=alice,CN=Users,{dc.base_dn}"
    assert _bind(dc, dn, USER_PASSWORD)["description"] == "success"
    upn_starttls = _bind(dc, "alice@example.com", USER_PASSWORD, ldaps=False, start_tls=True)
    assert upn_starttls["description"] == "success"

    wrong = _bind(dc, dn, "Wrong-Password-1")
    assert wrong["description"] == "invalidCredentials"
    assert "data 52e" in wrong["message"]  # AD sub-code: bad password


def test_disabled_user_cannot_bind(dc: SambaDC) -> None:
    off = dc.add_user("mallory", password=USER_PASSWORD, disabled=True)
    assert dc.user_account_control(off) == 514
    refused = _bind(dc, off, USER_PASSWORD)
    assert refused["description"] == "invalidCredentials"
    assert "data 533" in refused["message"]  # AD sub-code: account disabled

    on = dc.add_user("bob", password=USER_PASSWORD)
    assert _bind(dc, on, USER_PASSWORD)["description"] == "success"
    dc.disable_user(on)
    assert _bind(dc, on, USER_PASSWORD)["description"] == "invalidCredentials"
    dc.enable_user(on)
    assert dc.user_account_control(on) == 512
    assert _bind(dc, on, USER_PASSWORD)["description"] == "success"


# -- directory content ------------------------------------------------------


def test_paged_search_returns_mail_proxy_addresses_and_guid(dc: SambaDC) -> None:
    ou = dc.add_ou("People")
    expected: dict[str, str] = {}
    for i, given in enumerate(["Zoë", "Bob", "Carol", "Dave", "Erin"]):
        sam = f"p{i}"
        dn = dc.add_user(
            sam,
            ou_dn=ou,
            given_name=given,
            display_name=f"{given} Person",
            mail=f"{sam}@example.com",
            proxy_addresses=[f"SMTP:{sam}@example.com", f"smtp:{sam}@alias.example.com"],
        )
        expected[dn] = dc.get_guid(dn)

    conn = dc.admin
    pages = 0
    cookie: bytes | None = None
    entries: list[dict[str, Any]] = []
    while True:
        assert conn.search(
            ou,
            "(&(objectCategory=person)(objectClass=user))",
            attributes=["mail", "proxyAddresses", "objectGUID", "displayName"],
            paged_size=2,
            paged_cookie=cookie,
        )
        pages += 1
        entries += [e for e in conn.response or [] if e["type"] == "searchResEntry"]
        controls = conn.result["controls"]
        cookie = controls["1.2.840.113556.1.4.319"]["value"]["cookie"]
        if not cookie:
            break
    assert pages == 3
    assert {e["dn"] for e in entries} == set(expected)
    for entry in entries:
        sam = entry["dn"].split(",")[0][3:]
        attrs = entry["attributes"]
        assert attrs["mail"] == [f"{sam}@example.com"]
        assert sorted(attrs["proxyAddresses"]) == [
            f"SMTP:{sam}@example.com",
            f"smtp:{sam}@alias.example.com",
        ]
        guid = entry["raw_attributes"]["objectGUID"][0]
        assert len(guid) == 16
        assert dc.get_guid(entry["dn"]) == expected[entry["dn"]]
    assert "Zoë Person" in {e["attributes"]["displayName"][0] for e in entries}


def test_nested_group_membership_via_in_chain_rule(dc: SambaDC) -> None:
    outer = dc.add_group("outer")
    inner = dc.add_group("inner")
    dc.add_member(outer, inner)
    alice = dc.add_user("alice")
    carol = dc.add_user("carol")
    dc.add_member(inner, alice)
    dc.add_member(outer, carol)

    def matches(search_filter: str) -> set[str]:
        return {row["dn"] for row in dc.search(search_filter, page_size=2)}

    user = "(objectClass=user)(!(objectClass=computer))"
    assert matches(f"(&{user}(memberOf:{IN_CHAIN}:={outer}))") == {alice, carol}
    assert matches(f"(&{user}(memberOf={outer}))") == {carol}  # direct only
    dc.remove_member(inner, alice)
    assert matches(f"(&{user}(memberOf:{IN_CHAIN}:={outer}))") == {carol}


def test_highest_committed_usn_increases_after_modify(dc: SambaDC) -> None:
    dn = dc.add_user("usn", mail="usn@example.com")
    before = dc.highest_committed_usn()
    dc.modify(dn, {"mail": [(MODIFY_REPLACE, ["usn2@example.com"])]})
    after = dc.highest_committed_usn()
    assert after > before
    conn = dc.admin
    assert conn.search(dn, "(objectClass=*)", BASE, attributes=["uSNChanged", "mail"])
    attrs = (conn.response or [])[0]["attributes"]
    assert int(attrs["uSNChanged"][0]) == after
    assert attrs["mail"] == ["usn2@example.com"]


def test_move_keeps_guid_and_delete_removes(dc: SambaDC) -> None:
    ou = dc.add_ou("Moved")
    dn = dc.add_user("mover")
    guid = dc.get_guid(dn)
    new_dn = dc.move(dn, ou)
    assert new_dn == f"CN=mover,{ou}"
    assert dc.get_guid(new_dn) == guid
    dc.delete(ou)  # tree delete takes the user along
    assert dc.search("(sAMAccountName=mover)") == []


# -- snapshots and bulk load ------------------------------------------------


def test_restore_returns_to_snapshot(samba: SambaDC) -> None:
    samba.restore()
    ca_before = samba.ca_cert_path.read_bytes()
    usn_before = samba.highest_committed_usn()
    samba.add_user("ephemeral")
    assert samba.highest_committed_usn() > usn_before

    samba.restore()
    assert samba.running
    assert samba.search("(sAMAccountName=ephemeral)") == []
    assert samba.highest_committed_usn() == usn_before
    assert samba.ca_cert_path.read_bytes() == ca_before  # same CA: clients keep working


def test_load_ldif_offline_200_users(dc: SambaDC) -> None:
    ou = f"OU=Bulk,{dc.base_dn}"
    added = dc.load_ldif_offline(users_ldif(200, dc.base_dn, ou, groups=4, disabled_every=10))
    assert added == 1 + 200 + 4 + 1  # OU, users, groups, the nesting group
    assert dc.running

    person = "(&(objectCategory=person)(objectClass=user))"
    rows = list(iter_paged(dc.admin, ou, person, ["mail", "proxyAddresses", "objectGUID"]))
    assert len(rows) == 200
    first = bulk_user(1, ou, groups=4)
    row = next(r for r in rows if r["dn"] == first.dn)
    assert row["attributes"]["mail"] == [first.mail]
    assert sorted(row["attributes"]["proxyAddresses"]) == sorted(first.proxy_addresses)

    disabled = list(iter_paged(dc.admin, ou, f"(&{person}(userAccountControl=514))", ["cn"]))
    assert len(disabled) == 20
    nested = f"(&{person}(memberOf:{IN_CHAIN}:=CN=user-all,{ou}))"
    assert sum(1 for _ in iter_paged(dc.admin, dc.base_dn, nested, ["cn"])) == 200

    # Offline-loaded users are real accounts: give one a password and bind as it.
    dc.set_password(first.dn, USER_PASSWORD)
    assert _bind(dc, first.upn, USER_PASSWORD)["description"] == "success"


def test_users_in_batches_then_groups_equal_one_load(dc: SambaDC) -> None:
    """groups_ldif after users loaded in batches gives what users_ldif gives in one go."""
    ou = f"OU=Batched,{dc.base_dn}"
    assert dc.load_ldif_offline(users_ldif(30, dc.base_dn, ou, groups=0, nest_groups=False))
    dc.load_ldif_offline(users_ldif(30, dc.base_dn, ou, groups=0, nest_groups=False,
                                    start=31, create_ou=False))
    assert dc.load_ldif_offline(groups_ldif(60, ou, groups=3)) == 4
    person = "(&(objectCategory=person)(objectClass=user))"
    for k in range(3):
        members = f"(&{person}(memberOf=CN=user-group-{k:03d},{ou}))"
        assert sum(1 for _ in iter_paged(dc.admin, ou, members, ["cn"])) == 20
    nested = f"(&{person}(memberOf:{IN_CHAIN}:=CN=user-all,{ou}))"
    assert sum(1 for _ in iter_paged(dc.admin, dc.base_dn, nested, ["cn"])) == 60


def test_a_saved_dc_is_adopted_elsewhere(dc: SambaDC, tmp_path: Path) -> None:
    """save_to + adopt: a copy at another path and address holds the same domain, data and
    TLS certificate, and the original keeps running."""
    user = dc.add_user("kept", password=USER_PASSWORD)
    guid = dc.get_guid(user)
    dc.save_to(tmp_path / "saved")
    assert dc.running
    copy = SambaDC(base_dir=tmp_path / "copy", admin_password=dc.admin_password)
    try:
        copy.adopt(tmp_path / "saved")
        copy.start()
        assert copy.address != dc.address
        assert copy.get_guid(user) == guid
        assert copy.ca_cert_path.read_bytes() == dc.ca_cert_path.read_bytes()
        assert _bind(copy, "kept@example.com", USER_PASSWORD)["description"] == "success"
        with pytest.raises(SambaDCError):
            copy.adopt(tmp_path / "saved")  # only before the first start
    finally:
        copy.close()


def test_load_ldif_offline_reports_a_bad_record(dc: SambaDC) -> None:
    ou = f"OU=Bad,{dc.base_dn}"
    good = users_ldif(2, dc.base_dn, ou, groups=0)
    bad = ldif_entry(
        f"CN=broken,{ou}",
        {"objectClass": "group", "sAMAccountName": "broken", "member": f"CN=nobody,{ou}"},
    )
    # ldbadd itself exits 0 here after adding the first 3 records.
    with pytest.raises(SambaDCError, match=r"added 3 of 4 records"):
        dc.load_ldif_offline(good + bad)
    assert dc.running
    assert len(dc.search("(objectClass=user)", base=ou)) == 2


# -- lifecycle --------------------------------------------------------------


def test_second_instance_fails_clearly_and_stop_is_idempotent(
    samba: SambaDC, tmp_path: Path
) -> None:
    assert samba.running
    other = SambaDC(base_dir=tmp_path, address=samba.address)
    with pytest.raises(SambaDCError, match=r"ports \[389, 636, 3268, 3269\].*in use"):
        other.start()
    assert not other.running
    other.stop()
    other.stop()
    other.close()
    assert not (tmp_path / "dc").exists()  # the port check comes before provisioning


def test_failed_start_then_stop_twice(samba: SambaDC) -> None:
    samba.stop()
    samba.start_timeout = 0.0
    try:
        with pytest.raises(SambaDCError, match="not ready after"):
            samba.start()
        assert not samba.running
        samba.stop()
        samba.stop()
    finally:
        samba.start_timeout = 60.0
    samba.start()
    assert samba.highest_committed_usn() > 0


def test_missing_samba_names_the_install_script(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(samba_dc, "which", lambda name: None)
    with pytest.raises(SambaNotInstalledError, match=r"scripts/install-test-deps\.sh"):
        SambaDC(base_dir=tmp_path).start()


def test_unclosed_instance_is_stopped_at_exit(samba: SambaDC, tmp_path: Path) -> None:
    """A process that starts a DC and exits without stop() leaves no samba behind."""
    samba.stop()
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.servers.samba_dc import SambaDC\n"
        "dc = SambaDC(base_dir=Path(sys.argv[1]))\n"
        "dc.start()\n"
        "print(dc.pid)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        pid = int(done.stdout.strip())
        assert not Path(f"/proc/{pid}/cmdline").exists() or not _alive(pid)
        ports = samba_process.LDAP_PORTS
        assert all(samba_process.port_is_free(port, samba.address) for port in ports)
    finally:
        samba.start()


def _alive(pid: int) -> bool:
    """True if *pid* exists and is not a zombie."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line[stat_line.rfind(")") + 2] not in "ZX"
