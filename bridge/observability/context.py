"""What the current request is, for log lines and audit events: its request id, door,
account and principal.

A :class:`RequestContext` is set by the app's request hook (:mod:`bridge.observability.http`)
when a request starts and cleared when it ends; code outside a request (the AD sync, the
domain re-check thread, the CLI) sees none. It lives in a ``ContextVar``, so each gunicorn
thread sees only its own request.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass

# An id a proxy may hand us: short and made of characters that cannot break a log line.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


@dataclass
class RequestContext:
    """The request being served. ``account_id`` and ``principal`` are filled in once known
    (when the request's first audit event is written)."""

    request_id: str
    door: str
    account_id: str | None = None
    principal: str | None = None
    # The operation a door recognised (the admin action's name), for the metrics' label.
    operation: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("bridge-request", default=None)


def new_request_id(proxy_header: str | None, trust_proxy: bool) -> str:
    """The request's id: the trusted proxy's ``X-Request-Id`` when ``trust_proxy`` and the
    value is a plain token of at most 128 characters, else a fresh UUID4 (a client could
    otherwise choose the id written into our logs and audit trail)."""
    if trust_proxy and proxy_header and _SAFE_ID.fullmatch(proxy_header):
        return proxy_header
    return str(uuid.uuid4())


def begin(ctx: RequestContext) -> Token[RequestContext | None]:
    return _current.set(ctx)


def end(token: Token[RequestContext | None]) -> None:
    _current.reset(token)


def current() -> RequestContext | None:
    """The request being served by this thread, or None outside a request."""
    return _current.get()


def current_request_id() -> str | None:
    ctx = _current.get()
    return ctx.request_id if ctx else None


def note_actor(principal: str | None, account_id: str | None) -> None:
    """Remember who acted on which account (first one wins) for the request's later log
    lines; a no-op outside a request."""
    ctx = _current.get()
    if ctx is None:
        return
    if ctx.principal is None and principal:
        ctx.principal = principal
    if ctx.account_id is None and account_id:
        ctx.account_id = account_id


def note_operation(name: str) -> None:
    """Name the request's operation (a door calls this once it matched one of its own, so
    the metrics never import a door); a no-op outside a request."""
    ctx = _current.get()
    if ctx is not None:
        ctx.operation = name
