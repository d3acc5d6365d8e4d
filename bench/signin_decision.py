"""Benchmark: the sign-in decision for one email among N users with 2N aliases.

For each size (default 1k and 100k users) it bulk-loads an Active Directory account (users,
primary addresses, two aliases each, identity links, a mapped Pro group) straight through
SQLAlchemy Core, then times ``ResolutionEngine.decide_sign_in`` for random users signing in
with a random one of their addresses (primary or alias). Each decision is the full unit of
work: address and identity look-ups, the tier rule, the audit event and the commit.

Run: ``.venv/bin/python -m bench.signin_decision [--sizes 1000,100000] [--samples 2000]
[--postgres]``. Prints one JSON object per size and backend. Not a test: figures go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bridge.domain import Actor, Identity, IdentitySource
from bridge.engine import ResolutionEngine
from bridge.store.db import make_engine, make_session_factory, upgrade
from bridge.store.models import (
    Account,
    DirectoryGroup,
    Domain,
    EmailAddress,
    ExternalIdentity,
    GroupMapping,
    GroupMembership,
    User,
    utcnow,
)

CHUNK = 10_000


def load(url: str, n_users: int) -> tuple[str, list[tuple[str, list[str]]]]:
    """Bulk-load one AD account with ``n_users`` users; return (account id, users)."""
    db = make_engine(url)
    account_id = str(uuid.uuid4())
    group_id = str(uuid.uuid4())
    now = utcnow()
    users: list[tuple[str, list[str]]] = []
    with db.begin() as conn:
        conn.execute(insert(Account), [{"id": account_id, "name": "Bench", "name_lower": "bench",
                                        "directory_kind": "active_directory",
                                        "default_license": "pro",
                                        "remote_control_enabled": True,
                                        "call_me_enabled": True, "created_at": now}])
        conn.execute(insert(Domain), [
            {"id": str(uuid.uuid4()), "account_id": account_id, "name": name,
             "status": "verified", "verification_token": "t", "created_at": now}
            for name in ("example.com", "alias-a.com", "alias-b.com")])
        conn.execute(insert(DirectoryGroup), [{"id": group_id, "account_id": account_id,
                                               "name": "chime-pro", "name_lower": "chime-pro",
                                               "attributes": {}, "created_at": now,
                                               "updated_at": now, "version": 1}])
        conn.execute(insert(GroupMapping), [{"account_id": account_id, "name": "chime-pro",
                                             "name_lower": "chime-pro", "tier": "pro",
                                             "created_at": now}])
        for start in range(0, n_users, CHUNK):
            rows_u, rows_a, rows_i, rows_m = [], [], [], []
            for i in range(start, min(start + CHUNK, n_users)):
                uid = str(uuid.uuid4())
                addresses = [f"user{i}@example.com", f"u{i}@alias-a.com", f"u{i}@alias-b.com"]
                users.append((uid, addresses))
                rows_u.append({"id": uid, "account_id": account_id,
                               "primary_email": addresses[0], "status": "registered",
                               "tier": "pro", "personal_pin": f"{i:010d}", "privacy": "public",
                               "meetings_attended": 0, "meetings_organized": 0,
                               "chat_messages_sent": 0, "in_directory": True,
                               "directory_enabled": True, "source_addresses": addresses,
                               "attributes": {}, "created_at": now, "updated_at": now,
                               "version": 1})
                rows_a += [{"address": a, "user_id": uid, "domain": a.split("@")[1],
                            "is_primary": k == 0} for k, a in enumerate(addresses)]
                rows_i.append({"user_id": uid, "source": "ad", "issuer": account_id,
                               "external_id": f"guid-{i}", "created_at": now})
                rows_m.append({"group_id": group_id, "user_id": uid})
            conn.execute(insert(User), rows_u)
            conn.execute(insert(EmailAddress), rows_a)
            conn.execute(insert(ExternalIdentity), rows_i)
            conn.execute(insert(GroupMembership), rows_m)
    db.dispose()
    return account_id, users


def measure(url: str, n_users: int, samples: int, seed: int = 7) -> dict[str, Any]:
    upgrade(url)
    t0 = time.perf_counter()
    account_id, users = load(url, n_users)
    load_seconds = time.perf_counter() - t0
    db = make_engine(url)
    engine = ResolutionEngine(make_session_factory(db))
    actor = Actor(type="EndUser", principal_id="bench", source_ip="127.0.0.1")
    rng = random.Random(seed)
    picks = [(i, rng.randrange(n_users), rng.randrange(3)) for i in range(samples)]
    # Warm-up: connection pool, statement caches.
    for _, idx, which in picks[:50]:
        _, addresses = users[idx]
        engine.decide_sign_in(Identity(IdentitySource.ACTIVE_DIRECTORY, account_id,
                                       f"guid-{idx}", addresses[which], account_id), actor)
    timings: list[float] = []
    for _, idx, which in picks:
        _, addresses = users[idx]
        identity = Identity(IdentitySource.ACTIVE_DIRECTORY, account_id, f"guid-{idx}",
                            addresses[which], account_id)
        start = time.perf_counter()
        decision = engine.decide_sign_in(identity, actor)
        timings.append((time.perf_counter() - start) * 1000)
        if not decision.allowed:
            raise RuntimeError(f"unexpected denial: {decision}")
    db.dispose()
    timings.sort()
    return {
        "users": n_users, "aliases": 2 * n_users, "samples": samples,
        "load_seconds": round(load_seconds, 1),
        "p50_ms": round(statistics.median(timings), 3),
        "p95_ms": round(timings[int(0.95 * len(timings)) - 1], 3),
        "p99_ms": round(timings[int(0.99 * len(timings)) - 1], 3),
        "mean_ms": round(statistics.fmean(timings), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--postgres", action="store_true",
                        help="also run against a PostgreSQL server started on loopback")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            url = f"sqlite:///{Path(tmp) / f'bench-{n}.db'}"
            results.append({"backend": "sqlite", **measure(url, n, args.samples)})
            print(json.dumps(results[-1]), flush=True)
    if args.postgres:
        from tests.servers.postgres import PostgresServer

        with PostgresServer() as server:
            for n in sizes:
                url = server.create_database(f"bench_{n}")
                results.append({"backend": "postgresql", **measure(url, n, args.samples)})
                print(json.dumps(results[-1]), flush=True)
    by_backend: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_backend.setdefault(r["backend"], []).append(r)
    summary = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
               "python": platform.python_version()}
    for backend, rows in by_backend.items():
        if len(rows) >= 2:
            summary[f"{backend}_growth_p50"] = round(rows[-1]["p50_ms"] / rows[0]["p50_ms"], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
