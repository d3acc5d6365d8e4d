"""``bridge status`` and ``bridge backup``: the operator's commands of docs/operations.md.

- ``bridge status [--json]``: the database and its migration state, the session signing
  keys and their ages, each account's directory sync state and last run, the domains
  waiting for verification, and the mail setting. Exit 0 when the database answers and is
  at the migration head, 1 otherwise (the report is printed either way).
- ``bridge secret-key rotate NEW_KEY_FILE``: re-encrypt every secret stored at rest with
  the Fernet key in NEW_KEY_FILE (one transaction, audited); then run the bridge with that
  key (docs/operations.md, "Rotating the secret key").
- ``bridge backup FILE``: a consistent copy of the SQLite database while the bridge runs
  (SQLite's online backup API), written to ``FILE.tmp`` then renamed. Refused (exit 1) for
  PostgreSQL, which is backed up with its own tools (pg_dump), and when FILE exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, make_url, select

from config import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="database, keys, directory syncs, domains, mail")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(handler=_status)
    backup = sub.add_parser("backup", help="copy the SQLite database while the bridge runs")
    backup.add_argument("output", help="file to write (must not exist)")
    backup.set_defaults(handler=_backup)
    key = sub.add_parser("secret-key", help="the key that encrypts secrets at rest")
    key_sub = key.add_subparsers(dest="secret_key_command", metavar="ACTION", required=True)
    rotate = key_sub.add_parser("rotate", help="re-encrypt every stored secret with a new key")
    rotate.add_argument("new_key_file", help="file holding the new Fernet key")
    rotate.set_defaults(handler=_rotate_secret_key)


# --- status -----------------------------------------------------------------------------


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    aware = _aware(moment)
    return aware.isoformat().replace("+00:00", "Z") if aware else None


def collect_status(settings: Settings, db: Engine, now: datetime | None = None
                   ) -> dict[str, Any]:
    """The status report as a dict (the ``--json`` output). Never raises for an
    unreachable database: ``database.reachable`` is false and the rest is left out."""
    from bridge.logs import scrub
    from bridge.store.ad_models import AdDirectory
    from bridge.store.db import make_session_factory, migration_state, transaction
    from bridge.store.models import Domain, SessionSigningKey

    now = now or datetime.now(UTC)
    url = make_url(settings.effective_database_url)
    report: dict[str, Any] = {"database": {
        "url": url.render_as_string(hide_password=True), "backend": url.get_backend_name()}}
    try:
        state = migration_state(db)
    except Exception as exc:  # the operator needs the reason; no secret is in it
        report["database"].update(reachable=False, error=scrub(f"{type(exc).__name__}: "
                                                                f"{str(exc)[:300]}"))
        return report
    report["database"].update(reachable=True, migrations={
        "current": list(state.current), "expected": list(state.heads),
        "atHead": state.at_head})
    if not state.at_head:
        return report
    with transaction(make_session_factory(db)) as session:
        keys = session.scalars(select(SessionSigningKey)
                               .order_by(SessionSigningKey.created_at)).all()
        report["signingKeys"] = [{
            "kid": k.kid, "alg": k.alg, "createdAt": _iso(k.created_at),
            "ageDays": round((now - (_aware(k.created_at) or now)).total_seconds() / 86400, 1),
            "retiredAt": _iso(k.retired_at)} for k in keys]
        report["directories"] = [{
            "accountId": d.account_id, "lastSyncAt": _iso(d.last_sync_at),
            "lastFullSyncAt": _iso(d.last_full_sync_at), "lastStatus": d.last_status,
            "lastError": scrub(d.last_error) if d.last_error else None,
            "dcName": d.dc_name, "highestCommittedUsn": d.highest_usn}
            for d in session.scalars(select(AdDirectory).order_by(AdDirectory.account_id))]
        report["pendingDomains"] = [{
            "accountId": d.account_id, "name": d.name, "status": d.status,
            "claimedAt": _iso(d.created_at), "lastCheckedAt": _iso(d.last_checked_at)}
            for d in session.scalars(select(Domain).where(Domain.status.like("pending%"))
                                     .order_by(Domain.created_at))]
    smtp = urlsplit(settings.smtp_url) if settings.smtp_url else None
    report["mail"] = {
        "configured": smtp is not None,
        # Host and port only: the URL may carry the SMTP login. "log:" writes to the log.
        "server": (settings.smtp_url if settings.smtp_url == "log:" else
                   f"{smtp.scheme}://{smtp.hostname}:{smtp.port or ''}".rstrip(":"))
        if smtp else None,
        "from": settings.smtp_from, "supportEmail": settings.support_email or None}
    return report


def format_status(report: dict[str, Any]) -> str:
    """The report as lines for a person."""
    db = report["database"]
    lines = [f"database: {db['backend']} {db['url']}"]
    if not db.get("reachable"):
        lines.append(f"  UNREACHABLE: {db.get('error')}")
        return "\n".join(lines)
    mig = db["migrations"]
    lines.append(f"  migrations: {', '.join(mig['current']) or 'none'}"
                 + (" (at head)" if mig["atHead"] else
                    f" — NOT AT HEAD {', '.join(mig['expected'])}: run bridge db upgrade"))
    if not mig["atHead"]:
        return "\n".join(lines)
    lines.append("signing keys:" if report["signingKeys"] else "signing keys: none yet")
    for k in report["signingKeys"]:
        lines.append(f"  {k['kid']} {k['alg']} age {k['ageDays']} days"
                     + (f", retired {k['retiredAt']}" if k["retiredAt"] else ", active"))
    lines.append("directories:" if report["directories"] else "directories: none connected")
    for d in report["directories"]:
        lines.append(f"  account {d['accountId']}: last run {d['lastSyncAt'] or 'never'} "
                     f"status {d['lastStatus'] or '-'}, last full {d['lastFullSyncAt'] or 'never'}"
                     + (f"; error: {d['lastError']}" if d["lastError"] else ""))
    lines.append("pending domains:" if report["pendingDomains"] else "pending domains: none")
    for p in report["pendingDomains"]:
        lines.append(f"  {p['name']} (account {p['accountId']}) claimed {p['claimedAt']}, "
                     f"last checked {p['lastCheckedAt'] or 'never'}")
    mail = report["mail"]
    lines.append(f"mail: {mail['server']} from {mail['from']}" if mail["configured"]
                 else "mail: not configured (BRIDGE_SMTP_URL): invitations are not mailed")
    return "\n".join(lines)


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.store.db import make_engine

    db = make_engine(settings.effective_database_url)
    try:
        report = collect_status(settings, db)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_status(report))
    ok = report["database"].get("reachable") and report["database"]["migrations"]["atHead"]
    return 0 if ok else 1


# --- backup -----------------------------------------------------------------------------


class BackupRefused(Exception):
    """The backup cannot be made as asked (the message says why and what to do)."""


def backup_sqlite(database_url: str, output: Path) -> int:
    """Copy the SQLite database at ``database_url`` to ``output`` with SQLite's online
    backup API (a consistent snapshot, WAL included, while writers go on); returns the
    copy's size in bytes. Raises BackupRefused for another backend or an existing file."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise BackupRefused("bridge backup copies the SQLite database only; back PostgreSQL "
                            "up with its own tools (pg_dump -Fc, see docs/operations.md)")
    if output.exists():
        raise BackupRefused(f"{output} exists; choose a new file")
    partial = output.with_name(output.name + ".tmp")
    source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    finally:
        source.close()
    os.replace(partial, output)
    return output.stat().st_size


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    try:
        size = backup_sqlite(settings.effective_database_url, Path(args.output))
    except BackupRefused as exc:
        print(f"bridge: backup refused: {exc}", file=sys.stderr)
        return 1
    print(f"backup written to {args.output} ({size} bytes); back the secret key "
          "(BRIDGE_SECRET_KEY or secret.key) up too, stored apart from it", file=sys.stderr)
    return 0


