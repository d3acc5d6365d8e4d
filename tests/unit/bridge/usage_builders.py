"""Builders for usage tests: team members, meeting records, a generated month of usage
with the figures the reports must show, computed independently of the bridge."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from bridge.domain import Actor
from bridge.domain.usage import JoinMethod
from bridge.engine import ResolutionEngine
from bridge.engine.usage_results import AttendeeInput, ChatCountInput, MeetingInput

SERVICE = Actor(type="IAMUser", principal_id="AIDAMEETINGS", name="meetings-service")


def team(engine: ResolutionEngine, actor: Actor, name: str, emails: list[str]
         ) -> tuple[str, dict[str, str]]:
    """A team account whose members accepted their invitations: (account id, email → id)."""
    account = engine.create_account(actor, name)
    invitations, errors = engine.invite_users(actor, account.id, emails)
    assert not errors
    ids = {}
    for invitation in invitations:
        ids[invitation.email] = engine.accept_invitation(actor, invitation.token).id
    return account.id, ids


def meeting(meeting_id: str, organizer: str, end: datetime, *, scheduled: bool = False,
            attendees: list[tuple[str | None, JoinMethod]] | None = None,
            recordings: int = 0, feedback: list[str | None] | None = None,
            minutes: int = 30) -> MeetingInput:
    start = end - timedelta(minutes=minutes)
    people = attendees if attendees is not None else [(organizer, JoinMethod.APP)]
    answers = feedback or [None] * len(people)
    return MeetingInput(
        meeting_id, f"conf-{meeting_id}", organizer, scheduled, start, end,
        tuple(AttendeeInput(who, how, "desktop", start, end, answer)
              for (who, how), answer in zip(people, answers, strict=True)),
        tuple((start + timedelta(minutes=i + 1), "RecordingStarted") for i in range(recordings)))


@dataclass
class Month:
    """Generated usage and the expected figures."""

    meetings: list[MeetingInput] = field(default_factory=list)
    chats: list[ChatCountInput] = field(default_factory=list)
    active: dict[date, set[str]] = field(default_factory=lambda: defaultdict(set))
    held: dict[date, int] = field(default_factory=lambda: defaultdict(int))
    positive: dict[date, int] = field(default_factory=lambda: defaultdict(int))
    negative: dict[date, int] = field(default_factory=lambda: defaultdict(int))
    messages: dict[date, int] = field(default_factory=lambda: defaultdict(int))

    def figures(self, start: date, end: date) -> dict[str, object]:
        days = [d for d in self.held.keys() | self.messages.keys() | self.active.keys()
                if start <= d <= end]
        pos = sum(self.positive[d] for d in days)
        neg = sum(self.negative[d] for d in days)
        return {"active": len(set().union(*(self.active[d] for d in days))) if days else 0,
                "meetings": sum(self.held[d] for d in days), "positive": pos,
                "negative": neg, "chats": sum(self.messages[d] for d in days)}


def generate_month(users: dict[str, str], year: int, month: int, seed: int = 7) -> Month:
    """About three meetings a day among ``users`` (email → id), some with guests, and chat
    counts; the expected figures count the members' activity only."""
    rng = random.Random(seed)
    out = Month()
    emails = sorted(users)
    day = date(year, month, 1)
    number = 0
    while day.month == month:
        for _ in range(rng.randint(0, 5)):
            number += 1
            organizer = rng.choice(emails)
            invited = rng.sample(emails, rng.randint(0, min(4, len(emails))))
            people: list[tuple[str | None, JoinMethod]] = [(organizer, JoinMethod.APP)]
            people += [(e, rng.choice(list(JoinMethod))) for e in invited if e != organizer]
            if rng.random() < 0.3:
                people.append((f"guest{number}@elsewhere.test", JoinMethod.APP))
            answers = [rng.choice([None, "positive", "positive", "negative"]) for _ in people]
            end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                minutes=rng.randint(45, 24 * 60 - 1))
            record = meeting(f"m-{year}{month:02d}-{number}", organizer, end,
                             scheduled=rng.random() < 0.5, attendees=people,
                             recordings=rng.choice([0, 0, 1]), feedback=answers)
            out.meetings.append(record)
            out.held[day] += 1
            out.positive[day] += answers.count("positive")
            out.negative[day] += answers.count("negative")
            out.active[day].update(users[e] for e, _m in people if e in users)
        for email in emails:
            if rng.random() < 0.4:
                count = rng.randint(0, 30)
                out.chats.append(ChatCountInput(email, day, count))
                out.messages[day] += count
                if count:
                    out.active[day].add(users[email])
        day += timedelta(days=1)
    return out


def ingest(engine: ResolutionEngine, month: Month) -> None:
    records = month.meetings
    for start in range(0, len(records), 100):
        outcomes = engine.put_usage(SERVICE, records[start:start + 100], [])
        assert all(o.error is None for o in outcomes), outcomes
    for start in range(0, len(month.chats), 100):
        outcomes = engine.put_usage(SERVICE, [], month.chats[start:start + 100])
        assert all(o.error is None for o in outcomes), outcomes
