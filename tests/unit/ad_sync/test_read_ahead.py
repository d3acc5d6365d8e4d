"""ReadAhead: the items in order, the source's end and error where they happened, whether
the next item is here, and a consumer that stops early lets the thread end."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ad_sync.read_ahead import ReadAhead


def test_items_in_order_then_the_end() -> None:
    with ReadAhead(iter([1, 2, 3])) as ahead:
        assert list(ahead) == [1, 2, 3]
        assert ahead.wait_ready(5)  # the end is "ready": a consumer stops at once
        assert next(ahead, None) is None


def test_ready_only_once_the_source_has_given_the_next_item() -> None:
    release = threading.Event()

    def source() -> Iterator[str]:
        yield "first"
        release.wait(30)
        yield "second"

    with ReadAhead(source()) as ahead:
        assert next(ahead) == "first"
        assert not ahead.wait_ready(0.05)  # the source is still waiting
        release.set()
        assert ahead.wait_ready(30)
        assert next(ahead) == "second"


def test_an_error_of_the_source_is_not_ready_and_is_raised_by_next() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise LookupError("the directory went away")

    with ReadAhead(source()) as ahead:
        assert next(ahead) == 1
        assert not ahead.wait_ready(30)  # after the wait: the error is there, not an item
        with pytest.raises(LookupError, match="went away"):
            next(ahead)


def test_at_most_depth_items_wait_and_close_lets_the_thread_end() -> None:
    given: list[int] = []
    two_given = threading.Event()

    def source() -> Iterator[int]:
        for i in range(1000):
            given.append(i)
            if len(given) == 2:
                two_given.set()
            yield i

    ahead = ReadAhead(source(), depth=1)
    assert two_given.wait(30)  # one item waits, the thread holds the second
    assert ahead.wait_ready(30)
    ahead.close()
    ahead._thread.join(30)
    assert not ahead._thread.is_alive()
    assert len(given) == 2  # it never took a third: memory bounded by depth
