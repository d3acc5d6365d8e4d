"""Benchmark: the bridge's SCIM door side by side with the reference server ``scim2-server``.

Both servers run in ONE run on the same machine, each measured with the same client load:

1. ``scim2-server`` (python-scim's SCIM server core, in-memory storage) is installed from
   PyPI by this bench with pip into a temporary directory (never into the bridge's
   environment), wrapped in a 10-line WSGI module that builds the application exactly as its
   ``scim2-server`` command does (RFC 7643 schemas, a static bearer token), and served by
   gunicorn with gunicorn's defaults (one sync worker: its storage lives in one process).
2. The bridge: ``bridge serve`` on SQLite (and PostgreSQL with ``--stores sqlite,postgres``),
   with its users bulk-loaded by :func:`bench.scim.setup`. ``--bridge-servers`` picks the
   server configurations: ``waitress`` (the default of ``bridge serve``: ONE process, 8
   threads, as scim2-server's one gunicorn process) and/or ``gunicorn`` (2 processes x 4
   threads, for a deployment behind a buffering proxy: both cores).
3. ``--users`` users in each (POSTed to scim2-server), then ``--clients`` client processes,
   one keep-alive connection each, ``--seconds`` per phase, every reply checked:
   - creates: ``POST /Users`` with Okta's create body (a new userName each);
   - patches: ``PATCH /Users/{random id}`` replacing ``title``;
   - lookups: ``GET /Users?filter=userName eq "<random existing user>"`` (one user found);
   - gets: ``GET /Users/{random id}``.

It prints a JSON summary with requests/s per phase and server, the server's CPU per request
(its processes' user + system time: the figure a shared machine's load does not skew), the
clients' CPU per request, and the ratio bridge / scim2-server of each phase (the issue's
targets: creates and PATCHes >= 1.5, lookups and GETs >= 3 on SQLite). The clients share
the machine's cores with the server, so ``cores / (client + server CPU per request)`` bounds
a phase's rate (``cores_bound_per_second``) and ``cores / client CPU per request`` bounds
it for a server that cost nothing (``free_server_bound_per_second``); the latter over
scim2-server's measured rate is the highest ratio any server could reach in that run
(``ratio_bound_with_a_free_server``). All traffic is on 127.0.0.1; each phase stops by itself.

Run: ``.venv/bin/python -m bench.scim_reference [--stores sqlite] [--users 2000]
[--seconds 5] [--clients 8] [--bridge-servers waitress,gunicorn] [--floors none]``
(the floors, :mod:`bench.scim_floor`, run by default). Not a test: figures go
to docs/performance.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.scim import DOMAIN, Server, create_body, run_phase, setup
from bench.scim_floor import FLOORS, Floor, ratio_bound
from tests.servers.ports import LOOPBACK, free_port, stop_process_group, wait_for_own_listener
from tests.servers.postgres import PostgresServer

REFERENCE = "scim2-server>=0.8,<0.9"
TOKEN = "bench-reference-token"
PHASES = ("creates", "patches", "lookups", "gets")

# The WSGI module gunicorn serves: the application of the ``scim2-server`` command
# (scim2_server/testserver/cli.py), without its development HTTP server.
_APP = f'''
from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (load_default_resource_types, load_default_schemas,
                                load_default_service_provider_config)

config = load_default_service_provider_config()
config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
provider = ScimProvider.from_discovery(load_default_schemas().values(),
                                       load_default_resource_types().values(), config=config)
app = BearerTokenApplication(InMemoryStorage(), provider,
                             service=ScimService(provider, secret="bench"),
                             bearer_tokens=[{TOKEN!r}])
'''


class Reference:
    """scim2-server under gunicorn (defaults), installed into ``root`` from PyPI."""

    def __init__(self, root: Path) -> None:
        site = root / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target",
                        str(site), REFERENCE], check=True, stdout=subprocess.DEVNULL)
        (site / "bench_scim2_reference.py").write_text(_APP)
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(site)}
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.proc = subprocess.Popen(
            [str(gunicorn), "--bind", f"{LOOPBACK}:{self.port}", "--log-level", "warning",
             "bench_scim2_reference:app"], env=env, cwd=str(site),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # Its own listener: a process that took the port would be measured instead.
        wait_for_own_listener(self.proc, LOOPBACK, self.port, timeout=60)

    def stop(self) -> None:
        stop_process_group(self.proc)


def load_reference(port: int, users: int) -> list[str]:
    """``users`` users POSTed to scim2-server (named as bench.scim.setup names them)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
    ids = []
    for i in range(users):
        conn.request("POST", "/v2/Users", body=create_body(f"u{i}@{DOMAIN}", f"00u{i}", i),
                     headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 201:
            raise RuntimeError(f"scim2-server refused a create: {resp.status} {data[:200]!r}")
        ids.append(json.loads(data)["id"])
    conn.close()
    return ids


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` and its children (gunicorn's workers)."""
    children = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.add(int(entry.name))
    total = 0
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_phases(port: int, pid: int, prefix: str, key: str, ids: list[str], seconds: float,
               clients: int) -> dict[str, Any]:
    """Every phase; besides requests/s, the server's CPU per request (its processes' user +
    system time over the phase): on a shared machine the figure that load does not skew."""
    run_phase("lookups", port, key, ids, 1.0, clients, prefix)  # warm-up
    out = {}
    for phase in PHASES:
        before = server_cpu_seconds(pid)
        row = run_phase(phase, port, key, ids, seconds, clients, prefix)
        requests = row.pop("requests")
        row["server_cpu_ms_per_request"] = round(
            (server_cpu_seconds(pid) - before) * 1000 / max(requests, 1), 2)
        # What the machine's cores allow, the load generator sharing them: with this
        # server's CPU per request, and with a server that cost nothing at all.
        cores = os.cpu_count() or 1
        row["cores_bound_per_second"] = round(
            cores * 1000 / (row["client_cpu_ms_per_request"] + row["server_cpu_ms_per_request"]))
        row["free_server_bound_per_second"] = round(
            cores * 1000 / max(row["client_cpu_ms_per_request"], 0.001))
        out[phase] = row
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--floors", default=",".join(FLOORS),
                        help="comma-separated floors (bench.scim_floor), or none")
    parser.add_argument("--bridge-servers", default="waitress",
                        help="comma-separated: waitress, gunicorn (bridge serve), granian, "
                        "granian1, gunicorn-sync (candidates, see bench.scim.Server)")
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "method": {"users": args.users, "seconds_per_phase": args.seconds,
                   "clients": args.clients, "reference": REFERENCE,
                   "bridge_servers": {"waitress": "1 process x 8 threads",
                                      "gunicorn": "2 processes x 4 threads",
                                      "granian": "2 processes x 4 threads",
                                      "granian1": "1 process x 8 threads",
                                      "gunicorn-sync": "5 sync processes"}},
    }
    started = time.perf_counter()
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ref-")))
        reference = Reference(root)
        try:
            ids = load_reference(reference.port, args.users)
            summary["scim2-server"] = run_phases(reference.port, reference.proc.pid, "/v2",
                                                 TOKEN, ids, args.seconds, args.clients)
        finally:
            reference.stop()
        for kind in [k for k in args.floors.split(",") if k and k != "none"]:
            floor = Floor(root, kind)
            try:
                row = run_phases(floor.port, floor.proc.pid, "/v2", TOKEN, ids, args.seconds,
                                 args.clients)
            finally:
                floor.stop()
            row["ratio_bound"] = ratio_bound(row, summary["scim2-server"], PHASES)
            summary[f"floor-{kind}"] = row
        pg: PostgresServer | None = None
        for store in args.stores.split(","):
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            if store == "postgres":
                pg = pg or stack.enter_context(PostgresServer())
                url = pg.create_database("bench_scim_reference")
            else:
                url = f"sqlite:///{data_dir / 'bridge.db'}"
            key, _account, bridge_ids = setup(url, data_dir, args.users)
            for kind in args.bridge_servers.split(","):
                server = Server(url, data_dir, workers=2, server=kind)
                try:
                    row = run_phases(server.port, server.proc.pid, "/scim/v2", key,
                                     bridge_ids, args.seconds, args.clients)
                finally:
                    server.stop()
                row["ratio_to_scim2_server"] = {
                    phase: round(row[phase]["per_second"]
                                 / max(summary["scim2-server"][phase]["per_second"], 0.1), 2)
                    for phase in PHASES}
                # The highest ratio any server could reach here: the clients' own CPU
                # per request bounds the rate even if the server cost nothing.
                row["ratio_bound_with_a_free_server"] = {
                    phase: round(row[phase]["free_server_bound_per_second"]
                                 / max(summary["scim2-server"][phase]["per_second"], 0.1), 2)
                    for phase in PHASES}
                summary[f"bridge-{store}-{kind}"] = row
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
