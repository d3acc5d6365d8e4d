"""Benchmark: usage ingestion and the year's report (issue 14).

1. **Ingestion**: meeting records accepted per second through ``ResolutionEngine.put_usage``
   (batches of 100, the API's limit; each record 6 attendees — members by primary address or
   alias, a guest, a dial-in — and a recording event), new records then re-posts (retries,
   ``Unchanged``). With ``--http`` also through the signed admin API (Flask test client,
   SigV4 verified, PutUsageEvents) to show what the door adds. Target: >= 2,000 records/s
   on SQLite.
2. **Report**: the dashboard (``usage_summary``: registered and distinct active users,
   meetings, satisfaction, chat) over a year for an account of 100k users, on a roll-up
   loaded straight through SQLAlchemy Core (365 days; each user active on ~40% of days),
   and the first page of its days. Target: < 200 ms.

Run: ``.venv/bin/python -m bench.usage [--records 5000] [--users 100000] [--repeat 3]
[--http] [--postgres]``. Prints JSON lines; figures go to docs/performance.md. Times are
repeated (``--repeat``) and reported as median and spread, since the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert

from bridge.domain import Actor
from bridge.domain.usage import JoinMethod
from bridge.engine import ResolutionEngine
from bridge.engine.usage_results import AttendeeInput, MeetingInput
from bridge.store.db import make_engine, upgrade
from bridge.store.models import Account, EmailAddress, User
from bridge.store.usage_models import MONTH_COLUMNS, UsageDay, UsageUserYear

SERVICE = Actor(type="IAMUser", principal_id="AIDABENCH", name="meetings-service")
YEAR = 2026
NOW = datetime(YEAR + 1, 1, 2, tzinfo=UTC)


def load_users(url: str, n_users: int) -> tuple[str, list[str]]:
    """One account with ``n_users`` registered users, a primary address and an alias each."""
    db = make_engine(url)
    account_id = str(uuid.uuid4())
    emails: list[str] = []
    with db.begin() as conn:
        conn.execute(insert(Account), [{"id": account_id, "name": "Bench",
                                        "name_lower": "bench", "created_at": NOW}])
        for start in range(0, n_users, 10_000):
            users, addresses = [], []
            for i in range(start, min(start + 10_000, n_users)):
                uid = str(uuid.uuid4())
                emails.append(f"user{i}@bench.example")
                users.append({"id": uid, "account_id": account_id, "status": "registered",
                              "primary_email": emails[-1], "tier": "pro",
                              "joined_at": datetime(YEAR, 1, 1, tzinfo=UTC),
                              "created_at": NOW, "updated_at": NOW})
                addresses += [{"address": emails[-1], "user_id": uid,
                               "domain": "bench.example", "is_primary": True},
                              {"address": f"u{i}@alias.example", "user_id": uid,
                               "domain": "alias.example", "is_primary": False}]
            conn.execute(insert(User), users)
            conn.execute(insert(EmailAddress), addresses)
    db.dispose()
    return account_id, emails


def records(n: int, emails: list[str], seed: int) -> list[MeetingInput]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        end = datetime(YEAR, 12, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(40_000))
        start = end - timedelta(minutes=45)
        people: list[tuple[str | None, JoinMethod]] = [
            (rng.choice(emails), JoinMethod.APP) for _ in range(3)]
        people += [(f"u{rng.randrange(len(emails))}@alias.example", JoinMethod.APP),
                   (f"guest{k}@outside.example", JoinMethod.SIP), (None, JoinMethod.DIAL_IN)]
        out.append(MeetingInput(
            f"bench-{seed}-{k}", f"{k:010d}", people[0][0] or "", rng.random() < 0.5, start,
            end, tuple(AttendeeInput(who, how, "desktop", start, end,
                                     rng.choice([None, "positive", "negative"]))
                       for who, how in people),
            ((start + timedelta(minutes=5), "RecordingStarted"),)))
    return out


CPU: list[float] = []  # records per CPU-second of this process, per ingestion run


def ingest_rate(engine: ResolutionEngine, batch: list[MeetingInput]) -> float:
    """Records per wall-clock second (and, in :data:`CPU`, per CPU-second of this process:
    on a shared, oversubscribed machine the wall clock also counts other processes' turns;
    SQLite runs in this process, so its work is in the CPU time)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(batch), 100):
        outcomes = engine.put_usage(SERVICE, batch[start:start + 100], [])
        if any(o.error for o in outcomes):
            raise RuntimeError(f"refused: {[o for o in outcomes if o.error][:1]}")
    CPU.append(len(batch) / (time.process_time() - c0))
    return len(batch) / (time.perf_counter() - t0)


def http_rate(services: Any, batch: list[MeetingInput], raw: list[dict[str, Any]]) -> float:
    from bridge.app import create_app
    from tests.admin_client import admin_client

    app = create_app(services.settings, services)
    client = admin_client(app, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "chime:PutUsageEvents", "Resource": "*"}]})
    t0 = time.perf_counter()
    for start in range(0, len(raw), 100):
        response = client.post("/usage-events", json={"MeetingRecords": raw[start:start + 100]})
        if response.status_code != 200 or response.get_json()["Errors"]:
            raise RuntimeError(response.get_data(as_text=True)[:300])
    return len(raw) / (time.perf_counter() - t0)


