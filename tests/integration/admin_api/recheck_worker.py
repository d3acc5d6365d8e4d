"""A serving worker's background part in a process of its own, for the lease tests.

``python -m tests.integration.admin_api.recheck_worker GO_FILE``: builds the app from the
``BRIDGE_*`` environment and, once ``GO_FILE`` exists, calls ``start_background(app)`` —
what each gunicorn worker of ``bridge serve`` does after the fork. After its runner's first
attempt it stops and prints ``{"passes": N, "holder": ...}`` as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bridge.api.web import start_background
from bridge.app import build_services, create_app
from config import load_settings


def main(go_file: str) -> int:
    services = build_services(load_settings())
    app = create_app(services.settings, services)
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not Path(go_file).exists():  # both workers start their runner at the same moment
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.005)
    runner = start_background(app, services)
    if runner is None or not runner.wait_for_attempts(1, timeout=60):
        return 4
    runner.stop()
    print(json.dumps({"passes": runner.passes, "holder": runner.holder}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
