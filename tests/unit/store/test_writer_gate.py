"""SQLite writers take turns through a file lock (``bridge.store.db``): a writing unit of
work holds ``<database>-writer.lock`` from before ``BEGIN IMMEDIATE`` to its end, so the next
writer is woken by the kernel instead of polling in SQLite's busy handler; readers never
take it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from bridge.store.db import make_engine, make_session_factory, transaction
from tests.writer_lock import held_by_someone


@pytest.fixture
def lock_path(sqlite_url: str) -> str:
    return sqlite_url.removeprefix("sqlite:///") + "-writer.lock"


@pytest.fixture
def factory(sqlite_url: str) -> Iterator:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_a_writing_unit_holds_the_lock_and_a_reading_one_does_not(factory, lock_path) -> None:
    with transaction(factory) as session:
        session.execute(text("SELECT 1"))
        assert not held_by_someone(lock_path)
    with transaction(factory, write=True) as session:
        session.execute(text("SELECT 1"))
        assert held_by_someone(lock_path)
    assert not held_by_someone(lock_path)


def test_the_next_writer_waits_for_the_lock_then_goes(factory, lock_path) -> None:
    order: list[str] = []
    first_in = threading.Event()
    release = threading.Event()

    def first() -> None:
        with transaction(factory, write=True) as session:
            session.execute(text("SELECT 1"))
            order.append("first in")
            first_in.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        first_in.wait(10)
        with transaction(factory, write=True) as session:
            session.execute(text("SELECT 1"))
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_in.wait(10)
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["first in", "first out", "second in"]
    assert not held_by_someone(lock_path)


def test_an_aborted_writer_releases_the_lock(factory, lock_path) -> None:
    with pytest.raises(RuntimeError), transaction(factory, write=True):
        raise RuntimeError("refused")
    assert not held_by_someone(lock_path)
