"""``bridge serve`` with several gunicorn workers: /metrics adds up every worker's values
(prometheus-client multiprocess mode), keeps those of a worker that was replaced, counts
nothing twice, and is served on its own port when BRIDGE_METRICS_PORT is set."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.servers.bridge_serve import ServeLog
from tests.servers.ports import free_port, wait_for_own_listener, wait_for_port

HEALTH = 'bridge_http_requests_total{door="health",operation="GET /healthz",status_class="2xx"}'


def _get(url: str) -> tuple[int, str]:
    response = requests.get(url, timeout=10)
    return response.status_code, response.text


def _sample(text: str, sample: str) -> float:
    match = re.search(re.escape(sample) + r" ([0-9.e+]+)", text)
    return float(match.group(1)) if match else 0.0


def _workers(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True,
                         text=True, check=False).stdout
    return [int(p) for p in out.split()]


def _booted(line: str) -> int | None:
    """The pid of the worker whose boot gunicorn logs on ``line``, if it does."""
    match = re.search(r"Booting worker with pid: (\d+)", line)
    return int(match.group(1)) if match else None


def test_metrics_add_up_across_workers_on_their_own_port(tmp_path: Path) -> None:
    workers = 2
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "BRIDGE_DATA_DIR": str(tmp_path / "data"), "BRIDGE_PORT": str(port),
           "BRIDGE_WORKERS": str(workers), "BRIDGE_DATABASE_URL": "",
           "BRIDGE_METRICS_PORT": str(metrics_port), "BRIDGE_LOG_FORMAT": "json",
           "BRIDGE_SERVER": "gunicorn"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    metrics_dir = tmp_path / "data" / "metrics"
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # from an earlier run
    log = ServeLog()
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--migrate"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    reader = log.follow(proc.stdout)
    try:
        wait_for_own_listener(proc, "127.0.0.1", port, timeout=30)
        wait_for_port("127.0.0.1", metrics_port, timeout=30)
        scrape = f"http://127.0.0.1:{metrics_port}/metrics"
        for _ in range(30):
            assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert _sample(_get(scrape)[1], HEALTH) == 30
        # Replace a worker: what it counted stays counted, once. gunicorn logs the boot of
        # the replacement; wait for that line, then for the new worker to answer.
        before = _workers(proc.pid)
        assert len(before) == workers
        os.kill(before[0], signal.SIGTERM)
        log.wait_for(lambda line: _booted(line) not in (None, *before), timeout=30,
                     what="the replacement worker's boot")
        wait_for_port("127.0.0.1", port, timeout=30)
        for _ in range(10):
            assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        text = _get(scrape)[1]
        assert _sample(text, HEALTH) == 40
        # The main port does not serve metrics when they have a port of their own.
        assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=30)
    assert not (metrics_dir / "counter_999999.db").exists()
    lines = [line for line in log.lines if '"bridge.request"' in line]
    assert len(lines) >= 40 and all('"request_id": "' in line for line in lines)


def test_the_command_line_does_not_load_prometheus_client_before_serve_sets_it_up() -> None:
    # prometheus-client picks its multiprocess mode when first imported: nothing the
    # `bridge` command loads before `serve` runs may import it.
    code = ("import sys; from bridge.cli import build_parser; build_parser(); "
            "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_the_sync_daemon_serves_its_metrics_on_its_own_port(tmp_path: Path) -> None:
    metrics_port = free_port()
    env = {**os.environ, "BRIDGE_DATA_DIR": str(tmp_path / "data"), "BRIDGE_DATABASE_URL": ""}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([sys.executable, "-m", "bridge.cli", "db", "upgrade"], env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "sync-ad", "--daemon",
                             "--metrics-port", str(metrics_port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", metrics_port, timeout=30)
        status, text = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        # No directory is connected, so no run yet: the families are there, empty.
        assert "# TYPE bridge_ad_sync_runs_total counter" in text
        assert "bridge_ad_sync_runs_total{" not in text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
