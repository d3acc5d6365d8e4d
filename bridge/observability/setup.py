"""Installing the operations pieces on an app: the request hooks, ``/readyz``,
``/metrics``, the audit trail's sign-in counter and the database pool gauges (called once
by the composition root)."""


from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event

# Nothing here imports prometheus-client at module level: `bridge serve` must point it at
# its multiprocess directory (:mod:`.serving`) before the first import.
if TYPE_CHECKING:
    from flask import Flask

    from bridge.services import Services


def install(app: Flask, services: Services) -> None:
    """Install the request hooks, ``/readyz``, ``/metrics`` (on the main port unless
    ``BRIDGE_METRICS_PORT`` is set), the audit trail's sign-in counter and the pool gauges."""
    from bridge.observability import audit_metrics, http

    http.install(app, services, serve_metrics=services.settings.metrics_port == 0)
    audit_metrics.install()
    watch_pool(services.db)


_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()


def watch_pool(db: Engine) -> None:
    """Count the engine's pooled connections in use and the check-outs that found every
    pooled connection in use (idempotent per engine)."""
    from bridge.observability import metrics

    if db in _WATCHED:
        return
    _WATCHED.add(db)

    def checkout(_dbapi: Any, _record: Any, _proxy: Any) -> None:
        metrics.POOL_IN_USE.inc()
        size = getattr(db.pool, "size", None)  # QueuePool; db.pool changes on dispose()
        if callable(size) and db.pool.checkedout() > size():  # type: ignore[attr-defined]
            metrics.POOL_SATURATED.inc()

    def checkin(_dbapi: Any, _record: Any) -> None:
        metrics.POOL_IN_USE.dec()

    event.listen(db, "checkout", checkout)
    event.listen(db, "checkin", checkin)
