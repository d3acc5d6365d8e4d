"""The bulk directory page reads an account's identities by index probes for the page's
users, never by walking every identity of the account: with ``source = ? AND issuer = ?
AND user_id IN (?, ?, ...)`` SQLite takes the (source, issuer, external_id) index prefix and
reads every identity of the account (O(account users) per incremental AD sync page:
~300 ms at 100,000 users). Checked with SQLite's own query plan of every statement a page
of a few known users sends to ``external_identities``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from bridge.app import build_services
from bridge.domain import Actor, IdentitySource
from bridge.engine.results import DirectoryUserInput
from tests.conftest import FakeClock, make_settings
from tests.unit.bridge.test_bulk_directory import _setup

ACTOR = Actor(type="System", principal_id="ad-sync", name="ad-sync")
ADMIN = Actor(type="AdminUser", principal_id="AIDATESTADMIN", name="alice")


def _item(i: int, name: str | None = None) -> DirectoryUserInput:
    return DirectoryUserInput(external_id=f"guid-{i:04d}", primary_email=f"u{i}@example.com",
                              other_emails=[], display_name=name, enabled=True,
                              groups=["pro-group"], replace_groups=True)


def test_a_page_probes_identities_of_its_users_only(sqlite_url: str, tmp_path: Path,
                                                    clock: FakeClock) -> None:
    services = build_services(make_settings(tmp_path, sqlite_url), clock=clock)
    engine = services.engine
    account_id = _setup(engine, ADMIN)
    with engine.single_transaction():
        engine.apply_directory_users(ACTOR, account_id, IdentitySource.ACTIVE_DIRECTORY,
                                     [_item(i) for i in range(50)],
                                     event_name="SyncDirectoryUser")
    sent: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "external_identities" in statement:
            sent.append((statement, parameters))

    event.listen(services.db, "before_cursor_execute", note)
    try:
        with engine.single_transaction():
            outcomes = engine.apply_directory_users(
                ACTOR, account_id, IdentitySource.ACTIVE_DIRECTORY,
                [_item(i, "Renamed") for i in (3, 7, 11)], event_name="SyncDirectoryUser")
    finally:
        event.remove(services.db, "before_cursor_execute", note)
    assert all(o.result is not None and not o.result.created for o in outcomes)
    assert sent
    with services.db.connect() as conn:
        for statement, parameters in sent:
            plan = [row[-1] for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters).all()]
            steps = [p for p in plan if "external_identities" in p]
            assert steps and all("external_id=?" in p or "user_id=?" in p for p in steps), \
                (statement, plan)
    services.db.dispose()
