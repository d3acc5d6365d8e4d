"""Deterministic LDIF for bulk-loading users and groups into Samba AD with ``ldbadd``.

The output is meant for `SambaDC.load_ldif_offline` (``ldbadd -o batch_mode:1`` on
sam.ldb while samba is stopped). Samba's module stack fills in objectSid, objectGUID,
sAMAccountType, USNs etc., so each user only needs ``objectClass: user``,
``sAMAccountName`` and ``userAccountControl``; no password is required (accounts are
enabled with UAC 512 but cannot bind until a password is set).

Contract of the generated data (user number ``i`` counts from *start*, zero-padded to
five digits in names; see `bulk_user`):

* DN ``CN=<prefix><i>,<ou_dn>``, sAMAccountName ``<prefix><i>``,
  UPN ``<prefix><i>@<domain>``;
* givenName / sn from fixed name lists (a few non-ASCII, base64-encoded in the LDIF),
  displayName ``"<given> <sn>"``;
* mail ``<given>.<sn>.<i>@<domain>`` (lower-case ASCII), proxyAddresses
  ``SMTP:<mail>`` (primary) and ``smtp:<prefix><i>@<domain>`` (alias);
* every *disabled_every*-th user is disabled (UAC 514);
* *groups* groups ``<prefix>-group-<k>`` in *ou_dn*, user ``i`` is a member of group
  ``i % groups``; with *nest_groups* a group ``<prefix>-all`` has all of them as members
  (so ``memberOf:1.2.840.113556.1.4.1941:=`` on it finds every user).
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["BulkUser", "bulk_group_dns", "bulk_user", "groups_ldif", "ldif_entry", "users_ldif"]

GIVEN_NAMES = (
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter",
    "Zoë", "Łukasz", "José",
)  # fmt: skip
SURNAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
    "Müller", "Ødegaard", "O'Neil",
)  # fmt: skip

_SAFE_INIT = re.compile(r"^[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f]")
_SAFE_REST = re.compile(r"^[\x01-\x09\x0b\x0c\x0e-\x7f]*$")


@dataclass(frozen=True)
class BulkUser:
    """The attribute values one generated user gets (for building expectations)."""

    index: int
    dn: str
    sam: str
    upn: str
    given_name: str
    surname: str
    display_name: str
    mail: str
    proxy_addresses: tuple[str, ...]
    disabled: bool
    group_dns: tuple[str, ...] = field(default=())


def _ascii_slug(text: str) -> str:
    """Lower-case ASCII version of *text* for mail local parts (Zoë -> zoe, O'Neil -> oneil)."""
    folded = unicodedata.normalize("NFKD", text.replace("Ł", "L").replace("Ø", "O"))
    return re.sub(r"[^a-z0-9]", "", folded.encode("ascii", "ignore").decode().lower())


def bulk_group_dns(ou_dn: str, groups: int, *, prefix: str = "user") -> list[str]:
    """Return the DNs of the *groups* generated groups, in order."""
    return [f"CN={prefix}-group-{k:03d},{ou_dn}" for k in range(groups)]


def bulk_user(
    i: int,
    ou_dn: str,
    *,
    domain: str = "example.com",
    prefix: str = "user",
    groups: int = 0,
    disabled_every: int = 0,
) -> BulkUser:
    """Return the values generated for user number *i* (see the module contract)."""
    sam = f"{prefix}{i:05d}"
    given = GIVEN_NAMES[i % len(GIVEN_NAMES)]
    surname = SURNAMES[(i // len(GIVEN_NAMES)) % len(SURNAMES)]
    mail = f"{_ascii_slug(given)}.{_ascii_slug(surname)}.{i}@{domain}"
    group_dns = bulk_group_dns(ou_dn, groups, prefix=prefix)
    return BulkUser(
        index=i,
        dn=f"CN={sam},{ou_dn}",
        sam=sam,
        upn=f"{sam}@{domain}",
        given_name=given,
        surname=surname,
        display_name=f"{given} {surname}",
        mail=mail,
        proxy_addresses=(f"SMTP:{mail}", f"smtp:{sam}@{domain}"),
        disabled=bool(disabled_every) and i % disabled_every == 0,
        group_dns=(group_dns[i % groups],) if groups else (),
    )


def _ldif_line(name: str, value: str | bytes) -> str:
    """One ``attr: value`` line, base64-encoded (``attr:: ...``) unless a SAFE-STRING."""
    if isinstance(value, str) and (
        value == "" or (_SAFE_INIT.match(value) and _SAFE_REST.match(value) and value[-1] != " ")
    ):
        return f"{name}: {value}"
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return f"{name}:: {base64.b64encode(raw).decode('ascii')}"


def ldif_entry(dn: str, attributes: Mapping[str, str | bytes | Sequence[str | bytes]]) -> str:
    """Render one LDIF add record (ending with a blank line); values may be lists."""
    lines = [_ldif_line("dn", dn)]
    for name, value in attributes.items():
        values = [value] if isinstance(value, str | bytes) else list(value)
        lines.extend(_ldif_line(name, v) for v in values)
    return "\n".join(lines) + "\n\n"


def _user_entries(
    n: int, ou_dn: str, *, domain: str, prefix: str, groups: int, disabled_every: int, start: int
) -> Iterator[str]:
    for i in range(start, start + n):
        user = bulk_user(
            i, ou_dn, domain=domain, prefix=prefix, groups=groups, disabled_every=disabled_every
        )
        yield ldif_entry(
            user.dn,
            {
                "objectClass": "user",
                "sAMAccountName": user.sam,
                "userPrincipalName": user.upn,
                "givenName": user.given_name,
                "sn": user.surname,
                "displayName": user.display_name,
                "mail": user.mail,
                "proxyAddresses": list(user.proxy_addresses),
                "userAccountControl": "514" if user.disabled else "512",
            },
        )


def users_ldif(
    n: int,
    base_dn: str,
    ou_dn: str,
    *,
    domain: str = "example.com",
    groups: int = 10,
    nest_groups: bool = True,
    prefix: str = "user",
    start: int = 1,
    disabled_every: int = 0,
    create_ou: bool = True,
) -> str:
    """Return LDIF adding *n* users (and *groups* groups with their members) under *ou_dn*.

    *ou_dn* must lie inside *base_dn*; with *create_ou* the LDIF starts with the
    organizationalUnit entry for *ou_dn* (which must then be an ``OU=`` directly or
    transitively under existing entries). Users come before the groups, since Samba
    requires ``member`` targets to exist. Values are deterministic: the same call
    always gives the same text. See the module docstring for the attribute contract.
    """
    if n < 0 or groups < 0:
        raise ValueError("n and groups must be >= 0")
    if not ou_dn.lower().endswith(base_dn.lower()):
        raise ValueError(f"{ou_dn!r} is not inside {base_dn!r}")
    parts: list[str] = []
    if create_ou:
        rdn = ou_dn.split(",", 1)[0]
        attr, _, value = rdn.partition("=")
        if "\\" in rdn:
            raise ValueError(f"escaped characters in the OU name are not supported: {rdn!r}")
        if attr.strip().lower() != "ou":
            raise ValueError(f"create_ou needs an OU= DN, got {ou_dn!r}")
        parts.append(ldif_entry(ou_dn, {"objectClass": "organizationalUnit", "ou": value}))
    parts.extend(
        _user_entries(
            n,
            ou_dn,
            domain=domain,
            prefix=prefix,
            groups=groups,
            disabled_every=disabled_every,
            start=start,
        )
    )
    parts.append(groups_ldif(n, ou_dn, groups=groups, nest_groups=nest_groups, prefix=prefix,
                             start=start))
    return "".join(parts)


def groups_ldif(
    n: int,
    ou_dn: str,
    *,
    groups: int = 10,
    nest_groups: bool = True,
    prefix: str = "user",
    start: int = 1,
) -> str:
    """Return only the group records `users_ldif` ends with for the same arguments: the
    *groups* groups with users *start* .. *start* + *n* - 1 as members (user ``i`` in group
    ``i % groups``) and, with *nest_groups*, ``<prefix>-all``. For loading the users in
    several ``ldbadd`` batches first (the members must exist)."""
    parts: list[str] = []
    group_dns = bulk_group_dns(ou_dn, groups, prefix=prefix)
    members: list[list[str]] = [[] for _ in range(groups)]
    for i in range(start, start + n):
        if groups:
            members[i % groups].append(f"CN={prefix}{i:05d},{ou_dn}")
    for k, dn in enumerate(group_dns):
        attrs: dict[str, str | list[str]] = {
            "objectClass": "group",
            "sAMAccountName": f"{prefix}-group-{k:03d}",
        }
        if members[k]:
            attrs["member"] = members[k]
        parts.append(ldif_entry(dn, attrs))
    if nest_groups and groups:
        parts.append(
            ldif_entry(
                f"CN={prefix}-all,{ou_dn}",
                {"objectClass": "group", "sAMAccountName": f"{prefix}-all", "member": group_dns},
            )
        )
    return "".join(parts)
