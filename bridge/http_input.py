"""The application's request class (:class:`BoundedRequest`): a body sent without
``Content-Length`` (chunked) that goes past ``MAX_CONTENT_LENGTH`` raises
``RequestEntityTooLarge`` (413, each door answers it in its own format) instead of being
silently cut at the limit. :func:`refuse_unstorable_urls` refuses a NUL in the URL
(:class:`UnstorableUrl`, 400). The other input bounds are in :mod:`bridge.bounds`."""

from __future__ import annotations

from typing import Any

from flask import Request, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream

from bridge.bounds import storable_text


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


class UnstorableUrl(BadRequest):
    """The path or query string has text no store can hold (see
    :func:`bridge.bounds.storable_text`); each door answers it as its own 400."""

    description = "The URL has a NUL character (%00) in its path or query string."


def refuse_unstorable_urls() -> None:
    """``before_request`` hook: raise :class:`UnstorableUrl` for a NUL in the path or in
    a query parameter (PostgreSQL cannot compare or store it: a 500 otherwise)."""
    if not storable_text(request.path) or not all(
            storable_text(key) and storable_text(value)
            for key, value in request.args.items(multi=True)):
        raise UnstorableUrl()
