"""LookupEvents (extension path ``GET /audit/events``): the audit trail, filtered by event
name, principal (id or admin user name) and time range, oldest first, paged.

An event filed under an account is returned only when the caller's policies allow
``chime:LookupEvents`` on that account's ARN: a Deny on an account (``chime:*`` or
``chime:LookupEvents``) hides its events. Events without an account are returned to the
acting administrator's organisation, and those of no organisation (end users, the CLI
operator, jobs) to the operator's organisation only
(:func:`bridge.audit.unfiled_visible_to`). A filtered page may hold fewer events than
asked for (see :func:`bridge.audit.lookup`); clients follow ``NextToken`` until there is
none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from bridge import audit
from bridge.api.framework import ActionContext, action, api_state
from bridge.api.shapes import decode_token, encode_token, max_results
from bridge.bounds import parse_time
from bridge.errors import NotFound, ValidationError
from bridge.store.db import transaction


def _time(ctx: ActionContext, name: str) -> datetime | None:
    text = ctx.query(name)
    if text is None:
        return None
    try:
        return parse_time(text)  # bounded: an out-of-range time is malformed
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time such as "
                              f"2026-11-24T21:00:00Z, got {text!r}.", field=name) from None


@action("LookupEvents", "GET", "/audit/events", openapi=True,
        summary="Audit events (CloudTrail-shaped), oldest first",
        query_parameters=("event-name", "principal", "start-time", "end-time",
                          "max-results", "next-token"),
        response_schema={"type": "object", "properties": {
            "Events": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}},
            "NextToken": {"type": "string"}}})
def lookup_events(ctx: ActionContext) -> dict[str, Any]:
    principal = ctx.query("principal")
    if principal and not principal.startswith("AIDA"):
        try:
            principal = api_state().principals.get(principal).id
        except NotFound:
            principal = f"unknown:{principal}"  # matches nothing, like an unknown id
    start, end = _time(ctx, "start-time"), _time(ctx, "end-time")
    if start and end and start > end:
        raise ValidationError("start-time is after end-time.", field="start-time")
    cursor = decode_token(ctx.query("next-token"))
    if cursor is not None and not re.fullmatch(r"[0-9]{1,18}", cursor):
        raise ValidationError("next-token is not a token this API returned.",
                              field="NextToken")
    query = audit.EventQuery(event_name=ctx.query("event-name") or None,
                             principal_id=principal or None, start_time=start, end_time=end,
                             after_seq=int(cursor) if cursor else None,
                             limit=max_results(ctx.query("max-results")))
    with transaction(ctx.services.sessions) as session:
        events, next_seq = audit.lookup(
            session, query, visible=_account_filter(ctx),
            unfiled=audit.unfiled_visible_to(ctx.organisation,
                                             ctx.services.settings.admin_aws_account_id))
    body: dict[str, Any] = {"Events": events}
    if next_seq is not None:
        body["NextToken"] = encode_token(str(next_seq))
    return body


def _account_filter(ctx: ActionContext) -> Callable[[str], bool] | None:
    """The per-account check (cached: a page usually holds few accounts): the account is
    the caller's organisation's (owned or delegated) and its policies allow the action on
    it. Never skipped, whatever the policies: other organisations' accounts stay hidden."""
    return lru_cache(maxsize=1024)(ctx.allowed_on)
