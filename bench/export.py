"""Benchmark: building a data export archive (the ``data-export`` job's pass) for one
account of N users, its time and its peak memory.

For each size (default 10k and 100k users) it bulk-loads, through SQLAlchemy Core into a
fresh database (SQLite by default; ``--postgres`` adds a throw-away PostgreSQL cluster on
loopback), one enterprise account with N registered users, each with a primary address, one
alias, one directory group membership (10 groups, 2 mapped), one external identity and
three tier history rows (a trial outside the account, then two tiers in it), and N audit
events of the account. Then, in a FRESH child process (so the loading does not
count), it records a StartDataExport and times one pass of the job
(:func:`bridge.data_export.run_exports`): one snapshot read, the zip of JSON-lines files,
the manifest, the archive's checksum. Memory: the child's peak resident set (``VmHWM``)
minus its resident set just before the pass — flat means the 100k figure is close to the
10k one.

Run: ``.venv/bin/python -m bench.export [--sizes 10000,100000] [--repeat 3] [--postgres
[--no-sqlite]]``.
Prints one JSON object per size, backend and run. Not a test: figures go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench import SECRET_KEY

CHUNK = 10_000
GROUPS = 10


def load(url: str, n_users: int) -> str:
    """The account and its N users (see the module docstring); returns the account id."""
    from bridge import audit
    from bridge.domain import Actor
    from bridge.store.db import make_engine, upgrade
    from bridge.store.models import (
        Account,
        AuditEvent,
        DirectoryGroup,
        Domain,
        EmailAddress,
        ExternalIdentity,
        GroupMapping,
        GroupMembership,
        User,
        utcnow,
    )
    from bridge.store.usage_models import TierChange

    upgrade(url)
    db = make_engine(url)
    account_id = str(uuid.uuid4())
    now = utcnow()
    group_ids = [str(uuid.uuid4()) for _ in range(GROUPS)]
    actor = Actor(type="Bench", principal_id="bench")
    with db.begin() as conn:
        conn.execute(insert(Account), [{"id": account_id, "name": "Bench",
                                        "name_lower": "bench", "created_at": now,
                                        "directory_kind": "okta"}])
        conn.execute(insert(Domain), [{"id": str(uuid.uuid4()), "account_id": account_id,
                                       "name": "bench.example", "status": "verified",
                                       "verification_token": "t", "created_at": now,
                                       "verified_at": now}])
        conn.execute(insert(DirectoryGroup), [{
            "id": gid, "account_id": account_id, "name": f"group-{g}",
            "name_lower": f"group-{g}", "created_at": now, "updated_at": now, "version": 1,
            "attributes": {}} for g, gid in enumerate(group_ids)])
        conn.execute(insert(GroupMapping), [
            {"account_id": account_id, "name": "group-0", "name_lower": "group-0",
             "tier": "pro", "created_at": now},
            {"account_id": account_id, "name": "group-1", "name_lower": "group-1",
             "tier": "basic", "created_at": now}])
        for start in range(0, n_users, CHUNK):
            chunk = range(start, min(start + CHUNK, n_users))
            ids = {i: str(uuid.uuid4()) for i in chunk}
            conn.execute(insert(User), [{
                "id": ids[i], "account_id": account_id,
                "primary_email": f"u{i}@bench.example", "display_name": f"User {i}",
                "status": "registered", "tier": "pro" if i % 2 else "basic",
                "personal_pin": f"{i:010d}", "joined_at": now, "created_at": now,
                "updated_at": now, "version": 1, "source_addresses": [], "attributes": {},
                "in_directory": True} for i in chunk])
            conn.execute(insert(EmailAddress), [
                row for i in chunk for row in (
                    {"address": f"u{i}@bench.example", "user_id": ids[i],
                     "domain": "bench.example", "is_primary": True},
                    {"address": f"alias{i}@bench.example", "user_id": ids[i],
                     "domain": "bench.example", "is_primary": False})])
            conn.execute(insert(GroupMembership), [
                {"group_id": group_ids[i % GROUPS], "user_id": ids[i]} for i in chunk])
            conn.execute(insert(ExternalIdentity), [
                {"user_id": ids[i], "source": "scim", "issuer": account_id,
                 "external_id": f"ext-{i}", "created_at": now} for i in chunk])
            conn.execute(insert(TierChange), [
                row for i in chunk for row in (
                    {"user_id": ids[i], "account_id": None, "tier": "pro",
                     "changed_at": now - timedelta(days=60)},
                    {"user_id": ids[i], "account_id": account_id,
                     "tier": "basic" if i % 2 else "pro",
                     "changed_at": now - timedelta(days=30)},
                    {"user_id": ids[i], "account_id": account_id,
                     "tier": "pro" if i % 2 else "basic", "changed_at": now})])
            conn.execute(insert(AuditEvent), [audit.event_row(
                actor, "ScimCreateUser", account_id=account_id,
                request_parameters={"userName": f"u{i}@bench.example"},
                response_elements={"userId": ids[i]}) for i in chunk])
    db.dispose()
    return account_id


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(url: str, data_dir: str, account_id: str) -> dict[str, Any]:
    """In a fresh process: request the export and time one pass of the job."""
    from bridge.data_export import export_store, run_exports
    from bridge.domain import Actor
    from bridge.services import build_services
    from config import load_settings

    settings = load_settings(env={}, overrides={"data_dir": Path(data_dir),
                                                "database_url": url,
                                                "secret_key": SECRET_KEY})
    svc = build_services(settings)
    svc.engine.start_data_export(Actor(type="Bench", principal_id="bench"), account_id,
                                 include_audit_events=True)
    store = export_store(settings)
    before = _rss_kib("VmRSS")
    started = time.perf_counter()
    finished = run_exports(svc.engine, store)
    seconds = time.perf_counter() - started
    peak = _rss_kib("VmHWM")
    view = svc.engine.latest_data_export(account_id)
    assert finished == 1 and view.status == "ready", view
    svc.db.dispose()
    return {"seconds": round(seconds, 2), "rss_before_mib": round(before / 1024, 1),
            "peak_rss_mib": round(peak / 1024, 1),
            "peak_growth_mib": round((peak - before) / 1024, 1),
            "archive_mib": round((view.archive_bytes or 0) / 2**20, 1),
            "records": {f["name"]: f["records"] for f in (view.manifest or {})["files"]}}


def measure(url: str, n_users: int, repeat: int, data_dir: str) -> list[dict[str, Any]]:
    started = time.perf_counter()
    account_id = load(url, n_users)
    load_seconds = round(time.perf_counter() - started, 1)
    results = []
    for run in range(repeat):
        out = subprocess.run(
            [sys.executable, "-m", "bench.export", "--child", url, data_dir, account_id],
            check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append({"users": n_users, "run": run + 1, "load_seconds": load_seconds,
                        **result})
        # The next run may request again: the 7-day rule is the engine's, not the subject.
        _forget_requests(url)
    return results


def _forget_requests(url: str) -> None:
    from sqlalchemy import delete

    from bridge.store.db import make_engine
    from bridge.store.export_models import DataExport

    db = make_engine(url)
    with db.begin() as conn:
        conn.execute(delete(DataExport))
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true",
                        help="also on a throw-away PostgreSQL cluster on loopback")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--child", nargs=3, metavar=("URL", "DATA_DIR", "ACCOUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(json.dumps({"machine": {"python": platform.python_version(),
                                  "cores": os.cpu_count()}}))
    for n in sizes if not args.no_sqlite else ():
        with tempfile.TemporaryDirectory() as tmp:
            for row in measure(f"sqlite:///{tmp}/bench.db", n, args.repeat, tmp):
                print(json.dumps({"backend": "sqlite", **row}), flush=True)
    if args.postgres:
        from tests.servers.postgres import PostgresServer

        with PostgresServer() as server:
            for n in sizes:
                url = server.create_database(f"export_{n}")
                with tempfile.TemporaryDirectory() as tmp:
                    for row in measure(url, n, args.repeat, tmp):
                        print(json.dumps({"backend": "postgresql", **row}), flush=True)


if __name__ == "__main__":
    main()
