"""``client.ReadAhead``: the next page is read while the caller works on the current one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ad_sync.client import DirectoryError, ReadAhead


def test_yields_every_item_in_order() -> None:
    with ReadAhead(iter(range(50)), depth=2) as ahead:
        assert list(ahead) == list(range(50))


def test_reads_the_next_item_while_the_caller_holds_the_current_one() -> None:
    second_started = threading.Event()

    def source() -> Iterator[int]:
        yield 1
        second_started.set()
        yield 2

    with ReadAhead(source()) as ahead:
        items = iter(ahead)
        assert next(items) == 1
        # The caller has not asked for the second item yet; the reader is already on it.
        assert second_started.wait(timeout=10)
        assert next(items) == 2


def test_an_error_of_the_source_reaches_the_caller_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise DirectoryError("search", "the DC went away")

    seen: list[int] = []
    with pytest.raises(DirectoryError, match="went away"), ReadAhead(source()) as ahead:
        for item in ahead:
            seen.append(item)
    assert seen == [1, 2]


def test_leaving_early_stops_the_reader_and_closes_the_source() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    reader = ReadAhead(source(), depth=1)
    with reader as ahead:
        for item in ahead:
            if item == 3:
                break
    # Leaving the block waited for the reader: the source is closed, nothing runs on.
    assert closed.is_set()
    assert not reader._thread.is_alive()
    # At most depth + 2 items beyond the one the caller stopped at were read.
    assert len(produced) <= 4 + 1 + 2


def test_an_exception_in_the_caller_stops_the_reader() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    with pytest.raises(RuntimeError), ReadAhead(source()) as ahead:
        for _item in ahead:
            raise RuntimeError("the caller failed")
    assert closed.is_set()
