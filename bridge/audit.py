"""The audit trail: one append-only event per admin call, SCIM change, sync change and
sign-in decision, shaped like the guide's CloudTrail entry.

Events are written with :func:`record` inside the same session (transaction) as the change
they describe. Every value passes through :func:`redact` first, so keys, passwords, client
secrets and tokens never reach the trail.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO, TypedDict, Unpack

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from bridge.domain import Actor
from bridge.observability.context import current_request_id
from bridge.store.models import AuditEvent, new_id, utcnow

EVENT_SOURCE = "chime.bridge.local"
EVENT_VERSION = "1.05"
REDACTED = "***"
# Events one filtered LookupEvents page examines at most (see :func:`lookup`).
MAX_SCANNED = 5000

# Substrings of parameter names whose values are secrets (compared case-insensitively,
# ignoring separators, so "ClientSecret", "client_secret" and "x-api-key" all match).
_SECRET_MARKERS = ("password", "secret", "token", "apikey", "privatekey", "authorization",
                   "credential", "cookie", "signature", "personalpin")
_NOT_SECRET = {"tokentype"}


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    flat = key.lower().replace("_", "").replace("-", "")
    if flat in _NOT_SECRET:
        return False
    return any(marker in flat for marker in _SECRET_MARKERS)


_PLAIN = (str, int, float, bool, type(None))


# scheme://user:password@ — credentials written into a URL, whatever the field is called.
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@")


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with every secret-named field's value replaced by ``***``,
    and the user name and password of any URL in a string (``ldaps://svc:pw@dc``) too."""
    if type(value) in _PLAIN:  # the common leaf first: bulk events carry thousands
        if type(value) is str and "://" in value:
            return _URL_USERINFO.sub(rf"\1{REDACTED}@", value)
        return value
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _is_secret_key(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def user_identity(actor: Actor) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": actor.type, "principalId": actor.principal_id}
    if actor.name:
        identity["userName"] = actor.name
    if actor.access_key_id:
        identity["accessKeyId"] = actor.access_key_id
    identity.update(dict(actor.extra))
    return identity


# Account ids are UUIDs (36 characters), the width of the audit column.
ACCOUNT_ID_MAX = 36


class EventFields(TypedDict, total=False):
    """The optional fields of one event, as :func:`event_row` takes them."""

    account_id: str | None
    request_parameters: Mapping[str, Any] | None
    response_elements: Mapping[str, Any] | None
    error_code: str | None
    error_message: str | None
    event_type: str


def record(session: Session, actor: Actor, event_name: str,
           **fields: Unpack[EventFields]) -> AuditEvent:
    """Add one audit event to ``session`` (committed with the caller's transaction)."""
    event = AuditEvent(**event_row(actor, event_name, **fields))
    session.add(event)
    return event


def event_row(
    actor: Actor,
    event_name: str,
    *,
    account_id: str | None = None,
    request_parameters: Mapping[str, Any] | None = None,
    response_elements: Mapping[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    event_type: str = "AwsApiCall",
) -> dict[str, Any]:
    """The column values of one audit event, exactly as :func:`record` writes it (redacted),
    for callers that insert many events in one statement (``insert(AuditEvent)``).

    An ``account_id`` that cannot be an account's id (longer than the column: a client's
    garbage in a path) is not filed under an account; the request parameters keep what
    the client sent."""
    return EventTemplate(actor, event_name, account_id=account_id,
                         event_type=event_type).row(request_parameters, response_elements,
                                                    error_code, error_message)


class EventTemplate:
    """The parts of an event that one actor's calls of one event name share (the actor's
    identity, the account, the request's id when there is one), computed once, for a
    caller that writes many such events (the AD sync's bulk page: one per user).
    :meth:`row` gives exactly what :func:`event_row` gives for the same arguments (it is
    what :func:`event_row` uses)."""

    def __init__(self, actor: Actor, event_name: str, *, account_id: str | None = None,
                 event_type: str = "AwsApiCall") -> None:
        if account_id is not None and len(account_id) > ACCOUNT_ID_MAX:
            account_id = None
        self._actor, self._event_name, self._event_type = actor, event_name, event_type
        self._account_id = account_id
        # Shared by this template's rows (each row is serialised on its own, never mutated).
        self._identity = user_identity(actor)

    def row(self, request_parameters: Mapping[str, Any] | None = None,
            response_elements: Mapping[str, Any] | None = None,
            error_code: str | None = None, error_message: str | None = None
            ) -> dict[str, Any]:
        """One event's column values (redacted), with its own time and event id."""
        actor, event_name, account_id = self._actor, self._event_name, self._account_id
        now = utcnow()
        event_id = new_id()  # creation order: the unique index on it takes appends
        body: dict[str, Any] = {
            "eventVersion": EVENT_VERSION,
            "userIdentity": self._identity,
            "eventTime": _iso(now),
            "eventSource": EVENT_SOURCE,
            "eventName": event_name,
            "sourceIPAddress": actor.source_ip,
            "userAgent": actor.user_agent,
            "requestParameters": _redact_fields(request_parameters)
            if request_parameters else None,
            "responseElements": _redact_fields(response_elements)
            if response_elements else None,
            "errorCode": error_code,
            "errorMessage": error_message,
            # The request's id (X-Request-Id) when the event belongs to an HTTP request.
            "requestID": actor.request_id or current_request_id() or str(uuid.uuid4()),
            "eventID": event_id,
            "eventType": self._event_type,
            "recipientAccountId": account_id,
        }
        return {
            "event_id": event_id,
            "event_time": now,
            "event_name": event_name,
            "event_source": EVENT_SOURCE,
            "principal_id": actor.principal_id,
            "account_id": account_id,
            "organisation": actor.organisation,
            "error_code": error_code,
            "body": body,
        }


def _redact_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``redact(dict(fields))`` — the same result, with the common leaves (a string, a
    number, a list of strings) handled here instead of a call of :func:`redact` each: a
    bulk page writes thousands of events."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        key = str(k)
        kind = type(v)
        if _is_secret_key(key) and v not in (None, ""):
            out[key] = REDACTED
        elif kind is str:
            out[key] = _URL_USERINFO.sub(rf"\1{REDACTED}@", v) if "://" in v else v
        elif kind in _PLAIN:
            out[key] = v
        elif kind is list and all(type(x) is str and "://" not in x for x in v):
            out[key] = list(v)
        else:
            out[key] = redact(v)
    return out


@dataclass(frozen=True)
class EventQuery:
    """Filters of LookupEvents; ``after_seq`` is the paging cursor (exclusive): the next
    page starts after it in the query's order (oldest first, or newest first with
    ``newest_first``, the console's Event history)."""

    event_name: str | None = None
    principal_id: str | None = None
    account_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    after_seq: int | None = None
    limit: int = 50
    newest_first: bool = False


def _past(query: EventQuery, cursor: int) -> Any:
    """The condition "after ``cursor`` in the query's order"."""
    return AuditEvent.seq < cursor if query.newest_first else AuditEvent.seq > cursor


def count_since(session: Session, principal_id: str, since: datetime, *, cap: int) -> int:
    """How many events ``principal_id`` caused at or after ``since``, counting no further
    than ``cap`` (an indexed range on ``ix_audit_events_principal_time``, at most ``cap``
    entries read however busy the principal was)."""
    recent = (select(AuditEvent.seq).where(AuditEvent.principal_id == principal_id,
                                           AuditEvent.event_time >= since)
              .limit(cap).subquery())
    return int(session.scalar(select(func.count()).select_from(recent)) or 0)


def _matching(query: EventQuery) -> Select[Any]:
    """The events matching ``query``'s filters, in its order (no cursor, no limit)."""
    stmt = select(AuditEvent).order_by(AuditEvent.seq.desc() if query.newest_first
                                       else AuditEvent.seq)
    if query.event_name:
        stmt = stmt.where(AuditEvent.event_name == query.event_name)
    if query.principal_id:
        stmt = stmt.where(AuditEvent.principal_id == query.principal_id)
    if query.account_id:
        stmt = stmt.where(AuditEvent.account_id == query.account_id)
    if query.start_time:
        stmt = stmt.where(AuditEvent.event_time >= query.start_time)
    if query.end_time:
        stmt = stmt.where(AuditEvent.event_time <= query.end_time)
    return stmt


def unfiled_visible_to(organisation: str | None,
                       operator_organisation: str) -> Callable[[str | None], bool]:
    """Who may read an event filed under no account (admin users' changes, unmanaged
    users' sign-ins, the CLI operator's and the jobs' events): the acting administrator's
    own organisation; an event of no organisation, only the operator's organisation (the
    setting ``admin_aws_account_id``, the service's own admins)."""
    def visible(event_organisation: str | None) -> bool:
        if event_organisation is None:
            return organisation == operator_organisation
        return event_organisation == organisation
    return visible


def lookup(session: Session, query: EventQuery, *,
           visible: Callable[[str], bool] | None = None,
           unfiled: Callable[[str | None], bool] | None = None,
           max_scanned: int = MAX_SCANNED) -> tuple[list[dict[str, Any]], int | None]:
    """Events matching ``query`` in its order; returns (events, cursor of the next page).

    ``visible(account_id)`` hides the events of the accounts it refuses; ``unfiled
    (organisation)`` those filed under no account that it refuses (None: kept; see
    :func:`unfiled_visible_to`). Then at most ``max_scanned`` events are examined for one
    page, so a page may hold fewer than ``query.limit`` events, even none, and still come
    with a cursor: follow cursors until there is none.
    """
    stmt = _matching(query)
    if query.after_seq is not None:
        stmt = stmt.where(_past(query, query.after_seq))
    if visible is None and unfiled is None:
        rows = list(session.scalars(stmt.limit(query.limit + 1)))
        next_cursor = rows[query.limit - 1].seq if len(rows) > query.limit else None
        return [r.body for r in rows[: query.limit]], next_cursor
    kept, next_cursor = _visible_seqs(session, stmt, query, visible or (lambda _: True),
                                      unfiled or (lambda _: True), max_scanned)
    bodies = dict(session.execute(select(AuditEvent.seq, AuditEvent.body)
                                  .where(AuditEvent.seq.in_(kept))).tuples().all())
    return [bodies[seq] for seq in kept], next_cursor


def _visible_seqs(session: Session, stmt: Select[Any], query: EventQuery,
                  visible: Callable[[str], bool], unfiled: Callable[[str | None], bool],
                  max_scanned: int) -> tuple[list[int], int | None]:
    """Up to ``limit`` sequence numbers of visible events (reading only the sequence,
    account and organisation columns, in batches, at most ``max_scanned`` rows); and the
    next cursor."""
    keys = stmt.with_only_columns(AuditEvent.seq, AuditEvent.account_id,
                                  AuditEvent.organisation)
    limit = query.limit
    kept: list[int] = []
    scanned, cursor = 0, None
    while scanned < max_scanned:
        size = min(max(limit + 1, 100), max_scanned - scanned)
        batch = keys if cursor is None else keys.where(_past(query, cursor))
        rows = session.execute(batch.limit(size + 1)).tuples().all()  # +1: any left?
        for seq, account_id, organisation in rows[:size]:
            scanned, cursor = scanned + 1, seq
            if unfiled(organisation) if account_id is None else visible(account_id):
                if len(kept) == limit:
                    return kept, kept[-1]  # one more exists: the page is full
                kept.append(seq)
        if len(rows) <= size:
            return kept, None  # nothing left
    return kept, cursor  # scanned enough for one page; continue after the last one read


def iter_events(session: Session, since: datetime | None = None,
                batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every event since ``since``, oldest first, read in batches (for export)."""
    cursor: int | None = None
    while True:
        events, cursor = lookup(
            session, EventQuery(start_time=since, after_seq=cursor, limit=batch)
        )
        yield from events
        if cursor is None:
            return


def export_jsonl(session: Session, out: TextIO, since: datetime | None = None) -> int:
    """Write events as JSON lines to ``out``; returns how many were written."""
    count = 0
    for event in iter_events(session, since):
        out.write(json.dumps(event, sort_keys=True) + "\n")
        count += 1
    return count
