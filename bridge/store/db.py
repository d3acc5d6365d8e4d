"""Database engine, sessions and migrations.

SQLite (WAL, foreign keys on, busy timeout) is the embedded default; PostgreSQL is the
production store. Migrations are Alembic scripts shipped inside the package and applied with
``bridge db upgrade``.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the SQLAlchemy engine for ``url`` with the per-backend settings we rely on."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take it over so that a
        # transaction starts at the first statement (SQLAlchemy docs, "Serializable isolation").
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


# Execution option a writing unit of work sets on its connection (``session.connection(
# execution_options={WRITE_INTENT: True})``): on SQLite its transaction starts with BEGIN
# IMMEDIATE, taking the write lock up front and waiting for it (busy_timeout). A deferred
# transaction that read first fails at once with "database is locked" when another writer
# committed meanwhile (it cannot upgrade a stale snapshot). Other backends ignore it.
WRITE_INTENT = "bridge_write_intent"


def _sqlite_begin(conn: Any) -> None:
    immediate = conn.get_execution_options().get(WRITE_INTENT)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=True)


# --- SQLite writers take turns through a file lock -------------------------------------
#
# SQLite lets one writer in at a time; the others wait in its busy handler, which sleeps and
# polls (up to 100 ms a nap), so under concurrent writes most of a write's latency was sleep
# (bench.scim: p99 near 1 s with 8 writers, 2 cores mostly idle). A writing unit of work
# therefore first takes an exclusive ``flock`` on ``<database>-writer.lock``: the kernel wakes
# the next writer the moment the previous one releases it, across the threads of a worker
# and across worker processes alike. SQLite's own lock and busy timeout still apply to
# anything that does not take it (the CLI, a deferred transaction that writes).

_GATE_HELD = threading.local()


def _writer_gate_path(factory: sessionmaker[Session]) -> str | None:
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        return None
    database = bind.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-writer.lock"


@contextmanager
def _writer_gate(factory: sessionmaker[Session]) -> Iterator[None]:
    """Hold the SQLite writer lock for the block (no-op on other backends, and when this
    thread already holds it: a nested writing unit must not wait for itself)."""
    path = _writer_gate_path(factory)
    if path is None or getattr(_GATE_HELD, "held", False):
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _GATE_HELD.held = True
        try:
            yield
        finally:
            _GATE_HELD.held = False
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def transaction(factory: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """One unit of work: commit when the block ends normally, roll back on any exception.

    ``write=True`` declares that the unit will write: on SQLite it then takes the writers'
    file lock (above) and begins with ``BEGIN IMMEDIATE`` (see ``WRITE_INTENT``) so it waits
    for the write lock instead of failing with "database is locked" after reading; other
    backends ignore it.
    """
    with ExitStack() as stack:
        if write:
            stack.enter_context(_writer_gate(factory))
        session = factory()
        try:
            if write:
                session.connection(execution_options={WRITE_INTENT: True})
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raise if the models and the migrations disagree (``alembic check``)."""
    command.check(alembic_config(url))


def ping(engine: Engine) -> None:
    """Run a trivial query; raises if the database cannot be reached."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@dataclass(frozen=True)
class MigrationState:
    """Where the database's schema is (``current``) against the code's migrations
    (``heads``); ``at_head`` when they are the same revisions."""

    current: tuple[str, ...]
    heads: tuple[str, ...]

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.heads)


@functools.lru_cache(maxsize=1)
def _code_heads() -> tuple[str, ...]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return tuple(sorted(script.get_heads()))


def migration_state(engine: Engine) -> MigrationState:
    """The applied and expected migration revisions; raises if the database cannot be
    reached (a database never migrated has no current revision)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return MigrationState(tuple(sorted(current)), _code_heads())
