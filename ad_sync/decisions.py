"""The AD sync's decisions, without I/O: whether a run must be full, whether the
mass-change guard stops it, which users changed (fingerprints) and their mapped groups, and
the DN helpers they rest on. :mod:`ad_sync.sync` reads the directory and applies; the
rules here are unit-tested on their own (``tests/unit/ad_sync/test_decisions.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ad_sync.records import KnownUser, fingerprint
from ad_sync.vendor import ms_ad

# Below this many suspensions only the absolute limit applies: in a small directory two
# leavers are not a mass change.
PERCENT_RULE_MIN = 10


class MassChangeStopped(Exception):
    """The run would suspend ``count`` of ``known`` users, over the mass-change limit."""

    def __init__(self, count: int, known: int) -> None:
        super().__init__(f"the run would suspend {count} of {known} users")
        self.count, self.known = count, known


def mass_change_guard(count: int, known: int, *, max_users: int, max_percent: float,
                      allowed: bool = False, allowed_up_to: int | None = None) -> None:
    """Raise MassChangeStopped when a run would suspend ``count`` of ``known`` users: more
    than ``max_users``, or (from :data:`PERCENT_RULE_MIN` suspensions on) more than
    ``max_percent`` % of them. ``allowed`` (the operator's ``--allow-mass-change``) and a
    run that suspends nobody always pass; ``allowed_up_to`` bounds ``allowed`` (the count
    an administrator confirmed: a run that would now suspend more stops again)."""
    if count == 0 or (allowed and (allowed_up_to is None or count <= allowed_up_to)):
        return
    over_pct = (count >= PERCENT_RULE_MIN and known > 0
                and count * 100.0 / known > max_percent)
    if count > max_users or over_pct:
        raise MassChangeStopped(count, known)


def needs_full(state: Any, map_fp: str) -> str | None:
    """Why an incremental run must be full, from the bridge's side (None: it need not)."""
    if state.highest_usn is None or state.invocation_id is None:
        return "no watermark yet"
    if state.full_run_started_usn is not None:
        return "the previous full sync did not finish"
    if state.mappings_fingerprint != map_fp:
        return "the mapped groups changed"
    return None


def dc_changed(state: Any, dse: ms_ad.RootDse) -> str | None:
    """Why the watermark does not hold for this DC (None: it does)."""
    if state.invocation_id != dse.invocation_id or state.dc_name != dse.dc_name:
        return "the domain controller or its database changed (invocationID)"
    if dse.highest_usn < state.highest_usn:
        return "the DC's USN went backwards"
    return None


@dataclass(frozen=True)
class Change:
    """A directory user the run applies: its mapped groups, fingerprint and what the
    bridge knew of it before."""

    user: ms_ad.DirectoryUser
    groups: tuple[str, ...]
    fingerprint: str
    known: KnownUser | None


def groups_for(user: ms_ad.DirectoryUser, closure: Mapping[str, frozenset[str]],
               shared: dict[frozenset[str], tuple[str, ...]]) -> tuple[str, ...]:
    """The mapped group names ``user`` counts for: its direct groups (``memberOf``) and
    its primary group (``primaryGroupID``, never listed in ``memberOf``) looked up in the
    mapped groups' ``closure`` (normalised DN or ``rid:<RID>`` → names). Equal tuples are
    shared (``shared``), so a page of users holds few distinct ones."""
    names: set[str] = set()
    for dn in user.member_of:
        names.update(closure.get(norm_dn(dn), ()))
    if user.primary_group_id is not None:
        names.update(closure.get(f"rid:{user.primary_group_id}", ()))
    key = frozenset(names)
    found = shared.get(key)
    if found is None:
        found = shared[key] = tuple(sorted(names))
    return found


def classify(users: Sequence[ms_ad.DirectoryUser],
             closure: Mapping[str, frozenset[str]], known: Mapping[str, KnownUser]
             ) -> tuple[list[Change], list[str]]:
    """Split users into changes and the GUIDs of the unchanged: a user is unchanged when
    the bridge already holds it, present, with the same fingerprint (addresses, name,
    enabled flag, mapped groups) and a profile."""
    changes: list[Change] = []
    unchanged: list[str] = []
    shared: dict[frozenset[str], tuple[str, ...]] = {}
    for user in users:
        groups = groups_for(user, closure, shared)
        fp = fingerprint(user.mail, user.aliases, user.display_name, user.enabled, groups)
        prior = known.get(user.guid)
        if (prior is not None and prior.present and prior.fingerprint == fp
                and prior.user_id is not None):
            unchanged.append(user.guid)
        else:
            changes.append(Change(user, groups, fp, prior))
    return changes, unchanged


def disables(ch: Change) -> bool:
    """Whether applying ``ch`` suspends a user that was enabled."""
    prior = ch.known
    return bool(prior is not None and prior.present and prior.enabled and not ch.user.enabled)


def facts(ch: Change) -> dict[str, Any]:
    """What a staged full run stores of a change (JSON)."""
    u = ch.user
    return {"dn": u.dn, "mail": u.mail, "aliases": list(u.aliases),
            "displayName": u.display_name, "enabled": u.enabled, "groups": list(ch.groups),
            "fingerprint": ch.fingerprint}


def change_from_facts(guid: str, facts: Mapping[str, Any], known: KnownUser | None
                      ) -> Change:
    """The change :func:`facts` recorded (staged full runs keep pages as facts)."""
    user = ms_ad.DirectoryUser(guid=guid, dn=facts["dn"], mail=facts["mail"],
                               aliases=tuple(facts["aliases"]),
                               display_name=facts["displayName"], enabled=facts["enabled"],
                               usn_changed=None)
    return Change(user, tuple(facts["groups"]), facts["fingerprint"], known)


def rid(entry: Mapping[str, Any]) -> int | None:
    raw = (entry.get("raw_attributes") or {}).get("objectSid") or []
    return ms_ad.rid_from_sid(raw[0]) if raw else None


def in_scope(dn: str, base_dn: str) -> bool:
    """Whether ``dn`` lies at or below ``base_dn`` (DNs compare case-insensitively)."""
    d, b = norm_dn(dn), norm_dn(base_dn)
    return d == b or d.endswith("," + b)


def norm_dn(dn: str) -> str:
    return ",".join(part.strip() for part in dn.lower().split(","))


def escape(value: str) -> str:
    from ldap3.utils.conv import escape_filter_chars

    return str(escape_filter_chars(value))
