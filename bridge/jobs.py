"""Named background jobs: one runner at a time across every worker and host.

Every ``bridge serve`` worker runs a :class:`JobRunner` per job, but a pass of a job runs in
one process only: a runner must first *claim* the job's lease, a row of ``job_leases`` keyed
by the job's name, with one conditional UPDATE (or the INSERT of the first row). The claim
succeeds only when the previous lease has expired and the next pass is due, so:

- however many workers and hosts share the database, each pass runs once (DNS queries and
  audit events do not multiply by workers x hosts);
- passes start at most every ``interval`` across all of them (the due time is in the row,
  so restarting every worker does not re-run a pass early);
- a runner that dies mid-pass frees the job when its lease expires (``lease_seconds``); one
  that is alive renews the lease through :meth:`Lease.keep` between items, and stops the
  pass (:class:`LeaseLost`) if it could not renew in time and someone else took over.

This needs no advisory locks, so it works on SQLite (several workers of one host) as on
PostgreSQL (several hosts). Expiry is compared with each host's clock: keep the hosts'
clocks synchronised (NTP); skews far below ``lease_seconds`` are harmless.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Result, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from bridge.store.db import transaction
from bridge.store.models import JobLease, utcnow

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 120.0
# Core statements on the table (what each statement matched is what the database said).
_TABLE = cast(Table, JobLease.__table__)
# How often an idle runner asks whether a pass is due (never less often than the interval).
MAX_POLL_SECONDS = 30.0


class LeaseLost(Exception):
    """The runner no longer holds the job's lease (it expired and another runner claimed
    it, or this runner is stopping): the pass must stop where it is."""


@dataclass(frozen=True)
class Job:
    """A named job: ``run(lease)`` is one pass, which calls ``lease.keep()`` between items."""

    name: str
    interval: timedelta
    run: Callable[[Lease], object]


@dataclass(frozen=True)
class LeaseView:
    """A job's lease row, for ``bridge jobs list``."""

    name: str
    holder: str
    expires_at: datetime
    next_run_at: datetime
    last_started_at: datetime
    last_finished_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in dataclasses.asdict(self).items()}


def _matched(result: Result[Any]) -> bool:
    """Whether the UPDATE or INSERT ... RETURNING touched a row. (RETURNING, not rowcount:
    psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING through SQLAlchemy.)"""
    return result.first() is not None


