"""What the usage, billing and reports rooms take in and give back (never ORM rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bridge.domain.usage import JoinMethod
from bridge.errors import BridgeError

# --- usage as the meetings and chat service reports it ---------------------------------


@dataclass(frozen=True)
class AttendeeInput:
    """One attendee's presence: ``reference`` is a user id or an address (None: an
    anonymous participant, e.g. a phone number the service does not report)."""

    reference: str | None
    join_method: JoinMethod
    client_type: str | None
    joined_at: datetime
    left_at: datetime
    feedback: str | None = None  # "positive" | "negative"


@dataclass(frozen=True)
class MeetingInput:
    meeting_id: str
    conference_id: str
    organizer: str  # a user id or any of the user's addresses
    scheduled: bool
    started_at: datetime
    ended_at: datetime
    attendees: tuple[AttendeeInput, ...] = ()
    recording_events: tuple[tuple[datetime, str], ...] = ()


@dataclass(frozen=True)
class ChatCountInput:
    """The messages ``user`` (a user id or address) sent on ``day``: the day's total."""

    user: str
    day: date
    messages: int


@dataclass(frozen=True)
class UsageOutcome:
    """One record's fate: ``status`` Created / Replaced / Unchanged, or ``error``."""

    kind: str  # "Meeting" | "ChatMessageCount"
    index: int  # position in its list of the request
    record_id: str
    status: str | None = None
    error: BridgeError | None = None


# --- reports ---------------------------------------------------------------------------


class _Satisfaction:
    """The guide's satisfaction of a view counting positive and negative responses."""

    positive_feedback: int
    negative_feedback: int

    @property
    def satisfaction(self) -> float | None:
        """Share of positive responses (0..100), None without responses."""
        total = self.positive_feedback + self.negative_feedback
        return round(100.0 * self.positive_feedback / total, 1) if total else None


@dataclass(frozen=True)
class UsageDayView:
    day: date
    registered_users: int
    active_users: int
    meetings_held: int
    positive_feedback: int
    negative_feedback: int
    chat_messages: int


@dataclass(frozen=True)
class UsageSummary(_Satisfaction):
    """The dashboard for a date range (UTC, both ends included)."""

    start: date
    end: date
    registered_users: int
    active_users: int
    meetings_held: int
    positive_feedback: int
    negative_feedback: int
    chat_messages: int
    rolled_up_at: datetime | None


@dataclass(frozen=True)
class MeetingView:
    meeting_id: str
    conference_id: str
    organizer: str
    organizer_user_id: str | None
    scheduled: bool
    started_at: datetime
    ended_at: datetime
    attendee_count: int
    guest_count: int
    positive_feedback: int
    negative_feedback: int

    @property
    def duration_seconds(self) -> int:
        return int((self.ended_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class AttendeeView:
    user_id: str | None
    address: str | None
    join_method: str
    client_type: str | None
    joined_at: datetime
    left_at: datetime
    feedback: str | None

    @property
    def guest(self) -> bool:
        return self.user_id is None


@dataclass(frozen=True)
class MeetingDetails:
    meeting: MeetingView
    attendees: tuple[AttendeeView, ...]
    recording_events: tuple[dict[str, Any], ...] = field(default=())


@dataclass(frozen=True)
class MeetingEvent:
    time: datetime
    type: str  # AttendeeJoined | AttendeeLeft | a recording event's type
    attendee: str | None  # user id or address (None for recording events)
    join_method: str | None = None
    client_type: str | None = None


@dataclass(frozen=True)
class ActivitySummary(_Satisfaction):
    """A user's activity (the User detail page)."""

    meetings_attended: int
    meetings_organized: int
    positive_feedback: int
    negative_feedback: int
    chat_messages: int
    last_active: datetime | None


# --- billing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BillUserLine:
    user_id: str
    primary_email: str | None
    active_days: tuple[date, ...]
    charge: Decimal


@dataclass(frozen=True)
class Bill:
    account_id: str
    month: str  # YYYY-MM
    currency: str
    daily_rate: Decimal
    monthly_cap: Decimal
    lines: tuple[BillUserLine, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.charge for line in self.lines), Decimal("0.00"))

    @property
    def active_pro_days(self) -> int:
        return sum(len(line.active_days) for line in self.lines)