# --- secret key -------------------------------------------------------------------------


def _rotate_secret_key(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from cryptography.fernet import Fernet

    from bridge.crypto import SecretBox, load_or_create_key
    from bridge.domain import Actor
    from bridge.secret_rotation import reseal_all
    from bridge.store.db import make_engine, make_session_factory

    new_key = Path(args.new_key_file).read_bytes().strip()
    try:
        Fernet(new_key)
    except ValueError:
        print("bridge: the new key must be 32 url-safe base64-encoded bytes (make one with: "
              "python -c 'from cryptography.fernet import Fernet; "
              "print(Fernet.generate_key().decode())')", file=sys.stderr)
        return 1
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    db = make_engine(settings.effective_database_url)
    try:
        counts = reseal_all(make_session_factory(db), SecretBox(load_or_create_key(settings)),
                            SecretBox(new_key),
                            Actor(type="CliOperator", principal_id=f"cli:{who}", name=who,
                                  user_agent="bridge"))
    except ValueError as exc:
        print(f"bridge: nothing changed: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(json.dumps(counts, sort_keys=True))
    print("every stored secret is now sealed with the new key: start the bridge with it "
          "(BRIDGE_SECRET_KEY=file:..., or replace secret.key in the data directory)",
          file=sys.stderr)
    return 0
