"""Every metric the bridge exports (Prometheus, prometheus-client), and the few functions
that record them. docs/monitoring.md lists them all; keep it in step.

Metrics are module-level, as prometheus-client's multiprocess mode requires: under gunicorn
each worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds
them up (:func:`render`), so a counter is never counted twice nor lost with a worker.
Without that variable (tests, one process) the values live in this process's registry.

Labels never carry secrets nor user data: doors, operation names taken from the route
templates and the admin action table, reason codes, status classes, SCIM resource names,
client kinds, and account ids (opaque ids, not names) for the per-directory sync metrics.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# --- requests -----------------------------------------------------------------------------
REQUESTS = Counter("bridge_http_requests", "HTTP requests answered, by door, operation and "
                   "status class", ["door", "operation", "status_class"])
REQUEST_SECONDS = Histogram("bridge_http_request_duration_seconds",
                            "Time to answer an HTTP request", ["door", "operation"],
                            buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
THROTTLED = Counter("bridge_throttled_requests", "Requests refused with 429, by door and "
                    "reason code", ["door", "reason"])

# --- sign-in and sessions -----------------------------------------------------------------
SIGN_IN_DECISIONS = Counter("bridge_sign_in_decisions", "Sign-in decisions (audited SignIn "
                            "events), by door and reason code (ok when allowed)",
                            ["door", "reason"])
SESSIONS_ISSUED = Counter("bridge_sessions_issued", "Sessions issued, by sign-in source",
                          ["source"])
SESSIONS_ENDED = Counter("bridge_sessions_ended", "Sessions ended by POST /auth/logout")
SESSION_CHECKS = Counter("bridge_session_verifications", "Session verifications, by "
                         "result (ok or the refusal reason)", ["result"])

# --- SCIM ---------------------------------------------------------------------------------
SCIM_WRITES = Counter("bridge_scim_writes", "Successful SCIM writes, by resource, method "
                      "and client kind (from the User-Agent)", ["resource", "method", "client"])

# --- AD sync ------------------------------------------------------------------------------
SYNC_RUNS = Counter("bridge_ad_sync_runs", "AD sync runs, by account, mode and outcome",
                    ["account_id", "mode", "outcome"])
SYNC_SECONDS = Histogram("bridge_ad_sync_duration_seconds", "Duration of AD sync runs",
                         ["account_id", "mode"],
                         buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600))
SYNC_USERS = Counter("bridge_ad_sync_users", "Users changed by AD sync runs, by change",
                     ["account_id", "change"])
SYNC_MASS_STOPS = Counter("bridge_ad_sync_mass_change_stops", "Runs stopped by the "
                          "mass-change guard", ["account_id"])
SYNC_LAST_SUCCESS = Gauge("bridge_ad_sync_last_success_timestamp_seconds", "End of the last "
                          "successful (applied) run, Unix time", ["account_id"],
                          multiprocess_mode="max")
SYNC_WATERMARK = Gauge("bridge_ad_sync_watermark_usn", "highestCommittedUSN the directory "
                       "was synced up to after the last applied run", ["account_id"],
                       multiprocess_mode="mostrecent")
SYNC_WATERMARK_TIME = Gauge("bridge_ad_sync_watermark_timestamp_seconds", "When the "
                            "watermark was last committed, Unix time (lag: time() - this)",
                            ["account_id"], multiprocess_mode="max")

# --- domains, mail, database --------------------------------------------------------------
DOMAIN_CHECKS = Counter("bridge_domain_checks", "Domain verification look-ups, by outcome "
                        "(verified, pending_verification, failed, dns_error, refused)", ["outcome"])
MAILS = Counter("bridge_mails", "Mails handed to the SMTP server (sent) or not (failed), "
                "or written to the log (logged)",
                ["outcome"])
POOL_IN_USE = Gauge("bridge_db_pool_connections_in_use", "Database connections checked "
                    "out of the pools of live processes", multiprocess_mode="livesum")
POOL_SATURATED = Counter("bridge_db_pool_saturated_checkouts", "Connection check-outs "
                         "that found every pooled connection in use (they overflowed or "
                         "waited)")


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def client_kind(user_agent: str | None) -> str:
    """okta, entra or other, from a SCIM client's User-Agent (never the raw string: it is
    free text a client chooses)."""
    agent = (user_agent or "").lower()
    if "okta" in agent:
        return "okta"
    if "azure" in agent or "microsoft" in agent or "entra" in agent:
        return "entra"
    return "other"


def observe_sync_report(report: Any, *, now: float | None = None) -> None:
    """Record one AD sync run from its :class:`ad_sync.sync.SyncReport` (the sync calls
    this once per run; tests call it with a report). A dry run counts only as a run with
    outcome ``dry_run``: it changed nothing, and an operator's dry run that would stop on
    the mass-change guard must not page anyone."""
    import time

    account, mode = report.account_id, report.mode
    SYNC_RUNS.labels(account, mode, "dry_run" if report.dry_run else report.status).inc()
    if report.dry_run:
        return
    SYNC_SECONDS.labels(account, mode).observe(report.duration_seconds)
    if report.status == "mass_change_stopped":
        SYNC_MASS_STOPS.labels(account).inc()
    for change in ("added", "updated", "restored", "suspended", "deleted"):
        SYNC_USERS.labels(account, change).inc(getattr(report, change))
    if report.status == "ok":
        at = time.time() if now is None else now
        SYNC_LAST_SUCCESS.labels(account).set(at)
        usn = (report.watermark or {}).get("highestCommittedUsn")
        if usn is not None:
            SYNC_WATERMARK.labels(account).set(float(usn))
            SYNC_WATERMARK_TIME.labels(account).set(at)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry() -> CollectorRegistry:
    """The registry to expose: in multiprocess mode a fresh one over every worker's files
    (live and dead workers, so counters of a restarted worker are kept), else the
    process's default registry."""
    if multiprocess_dir():
        collecting = CollectorRegistry()
        multiprocess.MultiProcessCollector(collecting)
        return collecting
    from prometheus_client import REGISTRY

    return REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST
