"""Usage outside a request: the daily roll-up job and the ``bridge usage`` / ``bridge
billing`` commands.

- ``usage-rollup`` is a named job (:mod:`bridge.jobs`): every ``bridge serve`` worker runs a
  runner, one pass runs at a time across workers and hosts, every
  ``BRIDGE_USAGE_ROLLUP_INTERVAL_SECONDS`` (0: never; then ``bridge usage rollup``).
- ``bridge billing export --month YYYY-MM [--account ID] [-o FILE]`` writes the month's
  bills as CSV: one line per account and user with a charge, sorted by account and user,
  no time of computation in it — the same month exports the same bytes whenever it runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from datetime import timedelta
from typing import Any

from bridge.engine import ResolutionEngine
from bridge.engine.billing import parse_month
from bridge.engine.usage_results import Bill
from bridge.jobs import Job, JobLeases, JobRunner

ROLLUP_JOB = "usage-rollup"
CSV_COLUMNS = ("account_id", "month", "user_id", "primary_email", "active_pro_days",
               "days", "daily_rate", "monthly_cap", "charge", "currency")


def rollup_job(engine: ResolutionEngine, interval_seconds: float) -> Job:
    """The ``usage-rollup`` job: roll every queued day up (the lease renewed between days)."""
    return Job(name=ROLLUP_JOB, interval=timedelta(seconds=interval_seconds),
               run=lambda lease: engine.roll_up_usage(lease.keep))


def start_rollup(services: Any) -> JobRunner | None:
    """Start the roll-up runner of a serving process (None when the interval is 0)."""
    seconds = services.settings.usage_rollup_interval_seconds
    if seconds <= 0:
        return None
    return JobRunner(rollup_job(services.engine, seconds), JobLeases(services.sessions)).start()


def bills_csv(bills: list[Bill]) -> str:
    """The bills as CSV text (``\\r\\n`` line ends, as RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for bill in sorted(bills, key=lambda b: b.account_id):
        for line in bill.lines:
            writer.writerow([bill.account_id, bill.month, line.user_id,
                             line.primary_email or "", len(line.active_days),
                             ";".join(d.isoformat() for d in line.active_days),
                             bill.daily_rate, bill.monthly_cap, line.charge, bill.currency])
    return out.getvalue()


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    usage = sub.add_parser("usage", help="usage reports")
    usage_sub = usage.add_subparsers(dest="usage_command", metavar="ACTION", required=True)
    roll = usage_sub.add_parser("rollup", help="roll the queued days of usage up now")
    roll.set_defaults(handler=_cli_rollup)
    billing = sub.add_parser("billing", help="usage-based billing")
    billing_sub = billing.add_subparsers(dest="billing_command", metavar="ACTION",
                                         required=True)
    export = billing_sub.add_parser("export", help="a month's bills as CSV")
    export.add_argument("--month", required=True, help="YYYY-MM (UTC)")
    export.add_argument("--account", help="one account id (default: every account)")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(handler=_cli_export)


def _services(settings: Any) -> Any:
    from bridge.services import build_services

    return build_services(settings)


def _cli_rollup(args: argparse.Namespace, settings: Any) -> int:
    services = _services(settings)
    try:
        days = services.engine.roll_up_usage()
    finally:
        services.db.dispose()
    print(f"{days} days rolled up", file=sys.stderr)
    return 0


def _cli_export(args: argparse.Namespace, settings: Any) -> int:
    year, month = parse_month(args.month)
    services = _services(settings)
    try:
        engine: ResolutionEngine = services.engine
        bills = ([engine.bill(args.account, year, month)] if args.account
                 else engine.billing.bills(year, month))
    finally:
        services.db.dispose()
    text = bills_csv(bills)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    print(f"{sum(len(b.lines) for b in bills)} lines written", file=sys.stderr)
    return 0