class JobLeases:
    """The ``job_leases`` table. Each method is one short transaction of its own."""

    def __init__(self, sessions: sessionmaker[Session],
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def claim(self, name: str, holder: str, *, interval: timedelta,
              lease: timedelta) -> bool:
        """Take the lease of job ``name`` for ``holder`` if it is free and a pass is due;
        True when taken (the caller then runs one pass and calls :meth:`release`)."""
        now = self._clock()
        values = {"holder": holder, "expires_at": now + lease, "last_started_at": now,
                  "next_run_at": now + interval}
        with transaction(self._sessions, write=True) as session:
            # One statement decides: PostgreSQL re-checks the WHERE on the row a concurrent
            # claimer just committed, SQLite serialises writers; only one UPDATE matches.
            conn = session.connection()
            taken = _matched(conn.execute(
                update(_TABLE).where(_TABLE.c.name == name, _TABLE.c.expires_at <= now,
                                     _TABLE.c.next_run_at <= now).values(**values)
                .returning(_TABLE.c.name)))
            if taken:
                return True
            if conn.execute(select(_TABLE.c.name).where(_TABLE.c.name == name)).first():
                return False
            # The job's first claim: of concurrent first claims, one inserts the row.
            table_insert = (postgresql.insert if conn.dialect.name == "postgresql"
                            else sqlite.insert)
            first = table_insert(_TABLE).values(name=name, **values)
            return _matched(conn.execute(
                first.on_conflict_do_nothing(index_elements=["name"]).returning(_TABLE.c.name)))

    def renew(self, name: str, holder: str, *, lease: timedelta) -> bool:
        """Extend ``holder``'s lease; False when it is no longer theirs (or had expired)."""
        now = self._clock()
        with transaction(self._sessions, write=True) as session:
            return _matched(session.connection().execute(
                update(_TABLE).where(_TABLE.c.name == name, _TABLE.c.holder == holder,
                                     _TABLE.c.expires_at > now)
                .values(expires_at=now + lease).returning(_TABLE.c.name)))

    def release(self, name: str, holder: str, *, finished: bool) -> None:
        """End ``holder``'s lease now. ``finished=False`` (the pass was cut short) makes the
        next pass due at once, so another runner picks the rest up."""
        now = self._clock()
        values: dict[str, Any] = {"expires_at": now}
        if finished:
            values["last_finished_at"] = now
        else:
            values["next_run_at"] = now
        with transaction(self._sessions, write=True) as session:
            session.connection().execute(update(_TABLE).where(
                _TABLE.c.name == name, _TABLE.c.holder == holder).values(**values))

    def list(self) -> list[LeaseView]:
        with transaction(self._sessions) as session:
            return [LeaseView(r.name, r.holder, r.expires_at, r.next_run_at, r.last_started_at,
                              r.last_finished_at)
                    for r in session.scalars(select(JobLease).order_by(JobLease.name))]


class Lease:
    """The lease a runner holds during one pass (handed to ``Job.run``)."""

    def __init__(self, leases: JobLeases, job: Job, holder: str, duration: timedelta,
                 stopping: threading.Event, monotonic: Callable[[], float]) -> None:
        self._leases, self._job, self._holder = leases, job, holder
        self._duration = duration
        self._stopping = stopping
        self._monotonic = monotonic
        self._renewed = monotonic()

    def keep(self) -> None:
        """Call between items of a pass. Renews the lease once a third of it has elapsed;
        raises LeaseLost when the runner is stopping or the lease went to someone else."""
        if self._stopping.is_set():
            raise LeaseLost(f"{self._job.name}: the runner is stopping")
        if self._monotonic() - self._renewed < self._duration.total_seconds() / 3:
            return
        if not self._leases.renew(self._job.name, self._holder, lease=self._duration):
            raise LeaseLost(f"{self._job.name}: the lease expired and was taken over")
        self._renewed = self._monotonic()


def runner_id() -> str:
    """Who holds a lease: host, process and a nonce (a pid may be reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobRunner:
    """A daemon thread that claims ``job``'s lease whenever a pass is due and runs it.

    The first attempt is made at once, then every ``poll`` seconds (default: the interval,
    at most :data:`MAX_POLL_SECONDS`). ``attempts`` counts claims tried, ``passes`` the
    passes this runner ran (finished or not).
    """

    def __init__(self, job: Job, leases: JobLeases, *, poll: float | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.job = job
        self.holder = runner_id()
        self._leases = leases
        self._poll = poll if poll is not None else min(job.interval.total_seconds(),
                                                       MAX_POLL_SECONDS)
        self._lease = timedelta(seconds=lease_seconds)
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"job-{job.name}",
                                        daemon=True)
        self._changed = threading.Condition()
        self.attempts = 0
        self.passes = 0

    def start(self) -> JobRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current item; a pass cut short is released for another runner."""
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> bool:
        """Try to claim the lease and run one pass; True when this runner ran it."""
        claimed = self._leases.claim(self.job.name, self.holder,
                                     interval=self.job.interval, lease=self._lease)
        if not claimed:
            return False
        cut_short = False
        try:
            self.job.run(Lease(self._leases, self.job, self.holder, self._lease, self._stop,
                               self._monotonic))
        except LeaseLost as exc:
            cut_short = True
            log.warning("job %s stopped mid-pass: %s", self.job.name, exc)
        finally:
            # A pass that failed counts as run: the next one comes after the interval (not at
            # the next poll of every worker). One that was cut short is due again at once.
            self._leases.release(self.job.name, self.holder, finished=not cut_short)
        return True

    def wait_for_attempts(self, count: int, timeout: float) -> bool:
        """Block until ``count`` claims were tried (and their passes ended); False on
        timeout. For health checks and tests: progress is observable without polling."""
        with self._changed:
            return self._changed.wait_for(lambda: self.attempts >= count, timeout=timeout)

    def wait_for_passes(self, count: int, timeout: float) -> bool:
        """Block until this runner ran ``count`` passes; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.passes >= count, timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            ran = False
            try:
                ran = self.run_once()
            except Exception:  # keep the thread alive; the next attempt retries
                log.exception("job %s: attempt failed", self.job.name)
            with self._changed:
                self.attempts += 1
                self.passes += int(ran)
                self._changed.notify_all()
            if self._stop.wait(self._poll):
                return


# --- CLI: ``bridge jobs list`` --------------------------------------------------------------


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bridge jobs list`` (who ran each background job last, when it runs next)."""
    jobs = sub.add_parser("jobs", help="background jobs (domain re-check, ...)")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    lst = jobs_sub.add_parser("list", help="each job's lease: holder, expiry, next and last run")
    lst.set_defaults(handler=_cli_list)


def _cli_list(args: argparse.Namespace, settings: Any) -> int:
    from bridge.store.db import make_engine, make_session_factory

    db = make_engine(settings.effective_database_url)
    try:
        rows = JobLeases(make_session_factory(db)).list()
    finally:
        db.dispose()
    print(json.dumps([row.as_json() for row in rows], indent=2, sort_keys=True))
    return 0
