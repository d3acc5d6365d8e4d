"""``bridge sync-ad``: one run for an account, or the daemon for every account.

``bridge sync-ad --account ID --once [--full] [--dry-run] [--allow-mass-change]`` prints the
run's JSON report. Exit codes: 0 done; 1 the directory could not be read (nothing was
suspended, the watermark stayed); 3 stopped by the mass-change limit (nothing changed;
rerun with ``--allow-mass-change`` to apply); 75 another process is syncing this directory.

``bridge sync-ad --daemon`` syncs every account's directory: incremental every
``ad_sync_interval_seconds``, full every ``ad_full_sync_interval_seconds``, failed runs
retried with jittered exponential backoff, one run per directory across daemons (advisory
lock); accounts that share a registered directory share one bind per pass. SIGTERM/SIGINT
stop it after the current page commits; the next start resumes from
the watermark. One JSON line per run on standard output. ``--metrics-port N`` serves the
sync metrics (docs/monitoring.md) on ``BRIDGE_HOST:N`` for Prometheus to scrape.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ldap3 import Connection

from ad_sync import client
from ad_sync.client import DirectoryError
from ad_sync.locks import directory_lock
from ad_sync.records import SyncRecords
from ad_sync.sync import DirectorySync, SyncReport
from bridge.engine.ad_directories import DirectoryConnection
from bridge.errors import NotFound

EXIT_OK, EXIT_UNKNOWN, EXIT_MASS_CHANGE, EXIT_LOCKED = 0, 1, 3, 75
log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sync-ad", help="sync Active Directory users (once, or as a daemon)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="one run for --account")
    mode.add_argument("--daemon", action="store_true", help="sync every account's directory")
    p.add_argument("--account", help="account id (with --once)")
    p.add_argument("--full", action="store_true", help="full reconciliation, not incremental")
    p.add_argument("--dry-run", action="store_true", help="report the changes, apply nothing")
    p.add_argument("--allow-mass-change", action="store_true",
                   help="apply a run that exceeds the mass-change limit")
    p.add_argument("--page-size", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--interval", type=float, default=None,
                   help="daemon: seconds between incremental runs "
                        "(default: ad_sync_interval_seconds)")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="daemon: serve its Prometheus /metrics (the sync metrics) on this "
                        "port of BRIDGE_HOST (default: none)")
    # Tests only: stop making progress after N written pages (to be killed there; with
    # pages grouped in one transaction, possibly before their transaction commits).
    p.add_argument("--debug-stall-after-pages", type=int, default=None, help=argparse.SUPPRESS)
    # Tests only: users per transaction of a cold import (ad_sync.sync.TRANSACTION_USERS).
    p.add_argument("--debug-transaction-users", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Any) -> int:
    from bridge.logs import configure_logging
    from bridge.services import build_services

    configure_logging(settings.log_level, settings.log_format)
    services = build_services(settings)
    try:
        if args.daemon:
            if args.metrics_port:
                from bridge.observability.serving import serve_metrics_port

                serve_metrics_port(settings.host, args.metrics_port)
            return run_daemon(services, interval=args.interval, page_size=args.page_size)
        if not args.account:
            print("bridge: sync-ad --once needs --account ID", file=sys.stderr)
            return 2
        return _once(services, args)
    finally:
        services.db.dispose()


def _stall_hook(after: int | None) -> Any:
    if after is None:
        return None

    def on_page(pages: int) -> None:
        if pages >= after:
            print(f"stalled after {pages} pages", file=sys.stderr, flush=True)
            # Block until killed (the crash test sends SIGKILL here, mid-run).
            threading.Event().wait()

    return on_page


def _once(services: Any, args: argparse.Namespace) -> int:
    with directory_lock(services, args.account) as held:
        if not held:
            print(json.dumps({"accountId": args.account, "status": "locked"}))
            return EXIT_LOCKED
        report = DirectorySync(services, args.account, page_size=args.page_size,
                               dry_run=args.dry_run, allow_mass_change=args.allow_mass_change,
                               on_page=_stall_hook(args.debug_stall_after_pages),
                               # Tests: groups of this many users, whatever the load.
                               **({} if args.debug_transaction_users is None else
                                  {"transaction_users": args.debug_transaction_users,
                                   "transaction_wait": 60.0})
                               ).run(full=args.full)
    print(json.dumps(report.as_json(), indent=2, sort_keys=True, default=str))
    return exit_code(report)


def exit_code(report: SyncReport) -> int:
    if report.status == "ok":
        return EXIT_OK
    if report.status == "mass_change_stopped":
        return EXIT_MASS_CHANGE
    return EXIT_UNKNOWN


def backoff(failures: int, interval: float) -> float:
    """Seconds before retrying after ``failures`` failed runs in a row: 30 s doubling, at
    most the interval, times a random 0.5-1.5 so daemons do not retry in step."""
    base = min(interval, 30.0 * 2 ** max(failures - 1, 0))
    return base * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security


@dataclass
class DaemonState:
    """When each account's next run is due and how many runs in a row failed."""

    due: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


