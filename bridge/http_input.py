"""The application's request class (:class:`BoundedRequest`): a body sent without
``Content-Length`` (chunked) that goes past ``MAX_CONTENT_LENGTH`` raises
``RequestEntityTooLarge`` (413, each door answers it in its own format) instead of being
silently cut at the limit. The other input bounds are in :mod:`bridge.bounds`."""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream


class _StrictMaxStream(LimitedStream):
    """A streamed body (no Content-Length) read up to ``limit``; one byte more raises
    RequestEntityTooLarge (werkzeug's own max stream stops quietly at the limit)."""

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__(stream, limit + 1, is_max=True)
        self._max = limit

    def readinto(self, b: Any) -> int | None:
        size = super().readinto(b)
        if self._pos > self._max:
            raise RequestEntityTooLarge()
        return size


class BoundedRequest(Request):
    """Flask's request with :class:`_StrictMaxStream` for streamed bodies."""

    @cached_property
    def stream(self) -> Any:
        if self.shallow:
            raise RuntimeError("A shallow request cannot read its body.")
        limit = self.max_content_length
        if (limit is not None and self.content_length is None
                and "wsgi.input_terminated" in self.environ):
            return _StrictMaxStream(self.environ["wsgi.input"], limit)
        return get_input_stream(self.environ, max_content_length=limit)
