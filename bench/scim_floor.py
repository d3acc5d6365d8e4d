"""Floors for :mod:`bench.scim_reference`: servers that answer every SCIM request of the
bench without doing any of its work, measured in the same run as scim2-server and the bridge.

A floor answers ``200 {"totalResults": 1, "id": "x"}`` to everything (it reads the body
first, as a SCIM server must). Its rate is the most any application on that server stack
could reach on this machine with the bench's clients sharing its cores, so
``floor rate / scim2-server's rate`` bounds the ratio any application built on that stack
could score in the run:

* ``wsgi-gunicorn``: a bare WSGI function under gunicorn's defaults (one sync worker, as
  scim2-server is served): the cheapest Python HTTP stack measured here;
* ``flask-gunicorn``: a Flask application with the bridge's two user routes, same server;
* ``flask-waitress``: the same Flask application under waitress with 8 threads, as
  ``bridge serve`` runs the bridge.

The bridge is a Flask application on waitress; a request of it also checks a key, reads or
writes the store and renders a SCIM resource, all on top of its floor.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.servers.ports import LOOPBACK, free_port, stop_process_group, wait_for_own_listener

_BODY = b'{"totalResults": 1, "id": "x"}'

_APPS = f'''
from flask import Flask, request

BODY = {_BODY!r}
HEADERS = [("Content-Type", "application/scim+json"), ("Content-Length", str(len(BODY)))]


def wsgi(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", HEADERS)
    return [BODY]


flask = Flask(__name__)


@flask.route("/v2/Users", methods=["GET", "POST"])
@flask.route("/v2/Users/<user_id>", methods=["GET", "PATCH"])
def users(user_id=None):
    request.get_data()
    return BODY, 200, {{"Content-Type": "application/scim+json"}}
'''

FLOORS = {
    "wsgi-gunicorn": ("gunicorn", "bench_scim_floor:wsgi"),
    "flask-gunicorn": ("gunicorn", "bench_scim_floor:flask"),
    "flask-waitress": ("waitress", "bench_scim_floor:flask"),
}


class Floor:
    """One floor server (see :data:`FLOORS`) on a free loopback port; ``stop()`` ends it."""

    def __init__(self, root: Path, kind: str) -> None:
        server, app = FLOORS[kind]
        (root / "bench_scim_floor.py").write_text(_APPS)
        self.port = free_port()
        bin_dir = Path(sys.executable).parent
        if server == "gunicorn":
            command = [str(bin_dir / "gunicorn"), "--bind", f"{LOOPBACK}:{self.port}",
                       "--log-level", "warning", app]
        else:
            command = [str(bin_dir / "waitress-serve"), f"--listen={LOOPBACK}:{self.port}",
                       "--threads=8", app]
        self.proc = subprocess.Popen(command, cwd=str(root), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        # Its own listener: a process that took the port would be measured instead.
        wait_for_own_listener(self.proc, LOOPBACK, self.port, timeout=30)

    def stop(self) -> None:
        stop_process_group(self.proc)


def ratio_bound(floor: dict[str, Any], reference: dict[str, Any],
                phases: tuple[str, ...]) -> dict[str, float]:
    """Per phase, the floor's measured rate over scim2-server's: the highest ratio an
    application on the floor's stack could reach in this run."""
    return {phase: round(floor[phase]["per_second"] / max(reference[phase]["per_second"], 0.1),
                         2) for phase in phases}
