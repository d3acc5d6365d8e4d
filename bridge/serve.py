"""``bridge serve``: the HTTP server (waitress) in front of the Flask application.

Why waitress: a worker thread must never wait for a client. waitress reads each request
completely (headers and body, the body spooled to a temporary file past 512 KiB) on its
event loop before a worker thread takes it, and buffers the answer the same way, so clients
that trickle bytes, or read slowly, cost a socket each and not a thread. gunicorn's gthread
workers hand a connection to a thread as soon as its first byte arrives and then read with
blocking calls without a timeout (8 slow connections stopped 2 workers x 4 threads); its
gevent worker would block every connection of a worker while SQLite waits for its write
lock (``busy_timeout`` sleeps in C). The cost: one process (the threads share one core for
Python code); run more processes or hosts behind the proxy for more CPU.

Contract: one process with ``threads`` worker threads serves ``settings.host:port`` until
SIGTERM or SIGINT (then in-flight requests get up to 5 s to finish). Limits: at most
``CONNECTION_LIMIT`` open connections (beyond, new ones wait in the listen backlog); a
connection idle for ``CHANNEL_TIMEOUT`` seconds is closed; request headers up to 256 KiB;
bodies up to twice ``max_body_bytes`` reach the application, which refuses anything over
``max_body_bytes`` in its door's own format (413); larger ones get waitress's plain 413.
X-Forwarded-* headers are passed through untouched: ``BRIDGE_TRUSTED_PROXY_COUNT`` (the
application's ProxyFix) alone decides whether to believe them.
"""

from __future__ import annotations

import atexit
import logging
import resource
import signal
import sys
from typing import Any

from config import Settings

log = logging.getLogger(__name__)
CONNECTION_LIMIT = 1000
CHANNEL_TIMEOUT = 60
THREADS_PER_WORKER = 4
# How long a stopping process waits for AD sync runs to end their current page (a page of
# 1,000 users takes well under a second; a run blocked longer dies with the process).
SYNC_STOP_SECONDS = 10.0


def raise_open_file_limit(wanted: int) -> None:
    """Lift the soft limit of open files towards ``wanted`` (each connection is one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def server_options(settings: Settings, threads: int) -> dict[str, Any]:
    """The waitress adjustments for ``settings`` (see the module docstring)."""
    return {
        "host": settings.host, "port": settings.port, "threads": threads,
        "connection_limit": CONNECTION_LIMIT, "channel_timeout": CHANNEL_TIMEOUT,
        # poll(), not select(): select() cannot watch descriptors past 1024.
        "asyncore_use_poll": True,
        "max_request_body_size": 2 * settings.max_body_bytes,
        "clear_untrusted_proxy_headers": False, "trusted_proxy": None,
        "ident": "bridge", "expose_tracebacks": False,
    }


def serve(settings: Settings, app: Any, threads: int) -> None:
    """Serve ``app`` (a WSGI callable) until SIGTERM/SIGINT."""
    from waitress.server import create_server

    raise_open_file_limit(CONNECTION_LIMIT + 64)
    server = create_server(app, **server_options(settings, threads))

    def stop(signum: int, _frame: Any) -> None:
        # SystemExit in the event loop: waitress shuts its threads down (5 s at most).
        log.info("signal %d: stopping", signum)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving on http://%s:%d with %d threads", settings.host, settings.port, threads)
    server.run()


def build_app(settings: Settings) -> Any:
    """The WSGI application as served: the Flask app with its background jobs started,
    behind the access log (text format; JSON logs carry ``bridge.request`` lines)."""
    from bridge.api.data_export import start_background as start_data_export_job
    from bridge.api.web import start_background
    from bridge.app import SYNCS_EXTENSION, create_app
    from bridge.logs import AccessLog
    from bridge.services import build_services
    from bridge.usage_jobs import start_rollup

    services = build_services(settings)
    app = create_app(settings, services)
    start_background(app, services)  # the domain re-check
    start_data_export_job(app, services)  # builds requested data exports
    start_rollup(services)  # the daily usage roll-up (bridge.usage_jobs)
    # At exit (after waitress's drain, or a gunicorn worker's graceful stop), AD syncs that
    # an administrator started end after their current page and report "interrupted",
    # instead of dying mid-page with their report left "running".
    atexit.register(app.extensions[SYNCS_EXTENSION].stop, SYNC_STOP_SECONDS)
    return AccessLog(app) if settings.log_format == "text" else app


def serve_gunicorn(settings: Settings, workers: int,
                   hooks: dict[str, Any]) -> None:
    """Serve with gunicorn: ``workers`` processes of 4 threads each, for a deployment
    behind a proxy that buffers whole requests (nginx ``proxy_request_buffering on``, the
    default): gunicorn's gthread workers read from the client with blocking calls, so a
    client that trickles bytes holds a thread. ``hooks``: gunicorn server hooks (the
    multiprocess metrics)."""
    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):
        """gunicorn driven from code, so settings stay our one entry point."""

        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", THREADS_PER_WORKER)
            # The application's own access log (bridge.logs.AccessLog) hides secrets.
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("graceful_timeout", 20)
            # Each worker builds its own engine and pool after the fork.
            self.cfg.set("preload_app", False)
            for name, hook in hooks.items():
                self.cfg.set(name, hook)

        def load(self) -> Any:
            return build_app(settings)

    _Gunicorn().run()
