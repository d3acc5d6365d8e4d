"""The LDAP side of the Samba test DC: ldap3 connections to it and the directory edits
tests make as Administrator (users, groups, OUs, members, passwords, moves, deletes).

`SambaDirectory` is a mixin of `tests.servers.samba_dc.SambaDC`, which supplies the
address, the TLS names, the Administrator's credentials and whether the DC runs; the
process side (provisioning, start, stop, snapshots) stays there.
"""

from __future__ import annotations

import secrets
import ssl
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ldap3 import (
    BASE,
    MODIFY_ADD,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    NONE,
    SIMPLE,
    Connection,
    Server,
    Tls,
)
from ldap3.utils.dn import escape_rdn, parse_dn

UF_ACCOUNTDISABLE = 0x0002
UF_NORMAL_ACCOUNT = 0x0200
GROUP_TYPE_GLOBAL_SECURITY = -2147483646  # 0x80000002
TREE_DELETE_OID = "1.2.840.113556.1.4.805"


class SambaDCError(RuntimeError):
    """Raised when the domain controller cannot be provisioned, started or driven."""


class SambaNotInstalledError(SambaDCError):
    """Raised when the Samba AD DC binaries are not installed on this machine."""


def encode_unicode_pwd(password: str) -> bytes:
    """Return *password* as AD's ``unicodePwd`` value: the quoted password in UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")


def generate_password() -> str:
    """Return a random password that satisfies AD's default complexity rules."""
    return "Aa1!" + secrets.token_urlsafe(18)



def iter_paged(
    conn: Connection,
    base: str,
    search_filter: str,
    attributes: Sequence[str],
    *,
    page_size: int = 500,
) -> Iterator[dict[str, Any]]:
    """Yield the entries (``type == 'searchResEntry'``) of a paged subtree search."""
    for entry in conn.extend.standard.paged_search(
        base,
        search_filter,
        attributes=list(attributes),
        paged_size=page_size,
        generator=True,
    ):
        if entry.get("type") == "searchResEntry":
            yield entry


