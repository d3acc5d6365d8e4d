"""Many prepared rows into one table with the driver's ``executemany``, each value converted
once, exactly as SQLAlchemy's own bind processing converts it.

``session.execute(insert(table), rows)`` builds, for every row, a dictionary of every bind
of the compiled statement (``construct_params``) and runs each value through the type's
processor by name: at 100,000 created users (the AD sync's first import, issue 17) that
generic work cost more than SQLite's inserts of the same rows. Here the statement is
compiled once per (table, columns) and engine, each column's bind processor is taken from
its type for that dialect (``TypeEngine.dialect_impl(...).bind_processor``: the same
function SQLAlchemy applies: a ``TypeDecorator``'s ``process_bind_param`` and then its
implementation's, JSON through the dialect's serializer, PostgreSQL's ``::JSON`` casts in
the SQL), and the rows become driver tuples (or dictionaries, for named paramstyles) in one
tight loop. A scalar repeated across the rows (a page's time, a flag) and an empty JSON
object or list are converted once per call.

The SQL text and the processors are SQLAlchemy's, so what lands in the database is what
the Core ``insert`` writes: ``tests/unit/bridge/test_driver_insert.py`` reads rows written
both ways back through Core and the ORM on SQLite and PostgreSQL and compares every
column. Statement events (``before_cursor_execute``) still fire.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Table, TypeDecorator, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

_Processor = Callable[[Any], Any] | None


class _Prepared:
    """One compiled INSERT: its SQL, its parameter names in order, their processors."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        self.sql = compiled.string
        # The binds the statement renders, in order (positional drivers) or by name. Columns
        # with a Python-side default are rendered even when not asked for: a row must then
        # carry them (SQLAlchemy would fill them at execution; this path does not).
        names = (list(compiled.positiontup) if compiled.positiontup is not None
                 else list(compiled.binds))
        missing = [name for name in names if name not in set(columns)]
        if missing:
            raise ValueError(f"rows for {table.name} must give {missing} (defaults are not "
                             "applied on the driver path)")
        self.names = names
        self.positional = compiled.positiontup is not None
        self.processors: list[_Processor] = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
        self.is_json = [isinstance(_base_type(table.c[name].type), JSON) for name in names]


def _base_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """The type a ``TypeDecorator`` stands on (itself for any other type)."""
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return type_


# Per dialect object (one per engine: its own JSON serializer, its own server version),
# then per (table object, columns): two tables of one name in two metadata collections may
# convert their columns differently; forgotten with the engine. Kept on the dialect itself, not in
# a WeakKeyDictionary keyed by it: the processors refer to their dialect (a TypeDecorator's
# does), so such an entry would keep its own key, and every engine ever made, alive.
_CACHE_ATTRIBUTE = "_bridge_driver_inserts"
_CACHE_LOCK = threading.Lock()


def _prepared(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _Prepared:
    key = (table, columns)
    found = getattr(dialect, _CACHE_ATTRIBUTE, {}).get(key)
    if found is None:
        with _CACHE_LOCK:
            cache: dict[tuple[Table, tuple[str, ...]], _Prepared] = (
                dialect.__dict__.setdefault(_CACHE_ATTRIBUTE, {}))
            found = cache.setdefault(key, _Prepared(table, columns, dialect))
    return found


def _once_per_value(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` of a scalar column (date-time, boolean) remembering its results by value
    for one call of :func:`insert_rows`: a page writes the same instant many times (its
    creation and update times). Scalars are immutable, so equal values of one type convert
    equally; the type is part of what is remembered (``True == 1``), and so is an aware
    date-time's UTC offset: two can be equal yet name two instants (a zone's repeated wall
    time, ``fold`` 0 and 1)."""
    done: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        key = ((value, value.utcoffset()) if isinstance(value, datetime)
               else (type(value), value))
        try:
            return done[key]
        except KeyError:
            result = done[key] = process(value)
            return result

    return convert


def _json(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` of a JSON column, with the empty object and the empty list (most rows'
    ``attributes``) encoded once per call; any other value is encoded on its own."""
    empty_dict, empty_list = process({}), process([])

    def convert(value: Any) -> Any:
        if not value and type(value) is dict:
            return empty_dict
        if not value and type(value) is list:
            return empty_list
        return process(value)

    return convert


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` into ``table`` in ``session``'s transaction (one ``executemany``).

    Every row must give the same columns, including every column that has a Python-side
    default (none is applied here; a row lacking one raises ``ValueError``). Values are
    what ``insert(table)`` accepts (aware date-times for ``UTCDateTime``, dicts and lists
    for JSON) and are stored exactly as it stores them."""
    if not rows:
        return
    connection = session.connection()
    prepared = _prepared(table, tuple(rows[0]), connection.dialect)
    plan = [(name, None if process is None else _json(process) if is_json
             else _once_per_value(process))
            for name, process, is_json in zip(
                prepared.names, prepared.processors, prepared.is_json, strict=True)]
    driver_rows: list[Any]
    if prepared.positional:
        driver_rows = [tuple([row[name] if process is None else process(row[name])
                              for name, process in plan]) for row in rows]
    else:
        driver_rows = [{name: row[name] if process is None else process(row[name])
                        for name, process in plan} for row in rows]
    connection.exec_driver_sql(prepared.sql, driver_rows)
