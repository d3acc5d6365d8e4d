"""Benchmark: the OIDC door's own work per sign-in, and session verifications per second.

Setup: a real OpenID Provider (npm ``oidc-provider``, tests/servers/oidc_op.py) with an
Okta-style issuer path, an EnterpriseOIDC account on a fresh migrated SQLite store (mapped
Pro group, SCIM-provisioned users), the Flask app driven in-process by its test client.

Per sign-in (``--signins``, default 200, users round-robin):

* ``login``: ``GET /auth/login?email=`` (home-realm discovery, flow cookie, redirect);
* the provider's login (not timed: the provider's work, browserless);
* ``callback``: ``GET /auth/okta/callback`` in full; ``token_endpoint`` is the code
  exchange alone (timed around ``OidcDoor.exchange``: an HTTP round trip to the provider),
  and ``bridge_callback`` = callback - token_endpoint: state and iss checks, ID token
  validation (signature with the cached JWKS), the engine's decision (with its audit event and
  commit), the session row and the ES256-signed session JWT.

Then ``GET /auth/session`` for ``--seconds`` (default 5) on one thread through the test
client (``session_http_per_s``), and ``SessionManager.verify`` alone (``verify_per_s``).
Also reports the provider's own JWKS/token/discovery counts (JWKS must be 1).

Run: ``.venv/bin/python -m bench.oidc [--signins 200] [--seconds 5] [--postgres]``.
Prints one JSON object per store (SQLite; PostgreSQL on loopback with ``--postgres``).
Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from bench import SECRET_KEY
from bridge.app import build_services, create_app
from bridge.domain import Actor, IdentitySource, Tier
from bridge.sessions import SESSION_COOKIE
from bridge.store.db import upgrade
from config import load_settings
from tests.builders import claim
from tests.servers.oidc_op import OpenIdProvider

PUBLIC_URL = "http://127.0.0.1:9"
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"mean_ms": round(statistics.fmean(ordered) * 1000, 3),
            "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3)}


def run(signins: int, seconds: float, users: int = 20,
        database_url: str | None = None) -> dict[str, Any]:
    accounts = {f"u{i}@bench.example": {"sub": f"00u{i}", "email": f"u{i}@bench.example",
                                        "email_verified": True, "groups": ["Engineering"]}
                for i in range(users)}
    clients = [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "redirect_uris": [PUBLIC_URL + "/auth/okta/callback"]}]
    admin = Actor.system("bench")
    with tempfile.TemporaryDirectory() as tmp, OpenIdProvider(
            issuer_path="/oauth2/default", clients=clients, accounts=accounts) as op:
        url = database_url or f"sqlite:///{Path(tmp) / 'bridge.db'}"
        upgrade(url)
        settings = load_settings(env={}, overrides={"data_dir": Path(tmp) / "data",
                                                    "database_url": url,
                                                    "secret_key": SECRET_KEY,
                                                    "public_url": PUBLIC_URL})
        services = build_services(settings)
        engine = services.engine
        account = engine.create_account(admin, "Bench")
        claim(engine, admin, account.id, "bench.example")
        engine.openid_configs.update(admin, account.id, issuer_uri=op.issuer,
                                     client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                     connect=True)
        group = engine.upsert_group(admin, account.id, name="Engineering")
        engine.add_or_update_group_mappings(admin, account.id, {group.name: Tier.PRO})
        for hint, claims in accounts.items():
            engine.upsert_directory_user(admin, account.id, source=IdentitySource.SCIM,
                                         external_id=str(claims["sub"]), primary_email=hint)
        app = create_app(settings, services)
        door = app.extensions["oidc"]
        exchange_times: list[float] = []
        real_exchange = door.exchange

        def timed_exchange(*args: Any, **kwargs: Any) -> dict[str, Any]:
            started = time.perf_counter()
            try:
                return real_exchange(*args, **kwargs)
            finally:
                exchange_times.append(time.perf_counter() - started)

        door.exchange = timed_exchange
        op.reset_stats()
        logins: list[float] = []
        callbacks: list[float] = []
        token = ""
        hints = list(accounts)
        http = requests.Session()
        for i in range(signins):
            web = app.test_client()
            started = time.perf_counter()
            start = web.get("/auth/login", query_string={"email": hints[i % users]})
            logins.append(time.perf_counter() - started)
            final = op.follow_login(http, start.headers["Location"])
            parts = urlsplit(final)
            started = time.perf_counter()
            resp = web.get(f"{parts.path}?{parts.query}")
            callbacks.append(time.perf_counter() - started)
            if resp.status_code != 302:
                raise RuntimeError(f"sign-in {i} failed: {resp.get_data(as_text=True)}")
            cookie = web.get_cookie(SESSION_COOKIE)
            token = cookie.value if cookie else ""
        provider_counts = op.stats()
        bridge_only = [c - e for c, e in zip(callbacks, exchange_times, strict=True)]

        reader = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        count, deadline = 0, time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            if reader.get("/auth/session", headers=headers).status_code != 200:
                raise RuntimeError("session verification failed")
            count += 1
        http_rate = count / (time.perf_counter() - started)
        manager = app.extensions["bridge.sessions"]
        count, deadline = 0, time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            manager.verify(token)
            count += 1
        verify_rate = count / (time.perf_counter() - started)
        services.db.dispose()
    return {
        "benchmark": "oidc", "store": url.partition(":")[0].partition("+")[0],
        "signins": signins,
        "login": _ms(logins), "callback": _ms(callbacks),
        "token_endpoint": _ms(exchange_times), "bridge_callback": _ms(bridge_only),
        "session_http_per_s": round(http_rate, 1), "verify_per_s": round(verify_rate, 1),
        "provider_requests": provider_counts,
        "machine": {"python": platform.python_version(), "cpu": platform.processor()
                    or platform.machine(), "system": platform.platform()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signins", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--postgres", action="store_true",
                        help="also run on a PostgreSQL server started on loopback")
    args = parser.parse_args()
    print(json.dumps(run(args.signins, args.seconds), indent=2), flush=True)
    if args.postgres:
        from tests.servers.postgres import PostgresServer

        with PostgresServer() as server:
            url = server.create_database("bench_oidc")
            print(json.dumps(run(args.signins, args.seconds, database_url=url), indent=2))


if __name__ == "__main__":
    main()