class SambaDirectory(ABC):
    """ldap3 access to the DC and the directory edits tests make as Administrator.

    The host class provides `address`, `ca_cert_path`, `tls_server_name`, `admin_dn`,
    `base_dn`, `users_dn`, `dns_domain`, `running`, and the attributes `_admin_password`
    and `_admin_conn`.
    """

    address: str
    dns_domain: str
    _admin_password: str
    _admin_conn: Connection | None

    @property
    @abstractmethod
    def ca_cert_path(self) -> Path:
        """Provided by the host class."""

    @property
    @abstractmethod
    def tls_server_name(self) -> str:
        """Provided by the host class."""

    @property
    @abstractmethod
    def admin_dn(self) -> str:
        """Provided by the host class."""

    @property
    @abstractmethod
    def base_dn(self) -> str:
        """Provided by the host class."""

    @property
    @abstractmethod
    def users_dn(self) -> str:
        """Provided by the host class."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """Provided by the host class."""

    def tls(self) -> Tls:
        """ldap3 TLS settings that verify the server against Samba's CA and certificate name."""
        return Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(self.ca_cert_path),
            valid_names=[self.tls_server_name],
        )

    def server(self, *, ldaps: bool = True) -> Server:
        """An ldap3 Server for LDAPS (636) or, with ``ldaps=False``, LDAP on 389 (TLS-ready).

        ``get_info=NONE``: ldap3 rejects Samba's rootDSE against the AD schema it knows.
        """
        return Server(
            self.address,
            port=636 if ldaps else 389,
            use_ssl=ldaps,
            tls=self.tls(),
            get_info=NONE,
            connect_timeout=10,
        )

    def connection(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        start_tls: bool = False,
    ) -> Connection:
        """Return a new connection bound by SIMPLE bind (Administrator unless *user* given).

        *user* is a DN or UPN. Uses LDAPS, or StartTLS on 389 with ``start_tls=True``.
        Raises `SambaDCError` with the LDAP result if the bind fails. Caller unbinds.
        """
        if user is None:
            user, password = self.admin_dn, self._admin_password
        conn = Connection(
            self.server(ldaps=not start_tls),
            user=user,
            password=password,
            authentication=SIMPLE,
            auto_referrals=False,
            raise_exceptions=False,
            receive_timeout=60,
        )
        conn.open()
        if start_tls and not conn.start_tls():
            conn.unbind()
            raise SambaDCError(f"StartTLS failed: {conn.result}")
        if not conn.bind():
            result = conn.result
            conn.unbind()
            raise SambaDCError(f"bind as {user!r} failed: {result}")
        return conn

    @property
    def admin(self) -> Connection:
        """A cached Administrator connection over LDAPS (re-opened after a restart)."""
        if not self.running:
            raise SambaDCError("the DC is not running")
        if self._admin_conn is None or self._admin_conn.closed:
            self._admin_conn = self.connection()
        return self._admin_conn

    def _check(self, ok: bool, what: str) -> None:
        """Raise `SambaDCError` describing *what* failed unless *ok*."""
        if not ok:
            raise SambaDCError(f"{what} failed: {self.admin.result}")

    def add_ou(self, name: str, parent_dn: str | None = None) -> str:
        """Create organizationalUnit *name* under *parent_dn* (the domain); return its DN."""
        dn = f"OU={escape_rdn(name)},{parent_dn or self.base_dn}"
        self._check(self.admin.add(dn, ["top", "organizationalUnit"], {"ou": name}), f"add {dn}")
        return dn

    def add_user(
        self,
        sam: str,
        *,
        ou_dn: str | None = None,
        given_name: str | None = None,
        surname: str | None = None,
        display_name: str | None = None,
        mail: str | None = None,
        proxy_addresses: Sequence[str] = (),
        password: str | None = None,
        disabled: bool = False,
        attributes: Mapping[str, Any] | None = None,
    ) -> str:
        """Create user ``CN=<sam>`` in *ou_dn* (default ``CN=Users``) and return its DN.

        UPN is ``<sam>@example.com``. The password (random when None, so the account is
        still valid) is set as ``unicodePwd`` in the same add, which AD only allows over
        TLS. ``userAccountControl`` is 512 (enabled) or 514 (disabled). *attributes* adds
        or overrides raw LDAP attributes.
        """
        dn = f"CN={escape_rdn(sam)},{ou_dn or self.users_dn}"
        attrs: dict[str, Any] = {
            "sAMAccountName": sam,
            "userPrincipalName": f"{sam}@{self.dns_domain}",
            "unicodePwd": encode_unicode_pwd(password or generate_password()),
            "userAccountControl": str(UF_NORMAL_ACCOUNT | (UF_ACCOUNTDISABLE if disabled else 0)),
        }
        optional = {
            "givenName": given_name,
            "sn": surname,
            "displayName": display_name,
            "mail": mail,
        }
        attrs.update({key: value for key, value in optional.items() if value is not None})
        if proxy_addresses:
            attrs["proxyAddresses"] = list(proxy_addresses)
        attrs.update(attributes or {})
        object_class = ["top", "person", "organizationalPerson", "user"]
        self._check(self.admin.add(dn, object_class, attrs), f"add user {dn}")
        return dn

    def add_group(
        self,
        name: str,
        ou_dn: str | None = None,
        *,
        group_type: int = GROUP_TYPE_GLOBAL_SECURITY,
        members: Iterable[str] = (),
    ) -> str:
        """Create group ``CN=<name>`` (global security by default) and return its DN."""
        dn = f"CN={escape_rdn(name)},{ou_dn or self.users_dn}"
        attrs: dict[str, Any] = {"sAMAccountName": name, "groupType": str(group_type)}
        member_list = list(members)
        if member_list:
            attrs["member"] = member_list
        self._check(self.admin.add(dn, ["top", "group"], attrs), f"add group {dn}")
        return dn

    def add_member(self, group_dn: str, member_dn: str) -> None:
        """Add *member_dn* (user or group) to the ``member`` attribute of *group_dn*."""
        self.modify(group_dn, {"member": [(MODIFY_ADD, [member_dn])]})

    def remove_member(self, group_dn: str, member_dn: str) -> None:
        """Remove *member_dn* from the ``member`` attribute of *group_dn*."""
        self.modify(group_dn, {"member": [(MODIFY_DELETE, [member_dn])]})

    def modify(self, dn: str, changes: Mapping[str, Any]) -> None:
        """Apply ldap3-style *changes* (``{attr: [(MODIFY_*, [values])]}``) to *dn*."""
        self._check(self.admin.modify(dn, dict(changes)), f"modify {dn}")

    def replace(self, dn: str, attributes: Mapping[str, Any]) -> None:
        """Replace each attribute of *attributes* on *dn* (a value may be a list; [] clears)."""
        changes = {
            name: [(MODIFY_REPLACE, value if isinstance(value, list) else [value])]
            for name, value in attributes.items()
        }
        self.modify(dn, changes)

    def set_password(self, dn: str, password: str) -> None:
        """Reset the password of *dn* as Administrator (``unicodePwd`` replace over TLS)."""
        self.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [encode_unicode_pwd(password)])]})

    def user_account_control(self, dn: str) -> int:
        """Return the ``userAccountControl`` flags of *dn*."""
        return int(self._read_one(dn, "userAccountControl"))

    def disable_user(self, dn: str) -> None:
        """Set ACCOUNTDISABLE (0x2) in the user's ``userAccountControl``."""
        uac = self.user_account_control(dn)
        self.replace(dn, {"userAccountControl": str(uac | UF_ACCOUNTDISABLE)})

    def enable_user(self, dn: str) -> None:
        """Clear ACCOUNTDISABLE (0x2) in the user's ``userAccountControl``."""
        uac = self.user_account_control(dn)
        self.replace(dn, {"userAccountControl": str(uac & ~UF_ACCOUNTDISABLE)})

    def delete(self, dn: str) -> None:
        """Delete *dn* and, for a container, everything below it (tree-delete control)."""
        ok = self.admin.delete(dn, controls=[(TREE_DELETE_OID, True, None)])
        self._check(ok, f"delete {dn}")

    def move(self, dn: str, new_parent_dn: str) -> str:
        """Move *dn* under *new_parent_dn* keeping its RDN; return the new DN."""
        attr, value, _ = parse_dn(dn, escape=True)[0]
        rdn = f"{attr}={value}"
        self._check(self.admin.modify_dn(dn, rdn, new_superior=new_parent_dn), f"move {dn}")
        return f"{rdn},{new_parent_dn}"

    def get_guid(self, dn: str) -> str:
        """Return the ``objectGUID`` of *dn* as a lower-case UUID string without braces."""
        raw = self._read_one(dn, "objectGUID", raw=True)
        assert isinstance(raw, bytes)
        return str(uuid.UUID(bytes_le=raw))

    def highest_committed_usn(self) -> int:
        """Return the rootDSE ``highestCommittedUSN`` (read without ldap3 schema checks)."""
        return int(self._read_one("", "highestCommittedUSN"))

    def ds_service_name(self) -> str:
        """Return the rootDSE ``dsServiceName`` (the DC's NTDS Settings DN)."""
        return str(self._read_one("", "dsServiceName"))

    def search(
        self,
        search_filter: str,
        *,
        base: str | None = None,
        attributes: Sequence[str] = (),
        page_size: int = 500,
    ) -> list[dict[str, Any]]:
        """Paged subtree search as Administrator; return the entries only.

        Continuation references (``searchResRef``, which AD returns for the
        Configuration/DNS partitions below the domain root) are dropped.
        """
        rows = iter_paged(
            self.admin, base or self.base_dn, search_filter, attributes, page_size=page_size
        )
        return list(rows)

    def _read_one(self, dn: str, attribute: str, *, raw: bool = False) -> Any:
        """Return the first value of *attribute* on *dn* (bytes when *raw*)."""
        conn = self.admin
        ok = conn.search(dn, "(objectClass=*)", BASE, attributes=[attribute])
        response = conn.response or []
        self._check(ok and bool(response), f"read {attribute} of {dn!r}")
        entry = response[0]
        values = entry["raw_attributes" if raw else "attributes"].get(attribute)
        if not values:
            raise SambaDCError(f"{dn!r} has no {attribute}")
        return values[0] if isinstance(values, list) else values
