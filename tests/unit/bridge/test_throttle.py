"""bridge.throttle: atomic fixed-window counters, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bridge.app import Services
from bridge.store import throttle
from bridge.store.db import transaction
from bridge.store.models import RateCounter

MINUTE = timedelta(minutes=1)
NOW = datetime(2026, 11, 1, 12, 0, 30, tzinfo=UTC)


def _hit(services: Services, subject: str, now: datetime = NOW,
         scope: str = "test") -> throttle.Hit:
    with transaction(services.sessions, write=True) as session:
        return throttle.hit(session, scope, subject, window=MINUTE, now=now)


def test_counts_per_scope_subject_and_window(services: Services) -> None:
    assert [_hit(services, "a").count for _ in range(3)] == [1, 2, 3]
    assert _hit(services, "b").count == 1
    assert _hit(services, "a", scope="other").count == 1
    later = _hit(services, "a", NOW + MINUTE)
    assert later.count == 1
    assert later.window_start == datetime(2026, 11, 1, 12, 1, tzinfo=UTC)
    fourth = _hit(services, "a")
    assert (fourth.count, fourth.window_end) == (4, datetime(2026, 11, 1, 12, 1, tzinfo=UTC))
    assert fourth.retry_after(NOW) == 30
    assert fourth.over(3) and fourth.first_over(3)
    assert fourth.over(2) and not fourth.first_over(2)
    assert not fourth.over(4) and not fourth.over(0) and not fourth.first_over(0)


def test_long_subjects_are_hashed_to_fit(services: Services) -> None:
    long = "user:" + "x" * 500
    assert [_hit(services, long).count for _ in range(2)] == [1, 2]
    assert _hit(services, long[:-1] + "y").count == 1


def test_concurrent_hits_are_never_lost(services: Services) -> None:
    """Eight threads, each with its own database connection, hit one subject: every hit
    gets a distinct count and the stored total is exact."""
    threads, per_thread = 8, 15
    counts: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(threads)

    def work() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(per_thread):
                counts.append(_hit(services, "203.0.113.5").count)
        except BaseException as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures
    total = threads * per_thread
    assert sorted(counts) == list(range(1, total + 1))
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.sum(RateCounter.hits))) == total


def test_ended_windows_are_purged(services: Services,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _hit(services, "old")
    monkeypatch.setattr(throttle.random, "randrange", lambda n: 0)  # purge on this hit
    _hit(services, "new", NOW + 2 * MINUTE)
    with transaction(services.sessions) as session:
        assert set(session.scalars(select(RateCounter.subject))) == {"new"}
