"""The ``bridge`` command. Every verb is listed by ``bridge --help``.

Exit codes: 0 success, 1 the operation failed (message on stderr), 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from config import Settings, SettingsError, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.observability import serving

    # Before anything imports prometheus-client: the workers' multiprocess metrics.
    metrics_hooks = serving.prepare(settings)
    from bridge import serve
    from bridge.crypto import load_or_create_key
    from bridge.logs import configure_logging
    from bridge.store.db import upgrade

    # Before any worker starts: a missing or bad key stops here with one line (in a worker
    # it would only be a boot failure and a traceback), and a generated key file is
    # written once, not raced for by the workers.
    load_or_create_key(settings)
    configure_logging(settings.log_level, settings.log_format)
    if args.migrate:
        upgrade(settings.effective_database_url)
    workers = args.workers or settings.workers
    if (args.server or settings.server) == "gunicorn":
        serve.serve_gunicorn(settings, workers, metrics_hooks)
    else:
        if settings.metrics_port:
            serving.serve_metrics_port(settings.host, settings.metrics_port)
        serve.serve(settings, serve.build_app(settings),
                    serve.THREADS_PER_WORKER * workers)
    return 0


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.store.db import upgrade

    upgrade(settings.effective_database_url, args.revision)
    print(f"database at revision {args.revision}", file=sys.stderr)
    return 0


def _db_check(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.store.db import check

    check(settings.effective_database_url)
    print("models and migrations agree", file=sys.stderr)
    return 0


def _audit_export(args: argparse.Namespace, settings: Settings) -> int:
    from bridge import audit
    from bridge.store.db import make_engine, make_session_factory, transaction

    since = _parse_time(args.since) if args.since else None
    sessions = make_session_factory(make_engine(settings.effective_database_url))
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        with transaction(sessions) as session:
            count = audit.export_jsonl(session, out, since)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"{count} events written", file=sys.stderr)
    return 0


def _parse_time(text: str) -> datetime:
    from datetime import UTC

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(f"--since: not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# Doors and later features add verbs here through the composition root.
Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
EXTRA_COMMANDS: list[Registrar] = []
EXTRA_COMMANDS.append(lambda sub: __import__("bridge.sessions").sessions.register_cli(sub))
EXTRA_COMMANDS.append(lambda sub: __import__("bridge.api.cli").api.cli.register(sub))
EXTRA_COMMANDS.append(lambda sub: __import__("ad_sync.cli").cli.register(sub))
EXTRA_COMMANDS.append(lambda sub: __import__("bridge.ops_cli").ops_cli.register(sub))
EXTRA_COMMANDS.append(lambda sub: __import__("bridge.jobs").jobs.register_cli(sub))
EXTRA_COMMANDS.append(lambda sub: __import__("bridge.usage_jobs").usage_jobs.register_cli(sub))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge",
        description="Identity bridge: accounts, users, domains and directories.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API (waitress, or gunicorn)")
    serve.add_argument("--workers", type=int, default=None,
                       help="waitress: 4 worker threads each; gunicorn: worker processes "
                            "(default: BRIDGE_WORKERS)")
    serve.add_argument("--server", choices=["waitress", "gunicorn"], default=None,
                       help="the HTTP server (default: BRIDGE_SERVER); gunicorn only behind "
                            "a buffering proxy")
    serve.add_argument("--migrate", action="store_true",
                       help="apply database migrations before serving")
    serve.set_defaults(handler=_serve)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations (default: to the newest)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=_db_upgrade)
    chk = db_sub.add_parser("check", help="fail if the models and the migrations disagree")
    chk.set_defaults(handler=_db_check)

    aud = sub.add_parser("audit", help="the audit trail")
    aud_sub = aud.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    exp = aud_sub.add_parser("export", help="write audit events as JSON lines")
    exp.add_argument("--since", help="ISO 8601 time (UTC if no zone), e.g. 2026-11-01T00:00Z")
    exp.add_argument("--output", "-o", help="file to write (default: standard output)")
    exp.set_defaults(handler=_audit_export)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        handler: Handler = args.handler
        return handler(args, settings)
    except SettingsError as exc:
        print(f"bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one clear line for an operator; details in the log
        from bridge.errors import BridgeError

        if isinstance(exc, BridgeError):
            print(f"bridge: {exc.code}: {exc.message}", file=sys.stderr)
            return 1
        raise


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
