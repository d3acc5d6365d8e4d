"""The cold import (a full run into an empty bridge) commits several pages per transaction:
what another connection sees while it runs, a stop that ends a transaction early, and a
transaction that commits instead of waiting for a slow directory. Against the real Samba
DC, on SQLite and PostgreSQL. (``transaction_wait=60``: the groups do not depend on how
fast the DC answers on a busy machine.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from ad_sync.reader import UserReader
from ad_sync.sync import DirectorySync
from bridge.store.db import transaction
from bridge.store.models import ExternalIdentity
from tests.conftest import FakeClock
from tests.integration.ad.conftest import Bridge, Seed, make_bridge
from tests.servers.samba_dc import SambaDC


@pytest.fixture
def any_store_bridge(tmp_path: Path, clock: FakeClock, dc: SambaDC, seed: Seed,
                     store_url: str) -> Iterator[Bridge]:
    yield from make_bridge(tmp_path, store_url, clock, dc, seed)


def _committed(bridge: Bridge) -> int:
    """Directory users linked so far, as another connection sees them (committed only)."""
    with transaction(bridge.services.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(ExternalIdentity).where(
            ExternalIdentity.source == "ad")) or 0)


def _add_users(bridge: Bridge, count: int) -> None:
    for i in range(count):
        bridge.dc.add_user(f"t{i:02d}", ou_dn=bridge.seed.staff, mail=f"t{i:02d}@example.com")


def test_a_cold_import_commits_its_pages_in_groups(any_store_bridge: Bridge) -> None:
    bridge = any_store_bridge
    _add_users(bridge, 7)
    visible: list[int] = []
    report = bridge.sync(full=True, page_size=1, transaction_users=3,
                         transaction_wait=60,
                         on_page=lambda _pages: visible.append(_committed(bridge)))
    assert (report.status, report.added) == ("ok", 7), report.as_json()
    # Pages 1-3 in one transaction, 4-6 in the next, 7 in the last (with the empty
    # page the DC may end a paged search with): another connection sees nothing of a
    # group until it commits.
    assert visible[:7] == [0, 0, 0, 3, 3, 3, 6] and set(visible[7:]) <= {6}, visible
    assert _committed(bridge) == 7
    state = bridge.records.state(bridge.account_id)
    assert state.highest_usn == report.watermark["highestCommittedUsn"]
    # A full run over known users still commits page by page (its guard comes first).
    bridge.dc.add_user("late", ou_dn=bridge.seed.staff, mail="late@example.com")
    again = bridge.sync(full=True, page_size=1, transaction_users=3)
    assert (again.status, again.added, again.unchanged) == ("ok", 1, 7)


def test_a_stop_ends_the_open_transaction_after_its_page_and_the_next_run_completes(
        any_store_bridge: Bridge) -> None:
    bridge = any_store_bridge
    _add_users(bridge, 7)
    stop = threading.Event()

    def on_page(pages: int) -> None:
        if pages == 3:  # the first page of the second transaction (pages of two users)
            stop.set()

    report = bridge.sync(full=True, page_size=2, transaction_users=3, stop=stop,
                         transaction_wait=60, on_page=on_page)
    assert report.status == "interrupted", report.as_json()
    # The first transaction (pages 1-2, four users) committed; the stop ended the
    # second after its first page (page 3), which committed with it; no watermark.
    assert _committed(bridge) == 4 + 2
    state = bridge.records.state(bridge.account_id)
    assert state.highest_usn is None and state.full_run_started_usn is not None

    again = bridge.sync(page_size=2, transaction_users=3)
    assert (again.status, again.mode, again.added, again.unchanged) == (
        "ok", "full", 1, 6), again.as_json()
    assert _committed(bridge) == 7
    assert bridge.records.state(bridge.account_id).highest_usn is not None


class _SlowAfterFirstPage:
    """The real reader, but its second page comes only after a commit that follows the
    first page's changes (as a directory that stalls would keep it back)."""

    def __init__(self, reader: UserReader, committed: threading.Event) -> None:
        self._reader, self._committed = reader, committed
        self._given = 0

    def start(self) -> _SlowAfterFirstPage:
        self._reader.start()
        return self

    def close(self) -> None:
        self._reader.close()

    @property
    def peak_rss_mb(self) -> float | None:
        return self._reader.peak_rss_mb

    def page_ready(self, timeout: float) -> bool:
        if self._given == 1:  # the second page: only after the commit
            if self._committed.wait(min(timeout, 20)):
                return True
            if timeout > 20:
                raise AssertionError("the open transaction waited for the directory")
            return False
        return self._reader.page_ready(timeout)

    def __iter__(self) -> Iterator[object]:
        for number, page in enumerate(self._reader):
            if number == 1 and not self._committed.wait(20):
                raise AssertionError("the open transaction waited for the directory")
            self._given = number + 1
            yield page


def test_a_transaction_commits_instead_of_waiting_for_a_slow_directory(
        any_store_bridge: Bridge) -> None:
    bridge = any_store_bridge
    _add_users(bridge, 3)
    applied, committed = threading.Event(), threading.Event()

    @event.listens_for(bridge.services.db, "commit")
    def _on_commit(_conn: object) -> None:
        if applied.is_set():
            committed.set()

    class SlowDirectory(DirectorySync):
        def _reader(self, cfg: object) -> UserReader:
            return _SlowAfterFirstPage(super()._reader(cfg), committed)  # type: ignore[arg-type, return-value]

    report = SlowDirectory(bridge.services, bridge.account_id, page_size=1,
                           transaction_users=3, transaction_wait=0.2,
                           on_page=lambda _pages: applied.set()).run(full=True)
    assert (report.status, report.added) == ("ok", 3), report.as_json()
    assert committed.is_set()
    assert _committed(bridge) == 3