def run_daemon(services: Any, *, interval: float | None = None,
               page_size: int = 1000) -> int:
    """Sync every account's directory until SIGTERM/SIGINT; returns 0 after a clean stop."""
    settings = services.settings
    every = float(interval or settings.ad_sync_interval_seconds)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("AD sync daemon: signal %s, stopping after the current page", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    state = DaemonState()
    print(json.dumps({"daemon": "started", "interval": every}), flush=True)
    while not stop.is_set():
        for report in run_cycle(services, state, every=every, page_size=page_size,
                                stop=stop):
            print(json.dumps(report.as_json(), sort_keys=True, default=str), flush=True)
        next_due = min(state.due.values(), default=time.monotonic() + every)
        stop.wait(max(0.05, min(next_due - time.monotonic(), 5.0)))
    print(json.dumps({"daemon": "stopped"}), flush=True)
    return 0


def run_cycle(services: Any, state: DaemonState, *, every: float, page_size: int = 1000,
              stop: threading.Event | None = None,
              connect: Callable[..., Connection] = client.open_connection
              ) -> list[SyncReport]:
    """One pass of the daemon over the accounts whose run is due; returns their reports.

    Accounts connected to the same registered directory (AuthorizeDirectory) share ONE
    service-account bind, made with ``connect`` (``client.open_connection``'s signature)
    before the first of them and closed after the last; its outcome is the directory's
    health (ListDirectories). A bind that fails is recorded once and fails every account
    of that directory for this pass (status ``unknown``, retried with backoff), without a
    bind per account. Accounts with inline settings bind in their own run.
    """
    stop = stop or threading.Event()
    engine = services.engine
    records = SyncRecords(engine.uow)
    groups: dict[str | None, list[tuple[str, DirectoryConnection]]] = {}
    for account_id in engine.ad_directories.account_ids():
        if time.monotonic() < state.due.get(account_id, 0.0):
            continue
        try:
            cfg = engine.ad_directories.connection(account_id)
        except NotFound:  # disconnected meanwhile
            continue
        groups.setdefault(cfg.directory_id, []).append((account_id, cfg))
    reports: list[SyncReport] = []
    for directory_id, members in groups.items():
        if stop.is_set():
            break
        if directory_id is None:
            for account_id, _cfg in members:
                if stop.is_set():
                    break
                _run_account(services, records, state, account_id, None, reports,
                             every=every, page_size=page_size, stop=stop)
            continue
        try:
            conn = connect(members[0][1], allow_insecure=services.settings.allow_insecure_ldap)
        except DirectoryError as exc:
            log.warning("AD sync: bind to directory %s failed: %s", directory_id, exc.message)
            engine.directory_registry.record_health(directory_id, error=exc.message)
            for account_id, _cfg in members:
                records.record_failure_status(account_id, "unknown", exc.message)
                failed = SyncReport(account_id, "incremental", False, status="unknown",
                                    error=exc.message, run_id=str(uuid.uuid4()))
                _store_report(records, failed, engine.now())
                reports.append(failed)
                _failed(state, account_id, every)
            continue
        engine.directory_registry.record_health(directory_id, error=None)
        try:
            for account_id, _cfg in members:
                if stop.is_set():
                    break
                _run_account(services, records, state, account_id, conn, reports,
                             every=every, page_size=page_size, stop=stop)
        finally:
            client.close(conn)
    return reports


def _store_report(records: SyncRecords, report: SyncReport, now: Any) -> None:
    """The account's last run report for a run that failed before it started (the shared
    bind), so the console shows why."""
    records.start_report(report.account_id, run_id=report.run_id, mode=report.mode,
                         dry_run=False, allow_mass_change=False, requested_by=None, now=now)
    records.finish_report(report.account_id, run_id=report.run_id, dry_run=False,
                          mode=report.mode, status=report.status, report=report.as_json(),
                          now=now)


def _failed(state: DaemonState, account_id: str, every: float) -> None:
    state.failures[account_id] = state.failures.get(account_id, 0) + 1
    state.due[account_id] = time.monotonic() + backoff(state.failures[account_id], every)


def _run_account(services: Any, records: SyncRecords, state: DaemonState, account_id: str,
                 conn: Connection | None, reports: list[SyncReport], *, every: float,
                 page_size: int, stop: threading.Event) -> None:
    """One account's run under its lock (skipped, and retried soon, when another daemon
    holds it); its report appended; the next run scheduled."""
    full_every = float(services.settings.ad_full_sync_interval_seconds)
    report: SyncReport | None = None
    try:
        with directory_lock(services, account_id) as held:
            if not held:
                state.due[account_id] = time.monotonic() + every * random.uniform(0.5, 1.0)  # noqa: S311
                return
            last_full = records.state(account_id).last_full_sync_at
            full = last_full is None or (
                (services.engine.now() - last_full).total_seconds() >= full_every)
            report = DirectorySync(services, account_id, page_size=page_size, stop=stop,
                                   connection=conn).run(full=full)
    except Exception:  # one account's failure (or disconnection) must not stop others
        log.exception("AD sync of %s failed", account_id)
    if report is not None:
        reports.append(report)
    if report is not None and report.status in ("ok", "mass_change_stopped"):
        state.failures[account_id] = 0
        state.due[account_id] = time.monotonic() + every
    elif report is not None and report.status == "interrupted":
        return
    else:
        _failed(state, account_id, every)
