"""PutUsageEvents (extension path ``POST /usage-events``): the meetings and chat service
reports meeting records and chat message counts.

The action is in no managed policy: the service's principal holds a custom policy allowing
``chime:PutUsageEvents``. At most 100 records a call (meetings and chat counts together).
Each record is accepted or refused on its own, as BatchCreateAttendee answers: the accepted
ones in ``MeetingRecords`` / ``ChatMessageCounts`` with their ``Status`` (``Created``,
``Replaced`` — a correction of the same meeting id —, ``Unchanged`` — a retry), the refused
ones in ``Errors`` with ``ErrorCode`` and ``ErrorMessage``. One audit event per call.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from bridge.api.errors import ITEM_ERROR_CODES
from bridge.api.framework import ActionContext, action
from bridge.domain import normalize_email
from bridge.domain.usage import JoinMethod
from bridge.engine.usage import MAX_RECORDS
from bridge.engine.usage_results import (
    AttendeeInput,
    ChatCountInput,
    MeetingInput,
    UsageOutcome,
)
from bridge.errors import ValidationError

MAX_ATTENDEES = 1000
MAX_RECORDING_EVENTS = 200
FEEDBACK = ("positive", "negative")
_ID = {"type": "string", "minLength": 1, "maxLength": 128}
_TIME = {"type": "string", "format": "date-time"}
_MEETING_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["MeetingId", "ConferenceId", "Organizer", "StartTime",
                                   "EndTime"],
    "properties": {
        "MeetingId": _ID, "ConferenceId": {"type": "string", "maxLength": 64},
        "Organizer": {"type": "string", "description": "user id or any address of the user"},
        "Scheduled": {"type": "boolean"}, "StartTime": _TIME, "EndTime": _TIME,
        "Attendees": {"type": "array", "maxItems": MAX_ATTENDEES, "items": {
            "type": "object", "required": ["JoinMethod", "JoinTime", "LeaveTime"],
            "properties": {"Attendee": {"type": "string"},
                           "JoinMethod": {"enum": [m.value for m in JoinMethod]},
                           "ClientType": {"type": "string"}, "JoinTime": _TIME,
                           "LeaveTime": _TIME, "Feedback": {"enum": list(FEEDBACK)}}}},
        "RecordingEvents": {"type": "array", "items": {"type": "object", "properties": {
            "Time": _TIME, "Type": {"type": "string"}}}}}}
_CHAT_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["User", "Day", "Messages"],
    "properties": {"User": {"type": "string"}, "Day": {"type": "string", "format": "date"},
                   "Messages": {"type": "integer", "minimum": 0}}}


def _text(record: dict[str, Any], name: str, *, limit: int = 320,
          required: bool = True) -> str | None:
    value = record.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValidationError(f"{name} must be a non-empty string of at most {limit} "
                              "characters.", field=name)
    return value.strip()


def _time(record: dict[str, Any], name: str) -> datetime:
    text = _text(record, name, limit=40)
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time, e.g. "
                              "2026-11-10T13:00:00Z.", field=name) from None
    if value.tzinfo is None:
        raise ValidationError(f"{name} must carry a time zone (UTC: Z).", field=name)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before the year 1 in UTC
        raise ValidationError(f"{name} is outside the years 1-9999 in UTC.",
                              field=name) from None


def _reference(value: str) -> str:
    """A user id as given, an address in its stored form."""
    return normalize_email(value, field_name="Attendee") if "@" in value else value


def parse_meeting(record: Any) -> MeetingInput:
    """One meeting record; ValidationError names what is wrong."""
    if not isinstance(record, dict):
        raise ValidationError("A meeting record must be a JSON object.")
    started, ended = _time(record, "StartTime"), _time(record, "EndTime")
    if ended < started:
        raise ValidationError("EndTime is before StartTime.", field="EndTime")
    scheduled = record.get("Scheduled", False)
    if not isinstance(scheduled, bool):
        raise ValidationError("Scheduled must be true or false.", field="Scheduled")
    raw_attendees = record.get("Attendees", [])
    if not isinstance(raw_attendees, list) or len(raw_attendees) > MAX_ATTENDEES:
        raise ValidationError(f"Attendees must be a list of at most {MAX_ATTENDEES}.",
                              field="Attendees")
    attendees = []
    for item in raw_attendees:
        if not isinstance(item, dict):
            raise ValidationError("Every attendee must be a JSON object.", field="Attendees")
        try:
            method = JoinMethod(str(item.get("JoinMethod")))
        except ValueError:
            raise ValidationError("JoinMethod must be app, dial-in, h323 or sip.",
                                  field="JoinMethod") from None
        feedback = item.get("Feedback")
        if feedback not in (None, *FEEDBACK):
            raise ValidationError("Feedback must be positive or negative.", field="Feedback")
        joined, left = _time(item, "JoinTime"), _time(item, "LeaveTime")
        if left < joined:
            raise ValidationError("LeaveTime is before JoinTime.", field="LeaveTime")
        who = _text(item, "Attendee", required=False)
        attendees.append(AttendeeInput(_reference(who) if who else None, method,
                                       _text(item, "ClientType", limit=64, required=False),
                                       joined, left, feedback))
    raw_events = record.get("RecordingEvents", [])
    if not isinstance(raw_events, list) or len(raw_events) > MAX_RECORDING_EVENTS:
        raise ValidationError(f"RecordingEvents must be a list of at most "
                              f"{MAX_RECORDING_EVENTS}.", field="RecordingEvents")
    events = []
    for event in raw_events:
        if not isinstance(event, dict):
            raise ValidationError("Every recording event must be a JSON object.",
                                  field="RecordingEvents")
        events.append((_time(event, "Time"), str(_text(event, "Type", limit=40))))
    return MeetingInput(str(_text(record, "MeetingId", limit=128)),
                        str(_text(record, "ConferenceId", limit=64)),
                        _reference(str(_text(record, "Organizer"))), scheduled, started,
                        ended, tuple(attendees), tuple(events))


def parse_chat(record: Any) -> ChatCountInput:
    if not isinstance(record, dict):
        raise ValidationError("A chat message count must be a JSON object.")
    user = _reference(str(_text(record, "User")))
    try:
        day = date.fromisoformat(str(_text(record, "Day", limit=10)))
    except ValueError:
        raise ValidationError("Day must be YYYY-MM-DD.", field="Day") from None
    messages = record.get("Messages")
    if isinstance(messages, bool) or not isinstance(messages, int) or not (
            0 <= messages <= 10_000_000):
        raise ValidationError("Messages must be an integer from 0.", field="Messages")
    return ChatCountInput(user, day, messages)


def _record_id(record: Any, *names: str) -> str:
    if isinstance(record, dict):
        parts = [str(record.get(n))[:128] for n in names if record.get(n) is not None]
        return "@".join(parts)
    return ""


@action("PutUsageEvents", "POST", "/usage-events", openapi=True,
        summary="Report ended meetings and chat message counts (the meetings and chat "
                "service; at most 100 records a call; idempotent)",
        request_schema={"type": "object", "properties": {
            "MeetingRecords": {"type": "array", "items": _MEETING_SCHEMA},
            "ChatMessageCounts": {"type": "array", "items": _CHAT_SCHEMA}}},
        response_schema={"type": "object", "properties": {
            "MeetingRecords": {"type": "array", "items": {"type": "object"}},
            "ChatMessageCounts": {"type": "array", "items": {"type": "object"}},
            "Errors": {"type": "array", "items": {"type": "object"}}}})
def put_usage_events(ctx: ActionContext) -> dict[str, Any]:
    body = ctx.body()
    raw_meetings = body.get("MeetingRecords", [])
    raw_chats = body.get("ChatMessageCounts", [])
    if not isinstance(raw_meetings, list) or not isinstance(raw_chats, list):
        raise ValidationError("MeetingRecords and ChatMessageCounts must be lists.")
    if not raw_meetings and not raw_chats:
        raise ValidationError("The request holds no record.")
    if len(raw_meetings) + len(raw_chats) > MAX_RECORDS:
        raise ValidationError(f"At most {MAX_RECORDS} records per request.")
    refused: list[UsageOutcome] = []
    meetings: list[MeetingInput] = []
    meeting_index: list[int] = []
    for index, record in enumerate(raw_meetings):
        try:
            meetings.append(parse_meeting(record))
            meeting_index.append(index)
        except ValidationError as exc:
            refused.append(UsageOutcome("Meeting", index, _record_id(record, "MeetingId"),
                                        error=exc))
    chats: list[ChatCountInput] = []
    chat_index: list[int] = []
    for index, record in enumerate(raw_chats):
        try:
            chats.append(parse_chat(record))
            chat_index.append(index)
        except ValidationError as exc:
            refused.append(UsageOutcome("ChatMessageCount", index,
                                        _record_id(record, "User", "Day"), error=exc))
    outcomes = ctx.mutate(ctx.engine.put_usage, meetings, chats, refused=refused)
    answer: dict[str, list[dict[str, Any]]] = {"MeetingRecords": [], "ChatMessageCounts": [],
                                               "Errors": []}
    at_door = {id(outcome) for outcome in refused}
    for outcome in outcomes:
        # The engine numbers the records it was given; the wire numbers the request's.
        index = outcome.index if id(outcome) in at_door else (
            meeting_index if outcome.kind == "Meeting" else chat_index)[outcome.index]
        if outcome.error is not None:
            answer["Errors"].append({
                "RecordType": outcome.kind, "Index": index, "RecordId": outcome.record_id,
                "ErrorCode": ITEM_ERROR_CODES.get(outcome.error.code, "BadRequest"),
                "ErrorMessage": outcome.error.message})
        else:
            key = "MeetingRecords" if outcome.kind == "Meeting" else "ChatMessageCounts"
            answer[key].append({"Index": index, "RecordId": outcome.record_id,
                                "Status": outcome.status})
    for items in answer.values():
        items.sort(key=lambda item: (item.get("RecordType", ""), item["Index"]))
    return answer
