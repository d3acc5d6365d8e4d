"""Reports > Dashboard (issue 14): the console shows the figures the admin API's
ListAccountUsageReports answers for the same range, the meetings held (paged on the
server) and a meeting's drill-down, each read audited as the API's action; the User detail
page shows the activity summary when the admin may GetUserActivitySummary."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask

from bridge.api.principals import PrincipalStore
from bridge.app import Services
from bridge.console import reports
from bridge.domain import Actor
from bridge.domain.usage import JoinMethod
from bridge.engine.usage_results import AttendeeInput, ChatCountInput, MeetingInput
from tests.admin_client import admin_client
from tests.conftest import FakeClock
from tests.functional.console.conftest import OPERATOR, PASSWORD, Console, events

SETUP = Actor(type="Test", principal_id="test", name="test")
SERVICE = Actor.system("meetings-service")
NOVEMBER = {"start": "2026-11-01", "end": "2026-11-30"}


def _meeting(meeting_id: str, organizer: str, end: datetime, *attendees: AttendeeInput,
             scheduled: bool = False) -> MeetingInput:
    return MeetingInput(meeting_id, f"c-{meeting_id}", organizer, scheduled,
                        end - timedelta(minutes=30), end, attendees)


def _attendee(who: str | None, end: datetime, feedback: str | None = None,
              method: JoinMethod = JoinMethod.APP, client: str | None = "web") -> AttendeeInput:
    return AttendeeInput(who, method, client, end - timedelta(minutes=30), end, feedback)


@pytest.fixture
def team(app_services: Services, clock: FakeClock) -> tuple[str, dict[str, str]]:
    """A team account with two registered users and a month of usage, rolled up."""
    engine = app_services.engine
    clock.now = datetime(2026, 10, 1, tzinfo=UTC)
    account = engine.create_account(SETUP, "Team R")
    invitations, _ = engine.invite_users(SETUP, account.id, ["amy@team.test", "bo@team.test",
                                                             "cy@team.test"])
    ids = {i.email: engine.accept_invitation(SETUP, i.token).id for i in invitations[:2]}
    end1 = datetime(2026, 11, 10, 10, 30, tzinfo=UTC)
    end2 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    clock.now = datetime(2026, 12, 2, 9, tzinfo=UTC)
    outcomes = engine.put_usage(SERVICE, [
        _meeting("m1", "amy@team.test", end1,
                 _attendee("amy@team.test", end1, "positive"),
                 _attendee("guest@else.test", end1, "negative", JoinMethod.SIP, None),
                 scheduled=True),
        _meeting("m2", "bo@team.test", end2, _attendee("bo@team.test", end2, "positive"),
                 _attendee("amy@team.test", end2, "positive", client="android")),
        _meeting("m0", "bo@team.test", datetime(2026, 10, 20, tzinfo=UTC)),  # out of range
    ], [ChatCountInput("bo@team.test", date(2026, 11, 10), 12),
        ChatCountInput("amy@team.test", date(2026, 11, 21), 5)])
    assert all(o.error is None for o in outcomes), outcomes
    assert engine.roll_up_usage() > 0
    return account.id, ids


def _figures(page: str) -> dict[str, str]:
    return dict(re.findall(r'<dd id="([a-z-]+)">([^<]*)</dd>', page))


def _console_events(services: Services, name: str) -> list[dict[str, object]]:
    return [e for e in events(services, name) if e["userIdentity"].get("source") == "console"]


def _custom_admin(console: Console, name: str, actions: list[str]) -> None:
    PrincipalStore(console.services.engine.uow, console.services.secrets).create(
        OPERATOR, name, [{"Name": "custom", "Document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": [f"chime:{a}" for a in actions],
             "Resource": "*"}]}}])
    console.credentials.set_password(OPERATOR, name, PASSWORD)
    assert console.post_sign_in(name).status_code == 302  # type: ignore[attr-defined]


def test_the_dashboard_shows_the_admin_api_figures(console: Console, app: Flask,
                                                   app_services: Services,
                                                   team: tuple[str, dict[str, str]]) -> None:
    account_id, _ = team
    console.sign_in("alice")
    page = console.client.get(f"/console/accounts/{account_id}/reports", query_string=NOVEMBER)
    assert page.status_code == 200, page.text
    api = admin_client(app, "FullAccess").get(
        f"/accounts/{account_id}/usage-reports",
        query={"start-date": "2026-11-01", "end-date": "2026-11-30"}).get_json()["Summary"]
    assert _figures(page.text) == {
        "date-range": "2026-11-01 to 2026-11-30",
        "registered-users": str(api["RegisteredUsers"]),
        "active-users": str(api["ActiveUsers"]),
        "meetings-held": str(api["MeetingsHeld"]),
        "meeting-satisfaction": f"{api['MeetingSatisfaction']:g}%",
        "chat-messages-sent": str(api["ChatMessagesSent"])}
    # and these are the month's numbers, not two agreeing zeros
    assert (api["RegisteredUsers"], api["ActiveUsers"], api["MeetingsHeld"],
            api["MeetingSatisfaction"], api["ChatMessagesSent"]) == (2, 2, 2, 75.0, 17)
    rows = re.findall(r"<tr>\s*<td><a [^>]+>(c-m\d)</a></td>\s*<td>([^<]+)</td>\s*<td>(\w+)"
                      r"</td>\s*<td><a [^>]+>([^<]+)</a></td>\s*<td>([^<]+)</td>\s*<td>(\d+)",
                      page.text)
    assert rows == [("c-m1", "2026-11-10 10:00", "Scheduled", "amy@team.test", "0:30:00", "2"),
                    ("c-m2", "2026-11-20 14:30", "Instant", "bo@team.test", "0:30:00", "2")]
    for name in ("ListAccountUsageReports", "ListMeetingReports"):
        [event] = _console_events(app_services, name)
        assert event["errorCode"] is None and event["recipientAccountId"] == account_id


def test_the_default_range_is_the_last_30_days(console: Console,
                                               team: tuple[str, dict[str, str]]) -> None:
    account_id, _ = team
    console.sign_in("alice")
    page = console.client.get(f"/console/accounts/{account_id}/reports").text
    figures = _figures(page)
    assert figures["date-range"] == "2026-11-03 to 2026-12-02"
    assert figures["meetings-held"] == "2" and figures["chat-messages-sent"] == "17"
    assert 'value="2026-11-03"' in page and 'value="2026-12-02"' in page


def test_a_meeting_drills_down_to_attendees_roster_client_and_feedback(
        console: Console, app_services: Services, team: tuple[str, dict[str, str]]) -> None:
    account_id, ids = team
    console.sign_in("alice")
    page = console.client.get(f"/console/accounts/{account_id}/reports/meetings/m1",
                              query_string=NOVEMBER)
    assert page.status_code == 200, page.text
    text = page.text
    assert "1 positive, 1 negative" in text
    attendees = text.split('id="attendees"')[1].split("</table>")[0]
    assert f"/users/{ids['amy@team.test']}" in attendees and "guest@else.test" in attendees
    assert "sip" in attendees and "web" in attendees and "Negative" in attendees
    roster = text.split('id="roster"')[1].split("</table>")[0]
    assert roster.count("AttendeeJoined") == 2 and roster.count("AttendeeLeft") == 2
    assert roster.count("amy@team.test") == 2 and ids["amy@team.test"] not in roster
    for name in ("GetMeetingDetails", "ListMeetingEvents"):
        [event] = _console_events(app_services, name)
        assert event["errorCode"] is None
    missing = console.client.get(f"/console/accounts/{account_id}/reports/meetings/nope")
    assert missing.status_code == 404


def test_meetings_are_paged_on_the_server(console: Console, team: tuple[str, dict[str, str]],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    account_id, _ = team
    monkeypatch.setattr(reports, "PAGE_SIZE", 1)
    console.sign_in("alice")
    first = console.client.get(f"/console/accounts/{account_id}/reports",
                               query_string=NOVEMBER).text
    assert "c-m1" in first and "c-m2" not in first
    nxt = re.search(r'href="([^"]+after=[^"]+)">Next page', first)
    assert nxt
    second = console.client.get(nxt.group(1).replace("&amp;", "&")).text
    assert "c-m2" in second and "c-m1" not in second and "Next page" not in second


def test_a_bad_range_is_refused_and_audited(console: Console, app_services: Services,
                                            team: tuple[str, dict[str, str]]) -> None:
    account_id, _ = team
    console.sign_in("alice")
    inverted = console.client.get(f"/console/accounts/{account_id}/reports",
                                  query_string={"start": "2026-11-30", "end": "2026-11-01"})
    assert inverted.status_code == 400 and "before the start date" in inverted.text
    garbled = console.client.get(f"/console/accounts/{account_id}/reports",
                                 query_string={"start": "yesterday"})
    assert garbled.status_code == 400 and "YYYY-MM-DD" in garbled.text
    assert [e["errorCode"] for e in _console_events(app_services, "ListAccountUsageReports")
            ] == ["ValidationError", "ValidationError"]
    assert not _console_events(app_services, "ListMeetingReports")


def test_read_only_sees_the_figures_but_not_the_meetings(
        console: Console, app_services: Services, team: tuple[str, dict[str, str]]) -> None:
    account_id, _ = team
    console.sign_in("reader", "ReadOnly")
    page = console.client.get(f"/console/accounts/{account_id}/reports", query_string=NOVEMBER)
    assert page.status_code == 200 and _figures(page.text)["meetings-held"] == "2"
    assert 'id="meetings"' not in page.text and "c-m1" not in page.text
    assert 'Dashboard</a>' in page.text
    denied = console.client.get(f"/console/accounts/{account_id}/reports/meetings/m1")
    assert denied.status_code == 403
    [event] = _console_events(app_services, "GetMeetingDetails")
    assert event["errorCode"] == "AccessDenied"


def test_user_management_drills_down(console: Console,
                                     team: tuple[str, dict[str, str]]) -> None:
    account_id, _ = team
    console.sign_in("manager", "UserManagement")
    page = console.client.get(f"/console/accounts/{account_id}/reports", query_string=NOVEMBER)
    assert "c-m1" in page.text and "/reports/meetings/m1" in page.text
    drill = console.client.get(f"/console/accounts/{account_id}/reports/meetings/m1")
    assert drill.status_code == 200 and 'id="roster"' in drill.text


def test_an_admin_without_the_action_sees_no_reports_link(
        console: Console, app_services: Services, team: tuple[str, dict[str, str]]) -> None:
    account_id, _ = team
    _custom_admin(console, "lister", ["ListAccounts", "GetAccount", "ListUsers", "GetUser"])
    users = console.client.get(f"/console/accounts/{account_id}/users")
    assert users.status_code == 200, users.text
    assert "/reports" not in users.text and "Dashboard" not in users.text
    denied = console.client.get(f"/console/accounts/{account_id}/reports")
    assert denied.status_code == 403
    [event] = _console_events(app_services, "ListAccountUsageReports")
    assert event["errorCode"] == "AccessDenied"


def test_user_detail_shows_the_activity_summary(console: Console, app: Flask,
                                                app_services: Services,
                                                team: tuple[str, dict[str, str]]) -> None:
    account_id, ids = team
    console.sign_in("reader", "ReadOnly")
    page = console.client.get(f"/console/accounts/{account_id}/users/{ids['amy@team.test']}")
    assert page.status_code == 200, page.text
    api = admin_client(app, "ReadOnly").get(
        f"/accounts/{account_id}/users/{ids['amy@team.test']}").get_json()["User"]
    summary = api["ActivitySummary"]
    assert {k: v for k, v in _figures(page.text).items() if k in {
        "meetings-attended", "meetings-organized", "user-meeting-satisfaction",
        "user-chat-messages", "last-active"}} == {
        "meetings-attended": str(summary["MeetingsAttended"]),
        "meetings-organized": str(summary["MeetingsOrganized"]),
        "user-meeting-satisfaction": f"{summary['MeetingSatisfaction']:g}%",
        "user-chat-messages": str(summary["ChatMessagesSent"]),
        "last-active": summary["LastActiveOn"][:10]}
    assert (summary["MeetingsAttended"], summary["MeetingsOrganized"],
            summary["ChatMessagesSent"], summary["LastActiveOn"][:10]) == (
        2, 1, 5, "2026-11-21")
    [event] = _console_events(app_services, "GetUser")  # one event, as the API's GetUser
    assert event["errorCode"] is None
    assert not _console_events(app_services, "GetUserActivitySummary")


def test_user_detail_without_the_activity_action_shows_no_summary(
        console: Console, team: tuple[str, dict[str, str]]) -> None:
    account_id, ids = team
    _custom_admin(console, "lister", ["ListAccounts", "GetAccount", "ListUsers", "GetUser"])
    page = console.client.get(f"/console/accounts/{account_id}/users/{ids['amy@team.test']}")
    assert page.status_code == 200, page.text
    assert "amy@team.test" in page.text
    assert 'id="activity"' not in page.text and "Meetings attended" not in page.text


def test_a_page_link_not_made_here_is_refused_and_audited(
        console: Console, app_services: Services, team: tuple[str, dict[str, str]]) -> None:
    account_id, _ = team
    console.sign_in("alice")
    page = console.client.get(f"/console/accounts/{account_id}/reports",
                              query_string={**NOVEMBER, "after": "garbage"})
    assert page.status_code == 400
    [event] = _console_events(app_services, "ListMeetingReports")
    assert event["errorCode"] == "ValidationError"
