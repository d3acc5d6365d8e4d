"""``bridge.store.driver_insert.insert_rows`` (the bulk page's inserts, prepared for the
driver) stores exactly what ``session.execute(insert(table), rows)`` stores, on SQLite and
PostgreSQL: the same rows are written both ways into every table the AD sync's bulk page
writes, then read back through Core, through the ORM and as the driver returns them
(no SQLAlchemy type processing), and compared column by column, types included (aware
date-times, JSON objects, lists, ``null`` and nested values, booleans)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.orm import Session

from bridge.store.ad_models import AdDirectoryUser
from bridge.store.db import make_engine, make_session_factory
from bridge.store.driver_insert import insert_rows
from bridge.store.models import (
    Account,
    AuditEvent,
    DirectoryGroup,
    EmailAddress,
    ExternalIdentity,
    GroupMembership,
    User,
)
from bridge.store.usage_models import TierChange

ACCOUNT = "acc-00000000-0000-0000-0000-00000000"
GROUP = "grp-00000000-0000-0000-0000-00000000"
T0 = datetime(2026, 12, 5, 3, 4, 5, 123456, tzinfo=UTC)
# Aware date-times in other zones and at other precisions: stored as UTC either way.
TIMES = [T0, T0.astimezone(timezone(timedelta(hours=5, minutes=30))),
         datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-8))), T0 + timedelta(days=400)]
JSONS: list[Any] = [{}, [], {"a": [1, 2.5, None, True], "é": "ü ☃", "n": {"x": {}}},
                    ["user-all", "user-group-000"], {"emails": ["a@b.example"], "k": None},
                    None, [{"nested": [[]]}], {"s": "x" * 300, "i": -(2**40)}]


@pytest.fixture
def db(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url)
    with make_session_factory(engine)() as s, s.begin():
        s.execute(insert(cast(Table, Account.__table__)), [{
            "id": ACCOUNT, "name": "Corp", "name_lower": "corp", "directory_kind": "ad",
            "default_license": "pro", "remote_control_enabled": True,
            "call_me_enabled": True, "created_at": T0, "owner_principal": None,
            "owner_organisation": None}])
        s.execute(insert(cast(Table, DirectoryGroup.__table__)), [{
            "id": GROUP, "account_id": ACCOUNT, "name": "G", "name_lower": "g",
            "external_id": None, "attributes": {}, "created_at": T0, "updated_at": T0,
            "version": 1}])
    yield engine
    engine.dispose()


def _user(i: int, way: str) -> dict[str, Any]:
    return {
        "id": f"{way}-user-{i:03d}", "account_id": ACCOUNT if i % 3 else None,
        "primary_email": f"{way}{i}@example.com", "display_name": None if i == 2 else f"Ü {i}",
        "status": "registered", "tier": [None, "pro", "basic"][i % 3],
        "tier_held": i % 2 == 0, "trial_started_at": TIMES[i % 4] if i % 2 else None,
        "trial_ended_at": None, "invited_at": TIMES[(i + 1) % 4], "joined_at": None,
        "personal_pin": f"{way[:1]}{i:09d}", "privacy": "public",
        "last_active_at": TIMES[(i + 2) % 4], "meetings_attended": i,
        "meetings_organized": 0, "chat_messages_sent": 2**31 - 1 - i,
        "in_directory": i % 2 == 1, "directory_enabled": i % 4 != 1,
        "directory_deleted_at": None if i % 3 else TIMES[i % 4],
        "source_addresses": JSONS[(i + 1) % len(JSONS)] or [],
        "user_name": None, "user_name_lower": None,
        "attributes": JSONS[i % len(JSONS)] or {},
        "search_folded": JSONS[(i + 2) % len(JSONS)] or {},
        "sessions_valid_after": T0 if i == 1 else None, "created_at": TIMES[i % 4],
        "updated_at": T0, "version": 1 + i}


# table -> (row maker, the columns that identify a row's "way" and position, sort key)
Maker = Callable[[int, str], dict[str, Any]]
CASES: dict[str, tuple[type[Any], Maker, set[str]]] = {
    "users": (User, _user, {"id", "primary_email", "personal_pin"}),
    "email_addresses": (EmailAddress, lambda i, w: {
        "address": f"{w}{i}@example.com", "user_id": f"{w}-user-{i:03d}",
        "domain": "example.com", "is_primary": i % 2 == 0}, {"address", "user_id"}),
    "external_identities": (ExternalIdentity, lambda i, w: {
        "user_id": f"{w}-user-{i:03d}", "source": "active_directory", "issuer": ACCOUNT,
        "external_id": f"{w}-guid-{i}", "created_at": TIMES[i % 4]},
        {"id", "user_id", "external_id"}),
    "group_memberships": (GroupMembership, lambda i, w: {
        "group_id": GROUP, "user_id": f"{w}-user-{i:03d}"}, {"user_id"}),
    "tier_changes": (TierChange, lambda i, w: {
        "user_id": f"{w}-user-{i:03d}", "account_id": ACCOUNT if i % 2 else None,
        "tier": [None, "pro", "basic"][i % 3], "changed_at": TIMES[i % 4]},
        {"id", "user_id"}),
    "audit_events": (AuditEvent, lambda i, w: {
        "event_id": f"{w}-event-{i}", "event_time": TIMES[i % 4],
        "event_name": "SyncDirectoryUser", "event_source": "chime.amazonaws.com",
        "principal_id": None if i == 3 else "ad-sync", "account_id": ACCOUNT,
        "organisation": None, "error_code": None if i % 2 else "Conflict",
        "body": JSONS[i % len(JSONS)] if JSONS[i % len(JSONS)] is not None else {"x": 1}},
        {"seq", "event_id"}),
    "ad_directory_users": (AdDirectoryUser, lambda i, w: {
        "account_id": ACCOUNT, "guid": f"{w}-guid-{i}", "user_id": f"{w}-user-{i:03d}",
        "dn": f"CN=Ü {i},OU=Bench,DC=x", "fingerprint": "f" * 64, "enabled": i % 2 == 0,
        "present": True, "groups": JSONS[i % len(JSONS)] or [], "seen_run": None,
        "retry": i == 5}, {"guid", "user_id"}),
}
N = 8


def _write(engine: Engine, name: str, way: str) -> None:
    model, make, _keys = CASES[name]
    table = cast(Table, model.__table__)
    rows = [make(i, way) for i in range(N)]
    with make_session_factory(engine)() as s, s.begin():
        if name != "users":  # the users the rows of other tables point to
            insert_rows(s, cast(Table, User.__table__), [_user(i, way) for i in range(N)])
        if way == "core":
            s.execute(insert(table), rows)
        else:
            insert_rows(s, table, rows)


def _read(engine: Engine, name: str, way: str) -> dict[str, list[Any]]:
    """The rows of ``way`` in order, through Core, the ORM and the bare driver, with the
    columns that name the way (ids, keys) left out."""
    model, _make, keys = CASES[name]
    table = cast(Table, model.__table__)
    columns = [c.name for c in table.columns if c.name not in keys]
    order_col = {"users": "id"}.get(name, "user_id" if "user_id" in table.c else "event_id")
    if name == "audit_events":
        mine = table.c.event_id.startswith(f"{way}-")
    else:
        mine = table.c[order_col].startswith(f"{way}-")
    with Session(engine) as s:
        core = [tuple(r) for r in s.execute(
            select(*[table.c[c] for c in columns]).where(mine).order_by(table.c[order_col]))]
        orm = [tuple(getattr(obj, c) for c in columns) for obj in s.scalars(
            select(model).where(mine).order_by(table.c[order_col]))]
        # What the driver holds (the same SELECT sent as text: no result processing).
        raw_select = (select(*[table.c[c] for c in columns])
                      .where(table.c[order_col].like(bindparam("p")))
                      .order_by(table.c[order_col]).compile(dialect=engine.dialect))
        params: Any = ((f"{way}-%",) if raw_select.positiontup is not None
                       else {"p": f"{way}-%"})
        raw = [tuple(r) for r in s.connection().exec_driver_sql(raw_select.string, params)]
    return {"core": core, "orm": orm, "raw": raw}


@pytest.mark.parametrize("name", sorted(CASES))
def test_driver_rows_read_back_as_core_rows(db: Engine, name: str) -> None:
    _write(db, name, "core")
    _write(db, name, "drv")
    core_way, driver_way = _read(db, name, "core"), _read(db, name, "drv")
    assert len(core_way["core"]) == N
    for how in ("core", "orm", "raw"):
        for a, b in zip(core_way[how], driver_way[how], strict=True):
            assert a == b, how
            assert [type(x) for x in a] == [type(x) for x in b], how
    # Date-times come back aware, in UTC.
    for row in driver_way["orm"]:
        for value in (v for v in row if isinstance(v, datetime)):
            assert value.utcoffset() == timedelta(0), row


def test_times_are_stored_at_the_instant_given(db: Engine) -> None:
    _write(db, "tier_changes", "drv")
    with Session(db) as s:
        got = list(s.scalars(select(TierChange.changed_at).order_by(TierChange.user_id)))
    assert got == [TIMES[i % 4] for i in range(N)]


def test_json_null_and_empty_values_keep_their_json_kind(db: Engine) -> None:
    """``None`` in a JSON column is JSON ``null`` (SQLAlchemy's default, ``none_as_null``
    off), never SQL NULL; ``{}`` and ``[]`` stay an object and a list."""
    _write(db, "audit_events", "core")
    _write(db, "audit_events", "drv")
    with Session(db) as s:
        sql_nulls = s.execute(text("SELECT count(*) FROM audit_events WHERE body IS NULL"))
        assert sql_nulls.scalar() == 0
        bodies = dict(list(s.execute(select(AuditEvent.event_id, AuditEvent.body)).tuples()))
    for i in range(N):
        assert bodies[f"drv-event-{i}"] == bodies[f"core-event-{i}"]
    assert bodies["drv-event-0"] == {} and type(bodies["drv-event-1"]) is list


def test_rows_without_a_defaulted_column_are_refused(db: Engine) -> None:
    """No default is applied on the driver path: a row must give every column that has
    one, else ValueError before anything is sent."""
    row = _user(1, "drv")
    del row["privacy"]
    with make_session_factory(db)() as s, s.begin(), pytest.raises(ValueError, match="privacy"):
        insert_rows(s, cast(Table, User.__table__), [row])


def test_no_rows_send_nothing(db: Engine) -> None:
    sent: list[str] = []
    from sqlalchemy import event

    event.listen(db, "before_cursor_execute", lambda *a: sent.append(a[2]))
    with make_session_factory(db)() as s, s.begin():
        insert_rows(s, cast(Table, User.__table__), [])
    assert not [q for q in sent if q.startswith("INSERT")]


def test_each_engine_keeps_its_own_json_serializer(sqlite_url: str) -> None:
    """The prepared statements are kept per engine (dialect object): an engine built with
    another JSON serializer stores what its serializer writes, not what the first engine's
    prepared processors would."""
    import json

    plain = make_engine(sqlite_url)
    marked = make_engine(sqlite_url, json_serializer=lambda o: json.dumps(o, indent=1))
    try:
        for engine, way in ((plain, "plain"), (marked, "marked")):
            with make_session_factory(engine)() as s, s.begin():
                insert_rows(s, cast(Table, AuditEvent.__table__), [{
                    "event_id": f"{way}-1", "event_time": T0, "event_name": "E",
                    "event_source": "s", "principal_id": None, "account_id": None,
                    "organisation": None, "error_code": None, "body": {"a": [1]}}])
        with plain.connect() as conn:
            stored = dict(list(conn.exec_driver_sql(
                "SELECT event_id, body FROM audit_events").tuples()))
    finally:
        plain.dispose()
        marked.dispose()
    assert stored == {"plain-1": json.dumps({"a": [1]}),
                      "marked-1": json.dumps({"a": [1]}, indent=1)}


def test_equal_wall_times_of_two_instants_are_stored_apart(db: Engine) -> None:
    """Two aware date-times can be equal in Python (and hash alike) yet name two instants:
    the repeated wall time of a zone's autumn change, ``fold`` 0 and 1 in one ``ZoneInfo``.
    A value converted once and reused for "equal" values must not store the second as the
    first (Core stores them an hour apart)."""
    from zoneinfo import ZoneInfo

    first = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    second = first.replace(fold=1)
    assert first == second and first.utcoffset() != second.utcoffset()
    with make_session_factory(db)() as s, s.begin():
        insert_rows(s, cast(Table, TierChange.__table__), [
            {"user_id": f"drv-user-{i}", "account_id": None, "tier": None, "changed_at": at}
            for i, at in enumerate((first, second))])
    with Session(db) as s:
        got = list(s.scalars(select(TierChange.changed_at).order_by(TierChange.user_id)))
    assert got == [first.astimezone(UTC), second.astimezone(UTC)]
    assert got[1] - got[0] == timedelta(hours=1)


def test_prepared_statements_are_forgotten_with_their_engine(sqlite_url: str) -> None:
    """The statements prepared for an engine live no longer than it: a process that makes
    many engines (each test's, a CLI command's) does not keep every dialect it ever saw."""
    import gc
    import weakref

    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as s, s.begin():
        insert_rows(s, cast(Table, TierChange.__table__), [
            {"user_id": "drv-user-0", "account_id": None, "tier": None, "changed_at": T0}])
    dialect = weakref.ref(engine.dialect)
    engine.dispose()
    del engine, s
    gc.collect()
    assert dialect() is None


class _Repr(TypeDecorator[str]):
    """Stores ``repr`` of what it is given: tells ``True`` from ``1``."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        return repr(value)


