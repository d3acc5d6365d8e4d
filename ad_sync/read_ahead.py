"""Pages read ahead by a thread, so that an applier can tell whether the next one is here.

A cold import groups several directory pages in one transaction (``ad_sync.sync``). On
SQLite that transaction holds the store's writers' lock, so it must never stay open while
the run waits for a slow directory: the applier asks :meth:`ReadAhead.wait_ready` for at
most a moment and commits first when the next page has not come. At most ``depth`` pages
wait here, so the memory stays that of ``depth`` pages whatever the directory's size.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_ITEM, _END, _ERROR = "item", "end", "error"


class ReadAhead(Generic[T], Iterator[T]):
    """Iterate ``source`` in a daemon thread, ``depth`` items ahead of the consumer.

    The consumer's ``next()`` returns the items in order, raises StopIteration at the
    source's end and re-raises the source's exception where it happened. :meth:`close`
    (also the context manager's exit) lets the thread end: it stops taking items; a thread
    blocked inside ``source`` ends when the source does (the caller closes it)."""

    def __init__(self, source: Iterable[T], *, depth: int = 1) -> None:
        self._items: deque[tuple[str, object]] = deque()
        self._depth = depth
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._fill, args=(iter(source),),
                                        name="ad-sync-read-ahead", daemon=True)
        self._thread.start()

    def _fill(self, source: Iterator[T]) -> None:
        final: tuple[str, object] = (_END, None)
        try:
            for item in source:
                with self._changed:
                    self._changed.wait_for(
                        lambda: len(self._items) < self._depth or self._closed)
                    if self._closed:
                        return
                    self._items.append((_ITEM, item))
                    self._changed.notify_all()
        except BaseException as exc:
            final = (_ERROR, exc)
        with self._changed:
            self._items.append(final)
            self._changed.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        """True when the next item (or the source's end) is here, waiting at most
        ``timeout`` seconds for it; False also when the source failed (the consumer then
        learns it from ``next()``, after committing what it has)."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._items), timeout)
            return bool(self._items) and self._items[0][0] != _ERROR

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        with self._changed:
            self._changed.wait_for(lambda: bool(self._items))
            kind, value = self._items[0]
            if kind == _END:
                raise StopIteration
            if kind == _ERROR:
                assert isinstance(value, BaseException)  # noqa: S101 - stored by _fill
                raise value
            self._items.popleft()
            self._changed.notify_all()
            return value  # type: ignore[return-value]

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
