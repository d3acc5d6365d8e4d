"""The collector pause of a full run (ad_sync.heap)."""

from __future__ import annotations

import gc
import threading

import pytest

from ad_sync import heap


def test_objects_before_the_block_are_frozen_and_returned_after() -> None:
    assert gc.get_freeze_count() == 0
    with heap.long_lived_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        made_inside = [[] for _ in range(10)]
        assert gc.get_freeze_count() == frozen  # objects made in the block are not frozen
        del made_inside
    assert gc.get_freeze_count() == 0


def test_cycles_made_before_the_block_are_collected_after_it() -> None:
    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    with heap.long_lived_frozen():
        del a, b
        gc.collect()  # frozen: the cycle stays
    assert gc.get_freeze_count() == 0
    assert gc.collect() >= 2  # unfrozen: the cycle is garbage again and collected


def test_nested_and_concurrent_blocks_unfreeze_only_at_the_last_exit() -> None:
    inner_entered, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with heap.long_lived_frozen():
            inner_entered.set()
            release.wait(5)

    with heap.long_lived_frozen():
        thread = threading.Thread(target=other_run)
        thread.start()
        assert inner_entered.wait(5)
        with heap.long_lived_frozen():
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() > 0  # the other run still works
    release.set()
    thread.join(5)
    assert gc.get_freeze_count() == 0


def test_an_error_in_the_block_still_unfreezes() -> None:
    with pytest.raises(RuntimeError), heap.long_lived_frozen():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
