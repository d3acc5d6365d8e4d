"""Usage ingestion, the daily roll-up and the reports on a generated month — both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bridge.domain import Actor
from bridge.domain.usage import JoinMethod
from bridge.engine import ResolutionEngine
from bridge.engine.usage_results import ChatCountInput
from tests.conftest import FakeClock
from tests.unit.bridge.usage_builders import SERVICE, generate_month, ingest, meeting, team

EMAILS = [f"user{i}@team.test" for i in range(12)]
NOV = date(2026, 11, 1)


def test_reports_figures_on_a_generated_month(engine: ResolutionEngine, admin: Actor,
                                              clock: FakeClock) -> None:
    clock.now = datetime(2026, 10, 20, tzinfo=UTC)
    account_id, users = team(engine, admin, "Team", EMAILS)
    month = generate_month(users, 2026, 11)
    clock.now = datetime(2026, 12, 1, 6, tzinfo=UTC)
    ingest(engine, month)
    assert engine.roll_up_usage() == len({m.ended_at.date() for m in month.meetings}
                                         | {c.day for c in month.chats})
    for start, end in [(NOV, date(2026, 11, 30)), (date(2026, 11, 10), date(2026, 11, 20)),
                       (date(2026, 11, 7), date(2026, 11, 7)),
                       (date(2026, 10, 15), date(2027, 1, 15))]:
        expected = month.figures(start, end)
        summary = engine.usage_summary(account_id, start, end)
        assert (summary.active_users, summary.meetings_held, summary.positive_feedback,
                summary.negative_feedback, summary.chat_messages) == (
            expected["active"], expected["meetings"], expected["positive"],
            expected["negative"], expected["chats"]), (start, end)
        assert summary.registered_users == len(EMAILS)
    total = month.figures(NOV, date(2026, 11, 30))
    summary = engine.usage_summary(account_id, NOV, date(2026, 11, 30))
    assert summary.satisfaction == round(100 * total["positive"]  # type: ignore[operator]
                                         / (total["positive"] + total["negative"]), 1)  # type: ignore[operator]
    days = engine.reports.usage_days(account_id, NOV, date(2026, 11, 30), limit=100)
    assert {d.day: d.active_users for d in days} == {
        d: len(a) for d, a in month.active.items() if a or month.held[d]
        or d in {c.day for c in month.chats}}
    listed = engine.reports.meetings(account_id, NOV, date(2026, 11, 30), limit=1000)
    assert len(listed) == total["meetings"]
    # the roll-up of a day again changes nothing
    engine.rollup.roll_up()
    assert engine.usage_summary(account_id, NOV, date(2026, 11, 30)) == summary


def test_reposts_count_once_and_a_correction_replaces(engine: ResolutionEngine,
                                                      admin: Actor, clock: FakeClock) -> None:
    clock.now = datetime(2026, 11, 1, tzinfo=UTC)
    account_id, users = team(engine, admin, "Team", EMAILS[:4])
    end = datetime(2026, 11, 10, 15, tzinfo=UTC)
    first = meeting("m1", EMAILS[0], end, attendees=[(EMAILS[0], JoinMethod.APP),
                                                     (EMAILS[1], JoinMethod.APP)],
                    feedback=["positive", None])
    clock.now = datetime(2026, 11, 12, tzinfo=UTC)
    [outcome] = engine.put_usage(SERVICE, [first], [])
    assert outcome.status == "Created"
    [again] = engine.put_usage(SERVICE, [first], [])
    assert again.status == "Unchanged"
    chat = ChatCountInput(EMAILS[2], date(2026, 11, 10), 7)
    assert [o.status for o in engine.put_usage(SERVICE, [], [chat, chat])] == [
        None, "Created"]  # the same user and day twice in one request: the second refused
    assert [o.status for o in engine.put_usage(SERVICE, [], [chat])] == ["Unchanged"]
    engine.roll_up_usage()
    day = date(2026, 11, 10)
    summary = engine.usage_summary(account_id, day, day)
    assert (summary.meetings_held, summary.active_users, summary.chat_messages,
            summary.positive_feedback) == (1, 3, 7, 1)
    # the correction: a third attendee, and the meeting really ended the next day
    corrected = meeting("m1", EMAILS[0], end + timedelta(days=1),
                        attendees=[(EMAILS[0], JoinMethod.APP), (EMAILS[1], JoinMethod.APP),
                                   (EMAILS[3], JoinMethod.DIAL_IN)])
    [replaced] = engine.put_usage(SERVICE, [corrected], [])
    assert replaced.status == "Replaced"
    engine.roll_up_usage()
    old = engine.usage_summary(account_id, day, day)
    new = engine.usage_summary(account_id, day + timedelta(days=1), day + timedelta(days=1))
    assert (old.meetings_held, old.active_users, old.positive_feedback) == (0, 1, 0)
    assert (new.meetings_held, new.active_users) == (1, 3)
    details = engine.reports.meeting_details(account_id, "m1")
    assert details.meeting.attendee_count == 3
    summary_of_4 = engine.activity_summary(account_id, users[EMAILS[3]])
    assert (summary_of_4.meetings_attended, summary_of_4.meetings_organized) == (1, 0)
    organizer = engine.activity_summary(account_id, users[EMAILS[0]])
    assert (organizer.meetings_attended, organizer.meetings_organized) == (1, 1)


def test_people_are_resolved_through_any_address_and_unknown_ones_are_guests(
        engine: ResolutionEngine, admin: Actor, clock: FakeClock) -> None:
    clock.now = datetime(2026, 11, 1, tzinfo=UTC)
    account_id, users = team(engine, admin, "Team", EMAILS[:2])
    clock.now = datetime(2026, 11, 12, tzinfo=UTC)
    record = meeting("m2", users[EMAILS[0]],  # the organizer by user id
                     datetime(2026, 11, 11, 10, tzinfo=UTC),
                     attendees=[(EMAILS[1].upper(), JoinMethod.APP),
                                ("stranger@else.test", JoinMethod.SIP),
                                (None, JoinMethod.DIAL_IN), (None, JoinMethod.DIAL_IN)])
    [outcome] = engine.put_usage(SERVICE, [record], [])
    assert outcome.status == "Created"
    details = engine.reports.meeting_details(account_id, "m2")
    assert [a.user_id for a in details.attendees] == [users[EMAILS[1]], None, None, None]
    assert (details.meeting.attendee_count, details.meeting.guest_count) == (4, 3)
    events = engine.reports.meeting_events(account_id, "m2")
    assert [e.type for e in events][:4] == ["AttendeeJoined"] * 4
    # an unknown organizer is refused with its reason, the rest of the batch accepted
    unknown = meeting("m3", "nobody@else.test", datetime(2026, 11, 11, 11, tzinfo=UTC))
    future = meeting("m4", EMAILS[0], datetime(2026, 11, 13, tzinfo=UTC))
    ok = meeting("m5", EMAILS[0], datetime(2026, 11, 11, 12, tzinfo=UTC))
    outcomes = engine.put_usage(SERVICE, [unknown, future, ok], [])
    assert [(o.record_id, o.status, o.error.code if o.error else None) for o in outcomes] == [
        ("m3", None, "NotFound"), ("m4", None, "ValidationError"), ("m5", "Created", None)]
