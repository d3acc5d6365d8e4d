"""Benchmark: the SCIM door served by ``bridge serve``, driven by concurrent HTTP clients.

For each store (the embedded SQLite default, and PostgreSQL started on loopback by
``tests/servers/postgres.py``) and each size (default 1k and 100k users in one account):

1. a fresh migrated database; an enterprise account with a verified domain and a SCIM key
   made through the engine and ``bridge.engine.api_keys``; ``size`` SCIM users (userName, email,
   externalId link, attributes) bulk-loaded straight through SQLAlchemy Core;
2. ``bridge serve`` (waitress, 4 threads per ``--workers``) on a free 127.0.0.1 port;
3. ``--clients`` client processes, each with one keep-alive connection, for ``--seconds``
   per phase:
   - lookups: Okta's ``GET /Users?filter=userName eq "<random existing user>"&startIndex=1
     &count=100`` (each reply checked: exactly one user);
   - creates: ``POST /Users`` with Okta's create body (a new userName each);
   - patches: ``PATCH /Users/{random id}`` replacing ``title`` (Okta/Entra style).

It prints a JSON summary (requests/s, p50/p99 latency, errors, and the 100k/1k lookup
ratio, which must stay under 1.5). Bounded: about 2 minutes per store with the defaults.

Run: ``.venv/bin/python -m bench.scim [--stores sqlite,postgres] [--sizes 1000,100000]
[--seconds 5] [--clients 8] [--workers 2]``. Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import insert

from bench import SECRET_KEY
from bridge.app import build_services
from bridge.domain import Actor, IdentitySource
from bridge.store.db import make_engine, upgrade
from bridge.store.models import EmailAddress, ExternalIdentity, User, utcnow
from config import load_settings
from tests.builders import enterprise
from tests.servers.ports import (
    LOOPBACK,
    free_port,
    stop_process_group,
    wait_for_own_listener,
    wait_for_port,
)
from tests.servers.postgres import PostgresServer

CHUNK = 5_000
DOMAIN = "bench.example"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ADMIN = Actor(type="Bench", principal_id="bench", name="bench")


def setup(url: str, data_dir: Path, size: int) -> tuple[str, str, list[str]]:
    """Account, key and ``size`` users; returns (key, account id, user ids)."""
    upgrade(url)
    settings = load_settings(env={}, overrides={"data_dir": data_dir, "database_url": url,
                                                "secret_key": SECRET_KEY})
    services = build_services(settings)
    account = enterprise(services.engine, ADMIN, [DOMAIN], name="Bench Corp")
    key = services.engine.api_keys.create(ADMIN, account.id, connect=True).key
    services.db.dispose()
    db = make_engine(url)
    now = utcnow()
    ids = [str(uuid.uuid4()) for _ in range(size)]
    with db.begin() as conn:
        for start in range(0, size, CHUNK):
            chunk = range(start, min(start + CHUNK, size))
            conn.execute(insert(User), [{
                "id": ids[i], "account_id": account.id, "primary_email": f"u{i}@{DOMAIN}",
                "user_name": f"u{i}@{DOMAIN}", "user_name_lower": f"u{i}@{DOMAIN}",
                "display_name": f"User {i}", "status": "registered", "tier": None,
                "personal_pin": f"{i:010d}", "in_directory": True, "directory_enabled": True,
                "created_at": now, "updated_at": now, "version": 1,
                "source_addresses": [f"u{i}@{DOMAIN}"],
                "attributes": {"externalId": f"00u{i}", "active": True,
                               "name": {"givenName": "User", "familyName": str(i)},
                               "emails": [{"value": f"u{i}@{DOMAIN}", "type": "work",
                                           "primary": True}]},
                **_folded(f"User {i}", f"u{i}@{DOMAIN}", i)} for i in chunk])
            conn.execute(insert(EmailAddress), [{
                "address": f"u{i}@{DOMAIN}", "user_id": ids[i], "domain": DOMAIN,
                "is_primary": True} for i in chunk])
            conn.execute(insert(ExternalIdentity), [{
                "user_id": ids[i], "source": IdentitySource.SCIM.value, "issuer": account.id,
                "external_id": f"00u{i}", "created_at": now} for i in chunk])
    if url.startswith("postgresql"):
        with db.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    db.dispose()
    return key, account.id, ids


def served_app() -> Any:
    """The application as ``bridge serve`` builds it (settings from the BRIDGE_*
    environment), for the candidate servers of :class:`Server` (granian's ``--factory``,
    gunicorn's ``module:served_app()``)."""
    from bridge.serve import build_app

    return build_app(load_settings())


def _folded(display_name: str, user_name: str, i: int) -> dict[str, Any]:
    """The folded search copy as the engine writes it (absent before that column existed:
    the bench also runs older code, put first on PYTHONPATH, for before/after figures)."""
    try:
        from bridge.domain.search import folded_user_document
    except ImportError:
        return {}
    return {"search_folded": folded_user_document(display_name, {
        "name": {"givenName": "User", "familyName": str(i)},
        "emails": [{"value": user_name, "type": "work", "primary": True}]}, user_name,
        user_name)}


class Server:
    """The bridge on a free loopback port, in a process group of its own."""

    def __init__(self, url: str, data_dir: Path, workers: int,
                 server: str = "waitress") -> None:
        """``server``: ``bridge serve`` with waitress (its default: one process, 4 threads
        per worker) or gunicorn (``workers`` processes of 4 gthreads); or ``granian`` (a
        Rust HTTP server from PyPI, measured as a candidate, not shipped: ``workers``
        processes of 4 blocking threads serving :func:`served_app`); ``granian1``: one
        granian process of ``4 * workers`` threads; ``gunicorn-sync``: gunicorn's sync
        workers, ``2 * workers + 1`` processes of one request each (no keep-alive)."""
        self.port = free_port()
        env = {**os.environ, "BRIDGE_DATABASE_URL": url, "BRIDGE_DATA_DIR": str(data_dir),
               "BRIDGE_SERVER": server if server in ("waitress", "gunicorn") else "waitress",
               "BRIDGE_SECRET_KEY": SECRET_KEY,
               "BRIDGE_PORT": str(self.port), "BRIDGE_HOST": LOOPBACK,
               "BRIDGE_LOG_LEVEL": "WARNING", "BRIDGE_WORKERS": str(workers)}
        if server.startswith("granian"):
            processes, threads = (1, 4 * workers) if server == "granian1" else (workers, 4)
            command = [str(Path(sys.executable).with_name("granian")), "--interface", "wsgi",
                       "--host", LOOPBACK, "--port", str(self.port), "--workers",
                       str(processes), "--blocking-threads", str(threads),
                       "--log-level", "warning", "--no-access-log", "--factory",
                       "bench.scim:served_app"]
        elif server == "gunicorn-sync":
            command = [str(Path(sys.executable).with_name("gunicorn")), "--bind",
                       f"{LOOPBACK}:{self.port}", "--workers", str(2 * workers + 1),
                       "--worker-class", "sync", "--log-level", "warning",
                       "bench.scim:served_app()"]
        else:
            command = [str(Path(sys.executable).with_name("bridge")), "serve"]
        self.proc = subprocess.Popen(command, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if server.startswith("granian"):  # its workers may hold the socket
            wait_for_port(LOOPBACK, self.port, timeout=30)
        else:  # its own listener: a process that took the port is not measured
            wait_for_own_listener(self.proc, LOOPBACK, self.port, timeout=30)

    def stop(self) -> None:
        stop_process_group(self.proc)


def create_body(name: str, external_id: str, i: int) -> str:
    """Okta's create body for user ``i`` (the one every SCIM bench sends)."""
    return json.dumps({
        "schemas": [USER_SCHEMA], "userName": name, "active": True,
        "name": {"givenName": "New", "familyName": str(i)}, "locale": "en-US",
        "emails": [{"primary": True, "value": name, "type": "work"}],
        "displayName": f"New {i}", "externalId": external_id, "password": "t1meMa$heen"})


def _client(args: tuple[str, int, str, str, list[str], float, int]) -> dict[str, Any]:
    """One client process: one keep-alive connection, ``phase`` requests until the
    deadline, every reply checked (a lookup must find exactly one user)."""
    phase, port, prefix, key, ids, seconds, seed = args
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/scim+json",
               "User-Agent": "Okta SCIM Client 1.0.0"}
    latencies: list[float] = []
    errors = 0
    failed: dict[str, int] = {}  # failed replies by status, to tell their cause
    n = len(ids)
    cpu_started = time.process_time()
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        i += 1
        body = None
        if phase == "creates":
            method, path = "POST", f"{prefix}/Users"
            # The port in the name: several servers may run on one store in one run.
            body = create_body(f"new-{port}-{seed}-{i}@{DOMAIN}", f"00n{port}x{seed}x{i}", i)
        elif phase == "patches":
            method, path = "PATCH", f"{prefix}/Users/{ids[rng.randrange(n)]}"
            body = json.dumps({"schemas": [PATCH_SCHEMA], "Operations": [
                {"op": "replace", "path": "title", "value": f"title {i}"}]})
        elif phase == "lookups":
            flt = quote(f'userName eq "u{rng.randrange(n)}@{DOMAIN}"')
            method, path = "GET", f"{prefix}/Users?filter={flt}&startIndex=1&count=100"
        else:
            method, path = "GET", f"{prefix}/Users/{ids[rng.randrange(n)]}"
        start = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        latencies.append(time.perf_counter() - start)
        ok = resp.status in (200, 201, 204)  # scim2-server answers a PATCH with 204
        if ok and phase == "lookups":
            ok = json.loads(data)["totalResults"] == 1
        if not ok:
            errors += 1
            failed[str(resp.status)] = failed.get(str(resp.status), 0) + 1
    conn.close()
    return {"latencies": latencies, "errors": errors, "failed": failed,
            "cpu_seconds": time.process_time() - cpu_started}


def run_phase(phase: str, port: int, key: str, ids: list[str], seconds: float,
              clients: int, prefix: str = "/scim/v2") -> dict[str, Any]:
    """``clients`` client processes for ``seconds``: requests, requests/s, errors, p50/p99,
    and the clients' own CPU per request (user + system time of the client processes while
    they sent: what the load generator takes from the machine's cores)."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(clients) as pool:
        started = time.perf_counter()
        parts = pool.map(_client, [(phase, port, prefix, key, ids, seconds, s)
                                   for s in range(clients)])
        elapsed = time.perf_counter() - started
    latencies = sorted(x for p in parts for x in p["latencies"])
    count = len(latencies)
    return {
        "requests": count, "errors": sum(p["errors"] for p in parts),
        "failed_by_status": {status: sum(p["failed"].get(status, 0) for p in parts)
                             for status in sorted({k for p in parts for k in p["failed"]})},
        "per_second": round(count / max(elapsed, seconds), 1),
        "client_cpu_ms_per_request": round(
            sum(p["cpu_seconds"] for p in parts) * 1000 / max(count, 1), 3),
        "p50_ms": round(latencies[count // 2] * 1000, 2) if count else None,
        "p99_ms": round(latencies[min(count - 1, int(count * 0.99))] * 1000, 2)
        if count else None,
    }


def bench_store(store: str, sizes: list[int], seconds: float, clients: int, workers: int,
                stack: ExitStack) -> dict[str, Any]:
    results: dict[str, Any] = {}
    pg: PostgresServer | None = None
    if store == "postgres":
        pg = stack.enter_context(PostgresServer())
    for size in sizes:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scim-")))
        url = pg.create_database(f"bench_scim_{size}") if pg else \
            f"sqlite:///{data_dir / 'bridge.db'}"
        started = time.perf_counter()
        key, _account, ids = setup(url, data_dir, size)
        load_seconds = round(time.perf_counter() - started, 1)
        server = Server(url, data_dir, workers)
        try:
            run_phase("lookups", server.port, key, ids, 1.0, clients)  # warm-up
            row: dict[str, Any] = {"load_seconds": load_seconds}
            for phase in ("lookups", "creates", "patches"):
                row[phase] = run_phase(phase, server.port, key, ids, seconds, clients)
        finally:
            server.stop()
        results[str(size)] = row
    if len(sizes) >= 2:
        small, large = results[str(min(sizes))], results[str(max(sizes))]
        results["lookup_slowdown"] = round(
            small["lookups"]["per_second"] / large["lookups"]["per_second"], 2)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "method": {"seconds_per_phase": args.seconds, "clients": args.clients,
                   "server": "waitress", "threads": 4 * args.workers},
    }
    started = time.perf_counter()
    with ExitStack() as stack:
        for store in args.stores.split(","):
            summary[store] = bench_store(store, sizes, args.seconds, args.clients,
                                         args.workers, stack)
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
