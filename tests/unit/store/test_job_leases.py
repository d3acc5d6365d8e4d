"""Job leases (bridge/jobs.py) on SQLite and a real PostgreSQL: one holder at a time, a pass
at most every interval, expiry frees a dead runner's job, a live runner renews."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bridge.app import Services
from bridge.jobs import Job, JobLeases, JobRunner, Lease, LeaseLost
from tests.conftest import FakeClock

NO_WAIT = timedelta(0)
MINUTE = timedelta(minutes=1)


def test_one_holder_at_a_time_until_release(services: Services, clock: FakeClock) -> None:
    leases = JobLeases(services.sessions, clock=clock)
    assert leases.claim("job", "a", interval=NO_WAIT, lease=MINUTE)
    assert not leases.claim("job", "b", interval=NO_WAIT, lease=MINUTE)
    assert not leases.claim("job", "a", interval=NO_WAIT, lease=MINUTE)  # not re-entrant
    leases.release("job", "a", finished=True)
    assert leases.claim("job", "b", interval=NO_WAIT, lease=MINUTE)
    [row] = leases.list()
    assert (row.name, row.holder, row.last_finished_at) == ("job", "b", clock.now)
    # Another job's lease is another row.
    assert leases.claim("other", "a", interval=NO_WAIT, lease=MINUTE)


def test_no_pass_before_the_interval_even_after_release(services: Services,
                                                        clock: FakeClock) -> None:
    leases = JobLeases(services.sessions, clock=clock)
    assert leases.claim("job", "a", interval=timedelta(minutes=5), lease=MINUTE)
    leases.release("job", "a", finished=True)
    clock.advance(minutes=4)
    assert not leases.claim("job", "b", interval=timedelta(minutes=5), lease=MINUTE)
    clock.advance(minutes=1)
    assert leases.claim("job", "b", interval=timedelta(minutes=5), lease=MINUTE)


def test_a_dead_runner_frees_the_job_when_its_lease_expires(services: Services,
                                                            clock: FakeClock) -> None:
    leases = JobLeases(services.sessions, clock=clock)
    assert leases.claim("job", "dead", interval=NO_WAIT, lease=MINUTE)
    clock.advance(seconds=59)
    assert not leases.claim("job", "b", interval=NO_WAIT, lease=MINUTE)
    clock.advance(seconds=1)
    assert leases.claim("job", "b", interval=NO_WAIT, lease=MINUTE)
    # The old holder cannot renew what it lost, nor release the new holder's lease.
    assert not leases.renew("job", "dead", lease=MINUTE)
    leases.release("job", "dead", finished=True)
    assert not leases.claim("job", "c", interval=NO_WAIT, lease=MINUTE)


def test_renewal_keeps_the_lease_and_a_cut_pass_is_due_at_once(services: Services,
                                                               clock: FakeClock) -> None:
    leases = JobLeases(services.sessions, clock=clock)
    assert leases.claim("job", "a", interval=timedelta(hours=1), lease=MINUTE)
    clock.advance(seconds=50)
    assert leases.renew("job", "a", lease=MINUTE)
    clock.advance(seconds=50)
    assert not leases.claim("job", "b", interval=timedelta(hours=1), lease=MINUTE)
    leases.release("job", "a", finished=False)  # stopped mid-pass
    assert leases.claim("job", "b", interval=timedelta(hours=1), lease=MINUTE)


def test_concurrent_claims_have_one_winner(services: Services) -> None:
    leases = JobLeases(services.sessions)
    won: list[str] = []
    start = threading.Barrier(6)

    def claimer(name: str) -> None:
        start.wait()
        if leases.claim("race", name, interval=MINUTE, lease=MINUTE):
            won.append(name)

    threads = [threading.Thread(target=claimer, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(won) == 1


def test_a_pass_that_lost_its_lease_stops(services: Services, clock: FakeClock) -> None:
    leases = JobLeases(services.sessions, clock=clock)
    seen: list[int] = []
    ticks = iter(range(0, 10_000, 30))

    def run(lease: Lease) -> None:
        for item in range(5):
            lease.keep()
            seen.append(item)
            clock.advance(seconds=70)  # slower than the lease...
            # ...and meanwhile another runner claimed the expired job.
            leases.claim("slow", f"other-{item}", interval=NO_WAIT, lease=MINUTE)

    runner = JobRunner(Job("slow", NO_WAIT, run), leases, lease_seconds=60,
                       monotonic=lambda: float(next(ticks)))
    assert runner.run_once()
    assert seen == [0]  # the second keep() could not renew and raised LeaseLost
    assert [row.holder for row in leases.list()] == ["other-0"]  # and released nothing


def test_a_stopped_runner_hands_the_rest_of_its_pass_over_at_once(services: Services) -> None:
    leases = JobLeases(services.sessions)
    started = threading.Event()
    stopped: list[BaseException] = []

    def endless(lease: Lease) -> None:
        started.set()
        try:
            while True:
                lease.keep()
                threading.Event().wait(0.01)
        except LeaseLost as exc:
            stopped.append(exc)
            raise

    hour = timedelta(hours=1)
    runner = JobRunner(Job("long", hour, endless), leases).start()
    assert started.wait(30)
    runner.stop()
    assert stopped and runner.passes == 1
    # Due again now, not in an hour: another worker takes over.
    assert leases.claim("long", "next", interval=hour, lease=MINUTE)


def test_a_failed_pass_waits_for_the_interval(services: Services) -> None:
    leases = JobLeases(services.sessions)

    def broken(lease: Lease) -> None:
        raise RuntimeError("DNS exploded")

    runner = JobRunner(Job("broken", timedelta(hours=1), broken), leases)
    with pytest.raises(RuntimeError):  # the runner's loop logs it and carries on
        runner.run_once()
    assert not leases.claim("broken", "next", interval=timedelta(hours=1), lease=MINUTE)
