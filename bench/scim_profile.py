"""Profile: where one SCIM request's server CPU goes, in process (no HTTP, no clients).

A fresh SQLite store (or ``--url``) with ``--users`` users loaded by :func:`bench.scim.setup`,
the Flask application with the Flask test client, then for each kind of request
(``POST /Users`` with Okta's create body, ``PATCH /Users/{id}`` replacing ``title``,
``GET /Users?filter=userName eq``, ``GET /Users/{id}``): ``--requests`` requests timed with
``time.process_time`` (CPU per request) and the SQL statements counted, then the same
requests again under cProfile, whose ``--top`` functions by cumulative time are printed.

Run: ``.venv/bin/python -m bench.scim_profile [--users 2000] [--requests 300]
[--only creates,patches,lookups,gets] [--top 25]`` (``--top 0``: CPU per request only).
Not a test: figures go to docs/performance.md (issue 12).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import event

from bench import SECRET_KEY
from bench.scim import DOMAIN, PATCH_SCHEMA, USER_SCHEMA, setup
from bridge.app import build_services, create_app
from config import load_settings

PHASES = ("creates", "patches", "lookups", "gets")


def _requests(client: Any, key: str, ids: list[str], phase: str, rng: random.Random,
              counter: list[int]) -> Callable[[], None]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/scim+json",
               "User-Agent": "Okta SCIM Client 1.0.0"}

    def one() -> None:
        counter[0] += 1
        i = counter[0]
        if phase == "creates":
            name = f"prof-{i}@{DOMAIN}"
            resp = client.post("/scim/v2/Users", headers=headers, data=json.dumps({
                "schemas": [USER_SCHEMA], "userName": name, "active": True,
                "name": {"givenName": "New", "familyName": str(i)}, "locale": "en-US",
                "emails": [{"primary": True, "value": name, "type": "work"}],
                "displayName": f"New {i}", "externalId": f"00p{i}",
                "password": "t1meMa$heen"}))
            expected = 201
        elif phase == "patches":
            resp = client.patch(f"/scim/v2/Users/{ids[rng.randrange(len(ids))]}",
                                headers=headers, data=json.dumps({
                                    "schemas": [PATCH_SCHEMA], "Operations": [
                                        {"op": "replace", "path": "title",
                                         "value": f"title {i}"}]}))
            expected = 200
        elif phase == "lookups":
            flt = quote(f'userName eq "u{rng.randrange(len(ids))}@{DOMAIN}"')
            resp = client.get(f"/scim/v2/Users?filter={flt}&startIndex=1&count=100",
                              headers=headers)
            expected = 200
        else:
            resp = client.get(f"/scim/v2/Users/{ids[rng.randrange(len(ids))]}",
                              headers=headers)
            expected = 200
        if resp.status_code != expected:
            raise RuntimeError(f"{phase}: {resp.status_code} {resp.get_data()[:300]!r}")

    return one


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="default: a new SQLite file")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", default=",".join(PHASES))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        data_dir = Path(tmp)
        url = args.url or f"sqlite:///{data_dir / 'bridge.db'}"
        key, _account, ids = setup(url, data_dir, args.users)
        settings = load_settings(env={}, overrides={"data_dir": data_dir, "database_url": url,
                                                    "secret_key": SECRET_KEY})
        services = build_services(settings)
        statements = [0]

        @event.listens_for(services.db, "before_cursor_execute")
        def _count(*_args: Any) -> None:
            statements[0] += 1

        client = create_app(settings, services).test_client()
        rng = random.Random(1)
        counter = [0]
        for phase in args.only.split(","):
            one = _requests(client, key, ids, phase, rng, counter)
            for _ in range(20):  # warm-up: statement caches, first checkouts
                one()
            statements[0] = 0
            cpu = time.process_time()
            for _ in range(args.requests):
                one()
            cpu = time.process_time() - cpu
            print(f"== {phase}: {cpu * 1000 / args.requests:.2f} ms CPU per request, "
                  f"{statements[0] / args.requests:.1f} SQL statements per request")
            if args.top == 0:
                continue  # CPU per request only (--top 0)
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(args.requests):
                one()
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
        services.db.dispose()


if __name__ == "__main__":
    main()
