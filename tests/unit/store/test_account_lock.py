"""A rule checked after ``account_for_update`` sees what the lock protects, even when the
session loaded the account before taking the lock (PostgreSQL: concurrent writers; SQLite
serialises write transactions whole, so the case cannot arise there)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from bridge.store.db import make_engine, make_session_factory, transaction
from bridge.store.models import Account
from bridge.store.repository import Repository
from tests.conftest import _fresh_postgres
from tests.servers.postgres import PostgresServer


@pytest.mark.postgres
def test_the_lock_reads_the_row_afresh(postgres_server: PostgresServer,
                                       _postgres_template: str) -> None:
    url = _fresh_postgres(postgres_server, _postgres_template)
    db = make_engine(url)
    sessions = make_session_factory(db)
    with transaction(sessions, write=True) as session:
        session.add(Account(id="acct-1", name="A", name_lower="a", owner_principal="p"))
    other = create_engine(url)
    try:
        with transaction(sessions, write=True) as session:
            repo = Repository(session)
            before = repo.account("acct-1")
            assert before is not None and before.directory_kind is None
            # Another transaction connects Active Directory and commits meanwhile.
            with other.begin() as conn:
                conn.execute(text("UPDATE accounts SET directory_kind = 'active_directory' "
                                  "WHERE id = 'acct-1'"))
            locked = repo.account_for_update("acct-1")
            assert locked is not None and locked.directory_kind == "active_directory"
    finally:
        other.dispose()
        db.dispose()
