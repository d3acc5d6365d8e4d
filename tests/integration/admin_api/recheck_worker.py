"""A serving worker's background part in a process of its own, for the lease tests.

``python -m tests.integration.admin_api.recheck_worker``: builds the app from the
``BRIDGE_*`` environment, prints ``ready`` and, once a line arrives on stdin (the test
releases every worker at the same moment), calls ``start_background(app, services)`` —
what each gunicorn worker of ``bridge serve`` does after the fork. After its runner's first
attempt it stops and prints ``{"passes": N, "holder": ...}`` as JSON on stdout.
"""

from __future__ import annotations

import json
import sys

from bridge.api.web import start_background
from bridge.app import build_services, create_app
from config import load_settings


def main() -> int:
    services = build_services(load_settings())
    app = create_app(services.settings, services)
    print("ready", flush=True)
    if not sys.stdin.readline():  # the go signal: every worker starts its runner at once
        return 3
    runner = start_background(app, services)
    if runner is None or not runner.wait_for_attempts(1, timeout=60):
        return 4
    runner.stop()
    print(json.dumps({"passes": runner.passes, "holder": runner.holder}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
