"""PutUsageEvents, the five Reports actions, GetBilling and GetUser's activity summary over
the signed admin API — on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from bridge.api.policy import managed_actions
from bridge.app import Services
from bridge.domain import Actor
from tests.admin_client import AdminClient, admin_client
from tests.conftest import FakeClock

SETUP = Actor.system("test-setup")
SERVICE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "chime:PutUsageEvents", "Resource": "*"}]}


def record(meeting_id: str, organizer: str, end: str, **extra: Any) -> dict[str, Any]:
    start = (datetime.fromisoformat(end) - timedelta(minutes=30)).isoformat()
    return {"MeetingId": meeting_id, "ConferenceId": f"c-{meeting_id}",
            "Organizer": organizer, "Scheduled": False, "StartTime": start, "EndTime": end,
            "Attendees": [{"Attendee": organizer, "JoinMethod": "app", "ClientType": "web",
                           "JoinTime": start, "LeaveTime": end, "Feedback": "positive"}],
            **extra}


@pytest.fixture
def setup(store_app: Flask, services: Services, clock: FakeClock) -> tuple[str, dict[str, str]]:
    engine = services.engine
    clock.now = datetime(2026, 10, 1, tzinfo=UTC)
    account = engine.create_account(SETUP, "Team")
    invitations, _ = engine.invite_users(SETUP, account.id, ["amy@team.test", "bo@team.test"])
    ids = {i.email: engine.accept_invitation(SETUP, i.token).id for i in invitations}
    clock.now = datetime(2026, 12, 2, tzinfo=UTC)
    return account.id, ids


def test_the_service_posts_usage_and_admins_read_the_reports(
        store_app: Flask, services: Services, setup: tuple[str, dict[str, str]]) -> None:
    account_id, ids = setup
    service = admin_client(store_app, SERVICE_POLICY, name="meetings-service")
    scheduled = record("m1", "amy@team.test", "2026-11-10T10:30:00Z", Scheduled=True)
    scheduled["Attendees"].append({"Attendee": "guest@else.test", "JoinMethod": "sip",
                                   "JoinTime": "2026-11-10T10:00:00Z",
                                   "LeaveTime": "2026-11-10T10:30:00Z",
                                   "Feedback": "negative"})
    answer = service.post("/usage-events", json={
        "MeetingRecords": [scheduled, {"MeetingId": "bad"},
                           record("m2", "nobody@else.test", "2026-11-10T11:00:00Z")],
        "ChatMessageCounts": [{"User": "bo@team.test", "Day": "2026-11-10", "Messages": 12},
                              {"User": "bo@team.test", "Day": "someday", "Messages": 1}]})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["MeetingRecords"] == [{"Index": 0, "RecordId": "m1", "Status": "Created"}]
    assert body["ChatMessageCounts"] == [
        {"Index": 0, "RecordId": "bo@team.test@2026-11-10", "Status": "Created"}]
    assert [(e["RecordType"], e["Index"], e["ErrorCode"]) for e in body["Errors"]] == [
        ("ChatMessageCount", 1, "BadRequest"), ("Meeting", 1, "BadRequest"),
        ("Meeting", 2, "NotFound")]
    # a retry (with another record, so another signature) counts once
    again = service.post("/usage-events", json={
        "MeetingRecords": [scheduled], "ChatMessageCounts": [
            {"User": ids["amy@team.test"], "Day": "2026-11-11", "Messages": 0}]}).get_json()
    assert again["MeetingRecords"][0]["Status"] == "Unchanged"
    assert services.engine.roll_up_usage() == 2

    admin = admin_client(store_app, "UserManagement")
    query = {"start-date": "2026-11-01", "end-date": "2026-11-30"}
    report = admin.get(f"/accounts/{account_id}/usage-reports", query=query).get_json()
    assert {k: report["Summary"][k] for k in ("RegisteredUsers", "ActiveUsers", "MeetingsHeld",
                                               "MeetingSatisfaction", "ChatMessagesSent")} == {
        "RegisteredUsers": 2, "ActiveUsers": 2, "MeetingsHeld": 1,
        "MeetingSatisfaction": 50.0, "ChatMessagesSent": 12}
    assert [(d["Date"], d["ActiveUsers"]) for d in report["Days"]] == [
        ("2026-11-10", 2), ("2026-11-11", 0)]  # a zero count is reported, not active
    meetings = admin.get(f"/accounts/{account_id}/meeting-reports", query=query).get_json()
    assert [(m["ConferenceId"], m["Type"], m["Organizer"], m["DurationSeconds"],
             m["AttendeeCount"]) for m in meetings["Meetings"]] == [
        ("c-m1", "Scheduled", "amy@team.test", 1800, 2)]
    details = admin.get(f"/accounts/{account_id}/meetings/m1").get_json()["Meeting"]
    assert [(a.get("UserId"), a["Guest"], a["JoinMethod"], a.get("Feedback"))
            for a in details["Attendees"]] == [
        (ids["amy@team.test"], False, "app", "positive"), (None, True, "sip", "negative")]
    events = admin.get(f"/accounts/{account_id}/meetings/m1/events",
                       query={"max-results": "3"}).get_json()
    assert [e["Type"] for e in events["Events"]] == ["AttendeeJoined"] * 2 + ["AttendeeLeft"]
    rest = admin.get(f"/accounts/{account_id}/meetings/m1/events",
                     query={"next-token": events["NextToken"]}).get_json()
    assert len(rest["Events"]) == 1 and "NextToken" not in rest
    user = admin.get(f"/accounts/{account_id}/users/{ids['amy@team.test']}").get_json()["User"]
    assert user["ActivitySummary"] == {
        "MeetingsAttended": 1, "MeetingsOrganized": 1, "MeetingSatisfaction": 100.0,
        "ChatMessagesSent": 0, "LastActiveOn": "2026-11-10T10:30:00Z"}
    summary = admin.get(f"/accounts/{account_id}/users/{ids['bo@team.test']}"
                        "/activity-summary").get_json()["ActivitySummary"]
    assert summary["ChatMessagesSent"] == 12 and summary["MeetingsAttended"] == 0

    full = admin_client(store_app, "FullAccess")
    bill = full.get(f"/accounts/{account_id}/billing", query={"month": "2026-11"}).get_json()
    assert bill["Billing"]["Total"] == "3.00"
    assert bill["Billing"]["Users"] == [{"UserId": ids["amy@team.test"],
                                         "PrimaryEmail": "amy@team.test",
                                         "ActiveProDays": ["2026-11-10"], "Charge": "3.00"}]
    assert full.get(f"/accounts/{account_id}/billing",
                    query={"month": "2026-13"}).status_code == 400


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
@pytest.mark.parametrize("where", ["StartTime", "EndTime", "JoinTime", "LeaveTime", "Time"])
def test_a_time_outside_utc_years_is_that_records_error(
        store_app: Flask, setup: tuple[str, dict[str, str]], where: str,
        moment: str) -> None:
    """Such a time has no UTC form: converting it raised OverflowError, a 500 that also
    dropped the batch's valid records. Now it is the record's BadRequest."""
    service = admin_client(store_app, SERVICE_POLICY, name="meetings-service")
    bad = record("m2", "amy@team.test", "2026-11-10T11:00:00Z")
    if where in ("StartTime", "EndTime"):
        bad[where] = moment
    elif where == "Time":
        bad["RecordingEvents"] = [{"Time": moment, "Type": "started"}]
    else:
        bad["Attendees"][0][where] = moment
    answer = service.post("/usage-events", json={"MeetingRecords": [
        record("m1", "amy@team.test", "2026-11-10T10:30:00Z"), bad]})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["MeetingRecords"] == [{"Index": 0, "RecordId": "m1", "Status": "Created"}]
    assert [(e["Index"], e["ErrorCode"]) for e in body["Errors"]] == [(1, "BadRequest")]
    assert "outside the years" in body["Errors"][0]["ErrorMessage"]


def test_the_managed_policies_marks(store_app: Flask, setup: tuple[str, dict[str, str]]) -> None:
    account_id, ids = setup
    q = "start-date=2026-11-01&end-date=2026-11-30"
    paths = {
        "ListAccountUsageReports": f"/accounts/{account_id}/usage-reports?{q}",
        "GetUserActivitySummary": f"/accounts/{account_id}/users/{ids['amy@team.test']}"
                                  "/activity-summary",
        "ListMeetingReports": f"/accounts/{account_id}/meeting-reports?{q}",
        "GetMeetingDetails": f"/accounts/{account_id}/meetings/none",
        "ListMeetingEvents": f"/accounts/{account_id}/meetings/none/events",
        "GetBilling": f"/accounts/{account_id}/billing?month=2026-11",
    }
    expected = {"FullAccess": set(paths),
                "UserManagement": set(paths) - {"GetBilling"},
                "ReadOnly": {"ListAccountUsageReports", "GetUserActivitySummary"}}
    for policy, allowed in expected.items():
        client = admin_client(store_app, policy)
        for action, url in paths.items():
            path, _, query = url.partition("?")
            status = client.get(path, query=query).status_code
            assert (status != 403) is (action in allowed), (policy, action, status)
    for policy in ("FullAccess", "UserManagement", "ReadOnly"):
        assert "chime:PutUsageEvents" not in managed_actions(policy)
        denied = admin_client(store_app, policy).post(
            "/usage-events", json={"MeetingRecords": [
                record("x", "amy@team.test", "2026-11-10T10:30:00Z")]})
        assert denied.status_code == 403


def test_batch_limits_and_read_only_user_detail(store_app: Flask,
                                                setup: tuple[str, dict[str, str]]) -> None:
    account_id, ids = setup
    service = admin_client(store_app, SERVICE_POLICY)
    too_many = [{"User": "amy@team.test", "Day": f"2026-11-{d:02d}", "Messages": 1}
                for d in range(1, 31)] * 4
    response = service.post("/usage-events", json={"ChatMessageCounts": too_many[:101]})
    assert response.status_code == 400
    assert service.post("/usage-events", json={}).status_code == 400
    # a caller without GetUserActivitySummary gets GetUser without the summary
    only_get_user: AdminClient = admin_client(store_app, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "chime:GetUser", "Resource": "*"}]})
    user = only_get_user.get(f"/accounts/{account_id}/users/{ids['bo@team.test']}")
    assert user.status_code == 200 and "ActivitySummary" not in user.get_json()["User"]


def test_update_user_records_the_tier_change(store_app: Flask, services: Services,
                                            setup: tuple[str, dict[str, str]],
                                            clock: FakeClock) -> None:
    account_id, ids = setup
    clock.now = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
    admin = admin_client(store_app, "UserManagement")
    response = admin.post(f"/accounts/{account_id}/users/{ids['bo@team.test']}",
                          json={"LicenseType": "Basic"})
    assert response.status_code == 200, response.get_json()
    history = services.engine.license_history(ids["bo@team.test"])
    assert [(h.since, h.account_id, h.tier.value if h.tier else None) for h in history] == [
        (datetime(2026, 10, 1, tzinfo=UTC), None, "pro"),  # invited
        (datetime(2026, 10, 1, tzinfo=UTC), account_id, "pro"),  # accepted
        (datetime(2026, 12, 2, 15, 30, tzinfo=UTC), account_id, "basic")]
