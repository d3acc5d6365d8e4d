"""The guide's Reports actions and the month's bill (extension paths, OpenAPI-described).

==========================  ==============================================================
ListAccountUsageReports     ``GET /accounts/{id}/usage-reports?start-date&end-date``: the
                            dashboard's figures for the range and its days, paged (FA UM RO)
GetUserActivitySummary      ``GET /accounts/{id}/users/{userId}/activity-summary`` (FA UM RO)
ListMeetingReports          ``GET /accounts/{id}/meeting-reports?start-date&end-date``:
                            meetings that ended in the range, paged (FA UM)
GetMeetingDetails           ``GET /accounts/{id}/meetings/{meetingId}`` (FA UM)
ListMeetingEvents           ``GET /accounts/{id}/meetings/{meetingId}/events``, paged (FA UM)
GetBilling                  ``GET /accounts/{id}/billing?month=YYYY-MM`` (FA)
==========================  ==============================================================

Dates are UTC days, both ends included (``YYYY-MM-DD``).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.api.shapes import decode_token, encode_token, max_results
from bridge.engine.billing import parse_month
from bridge.engine.usage_results import (
    ActivitySummary,
    Bill,
    MeetingEvent,
    MeetingView,
    UsageSummary,
)
from bridge.errors import ValidationError

_RANGE = ("start-date", "end-date", "max-results", "next-token")
_OBJECT = {"type": "object"}


def _day(ctx: ActionContext, name: str) -> date:
    text = ctx.query(name)
    if not text:
        raise ValidationError(f"{name} is required (YYYY-MM-DD, UTC).", field=name)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{name} must be YYYY-MM-DD, got {text!r}.", field=name) from None


def summary_shape(s: UsageSummary) -> dict[str, Any]:
    return {"StartDate": s.start, "EndDate": s.end, "RegisteredUsers": s.registered_users,
            "ActiveUsers": s.active_users, "MeetingsHeld": s.meetings_held,
            "MeetingSatisfaction": s.satisfaction, "PositiveResponses": s.positive_feedback,
            "NegativeResponses": s.negative_feedback, "ChatMessagesSent": s.chat_messages,
            "RolledUpAt": s.rolled_up_at}


def activity_shape(a: ActivitySummary) -> dict[str, Any]:
    return {"MeetingsAttended": a.meetings_attended, "MeetingsOrganized": a.meetings_organized,
            "MeetingSatisfaction": a.satisfaction, "ChatMessagesSent": a.chat_messages,
            "LastActiveOn": a.last_active}


def meeting_shape(m: MeetingView) -> dict[str, Any]:
    return {"MeetingId": m.meeting_id, "ConferenceId": m.conference_id,
            "StartTime": m.started_at, "EndTime": m.ended_at,
            "Type": "Scheduled" if m.scheduled else "Instant", "Organizer": m.organizer,
            "OrganizerUserId": m.organizer_user_id, "DurationSeconds": m.duration_seconds,
            "AttendeeCount": m.attendee_count, "GuestCount": m.guest_count}


def event_shape(e: MeetingEvent) -> dict[str, Any]:
    shape = {"Time": e.time, "Type": e.type, "Attendee": e.attendee,
             "JoinMethod": e.join_method, "ClientType": e.client_type}
    return {k: v for k, v in shape.items() if v is not None}


def bill_shape(bill: Bill) -> dict[str, Any]:
    return {"AccountId": bill.account_id, "Month": bill.month, "Currency": bill.currency,
            "DailyRate": str(bill.daily_rate), "MonthlyCap": str(bill.monthly_cap),
            "ActiveProDays": bill.active_pro_days, "Total": str(bill.total),
            "Users": [{"UserId": line.user_id, "PrimaryEmail": line.primary_email,
                       "ActiveProDays": [d.isoformat() for d in line.active_days],
                       "Charge": str(line.charge)} for line in bill.lines]}


@action("ListAccountUsageReports", "GET", "/accounts/<accountId>/usage-reports", openapi=True,
        summary="The usage and feedback dashboard for a date range (UTC), with its days",
        query_parameters=_RANGE, response_schema={"type": "object", "properties": {
            "Summary": _OBJECT, "Days": {"type": "array", "items": _OBJECT},
            "NextToken": {"type": "string"}}})
def list_account_usage_reports(ctx: ActionContext) -> dict[str, Any]:
    start, end = _day(ctx, "start-date"), _day(ctx, "end-date")
    limit = max_results(ctx.query("max-results"))
    cursor = decode_token(ctx.query("next-token"))
    try:
        after = date.fromisoformat(cursor) if cursor else None
    except ValueError:
        raise ValidationError("next-token is not a token this API returned.",
                              field="NextToken") from None
    days = ctx.engine.reports.usage_days(ctx.account_id, start, end, after=after,
                                         limit=limit + 1)
    body: dict[str, Any] = {
        "Summary": summary_shape(ctx.engine.usage_summary(ctx.account_id, start, end)),
        "Days": [{"Date": d.day, "RegisteredUsers": d.registered_users,
                  "ActiveUsers": d.active_users, "MeetingsHeld": d.meetings_held,
                  "PositiveResponses": d.positive_feedback,
                  "NegativeResponses": d.negative_feedback,
                  "ChatMessagesSent": d.chat_messages} for d in days[:limit]]}
    if len(days) > limit:
        body["NextToken"] = encode_token(days[limit - 1].day.isoformat())
    return body


@action("GetUserActivitySummary", "GET",
        "/accounts/<accountId>/users/<userId>/activity-summary", openapi=True,
        summary="A user's activity: meetings attended and organized, satisfaction, chat "
                "messages, last active", response_schema={"type": "object", "properties": {
                    "ActivitySummary": _OBJECT}})
def get_user_activity_summary(ctx: ActionContext) -> dict[str, Any]:
    return {"ActivitySummary": activity_shape(
        ctx.engine.activity_summary(ctx.account_id, ctx.path["userId"]))}


@action("ListMeetingReports", "GET", "/accounts/<accountId>/meeting-reports", openapi=True,
        summary="Meetings that ended during the date range (UTC), paged",
        query_parameters=_RANGE, response_schema={"type": "object", "properties": {
            "Meetings": {"type": "array", "items": _OBJECT},
            "NextToken": {"type": "string"}}})
def list_meeting_reports(ctx: ActionContext) -> dict[str, Any]:
    start, end = _day(ctx, "start-date"), _day(ctx, "end-date")
    limit = max_results(ctx.query("max-results"))
    cursor = decode_token(ctx.query("next-token"))
    after: tuple[date, str] | None = None
    if cursor:
        day, _, meeting_id = cursor.partition("/")
        try:
            after = (date.fromisoformat(day), meeting_id)
        except ValueError:
            raise ValidationError("next-token is not a token this API returned.",
                                  field="NextToken") from None
    meetings = ctx.engine.reports.meetings(ctx.account_id, start, end, after=after,
                                           limit=limit + 1)
    body: dict[str, Any] = {"Meetings": [meeting_shape(m) for m in meetings[:limit]]}
    if len(meetings) > limit:
        last = meetings[limit - 1]
        body["NextToken"] = encode_token(f"{last.ended_at.date().isoformat()}/"
                                         f"{last.meeting_id}")
    return body


@action("GetMeetingDetails", "GET", "/accounts/<accountId>/meetings/<meetingId>",
        openapi=True, summary="A meeting: attendees, join method, client type, feedback",
        response_schema={"type": "object", "properties": {"Meeting": _OBJECT}})
def get_meeting_details(ctx: ActionContext) -> dict[str, Any]:
    details = ctx.engine.reports.meeting_details(ctx.account_id, ctx.path["meetingId"])
    shape = meeting_shape(details.meeting)
    shape["PositiveResponses"] = details.meeting.positive_feedback
    shape["NegativeResponses"] = details.meeting.negative_feedback
    shape["Attendees"] = [{k: v for k, v in {
        "UserId": a.user_id, "Address": a.address, "Guest": a.guest,
        "JoinMethod": a.join_method, "ClientType": a.client_type, "JoinTime": a.joined_at,
        "LeaveTime": a.left_at, "Feedback": a.feedback}.items() if v is not None}
        for a in details.attendees]
    shape["RecordingEvents"] = [{"Time": e["time"], "Type": e["type"]}
                                for e in details.recording_events]
    return {"Meeting": shape}


@action("ListMeetingEvents", "GET", "/accounts/<accountId>/meetings/<meetingId>/events",
        openapi=True, summary="A meeting's roster and recording events in time order, paged",
        query_parameters=("max-results", "next-token"),
        response_schema={"type": "object", "properties": {
            "Events": {"type": "array", "items": _OBJECT}, "NextToken": {"type": "string"}}})
def list_meeting_events(ctx: ActionContext) -> dict[str, Any]:
    limit = max_results(ctx.query("max-results"))
    cursor = decode_token(ctx.query("next-token"))
    # ASCII digits: str.isdigit() takes "²", which int() refuses (a 500).
    if cursor is not None and not re.fullmatch(r"[0-9]{1,9}", cursor):
        raise ValidationError("next-token is not a token this API returned.",
                              field="NextToken")
    offset = int(cursor or 0)
    events = ctx.engine.reports.meeting_events(ctx.account_id, ctx.path["meetingId"])
    body: dict[str, Any] = {"Events": [event_shape(e) for e in events[offset:offset + limit]]}
    if len(events) > offset + limit:
        body["NextToken"] = encode_token(str(offset + limit))
    return body


@action("GetBilling", "GET", "/accounts/<accountId>/billing", openapi=True,
        summary="A month's Active Pro days per user and the charges (usage-based pricing)",
        query_parameters=("month",),
        response_schema={"type": "object", "properties": {"Billing": _OBJECT}})
def get_billing(ctx: ActionContext) -> dict[str, Any]:
    year, month = parse_month(ctx.query("month"))
    return {"Billing": bill_shape(ctx.engine.bill(ctx.account_id, year, month))}
