"""The unit of work: the one owner of transactions and of the audit trail.

Every state change of the bridge — an engine room's, or a door-side service's (API keys,
the Okta configuration, admin principals, sessions, AD connection records, throttles) —
runs through :meth:`UnitOfWork.run`, which commits the change together with its ONE audit
event, or, when the change is refused, rolls it back and records the refusal in a
transaction of its own. No other code writes audit events; a refusal that went through
:meth:`run` comes back with ``audited`` set, so no caller has to guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bridge import audit
from bridge.domain import Actor
from bridge.errors import BridgeError, Conflict, StaleVersion
from bridge.store.db import WRITE_INTENT, transaction
from bridge.store.driver_insert import insert_rows
from bridge.store.models import AuditEvent
from bridge.store.repository import Repository

log = logging.getLogger("bridge.engine")
T = TypeVar("T")
Clock = Callable[[], datetime]
Work = Callable[[Repository], tuple[T, Mapping[str, Any] | None]]


class UnitOfWork:
    """Transactions and audit events for every room and service of one store.

    ``session_factory`` is the store's; one instance is shared by the whole process (its
    per-thread state lives in context variables).
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        # The session of this thread's open single_transaction block, if any.
        self._open_unit: ContextVar[Session | None] = ContextVar(f"uow-unit-{id(self)}",
                                                                 default=None)
        # The session of this thread's open reading block, if any, and what runs after it.
        self._open_read: ContextVar[Session | None] = ContextVar(f"uow-read-{id(self)}",
                                                                 default=None)
        self._after_read: ContextVar[list[Callable[[], None]]] = ContextVar(
            f"uow-after-read-{id(self)}")
        # This thread's open writing block, if any.
        self._open_write: ContextVar[_WriteBlock | None] = ContextVar(
            f"uow-write-{id(self)}", default=None)
        # SQLite lets one writer in at a time (BEGIN IMMEDIATE, and the writers' file lock of
        # bridge.store.db): a writing block there holds up every other writer of the store,
        # so a door checks a request's credentials by a plain read before opening one.
        bind = session_factory.kw.get("bind")
        self.writers_take_turns: bool = bind is not None and bind.dialect.name == "sqlite"

    # --- blocks ---------------------------------------------------------------------------

    @contextmanager
    def single_transaction(self) -> Iterator[Session]:
        """Run several changes in ONE transaction (the AD sync: a page of users and the
        watermark commit together). Inside the block each change runs in a savepoint: a
        refused one is rolled back alone, audited, and raises as usual; the rest commits
        when the block ends, nothing when it raises. Yields the session so bridge-side
        bookkeeping (never a door) can write in the same transaction. Inside an open one it
        joins it (the AD sync's cold import groups several pages, each a block of its own,
        in one): its changes commit with the outer block, and its exception ends that."""
        self._refuse_inside_reading("single_transaction")
        outer = self._open_unit.get()
        if outer is not None:
            yield outer
            return
        with transaction(self.session_factory, write=True) as session:
            token = self._open_unit.set(session)
            try:
                yield session
            finally:
                self._open_unit.reset(token)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Run several reads in ONE read transaction on one pooled connection (a SCIM GET:
        the API key check, then the search). Every read of this thread inside the block
        joins it instead of checking out a connection of its own; a nested block joins it
        too, and inside :meth:`single_transaction` the block is that transaction.

        A plain read transaction: on SQLite a deferred ``BEGIN``, one WAL snapshot for the
        whole block and no write lock. It commits when the block ends (nothing was
        written), rolls back when the block raises. No change may run inside it
        (RuntimeError): it would commit in a transaction of its own that the block's
        snapshot does not show; bookkeeping writes wait for the block's end
        (:meth:`after_reading`).
        """
        joined = self._open_unit.get()
        if joined is None:
            block = self._open_write.get()
            joined = block.session if block is not None else self._open_read.get()
        if joined is not None:
            yield joined
            return
        with self._bookkeeping_after(), transaction(self.session_factory) as session:
            token = self._open_read.set(session)
            try:
                yield session
            finally:
                self._open_read.reset(token)

    @contextmanager
    def _bookkeeping_after(self) -> Iterator[None]:
        """Collect what :meth:`after_reading` asks for during the block; run it after."""
        pending: list[Callable[[], None]] = []
        token = self._after_read.set(pending)
        try:
            yield
        finally:
            self._after_read.reset(token)
            for callback in pending:
                callback()

    @contextmanager
    def writing(self, admit: Callable[[], None] | None = None) -> Iterator[Session]:
        """Run ONE change together with the reads that decide whether it may run (a SCIM
        write: the API key check, then the change) in ONE write transaction: on SQLite the
        writers' lock and ``BEGIN IMMEDIATE`` are taken when the block opens, before its
        first read. Reads inside the block (:meth:`read`, :meth:`reading`) join it; the
        change (:meth:`run`) runs in its transaction, without a savepoint, and a second
        change raises RuntimeError. The block commits when it ends normally, rolls back when
        it raises — except that a change refused inside it (rolled back, its refusal event
        recorded in the block's transaction) is committed with that event before the
        refusal is raised on. Bookkeeping asked for with :meth:`after_reading` runs after
        the block, in a transaction of its own (never holding the write lock for it).

        ``admit`` (a door's credential check, e.g. the SCIM key): run as the first statement
        of the block's transaction and again first in every transaction the block begins
        anew (a retry after a lost race, a refusal's event), so what it allows is decided
        in the transaction that writes. It refuses by raising; it must not raise a
        BridgeError (that would be recorded as the change's refusal): the block then rolls
        back and the exception leaves it, nothing changed or recorded.
        """
        if self._open_unit.get() is not None or self._open_read.get() is not None \
                or self._open_write.get() is not None:
            raise RuntimeError("UnitOfWork.writing cannot be nested in another block")
        refusal: BridgeError | None = None
        with self._bookkeeping_after(), \
                transaction(self.session_factory, write=True) as session:
            block = _WriteBlock(session, admit)
            token = self._open_write.set(block)
            try:
                block.admit()
                yield session
            except BridgeError as exc:
                if exc is not block.refusal:
                    raise
                refusal = exc  # its event is in the block's transaction: commit it
            finally:
                self._open_write.reset(token)
        if refusal is not None:
            raise refusal

    def after_reading(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this thread's :meth:`reading` or :meth:`writing` block has
        ended (its connection back in the pool), at once when no block is open."""
        if self._open_read.get() is None and self._open_write.get() is None:
            callback()
        else:
            self._after_read.get().append(callback)

    def _refuse_inside_reading(self, what: str) -> None:
        if self._open_read.get() is not None:
            raise RuntimeError(f"{what} writes; it cannot run inside UnitOfWork.reading")
        if self._open_write.get() is not None:
            raise RuntimeError(f"{what} cannot run inside UnitOfWork.writing")

    @contextmanager
    def _unit(self, *, savepoint: bool = True, write: bool = True) -> Iterator[Session]:
        """A transaction of its own, a savepoint of the open single_transaction, or the
        open writing block's transaction (``savepoint``: as the block's one change)."""
        block = self._open_write.get()
        if block is not None:
            if not savepoint:
                yield block.session
                return
            if block.changed:
                raise RuntimeError("a UnitOfWork.writing block runs one change")
            try:
                yield block.session
            except BaseException:
                block.restart()
                raise
            block.changed = True
            return
        outer = self._open_unit.get()
        if outer is None:
            self._refuse_inside_reading("A change")
            with transaction(self.session_factory, write=write) as session:
                yield session
        elif savepoint:
            with outer.begin_nested():
                yield outer
        else:
            yield outer

    # --- changes and reads ----------------------------------------------------------------

    def run(self, actor: Actor, event_name: str, params: Mapping[str, Any] | None,
            work: Work[T], *, account_id: str | None = None,
            event_type: str = "AwsApiCall", attempts: int = 1) -> T:
        """Run ``work(repo)`` — which returns (result, the event's responseElements) — in
        one transaction with its audit event ``event_name``, and return the result.

        A refusal (a :class:`BridgeError`, a concurrent version change → StaleVersion, a
        uniqueness clash → Conflict) changes nothing, is recorded as the event with its
        error code in a transaction of its own, and is raised with ``audited`` set.

        ``attempts`` > 1 (a write whose caller named no expected version, e.g. a SCIM PATCH
        without If-Match): a try that lost a race with a concurrent writer (StaleVersion)
        is rolled back and run again from the start, and only the final outcome is
        recorded — one change, one event.
        """
        for attempt in range(1, attempts + 1):
            last = attempt >= attempts
            try:
                with self._unit() as session:
                    repo = Repository(session)
                    result, response = work(repo)
                    audit.record(session, actor, event_name, account_id=account_id,
                                 request_parameters=params, response_elements=response,
                                 event_type=event_type)
                    return result
            except StaleDataError:
                if not last:
                    continue
                error: BridgeError = StaleVersion(
                    "The resource was changed by another request; read it again and retry.")
            except StaleVersion as exc:
                if not last:
                    continue
                error = exc
            except IntegrityError as exc:
                log.info("integrity conflict in %s: %s", event_name, exc.orig)
                error = Conflict("The change conflicts with existing data (a concurrent "
                                 "change or a uniqueness rule); nothing was changed.")
            except BridgeError as exc:
                error = exc
            with self._unit(savepoint=False) as session:
                audit.record(session, actor, event_name, account_id=account_id,
                             request_parameters=params, error_code=error.code,
                             error_message=error.message, event_type=event_type)
            error.audited = True
            block = self._open_write.get()
            if block is not None:
                block.refusal = error
                block.changed = True
            raise error
        raise AssertionError("unreachable: attempts must be at least 1")

    def run_decision(self, actor: Actor, event_name: str, params: Mapping[str, Any] | None,
                     work: Callable[[Repository], tuple[T, Mapping[str, Any]]], *,
                     event_type: str) -> T:
        """Run ``work(repo)`` — a decision and its effects — in one transaction with its
        audit event. ``work`` returns (result, the event's fields: ``account_id``,
        ``response_elements``, and for a denial ``error_code``/``error_message``): a denial
        is a decision, not a failure, so its effects (enrolment, links) commit with it.
        A uniqueness clash (two first sign-ins racing) raises IntegrityError unaudited,
        for the caller to retry."""
        self._refuse_inside_reading(event_name)
        with transaction(self.session_factory, write=True) as session:
            result, fields = work(Repository(session))
            audit.record(session, actor, event_name, request_parameters=params,
                         event_type=event_type, **fields)
            return result

    def read(self, work: Callable[[Repository], T], *, write_lock: bool = True) -> T:
        """Run a query that changes nothing and is not audited (doors audit the reads they
        serve). ``write_lock=False``: a plain read transaction (on SQLite a deferred
        ``BEGIN`` that never queues behind a writer). Inside :meth:`reading` it joins the
        block's transaction either way."""
        reads = self._open_read.get()
        if reads is not None and self._open_unit.get() is None:
            return work(Repository(reads))
        with self._unit(savepoint=False, write=write_lock) as session:
            return work(Repository(session))

    def bookkeeping(self, work: Callable[[Repository], T]) -> T:
        """A write that is not an administrative change and has no audit event of its own
        (an API key's last-used time, a support mail's delivery status, a throttle
        counter). Runs in the open :meth:`single_transaction` or a transaction of its own."""
        with self._unit(savepoint=False) as session:
            return work(Repository(session))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction of its own (or the open :meth:`single_transaction`), for a
        door-side store's bookkeeping that is no administrative change and has no event of
        its own (the AD sync's records and watermark). Commits when the block ends."""
        with self._unit(savepoint=False) as session:
            yield session

    def record_event(self, actor: Actor, event_name: str, *, account_id: str | None = None,
                     params: Mapping[str, Any] | None = None,
                     response: Mapping[str, Any] | None = None,
                     error: BridgeError | None = None,
                     event_type: str = "AwsApiCall") -> None:
        """Record an event that changes no state (a read, a refusal at a door, a sign-in
        decision made elsewhere), in a transaction of its own. Sets ``audited`` on
        ``error``."""
        self._refuse_inside_reading("record_event")
        with transaction(self.session_factory) as session:
            audit.record(session, actor, event_name, account_id=account_id,
                         request_parameters=params, response_elements=response,
                         error_code=error.code if error else None,
                         error_message=error.message if error else None,
                         event_type=event_type)
        if error is not None:
            error.audited = True

    @staticmethod
    def record_in(session: Session, actor: Actor, event_name: str, **fields: Any) -> None:
        """Record one event in ``session``'s open transaction (a room whose change and
        event are written by a transaction it already holds: the sign-in decision)."""
        audit.record(session, actor, event_name, **fields)

    @staticmethod
    def record_many(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert prepared event rows (``audit.event_row``) in ``session``'s transaction:
        the bulk directory page writes one event per user in one statement."""
        # Prepared for the driver (bridge/store/driver_insert.py), not through the ORM's
        # bulk path or Core's per-row parameter processing: both cost more than the INSERT
        # itself at a page of 1,000 events (issue 17). The rows are stored as Core
        # stores them.
        insert_rows(session, cast(Table, AuditEvent.__table__), rows)


class _WriteBlock:
    """The state of one :meth:`UnitOfWork.writing` block."""

    def __init__(self, session: Session, admit: Callable[[], None] | None) -> None:
        self.session = session
        self._admit = admit
        self.changed = False  # its one change (or that change's refusal) has run
        self.refusal: BridgeError | None = None  # the refusal recorded in its transaction

    def restart(self) -> None:
        """Roll the block's transaction back (a change that failed, or lost a race and is
        tried again) and begin a new write transaction in the same session; the SQLite
        writers' lock stays held by the block. The new transaction is admitted again: a
        key revoked (PostgreSQL) between the tries refuses the retry."""
        self.session.rollback()
        self.session.connection(execution_options={WRITE_INTENT: True})
        self.admit()

    def admit(self) -> None:
        """Run the block's admission check (if any) in its current transaction."""
        if self._admit is not None:
            self._admit()