def wire(record: MeetingInput) -> dict[str, Any]:
    def ts(value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    return {"MeetingId": record.meeting_id, "ConferenceId": record.conference_id,
            "Organizer": record.organizer, "Scheduled": record.scheduled,
            "StartTime": ts(record.started_at), "EndTime": ts(record.ended_at),
            "Attendees": [{k: v for k, v in {
                "Attendee": a.reference, "JoinMethod": a.join_method.value,
                "ClientType": a.client_type, "JoinTime": ts(a.joined_at),
                "LeaveTime": ts(a.left_at), "Feedback": a.feedback}.items() if v is not None}
                for a in record.attendees],
            "RecordingEvents": [{"Time": ts(t), "Type": kind}
                                for t, kind in record.recording_events]}


def load_year(url: str, account_id: str, n_users: int, seed: int = 3) -> None:
    """A year's roll-up: 365 account days and one activity row per user."""
    rng = random.Random(seed)
    db = make_engine(url)
    with db.begin() as conn:
        # replaces what the ingestion part rolled up (December), keeping one row per key
        conn.execute(delete(UsageDay).where(UsageDay.account_id == account_id))
        conn.execute(delete(UsageUserYear).where(UsageUserYear.account_id == account_id))
        day, days = date(YEAR, 1, 1), []
        while day.year == YEAR:
            days.append({"account_id": account_id, "day": day,
                         "registered_users": n_users, "active_users": int(n_users * 0.4),
                         "meetings_held": rng.randint(5_000, 20_000),
                         "positive_feedback": rng.randint(0, 9_000),
                         "negative_feedback": rng.randint(0, 1_000),
                         "chat_messages": rng.randint(0, 500_000), "rolled_up_at": NOW})
            day += timedelta(days=1)
        conn.execute(insert(UsageDay), days)
        for start in range(0, n_users, 10_000):
            conn.execute(insert(UsageUserYear), [
                {"account_id": account_id, "year": YEAR, "user_id": f"user-{i}",
                 **{c: rng.getrandbits(31) & rng.getrandbits(31) for c in MONTH_COLUMNS}}
                for i in range(start, min(start + 10_000, n_users))])
    db.dispose()


def timed(fn: Any, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def run(url: str, backend: str, args: argparse.Namespace) -> None:
    upgrade(url)
    account_id, emails = load_users(url, args.users)
    from bridge.services import build_services
    from config import load_settings

    settings = load_settings(env={}, overrides={
        "database_url": url, "data_dir": Path(tempfile.mkdtemp()),
        "secret_key": "YmVuY2gtb25seS1rZXktbmV2ZXItYS1zZWNyZXQtMDA="})
    services = build_services(settings, clock=lambda: NOW)
    engine = services.engine
    new, again, http, new_cpu = [], [], [], []
    for r in range(args.repeat):
        batch = records(args.records, emails, seed=r)
        new.append(ingest_rate(engine, batch))
        new_cpu.append(CPU[-1])
        again.append(ingest_rate(engine, batch))
        if args.http:
            fresh = records(args.records, emails, seed=1000 + r)
            http.append(http_rate(services, fresh, [wire(m) for m in fresh]))
    result: dict[str, Any] = {
        "backend": backend, "part": "ingestion", "records_per_run": args.records,
        "new_records_per_s": [round(x) for x in new],
        "reposts_per_s": [round(x) for x in again],
        "new_median": round(statistics.median(new)),
        "new_per_cpu_second": [round(x) for x in new_cpu],
        "target_ratio": round(statistics.median(new) / 2000, 2)}
    if http:
        result["http_records_per_s"] = [round(x) for x in http]
        result["http_over_engine"] = round(statistics.median(http) / statistics.median(new), 2)
    print(json.dumps(result), flush=True)
    t0 = time.perf_counter()
    rolled = engine.roll_up_usage()
    print(json.dumps({"backend": backend, "part": "rollup", "days": rolled,
                      "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    load_year(url, account_id, args.users)
    start, end = date(YEAR, 1, 1), date(YEAR, 12, 31)
    summary = timed(lambda: engine.usage_summary(account_id, start, end), args.report_repeat)
    page = timed(lambda: engine.reports.usage_days(account_id, start, end, limit=100),
                 args.report_repeat)
    quarter = timed(lambda: engine.usage_summary(account_id, date(YEAR, 2, 10),
                                                 date(YEAR, 5, 20)), args.report_repeat)
    print(json.dumps({
        "backend": backend, "part": "report", "users": args.users,
        "year_summary_ms": {"median": round(statistics.median(summary), 1),
                            "min": round(min(summary), 1), "max": round(max(summary), 1)},
        "range_summary_ms_median": round(statistics.median(quarter), 1),
        "days_page_ms_median": round(statistics.median(page), 1),
        "target_ratio": round(statistics.median(summary) / 200, 2)}), flush=True)
    services.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--report-repeat", type=int, default=15)
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", args)
    if args.postgres:
        from tests.servers.postgres import PostgresServer

        with PostgresServer() as server:
            run(server.create_database("bench_usage"), "postgresql", args)


if __name__ == "__main__":
    main()
