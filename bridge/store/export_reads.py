"""The reads of an account's data export: every record of one account as plain JSON-able
dicts, streamed (server-side cursors on PostgreSQL, SQLite's own cursors), so memory stays
flat whatever the account's size.

Each function takes the session of ONE read transaction (the caller's snapshot) and yields
records in a stable order. What is left out on purpose: every secret (the AD bind password,
the Okta client secret, SCIM key hashes), personal PINs (they let anyone join a meeting as
the user, and the archive can be downloaded by anyone holding its link), session state and
raw SCIM attributes (whatever a client sent; the export carries what the bridge decided).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from bridge.store.ad_models import AdDirectory
from bridge.store.models import (
    Account,
    AccountOpenIdConfig,
    ApiKey,
    AuditEvent,
    DirectoryGroup,
    Domain,
    EmailAddress,
    ExternalIdentity,
    GroupMapping,
    GroupMembership,
    User,
)
from bridge.store.usage_models import TierChange

# Rows fetched per round trip.
PAGE = 1000


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the audit trail writes times."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def account_record(session: Session, account_id: str) -> dict[str, Any] | None:
    """The account itself and its settings (None when it does not exist)."""
    account = session.get(Account, account_id)
    if account is None:
        return None
    return {"accountId": account.id, "name": account.name,
            "directoryKind": account.directory_kind,
            "defaultLicense": account.default_license,
            "remoteControlEnabled": account.remote_control_enabled,
            "callMeEnabled": account.call_me_enabled, "createdAt": iso(account.created_at)}


def tier_history(changes: Iterable[Any], account_id: str) -> list[dict[str, Any]]:
    """One user's tier history in the account, oldest first: ``[{"tier", "from", "to"}]``
    (``to`` None for the tier held now; ``tier`` None for a time the user held no tier in
    the account, e.g. a directory user in no mapped group).

    ``changes`` are the user's ``tier_changes`` rows ``(user_id, changed_at, id,
    account_id, tier)`` in any order. Each row holds until the next one; only the periods
    spent in ``account_id`` are given (where the user was before or in between, e.g. their
    own trial or another account, is not this account's data: such a period only ends the
    one before it). Periods of no length (two changes at one instant) are dropped, and
    consecutive periods of the same tier are merged.
    """
    ordered = sorted(changes, key=itemgetter(1, 2))
    periods: list[dict[str, Any]] = []
    for row, after in itertools.zip_longest(ordered, ordered[1:]):
        ends = after[1] if after is not None else None
        if row[3] != account_id or (ends is not None and ends <= row[1]):
            continue
        last = periods[-1] if periods else None
        if last is not None and last["tier"] == row[4] and last["to"] == iso(row[1]):
            last["to"] = iso(ends)
            continue
        periods.append({"tier": row[4], "from": iso(row[1]), "to": iso(ends)})
    return periods


class _ByUser:
    """One streamed query's rows ``(user_id, ...)`` sorted by user id, taken user by user
    in the same order as the users themselves (a merge join in the reader: one query per
    kind of detail for the whole account, whatever the planner thinks of IN lists)."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._groups = itertools.groupby(rows, key=itemgetter(0))
        self._head = next(self._groups, None)

    def take(self, user_id: str) -> list[Any]:
        """The rows of ``user_id`` ([] when none). Calls come in ascending id order."""
        while self._head is not None and self._head[0] < user_id:
            self._head = next(self._groups, None)
        if self._head is None or self._head[0] != user_id:
            return []
        found = list(self._head[1])
        self._head = next(self._groups, None)
        return found


def _ordered(session: Session, column: Any) -> Any:
    """``column`` for ORDER BY in code-point order, the order Python compares strings in
    (PostgreSQL's default collation may order differently; SQLite's is already binary)."""
    return column.collate("C") if session.get_bind().dialect.name == "postgresql" else column


_USER_COLUMNS = (User.id, User.primary_email, User.display_name, User.user_name, User.status,
                 User.tier, User.privacy, User.invited_at, User.joined_at, User.created_at,
                 User.last_active_at, User.in_directory, User.directory_enabled,
                 User.directory_deleted_at, User.meetings_attended, User.meetings_organized,
                 User.chat_messages_sent)


