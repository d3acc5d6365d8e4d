"""prometheus-client's multiprocess mode under ``bridge serve`` (gunicorn), and the
separate metrics port.

:func:`prepare` runs in the gunicorn master before anything imports prometheus-client: it
empties the metrics directory (values of an earlier run must not be added to this one) and
points ``PROMETHEUS_MULTIPROC_DIR`` at it, so every worker writes its values there. The
hooks it returns tell the library when a worker exits (its live gauges stop counting) and,
with ``BRIDGE_METRICS_PORT``, serve ``/metrics`` from the master on that port.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir(settings: Settings) -> Path:
    return Path(settings.metrics_dir) if settings.metrics_dir else settings.data_dir / "metrics"


def prepare(settings: Settings) -> dict[str, Callable[..., Any]]:
    """Set up multiprocess mode; returns gunicorn settings (hooks) to apply."""
    path = metrics_dir(settings)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    hooks: dict[str, Callable[..., Any]] = {"child_exit": _child_exit}
    if settings.metrics_port:
        port, host = settings.metrics_port, settings.host

        def when_ready(_server: Any) -> None:
            serve_metrics_port(host, port)

        hooks["when_ready"] = when_ready
    return hooks


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def serve_metrics_port(host: str, port: int) -> None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread of this process."""
    from prometheus_client import start_http_server

    from bridge.observability.metrics import registry

    start_http_server(port, addr=host, registry=registry())
