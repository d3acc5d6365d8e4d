"""The export's tier history of one user (:func:`bridge.store.export_reads.tier_history`):
the periods spent in the exported account, from the user's ``tier_changes`` rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.store.export_reads import tier_history

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
ACCOUNT, OTHER = "acct-1", "acct-2"


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def z(hours: int) -> str:
    return at(hours).isoformat().replace("+00:00", "Z")


def test_time_elsewhere_is_left_out_and_only_ends_the_period_before_it() -> None:
    rows = [  # (user_id, changed_at, id, account_id, tier), not in order
        ("u", at(5), 4, ACCOUNT, "basic"),
        ("u", at(0), 1, None, "pro"),  # their own trial before joining
        ("u", at(1), 2, ACCOUNT, "pro"),
        ("u", at(3), 3, OTHER, "pro"),  # another company's account meanwhile
    ]
    assert tier_history(rows, ACCOUNT) == [
        {"tier": "pro", "from": z(1), "to": z(3)},
        {"tier": "basic", "from": z(5), "to": None}]


def test_instant_changes_are_dropped_and_equal_neighbours_merged() -> None:
    rows = [
        ("u", at(0), 1, ACCOUNT, None),  # created, then its groups' tier at the same instant
        ("u", at(0), 2, ACCOUNT, "pro"),
        ("u", at(2), 3, ACCOUNT, "basic"),
        ("u", at(2), 4, ACCOUNT, "pro"),  # back at once: one Pro period
        ("u", at(4), 5, ACCOUNT, None),  # in no mapped group: no tier here
    ]
    assert tier_history(rows, ACCOUNT) == [
        {"tier": "pro", "from": z(0), "to": z(4)},
        {"tier": None, "from": z(4), "to": None}]


def test_no_rows_no_history() -> None:
    assert tier_history([], ACCOUNT) == []
