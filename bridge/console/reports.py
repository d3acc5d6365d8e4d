"""An account's **Reports, Dashboard** (issue 14): the guide's "Usage and feedback dashboard
report" for a **Date range (UTC)** (default: the last 30 days, today included) —
**Registered users**, **Active users**, **Meetings held**, **Meeting satisfaction**, **Chat
messages sent** — with the meetings held in the range, one page of :data:`PAGE_SIZE` read on
the server per request, and the drill-down of one meeting (attendees, roster events, client
type, feedback).

Each read is the admin API's action under the admin's policies, audited with its name:
the figures are ListAccountUsageReports and call the same engine operation as that action
(``engine.usage_summary``), so the page and the API agree by construction; the meetings are
ListMeetingReports (shown only when allowed: ReadOnly has the dashboard, not the meetings);
a meeting is GetMeetingDetails, its roster ListMeetingEvents.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import render_template, request

from bridge.console.access import current_admin, signed_in
from bridge.console.state import ACCOUNT_PAGES, PAGE_ACTIONS, bp, console_state
from bridge.console.users import account_for_page
from bridge.engine.usage_results import MeetingDetails, MeetingEvent, MeetingView, UsageSummary
from bridge.errors import BridgeError, ValidationError

PAGE_SIZE = 50
DEFAULT_DAYS = 30
ACCOUNT_PAGES.append(("console.reports", "Dashboard", "Reports"))
PAGE_ACTIONS["console.reports"] = "ListAccountUsageReports"


def _day(name: str, default: date) -> date:
    text = (request.args.get(name) or "").strip()[:10]
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"The {name} date must be YYYY-MM-DD (UTC), got {text!r}.",
                              field=name) from None


def _after(token: str | None) -> tuple[date, str] | None:
    """The meetings page cursor: ``<end day>/<meeting id>`` of the last meeting shown."""
    if not token:
        return None
    day, _, meeting_id = token.partition("/")
    try:
        return date.fromisoformat(day), meeting_id
    except ValueError:
        raise ValidationError("The page link is not one this page made.",
                              field="after") from None


def _cursor(meeting: MeetingView) -> str:
    return f"{meeting.ended_at.date().isoformat()}/{meeting.meeting_id}"


@bp.get("/accounts/<account_id>/reports")
@signed_in
def reports(account_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    today = engine.now().date()
    error: str | None = None
    summary: UsageSummary | None = None
    try:
        start = _day("start", today - timedelta(days=DEFAULT_DAYS - 1))
        end = _day("end", today)
    except ValidationError as exc:
        start, end, error = today - timedelta(days=DEFAULT_DAYS - 1), today, exc.message
    params = {"accountId": account_id, "startDate": start.isoformat(),
              "endDate": end.isoformat()}
    if error is not None:  # refused before the engine ran: one event, as the API's 400
        admin.require("ListAccountUsageReports", account_id, params)
        admin.refused("ListAccountUsageReports", account_id, ValidationError(error), params)
        account = account_for_page(account_id)
    else:
        try:
            account, summary = admin.read(
                "ListAccountUsageReports", account_id,
                lambda: (account_for_page(account_id),
                         engine.usage_summary(account_id, start, end)), params=params)
        except ValidationError as exc:  # an inverted or too long range: audited, shown
            account, error = account_for_page(account_id), exc.message
    meetings: list[MeetingView] | None = None
    next_after: str | None = None
    can_meetings = admin.can("ListMeetingReports", account_id)
    if summary is not None and can_meetings:
        token = request.args.get("after")
        try:
            after = _after(token)
        except ValidationError as exc:
            raise admin.refused("ListMeetingReports", account_id, exc, params) from None
        found = admin.read("ListMeetingReports", account_id, engine.reports.meetings,
                           account_id, start, end, after=after, limit=PAGE_SIZE + 1,
                           params={**params, "nextToken": token} if token else params)
        meetings = found[:PAGE_SIZE]
        if len(found) > PAGE_SIZE:
            next_after = _cursor(meetings[-1])
    return render_template(
        "console/reports.html", account=account, page="console.reports", start=start,
        end=end, summary=summary, error=error, meetings=meetings, next_after=next_after,
        can_details=admin.can("GetMeetingDetails", account_id),
        can_user=admin.can("GetUser", account_id)), 400 if error else 200


@bp.get("/accounts/<account_id>/reports/meetings/<meeting_id>")
@signed_in
def meeting_report(account_id: str, meeting_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    params = {"accountId": account_id, "meetingId": meeting_id}
    account, details = admin.read(
        "GetMeetingDetails", account_id,
        lambda: (account_for_page(account_id),
                 engine.reports.meeting_details(account_id, meeting_id)), params=params)
    roster: list[MeetingEvent] | None = None
    if admin.can("ListMeetingEvents", account_id):
        try:
            roster = admin.read("ListMeetingEvents", account_id, engine.reports.meeting_events,
                                account_id, meeting_id, params=params)
        except BridgeError:  # e.g. removed meanwhile: the details are still worth showing
            roster = None
    return render_template(
        "console/meeting_report.html", account=account, page="console.reports",
        details=details, meeting=details.meeting, roster=roster,
        # roster events name an attendee by user id: show the address the attendees list has
        names={a.user_id: a.address for a in details.attendees if a.user_id and a.address},
        can_user=admin.can("GetUser", account_id), back=_back(details))


def _back(details: MeetingDetails) -> dict[str, str]:
    """The dashboard's range around the meeting's day, for the way back."""
    day = details.meeting.ended_at.date().isoformat()
    start = (request.args.get("start") or day)[:10]
    end = (request.args.get("end") or day)[:10]
    return {"start": start, "end": end}
