"""The usage room: meeting records and chat counts from the meetings and chat service.

A batch (at most :data:`MAX_RECORDS` records) is accepted record by record: a record that
cannot be accepted is refused with its reason and the rest are written — all of them, with
ONE ``PutUsageEvents`` audit event, in one transaction. Records are idempotent: a meeting is
keyed by the service's meeting id (the same record again is ``Unchanged``; a different one
``Replaced`` — the correction wins), a chat count by (user, day) (the day's total; a re-post
replaces it). People are resolved through the address table the whole engine uses (any of a
user's addresses, aliases included, or the user id); an attendee nobody owns is a guest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bridge.domain import Actor
from bridge.domain.usage import License, end_day
from bridge.engine.room import Room, chunks
from bridge.engine.usage_results import (
    ChatCountInput,
    MeetingInput,
    UsageOutcome,
)
from bridge.errors import BridgeError, NotFound, ValidationError
from bridge.store import licenses
from bridge.store.models import EmailAddress, User
from bridge.store.repository import Repository
from bridge.store.usage_models import ChatCount, Meeting, MeetingAttendee, UsagePendingDay
from bridge.store.usage_models import table as _t

MAX_RECORDS = 100
# A record may end a little in the future of the bridge's clock (clock skew between hosts).
FUTURE_SKEW = timedelta(minutes=5)
EVENT = "PutUsageEvents"


def fingerprint(record: MeetingInput) -> str:
    """A digest of a meeting record: equal for a retry, different for a correction (the
    repr of its values, times in UTC, in a fixed order)."""
    text = repr((record.meeting_id, record.conference_id, record.organizer, record.scheduled,
                 record.started_at, record.ended_at, record.recording_events,
                 [(a.reference, a.join_method.value, a.client_type, a.joined_at, a.left_at,
                   a.feedback) for a in record.attendees]))
    return hashlib.sha256(text.encode()).hexdigest()


def _person_key(reference: str | None, resolved: tuple[str, str | None] | None,
                position: int) -> tuple[int, str | int]:
    """Who an attendee row is, for counting distinct attendees: the user, else the address,
    else the row itself (an anonymous dial-in is one person)."""
    if resolved is not None:
        return (0, resolved[0])
    if reference is not None:
        return (1, reference.lower())
    return (2, position)


class Usage(Room):
    """Ingestion of usage, and the tier history the billing rule reads."""

    def license_history(self, user_id: str) -> list[License]:
        """Every license the user held, oldest first (the tier history)."""
        return self._read(lambda repo: licenses.timelines(
            repo.session, [user_id], datetime.max.replace(tzinfo=self._now().tzinfo))
            .get(user_id, []), write_lock=False)

    def put_usage(self, actor: Actor, meetings: Sequence[MeetingInput],
                  chats: Sequence[ChatCountInput], *,
                  refused: Sequence[UsageOutcome] = ()) -> list[UsageOutcome]:
        """Accept a batch; returns one outcome per record (``refused``: the records the
        door could not parse, reported in the same answer and event). Raises
        ValidationError for more than :data:`MAX_RECORDS` records (nothing accepted)."""
        if len(meetings) + len(chats) + len(refused) > MAX_RECORDS:
            raise ValidationError(f"At most {MAX_RECORDS} records per request.")

        def work(repo: Repository) -> tuple[list[UsageOutcome], dict[str, Any]]:
            outcomes = list(refused)
            outcomes += self._meetings(repo.session, meetings)
            outcomes += self._chats(repo.session, chats)
            counts: dict[str, int] = {}
            for outcome in outcomes:
                key = outcome.status or "Refused"
                counts[key] = counts.get(key, 0) + 1
            return outcomes, {"counts": counts}

        params = {"meetingIds": [m.meeting_id for m in meetings],
                  "chatMessageCounts": len(chats), "refusedAtDoor": len(refused)}
        return self._run(actor, EVENT, params, work)

    # --- meetings -----------------------------------------------------------------------

    def _meetings(self, session: Session, records: Sequence[MeetingInput]
                  ) -> list[UsageOutcome]:
        if not records:
            return []
        now = self._now()
        people = _resolve(session, [r.organizer for r in records] + [
            a.reference for r in records for a in r.attendees if a.reference])
        ids = [r.meeting_id for r in records]
        stored: dict[str, tuple[str, date]] = {}
        for chunk in chunks(sorted(set(ids))):
            for mid, digest, day in session.execute(
                    select(Meeting.meeting_id, Meeting.fingerprint, Meeting.end_day)
                    .where(Meeting.meeting_id.in_(chunk))).tuples():
                stored[mid] = (digest, day)
        outcomes: list[UsageOutcome] = []
        seen: set[str] = set()
        replaced: list[str] = []
        rows: list[dict[str, Any]] = []
        attendee_rows: list[dict[str, Any]] = []
        days: set[date] = set()
        for index, record in enumerate(records):
            def refuse(error: BridgeError, index: int = index,
                       record: MeetingInput = record) -> None:
                outcomes.append(UsageOutcome("Meeting", index, record.meeting_id, error=error))

            if record.meeting_id in seen:
                refuse(ValidationError(f"Meeting {record.meeting_id} appears twice in this "
                                       "request."))
                continue
            seen.add(record.meeting_id)
            if record.ended_at > now + FUTURE_SKEW:
                refuse(ValidationError("EndTime is in the future."))
                continue
            organizer = people.get(_key(record.organizer))
            if organizer is None:
                refuse(NotFound(f"The organizer {record.organizer} is not a user."))
                continue
            digest = fingerprint(record)
            previous = stored.get(record.meeting_id)
            if previous is not None and previous[0] == digest:
                outcomes.append(UsageOutcome("Meeting", index, record.meeting_id,
                                             status="Unchanged"))
                continue
            if previous is not None:
                replaced.append(record.meeting_id)
                days.add(previous[1])  # a correction may move the meeting to another day
            row, attendees = _meeting_rows(record, organizer, people, digest, now)
            rows.append(row)
            attendee_rows.extend(attendees)
            days.add(row["end_day"])
            outcomes.append(UsageOutcome("Meeting", index, record.meeting_id,
                                         status="Replaced" if previous else "Created"))
        for chunk in chunks(replaced):
            session.execute(delete(MeetingAttendee).where(MeetingAttendee.meeting_id.in_(chunk)))
            session.execute(delete(Meeting).where(Meeting.meeting_id.in_(chunk)))
        if rows:
            session.execute(insert(_t(Meeting)), rows)
        if attendee_rows:
            session.execute(insert(_t(MeetingAttendee)), attendee_rows)
        _mark_pending(session, days)
        return outcomes

    # --- chat counts ----------------------------------------------------------------------

    def _chats(self, session: Session, records: Sequence[ChatCountInput]
               ) -> list[UsageOutcome]:
        if not records:
            return []
        people = _resolve(session, [r.user for r in records])
        outcomes: list[UsageOutcome] = []
        wanted: dict[tuple[str, date], tuple[int, ChatCountInput, str | None]] = {}
        for index, record in enumerate(records):
            record_id = f"{record.user}@{record.day.isoformat()}"
            person = people.get(_key(record.user))
            if person is None:
                outcomes.append(UsageOutcome("ChatMessageCount", index, record_id,
                                             error=NotFound(f"{record.user} is not a user.")))
                continue
            if (person[0], record.day) in wanted:
                outcomes.append(UsageOutcome("ChatMessageCount", index, record_id,
                                             error=ValidationError(
                                                 "The same user and day appear twice in "
                                                 "this request.")))
                continue
            wanted[(person[0], record.day)] = (index, record, person[1])
        current: dict[tuple[str, date], int] = {}
        keys = list(wanted)
        for chunk in chunks(keys):
            for uid, day, messages in session.execute(
                    select(ChatCount.user_id, ChatCount.day, ChatCount.messages)
                    .where(tuple_(ChatCount.user_id, ChatCount.day).in_(chunk))).tuples():
                current[(uid, day)] = messages
        changed = [k for k in keys if current.get(k) != wanted[k][1].messages]
        for chunk in chunks([k for k in changed if k in current]):
            session.execute(delete(ChatCount).where(
                tuple_(ChatCount.user_id, ChatCount.day).in_(chunk)))
        if changed:
            session.execute(insert(_t(ChatCount)), [
                {"user_id": uid, "day": day, "account_id": wanted[(uid, day)][2],
                 "messages": wanted[(uid, day)][1].messages} for uid, day in changed])
        _mark_pending(session, {day for _uid, day in changed})
        for key in keys:
            index, record, _account = wanted[key]
            status = ("Unchanged" if key not in changed
                      else "Replaced" if key in current else "Created")
            outcomes.append(UsageOutcome("ChatMessageCount", index,
                                         f"{record.user}@{record.day.isoformat()}",
                                         status=status))
        return outcomes


def _key(reference: str) -> str:
    return reference.lower() if "@" in reference else reference


def _resolve(session: Session, references: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """user id or any address (lowercased) → (user id, the user's account id)."""
    addresses = sorted({r.lower() for r in references if "@" in r})
    ids = sorted({r for r in references if "@" not in r})
    out: dict[str, tuple[str, str | None]] = {}
    conn = session.connection()  # Core rows: no ORM loading for a plain look-up
    for chunk in chunks(addresses):
        for address, uid, account in conn.execute(
                select(EmailAddress.address, User.id, User.account_id)
                .join(User, User.id == EmailAddress.user_id)
                .where(EmailAddress.address.in_(chunk))).tuples():
            out[address] = (uid, account)
    for chunk in chunks(ids):
        for uid, account in conn.execute(select(User.id, User.account_id)
                                         .where(User.id.in_(chunk))).tuples():
            out[uid] = (uid, account)
    return out


def _meeting_rows(record: MeetingInput, organizer: tuple[str, str | None],
                  people: Mapping[str, tuple[str, str | None]], digest: str,
                  now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    persons: set[tuple[int, str | int]] = set()
    guests: set[tuple[int, str | int]] = set()
    attendees: list[dict[str, Any]] = []
    for position, attendee in enumerate(record.attendees):
        resolved = people.get(_key(attendee.reference)) if attendee.reference else None
        person = _person_key(attendee.reference, resolved, position)
        persons.add(person)
        if resolved is None:
            guests.add(person)
        attendees.append({
            "meeting_id": record.meeting_id, "position": position,
            "user_id": resolved[0] if resolved else None,
            "account_id": resolved[1] if resolved else None,
            "address": attendee.reference if attendee.reference and "@" in attendee.reference
            else None,
            "join_method": attendee.join_method.value, "client_type": attendee.client_type,
            "join_offset_s": int((attendee.joined_at - record.started_at).total_seconds()),
            "leave_offset_s": int((attendee.left_at - record.started_at).total_seconds()),
            "feedback": attendee.feedback})
    feedback = [a.feedback for a in record.attendees]
    row = {
        "meeting_id": record.meeting_id, "conference_id": record.conference_id,
        "account_id": organizer[1], "organizer_user_id": organizer[0],
        "organizer": record.organizer, "scheduled": record.scheduled,
        "started_at": record.started_at, "ended_at": record.ended_at,
        "end_day": end_day(record.ended_at), "attendee_count": len(persons),
        "guest_count": len(guests),
        "join_methods": ",".join(sorted({a.join_method.value for a in record.attendees})),
        "positive_feedback": feedback.count("positive"),
        "negative_feedback": feedback.count("negative"),
        "recording_events": [{"time": t.isoformat(), "type": kind}
                             for t, kind in sorted(record.recording_events)],
        "fingerprint": digest, "received_at": now}
    return row, attendees


def _mark_pending(session: Session, days: Iterable[date]) -> None:
    """Queue ``days`` for the roll-up (once each)."""
    wanted = [{"day": d} for d in sorted(set(days))]
    if not wanted:
        return
    # ON CONFLICT DO NOTHING: two batches of the same day never clash on the queue.
    dialect = session.get_bind().dialect.name
    stmt = (postgresql.insert(_t(UsagePendingDay)) if dialect == "postgresql"
            else sqlite.insert(_t(UsagePendingDay))).on_conflict_do_nothing()
    session.execute(stmt, wanted)