def users(session: Session, account_id: str) -> Iterator[dict[str, Any]]:
    """Every user of the account by id: addresses, status, tier and tier history, groups,
    identities at the directories, dates and activity counters.

    Five streamed queries read side by side (users, tier changes, aliases, group names,
    identities, each in user id order alone, which the user id indexes give without a
    sort on SQLite; the few values of one user are sorted here), so the cost grows
    linearly with the account."""
    conn = session.connection()
    in_account = select(User.id).where(User.account_id == account_id)

    def stream(query: Any) -> Iterator[Any]:
        return iter(conn.execute(query.execution_options(yield_per=PAGE)))

    history = _ByUser(stream(
        select(TierChange.user_id, TierChange.changed_at, TierChange.id,
               TierChange.account_id, TierChange.tier)
        .where(TierChange.user_id.in_(in_account))
        .order_by(_ordered(session, TierChange.user_id))))
    aliases = _ByUser(stream(
        select(EmailAddress.user_id, EmailAddress.address)
        .where(EmailAddress.user_id.in_(in_account), EmailAddress.is_primary.is_(False))
        .order_by(_ordered(session, EmailAddress.user_id))))
    groups = _ByUser(stream(
        select(GroupMembership.user_id, DirectoryGroup.name)
        .join(DirectoryGroup, DirectoryGroup.id == GroupMembership.group_id)
        .where(DirectoryGroup.account_id == account_id)
        .order_by(_ordered(session, GroupMembership.user_id))))
    identities = _ByUser(stream(
        select(ExternalIdentity.user_id, ExternalIdentity.id, ExternalIdentity.source,
               ExternalIdentity.issuer, ExternalIdentity.external_id)
        .where(ExternalIdentity.user_id.in_(in_account))
        .order_by(_ordered(session, ExternalIdentity.user_id))))
    rows = conn.execute(select(*_USER_COLUMNS).where(User.account_id == account_id)
                        .order_by(_ordered(session, User.id))
                        .execution_options(yield_per=PAGE))
    for u in rows:
        yield {
            "userId": u.id, "primaryEmail": u.primary_email,
            "aliases": sorted(row[1] for row in aliases.take(u.id)),
            "displayName": u.display_name, "userName": u.user_name, "status": u.status,
            "tier": u.tier, "tierHistory": tier_history(history.take(u.id), account_id),
            "groups": sorted(row[1] for row in groups.take(u.id)),
            "identities": [{"source": row[2], "issuer": row[3], "externalId": row[4]}
                           for row in sorted(identities.take(u.id),
                                             key=itemgetter(1))],
            "privacy": u.privacy, "invitedAt": iso(u.invited_at),
            "joinedAt": iso(u.joined_at), "createdAt": iso(u.created_at),
            "lastActiveAt": iso(u.last_active_at), "inDirectory": u.in_directory,
            "directoryEnabled": u.directory_enabled,
            "directoryDeletedAt": iso(u.directory_deleted_at),
            "meetingsAttended": u.meetings_attended,
            "meetingsOrganized": u.meetings_organized,
            "chatMessagesSent": u.chat_messages_sent,
        }


def groups(session: Session, account_id: str) -> Iterator[dict[str, Any]]:
    """The account's directory groups (pushed by SCIM or read from AD) and their sizes."""
    members = (select(GroupMembership.group_id, func.count().label("n"))
               .group_by(GroupMembership.group_id).subquery())
    rows = session.execute(
        select(DirectoryGroup.id, DirectoryGroup.name, DirectoryGroup.external_id,
               DirectoryGroup.created_at, func.coalesce(members.c.n, 0))
        .outerjoin(members, members.c.group_id == DirectoryGroup.id)
        .where(DirectoryGroup.account_id == account_id).order_by(DirectoryGroup.name_lower)
        .execution_options(yield_per=PAGE))
    for group_id, name, external_id, created_at, count in rows:
        yield {"groupId": group_id, "name": name, "externalId": external_id,
               "createdAt": iso(created_at), "members": count}


def group_mappings(session: Session, account_id: str) -> Iterator[dict[str, Any]]:
    """The account's group → tier mappings (ListGroups)."""
    for name, tier, created_at in session.execute(
            select(GroupMapping.name, GroupMapping.tier, GroupMapping.created_at)
            .where(GroupMapping.account_id == account_id).order_by(GroupMapping.name_lower)):
        yield {"groupName": name, "tier": tier, "createdAt": iso(created_at)}


def domains(session: Session, account_id: str) -> Iterator[dict[str, Any]]:
    """The account's claimed domains and their verification state."""
    for d in session.scalars(select(Domain).where(Domain.account_id == account_id)
                             .order_by(Domain.name)):
        yield {"domain": d.name, "status": d.status, "createdAt": iso(d.created_at),
               "verifiedAt": iso(d.verified_at), "lastCheckedAt": iso(d.last_checked_at)}


def directory_settings(session: Session, account_id: str) -> Iterator[dict[str, Any]]:
    """The account's directory settings WITHOUT secrets: the AD connection (no bind
    password), the Okta configuration (no client secret), the SCIM keys (ids and dates,
    never the key or its hash)."""
    ad = session.get(AdDirectory, account_id)
    if ad is not None:
        yield {"kind": "ActiveDirectory", "ldapUrl": ad.ldap_url, "startTls": ad.start_tls,
               "baseDn": ad.base_dn, "groupBaseDn": ad.group_base_dn,
               "userFilter": ad.user_filter, "bindDn": ad.bind_dn,
               "tlsServerName": ad.tls_server_name,
               "caCertificatePem": ad.ca_certificate_pem, "createdAt": iso(ad.created_at),
               "lastSyncAt": iso(ad.last_sync_at),
               "lastFullSyncAt": iso(ad.last_full_sync_at), "lastStatus": ad.last_status}
    okta = session.get(AccountOpenIdConfig, account_id)
    if okta is not None:
        yield {"kind": "OktaOpenIdConfig", "issuer": okta.issuer, "clientId": okta.client_id,
               "createdAt": iso(okta.created_at), "updatedAt": iso(okta.updated_at)}
    for key_id, created_at, last_used_at in session.execute(
            select(ApiKey.id, ApiKey.created_at, ApiKey.last_used_at)
            .where(ApiKey.account_id == account_id).order_by(ApiKey.created_at, ApiKey.id)):
        yield {"kind": "ScimApiKey", "keyId": key_id, "createdAt": iso(created_at),
               "lastUsedAt": iso(last_used_at)}


def audit_events(session: Session, account_id: str) -> Iterator[str]:
    """The account's audit events in time order, as the trail stores them (already
    redacted when written), as far as the caller's snapshot sees them: each event's JSON
    text as stored (one line; not decoded and encoded again)."""
    query = (select(cast(AuditEvent.body, Text)).where(AuditEvent.account_id == account_id)
             .order_by(AuditEvent.event_time, AuditEvent.seq))
    for (body,) in session.connection().execute(query.execution_options(yield_per=PAGE)):
        yield body
