"""A user read and written as plain Core rows, for the SCIM PATCH and PUT path (issue 12):
one prebuilt SELECT and one ``UPDATE ... WHERE version = ?``, no ORM object loaded or
flushed. The rows are read-only stand-ins with every column (as
``Repository.insert_user`` returns), so the engine's views read them like ORM users."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from bridge.store.models import User

_USERS = cast(Table, User.__table__)
_USER_ROW = select(_USERS).where(_USERS.c.id == bindparam("user_id"),
                                 _USERS.c.account_id == bindparam("account_id"))
# The same, locking the row until the transaction ends (PostgreSQL; SQLite's writers are
# already one at a time, and SQLAlchemy renders no FOR UPDATE there).
_USER_ROW_LOCKED = _USER_ROW.with_for_update()
# The UPDATEs of update_user, by the set of columns written (a handful of shapes).
_UPDATES: dict[tuple[str, ...], Any] = {}


def user_row(session: Session, account_id: str, user_id: str, *,
             lock: bool = False) -> User | None:
    """The account's user ``user_id`` as a Core row in ``session``'s transaction; None
    when absent (or in another account). ``lock``: ``SELECT ... FOR UPDATE`` — a write
    that reads the user to change it holds the row until it commits, so a concurrent
    writer of the same user waits instead of losing the race."""
    row = session.connection().execute(
        _USER_ROW_LOCKED if lock else _USER_ROW,
        {"user_id": user_id, "account_id": account_id}).first()
    return cast(User, SimpleNamespace(**row._mapping)) if row is not None else None


def update_user(session: Session, user_id: str, version: int,
                values: Mapping[str, Any]) -> bool:
    """``UPDATE users SET values, version = version + 1 WHERE id = ? AND version = ?`` in
    ``session``'s transaction (the statement built once per set of columns). False when no
    row matched: the user was changed or deleted since ``version`` was read (the caller
    raises StaleVersion, as the ORM's versioned UPDATE does)."""
    columns = tuple(sorted(values))
    statement = _UPDATES.get(columns)
    if statement is None:
        statement = _UPDATES[columns] = (
            update(_USERS).where(_USERS.c.id == bindparam("b_id"),
                                 _USERS.c.version == bindparam("b_version"))
            .values(version=_USERS.c.version + 1,
                    **{k: bindparam(f"b_{k}", type_=_USERS.c[k].type) for k in columns}))
    result = session.connection().execute(statement, {
        "b_id": user_id, "b_version": version, **{f"b_{k}": v for k, v in values.items()}})
    return bool(result.rowcount == 1)
