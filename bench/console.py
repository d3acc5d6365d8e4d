"""Benchmark: server time of every console page with 1k and 100k users in the account.

For each size it bulk-loads one team account's users straight into a fresh SQLite
database (``bench.admin_api.load``), adds 50 more accounts, signs a FullAccess admin in
through the console's real sign-in form, then requests each page through the Flask app in
process (the whole server side: session check, policy evaluation, the engine reads, the
page's audit event, the template), one request at a time, in rounds that interleave the
pages so machine noise spreads over all of them:

- Accounts (first page), Accounts searched by name;
- Users: the first page, a deep page (the page after a random user), a search by a
  primary address prefix, a search by a whole address;
- User detail of a random user; the Reset personal PIN confirmation;
- Event history (first page, newest first), filtered by event name, filtered by
  principal; New account; Support;
- one action: Assign permissions to one user (a POST and its redirect target, the Users
  page, each timed on its own).

Run: ``.venv/bin/python -m bench.console [--sizes 1000,100000] [--rounds 40]``.
Prints JSON: per size and page the median and 95th percentile in ms, and per page the
ratio 100k/1k of the medians. Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import SECRET_KEY
from bench.admin_api import load
from bridge.api.console_credentials import ConsoleCredentials
from bridge.api.principals import PrincipalStore
from bridge.app import build_services, create_app
from bridge.domain import Actor
from bridge.store.db import upgrade
from config import load_settings

PASSWORD = "bench password, long enough"


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def run_size(n_users: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        t0 = time.perf_counter()
        account_id, ids = load(url, n_users)
        load_s = time.perf_counter() - t0
        settings = load_settings(env={}, overrides={
            "data_dir": Path(tmp) / "data", "database_url": url, "secret_key": SECRET_KEY,
            "console_sign_in_max_failures_per_address": 0})
        svc = build_services(settings)
        app = create_app(settings, svc)
        system = Actor.system("bench")
        for i in range(50):
            svc.engine.create_account(system, f"Other {i:02}")
        PrincipalStore(svc.engine.uow, svc.secrets).create(system, "bench-admin",
                                                           [{"Managed": "FullAccess"}])
        ConsoleCredentials(svc.engine.uow, svc.secrets).set_password(system, "bench-admin",
                                                                     PASSWORD)
        client = app.test_client()
        signed = client.post("/console", data={
            "csrf_token": _token(client.get("/console").text), "account_id": "000000000000",
            "username": "bench-admin", "password": PASSWORD})
        assert signed.status_code == 302, signed.text
        rng = random.Random(7)
        users = f"/console/accounts/{account_id}/users"

        def get(path: str) -> Callable[[], str]:
            def call() -> str:
                response = client.get(path() if callable(path) else path)
                assert response.status_code == 200, (response.status_code, path)
                return response.text
            return call

        pages: dict[str, Callable[[], Any]] = {
            "accounts": get("/console/accounts"),
            "accounts_search": get("/console/accounts?name=other+1"),
            "users_first_page": get(users),
            "users_deep_page": lambda: get(f"{users}?after={rng.choice(ids)}")(),
            "users_search_prefix": lambda: get(f"{users}?email=u{rng.randrange(n_users)}")(),
            "users_search_address": lambda: get(
                f"{users}?email=u{rng.randrange(n_users)}@bench.example")(),
            "user_detail": lambda: get(f"{users}/{rng.choice(ids)}")(),
            "reset_pin_confirm": lambda: get(
                f"{users}/{rng.choice(ids)}?confirm=reset-pin")(),
            "event_history": get("/console/events"),
            "event_history_by_name": get("/console/events?event_name=ListUsers"),
            "event_history_by_principal": get("/console/events?principal=bench-admin"),
            "new_account": get("/console/accounts/new"),
            "support": get("/console/support"),
        }
        token = _token(client.get(users).text)

        def assign() -> None:
            response = client.post(f"{users}/actions", data={
                "csrf_token": token, "action": "assign", "license": "Basic",
                "user_id": rng.choice(ids)})
            assert response.status_code == 302

        pages["assign_permissions_post"] = assign
        samples: dict[str, list[float]] = {name: [] for name in pages}
        for _ in range(3):  # warm-up: templates compiled, caches filled
            for call in pages.values():
                call()
        for _ in range(rounds):
            for name, call in pages.items():
                start = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - start) * 1000)
        svc.db.dispose()
    return {"users": n_users, "load_seconds": round(load_s, 1), "pages": {
        name: {"p50_ms": round(statistics.median(values), 2),
               "p95_ms": round(sorted(values)[int(len(values) * 0.95) - 1], 2),
               "max_ms": round(max(values), 2)}
        for name, values in samples.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = [run_size(n, args.rounds) for n in sizes]
    report: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                          "cpus": os.cpu_count()}, "runs": runs}
    if len(runs) >= 2:
        small, large = runs[0]["pages"], runs[-1]["pages"]
        report["ratio_largest_to_smallest_p50"] = {
            name: round(large[name]["p50_ms"] / small[name]["p50_ms"], 2) for name in small}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
