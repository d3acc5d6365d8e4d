"""Benchmark: admin API calls per second for GetUser and ListUsers (page of 100).

For each size (default 1k and 100k users in one account) it bulk-loads users and their
primary addresses straight through SQLAlchemy Core into a fresh SQLite database (the
embedded default), creates a FullAccess admin principal, and times full admin requests:
SigV4 signing by botocore, the Flask app in process (signature verification, policy
evaluation, the engine read, the audit event of the call, JSON), one request at a time.

- GetUser: a random user of the account each call.
- ListUsers: a page of 100 starting at a random position (NextToken of a random user),
  so deep pages are measured, not only the first one.

With ``--http`` it also times the same calls through boto3 over real HTTP (werkzeug's
threaded server on 127.0.0.1), which adds the SDK's and the HTTP stack's own cost.

Run: ``.venv/bin/python -m bench.admin_api [--sizes 1000,100000] [--seconds 5] [--http]``.
Prints a JSON summary. Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import insert

from bench import SECRET_KEY
from bridge.api.framework import STATE_KEY
from bridge.app import build_services, create_app
from bridge.domain import Actor
from bridge.store.db import upgrade
from bridge.store.models import Account, EmailAddress, User, utcnow
from config import load_settings

CHUNK = 10_000


def load(url: str, n_users: int) -> tuple[str, list[str]]:
    """One team account with ``n_users`` registered users; returns (account id, user ids)."""
    from bridge.store.db import make_engine

    db = make_engine(url)
    account_id = str(uuid.uuid4())
    now = utcnow()
    ids = [str(uuid.uuid4()) for _ in range(n_users)]
    with db.begin() as conn:
        conn.execute(insert(Account), [{"id": account_id, "name": "Bench", "name_lower": "bench",
                                        "created_at": now}])
        for start in range(0, n_users, CHUNK):
            chunk = range(start, min(start + CHUNK, n_users))
            conn.execute(insert(User), [{
                "id": ids[i], "account_id": account_id, "primary_email": f"u{i}@bench.example",
                "status": "registered", "tier": "pro", "personal_pin": f"{i:010d}",
                "joined_at": now, "created_at": now, "updated_at": now, "version": 1,
                "source_addresses": [], "attributes": {}} for i in chunk])
            conn.execute(insert(EmailAddress), [{
                "address": f"u{i}@bench.example", "user_id": ids[i], "domain": "bench.example",
                "is_primary": True} for i in chunk])
    db.dispose()
    return account_id, ids


def _token(user_id: str) -> str:
    return base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")


def rate(call: Callable[[], None], seconds: float) -> dict[str, float]:
    """Calls per second of ``call`` over ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        call()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    total = sum(latencies)
    return {"calls": len(latencies), "calls_per_s": round(len(latencies) / total, 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 2)}


def run_size(n_users: int, seconds: float, http: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        t0 = time.perf_counter()
        account_id, ids = load(url, n_users)
        load_s = time.perf_counter() - t0
        # Throttling off: one principal calls far more than the default 1200 a minute here
        # (the per-call cost of the throttle check is measured in docs/performance.md).
        settings = load_settings(env={}, overrides={"data_dir": Path(tmp) / "data",
                                                    "database_url": url,
                                                    "secret_key": SECRET_KEY,
                                                    "admin_api_max_requests_per_minute": 0})
        svc = build_services(settings)
        app = create_app(settings, svc)
        created = app.extensions[STATE_KEY].principals.create(
            Actor.system("bench"), "bench-admin", [{"Managed": "FullAccess"}])
        creds = Credentials(created.access_key_id, created.secret_access_key)
        client = app.test_client()
        rng = random.Random(7)

        def signed_get(path: str, query: str = "") -> None:
            url_ = f"http://localhost{path}" + (f"?{query}" if query else "")
            request = AWSRequest(method="GET", url=url_, data=b"")
            SigV4Auth(creds, "chime", "us-east-1").add_auth(request)
            response = client.get(path, query_string=query, headers=dict(request.headers))
            assert response.status_code == 200, response.get_data(as_text=True)

        def get_user() -> None:
            signed_get(f"/accounts/{account_id}/users/{rng.choice(ids)}")

        def list_users() -> None:
            start = ids[rng.randrange(len(ids))]
            signed_get(f"/accounts/{account_id}/users",
                       f"max-results=100&next-token={_token(start)}")

        result: dict[str, Any] = {"users": n_users, "load_s": round(load_s, 1),
                                  "in_process": {"GetUser": rate(get_user, seconds),
                                                 "ListUsers100": rate(list_users, seconds)}}
        if http:
            result["boto3_http"] = _http(app, created.access_key_id,
                                         created.secret_access_key, account_id, ids,
                                         seconds, rng)
        svc.db.dispose()
        return result


def _http(app: Any, key_id: str, secret: str, account_id: str, ids: list[str],
          seconds: float, rng: random.Random) -> dict[str, Any]:
    import boto3
    from botocore.config import Config
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        chime = boto3.client("chime", endpoint_url=f"http://127.0.0.1:{server.server_port}",
                             region_name="us-east-1", aws_access_key_id=key_id,
                             aws_secret_access_key=secret,
                             config=Config(retries={"max_attempts": 1, "mode": "standard"}))

        def get_user() -> None:
            chime.get_user(AccountId=account_id, UserId=rng.choice(ids))

        def list_users() -> None:
            chime.list_users(AccountId=account_id, MaxResults=100,
                             NextToken=_token(ids[rng.randrange(len(ids))]))

        return {"GetUser": rate(get_user, seconds), "ListUsers100": rate(list_users, seconds)}
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--http", action="store_true")
    args = parser.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    results = [run_size(int(s), args.seconds, args.http) for s in args.sizes.split(",")]
    summary: dict[str, Any] = {
        "benchmark": "admin_api", "backend": "sqlite",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "results": results}
    if len(results) >= 2:
        small, large = results[0]["in_process"], results[-1]["in_process"]
        summary["slowdown_small_to_large"] = {
            op: round(small[op]["calls_per_s"] / large[op]["calls_per_s"], 2)
            for op in ("GetUser", "ListUsers100")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
