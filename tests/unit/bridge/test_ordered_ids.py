"""Row keys (``models.new_id``) and audit event ids are UUIDv7 (RFC 9562): canonical
lowercase strings that sort in creation order — also many within one millisecond — so the
indexes on them take appends (issue 17's cold import; docs/performance.md)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter

from bridge import audit
from bridge.domain import Actor
from bridge.store.models import new_id


def _millis(key: str) -> int:
    """The Unix milliseconds a UUIDv7 carries (its first 48 bits)."""
    return uuid.UUID(key).int >> 80


def test_a_new_id_is_a_canonical_lowercase_uuid_version_7() -> None:
    key = new_id()
    parsed = uuid.UUID(key)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert key == str(parsed) and key == key.lower() and len(key) == 36


def test_ids_are_unique_and_in_creation_order_within_one_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    keys = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(keys)) == len(keys)
    # The strings' order (what an index on a String(36) column sees) is the calls' order.
    assert all(a < b for a, b in itertools.pairwise(keys))
    per_milli = Counter(_millis(k) for k in keys)
    assert max(per_milli.values()) > 1, "no two ids were made in one millisecond"
    # The time in a key is the clock's, not pushed ahead by the calls of a busy millisecond.
    assert before <= min(per_milli) and max(per_milli) <= after


def test_ids_made_by_threads_at_once_are_unique() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        out.extend(new_id() for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [k for out in made for k in out]
    assert len(set(every)) == len(every) == 20_000
    assert all(out == sorted(out) for out in made)  # each thread's in its own order


def test_audit_event_ids_are_in_creation_order() -> None:
    template = audit.EventTemplate(Actor(type="AdminUser", principal_id="p", name="p"),
                                   "CreateUser")
    ids = [template.row({"n": i})["event_id"] for i in range(2_000)]
    assert {uuid.UUID(i).version for i in ids} == {7}
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    row = audit.event_row(Actor(type="AdminUser", principal_id="p", name="p"), "CreateUser")
    assert uuid.UUID(row["event_id"]).version == 7 and row["body"]["eventID"] == row["event_id"]