class _Shout(TypeDecorator[str]):
    """Stores its text upper-cased."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        return str(value).upper()


def _probe_table(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE drv_probe (id INTEGER PRIMARY KEY, v VARCHAR(20))")


def _probe_values(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT v FROM drv_probe ORDER BY id").scalars())


def test_equal_values_of_two_types_are_converted_apart(sqlite_url: str) -> None:
    """``True == 1`` (and they hash alike): a value converted once and reused for equal
    values must not store the second as the first where the column's type tells them apart."""
    engine = make_engine(sqlite_url)
    try:
        _probe_table(engine)
        table = Table("drv_probe", MetaData(), Column("id", Integer, primary_key=True),
                      Column("v", _Repr()))
        with make_session_factory(engine)() as s, s.begin():
            insert_rows(s, table, [{"id": 1, "v": True}, {"id": 2, "v": 1}, {"id": 3, "v": 1.0}])
        assert _probe_values(engine) == ["True", "1", "1.0"]
    finally:
        engine.dispose()


def test_two_tables_of_one_name_keep_their_own_conversions(sqlite_url: str) -> None:
    """Statements are prepared per table object, not per table name: a table of the same
    name in another metadata collection, whose column converts differently, is written with
    its own conversion."""
    engine = make_engine(sqlite_url)
    try:
        _probe_table(engine)
        plain = Table("drv_probe", MetaData(), Column("id", Integer, primary_key=True),
                      Column("v", String(20)))
        shouting = Table("drv_probe", MetaData(), Column("id", Integer, primary_key=True),
                         Column("v", _Shout()))
        with make_session_factory(engine)() as s, s.begin():
            insert_rows(s, plain, [{"id": 1, "v": "quiet"}])
            insert_rows(s, shouting, [{"id": 2, "v": "loud"}])
        assert _probe_values(engine) == ["quiet", "LOUD"]
    finally:
        engine.dispose()
