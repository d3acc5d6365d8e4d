"""Reports > Dashboard in Chromium against `bridge serve` (issue 14): the guide's procedure
("Choose Reports, Dashboard"), the figures for the default range, a meeting's drill-down
by its Conference ID, and the User detail's activity — each page checked with axe-core and
photographed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page

from bridge.domain import Actor
from bridge.domain.usage import JoinMethod
from bridge.engine.usage_results import AttendeeInput, ChatCountInput, MeetingInput
from tests.integration.console.conftest import LiveConsole, check_page, sign_in

SETUP = Actor(type="Test", principal_id="test", name="test")


def test_reports_dashboard_and_a_meeting(live: LiveConsole, page: Page) -> None:
    engine = live.services.engine
    team = engine.create_account(SETUP, "Team Reports")
    invites, _ = engine.invite_users(SETUP, team.id, ["ria@example.test"])
    engine.accept_invitation(SETUP, invites[0].token)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    outcomes = engine.put_usage(Actor.system("meetings-service"), [MeetingInput(
        "rm1", "conf-4711", "ria@example.test", True, end - timedelta(minutes=45), end, (
            AttendeeInput("ria@example.test", JoinMethod.APP, "web",
                          end - timedelta(minutes=45), end, "positive"),
            AttendeeInput("+15550100", JoinMethod.DIAL_IN, None,
                          end - timedelta(minutes=30), end, None)))],
        [ChatCountInput("ria@example.test", end.date(), 7)])
    assert all(o.error is None for o in outcomes), outcomes
    engine.roll_up_usage()
    live.make_admin("rita")
    sign_in(page, live, "rita")
    page.goto(f"{live.url}/console/accounts/{team.id}/users")
    with page.expect_navigation():
        page.get_by_role("navigation", name="Account").get_by_role("link",
                                                                   name="Dashboard").click()
    assert page.get_by_role("heading", name="Usage and feedback dashboard report").is_visible()
    assert page.inner_text("#meetings-held") == "1"
    assert page.inner_text("#active-users") == "1"
    assert page.inner_text("#meeting-satisfaction") == "100%"
    assert page.inner_text("#chat-messages-sent") == "7"
    check_page(page, live, "11-reports-dashboard")
    with page.expect_navigation():
        page.get_by_role("link", name="conf-4711").click()
    assert page.get_by_role("heading", name="Meeting conf-4711").is_visible()
    assert "dial-in" in page.inner_text("#attendees")
    roster = page.inner_text("#roster")
    assert roster.count("AttendeeJoined") == 2 and roster.count("ria@example.test") == 2
    check_page(page, live, "12-reports-meeting")
    with page.expect_navigation():
        page.locator("#attendees").get_by_role("link", name="ria@example.test").click()
    assert page.inner_text("#meetings-organized") == "1"
    assert page.inner_text("#user-chat-messages") == "7"
    check_page(page, live, "13-user-detail-activity")
