"""The group side of the AD sync: which groups count as mapped groups (the *closure*) and
which users a group change touches, read incrementally.

* The closure is every mapped group and every group nested in one (found by the DC with the
  in-chain rule among the *groups*), by objectGUID: its DN, RID and the mapped names it
  stands for. A user's mapped groups are its direct groups (``memberOf``) and primary group
  (``primaryGroupID``) looked up in it (:func:`lookup`).
* A full run reads the closure and takes a DirSync cookie ([MS-ADTS] 3.1.1.3.4.1.3,
  ``LDAP_SERVER_DIRSYNC_OID`` with the object-security and incremental-values flags: any
  account that may read the groups may use it). Both are stored with the watermark
  (:class:`GroupStateStore`, table ``ad_sync_groups``).
* An incremental run asks DirSync for the groups changed since the cookie: for each, only the
  member values added (``member;range=1-1``) and removed (``member;range=0-0``), so a change
  of one member of a group of 50,000 reads two values, not 50,000. Added or removed *users*
  of a closure group are re-read one by one; a group nested in or out of a closure group, or
  any group created, renamed, moved or deleted, makes the run read the closure again (a few
  searches among the groups), and only if the closure then differs (the nesting of mapped
  groups changed) does the run compare every user's groups (:func:`needs_scan`), as it
  must: those changes can move any number of users.
* Without a cookie (the DC refused DirSync, or state from before it was kept) incremental
  runs fall back to that comparison whenever any group changed.

Nothing here reads the member list of a group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ldap3 import BASE, SUBTREE, Connection
from ldap3.core.exceptions import LDAPException
from ldap3.protocol.microsoft import dir_sync_control, show_deleted_control
from sqlalchemy.orm import Session

from ad_sync import client
from ad_sync.client import DirectoryError
from ad_sync.vendor import ms_ad
from bridge.store.ad_models import AdSyncGroups

# Attributes asked of changed groups: a value in cn/name/sAMAccountName/isDeleted means the
# group was created, renamed, moved or deleted (DirSync returns only what changed).
_DELTA_ATTRIBUTES = ("member", "cn", "name", "sAMAccountName", "isDeleted")
_NAME_ATTRIBUTES = ("cn", "name", "samaccountname", "isdeleted")
_DIRSYNC_OID = "1.2.840.113556.1.4.841"
_MAX_BYTES = 1 << 20  # per DirSync answer; more_results asks for the rest


@dataclass(frozen=True)
class ClosureGroup:
    """One group of the closure: normalised DN, RID (None if unknown), mapped names."""

    dn: str
    rid: int | None
    names: tuple[str, ...]


Closure = dict[str, ClosureGroup]  # objectGUID -> group


@dataclass(frozen=True)
class GroupChange:
    """One changed group as DirSync reported it: member values added and removed (DNs of
    the members) and whether its name, place or existence changed."""

    guid: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    renamed: bool


def lookup(closure: Closure) -> dict[str, frozenset[str]]:
    """Normalised DN and ``rid:<RID>`` -> mapped names (what ``decisions.groups_for`` reads)."""
    out: dict[str, set[str]] = {}
    for group in closure.values():
        out.setdefault(group.dn, set()).update(group.names)
        if group.rid is not None:
            out.setdefault(f"rid:{group.rid}", set()).update(group.names)
    return {key: frozenset(names) for key, names in out.items()}


def read_closure(conn: Connection, base: str, domain: str, mappings: Sequence[str],
                 warnings: list[str]) -> Closure:
    """The mapped groups found under ``base`` by name (sAMAccountName or cn) and every group
    nested in them anywhere in ``domain`` (in-chain rule). A mapped name with no group adds
    a warning."""
    from ad_sync.decisions import escape, norm_dn, rid

    if not mappings:
        return {}
    wanted = {n.lower(): n for n in mappings}
    found: dict[str, tuple[str, str, int | None]] = {}  # guid -> (dn, name, rid)
    for entry in client.search_all(conn, base, ms_ad.group_by_name_filter(mappings),
                                   ms_ad.GROUP_ATTRIBUTES):
        attrs = entry.get("attributes") or {}
        guid = _guid(entry)
        for key in ("sAMAccountName", "cn"):
            value = attrs.get(key)
            value = value[0] if isinstance(value, list) and value else value
            if guid and isinstance(value, str) and value.lower() in wanted:
                found[guid] = (entry["dn"], wanted[value.lower()], rid(entry))
                break
    for name in sorted(set(wanted.values()) - {name for _dn, name, _rid in found.values()}):
        warnings.append(f"mapped group {name!r} was not found in the directory")
    names: dict[str, set[str]] = {}
    where: dict[str, tuple[str, int | None]] = {}
    for guid, (dn, name, group_rid) in found.items():
        names.setdefault(guid, set()).add(name)
        where[guid] = (norm_dn(dn), group_rid)
        nested = f"(&{ms_ad.GROUP_FILTER}(memberOf:{ms_ad.IN_CHAIN}:={escape(dn)}))"
        for entry in client.search_all(conn, domain, nested, ms_ad.GROUP_ATTRIBUTES):
            inner = _guid(entry)
            if inner:
                names.setdefault(inner, set()).add(name)
                where[inner] = (norm_dn(entry["dn"]), rid(entry))
    return {guid: ClosureGroup(where[guid][0], where[guid][1], tuple(sorted(n)))
            for guid, n in names.items()}


def first_cookie(conn: Connection, domain: str) -> bytes | None:
    """A DirSync cookie for "now" (groups only, no values read), or None when the DC
    refuses DirSync (incremental runs then compare users' groups when a group changed)."""
    try:
        _changes, cookie = read_changes(conn, domain, None, attributes=("objectGUID",))
    except DirectoryError:
        return None
    return cookie


def read_changes(conn: Connection, domain: str, cookie: bytes | None, *,
                 attributes: Sequence[str] = _DELTA_ATTRIBUTES
                 ) -> tuple[list[GroupChange], bytes]:
    """The groups changed since ``cookie`` (DirSync over ``domain``, the naming context)
    with their member values added and removed; and the next cookie.

    Values come back as plain DNs (no extended-DN control: Samba spends ~15 % more on a
    50,000-member group to render GUIDs and SIDs). Raises DirectoryError when the DC
    refuses or fails the request."""
    changes: list[GroupChange] = []
    while True:
        controls = [
            dir_sync_control(criticality=True, object_security=True, ancestors_first=True,
                             public_data_only=False, incremental_values=True,
                             max_length=_MAX_BYTES, cookie=cookie),
            show_deleted_control(criticality=False)]
        try:
            # ldap3's search() is False for a successful search without entries: the
            # result code is what counts.
            conn.search(domain, ms_ad.GROUP_FILTER, SUBTREE, attributes=list(attributes),
                        controls=controls)
        except LDAPException as exc:
            raise DirectoryError("search", f"DirSync of the groups failed: {exc}"[:300]) \
                from None
        result = conn.result or {}
        value = (((result.get("controls") or {}).get(_DIRSYNC_OID) or {}).get("value") or {})
        if result.get("result") != 0 or not isinstance(value.get("cookie"), bytes | bytearray):
            raise DirectoryError("search", "DirSync of the groups failed: "
                                           f"{result.get('description')}")
        for entry in conn.response or []:
            if entry.get("type") == "searchResEntry":
                change = _change(entry)
                if change is not None:
                    changes.append(change)
        cookie = bytes(value["cookie"])
        if not value.get("more_results"):
            return changes, cookie


def _change(entry: Mapping[str, Any]) -> GroupChange | None:
    guid = _guid(entry)
    if guid is None:
        return None
    raw = entry.get("raw_attributes") or {}
    added: list[str] = []
    removed: list[str] = []
    renamed = False
    for key, values in raw.items():
        name = key.lower()
        if name.startswith("member;range=1-1"):
            added.extend(d for d in (_value_dn(v) for v in values) if d)
        elif name.startswith("member;range=0-0"):
            removed.extend(d for d in (_value_dn(v) for v in values) if d)
        elif name in _NAME_ATTRIBUTES and values:
            renamed = True
        elif name == "member" and values:
            # A DC that does not send incremental values sends the whole list: treat it
            # as a change the closure and a comparison of every user must absorb.
            renamed = True
    return GroupChange(guid, tuple(added), tuple(removed), renamed)


def _guid(entry: Mapping[str, Any]) -> str | None:
    raw = (entry.get("raw_attributes") or {}).get("objectGUID") or []
    if raw and isinstance(raw[0], bytes | bytearray) and len(raw[0]) == 16:
        return ms_ad.guid_from_bytes(bytes(raw[0]))
    return None


def _value_dn(value: Any) -> str | None:
    """A member value as a DN (an extended DN ``<GUID=...>;<SID=...>;CN=...`` is cut to
    its DN part)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) \
        else str(value)
    while text.startswith("<") and ">;" in text:
        text = text[text.index(">;") + 2:]
    return text or None


@dataclass(frozen=True)
class Resolved:
    """What the member values of a group change turned out to be."""

    users: list[ms_ad.DirectoryUser]  # in-scope users, read in full
    groups_moved: bool  # a group was nested in or out of a closure group


def resolve_members(conn: Connection, dns: Iterable[str], user_filter: str,
                    in_scope: Any) -> Resolved:
    """Read the objects added to or removed from closure groups, one base search by DN
    each (they are the changes, not the group): users (matching ``user_filter``, inside
    the scope ``in_scope(dn)``) are returned in full; a group means the nesting changed.
    Objects that no longer exist are skipped (a deleted user is found as a tombstone)."""
    users: list[ms_ad.DirectoryUser] = []
    moved = False
    wanted = f"(|{ms_ad.GROUP_FILTER}{user_filter})"
    for dn in dict.fromkeys(dns):
        try:
            ok = conn.search(dn, wanted, BASE,
                             attributes=[*ms_ad.USER_ATTRIBUTES, "objectClass"])
        except LDAPException as exc:
            raise DirectoryError("search", f"reading {dn!r} failed: {exc}"[:300]) from None
        entries = [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]
        if not ok or not entries:
            if (conn.result or {}).get("description") not in ("success", "noSuchObject"):
                raise DirectoryError("search", f"reading {dn!r} failed: "
                                               f"{(conn.result or {}).get('description')}")
            continue
        classes = {str(c).lower() for c in (entries[0].get("attributes") or {})
                   .get("objectClass") or []}
        if "group" in classes:
            moved = True
            continue
        user = ms_ad.user_from_entry(entries[0])
        if user is not None and in_scope(user.dn):
            users.append(user)
    return Resolved(users, moved)


def touched_members(changes: Sequence[GroupChange], closure: Closure) -> list[str]:
    """DNs of the values added to or removed from the groups of ``closure``."""
    out: list[str] = []
    for change in changes:
        if change.guid in closure:
            out.extend(change.added)
            out.extend(change.removed)
    return out


def needs_scan(before: Closure, after: Closure) -> bool:
    """Whether users' mapped groups may have changed beyond the values DirSync named: the
    closure maps some DN or RID to other names than before."""
    return lookup(before) != lookup(after)


# --- stored state -----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupState:
    closure: Closure
    cookie: bytes | None


class GroupStateStore:
    """Reads and writes ``ad_sync_groups`` (the session is the caller's transaction)."""

    @staticmethod
    def load(session: Session, account_id: str) -> GroupState | None:
        row = session.get(AdSyncGroups, account_id)
        if row is None:
            return None
        closure = {guid: ClosureGroup(g["dn"], g.get("rid"), tuple(g.get("names") or ()))
                   for guid, g in (row.closure or {}).items()}
        return GroupState(closure, row.cookie)

    @staticmethod
    def save(session: Session, account_id: str, state: GroupState) -> None:
        body = {guid: {"dn": g.dn, "rid": g.rid, "names": list(g.names)}
                for guid, g in state.closure.items()}
        row = session.get(AdSyncGroups, account_id)
        if row is None:
            session.add(AdSyncGroups(account_id=account_id, closure=body, cookie=state.cookie))
        else:
            row.closure, row.cookie = body, state.cookie
