"""Event history: the audit trail (LookupEvents), newest first, filtered by event name,
principal, account and time, one page of 50 per request; and **Download** of the filtered
events as JSON lines (oldest first, streamed page by page, never held whole in memory).

As LookupEvents: the events of an account are shown only when the admin's policies allow
``chime:LookupEvents`` on it; events of no account to every admin allowed LookupEvents.
A page may hold fewer events than 50 (see :func:`bridge.audit.lookup`) and still have a
next page. Viewing a page and downloading are each one LookupEvents event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from flask import Response, render_template, request, stream_with_context

from bridge import audit
from bridge.bounds import parse_time
from bridge.console.access import Admin, current_admin, signed_in
from bridge.console.state import bp, console_state
from bridge.errors import BridgeError, ValidationError

PAGE_SIZE = 50
DOWNLOAD_BATCH = 1000
_PRINCIPAL_ID = re.compile(r"^[A-Za-z0-9:/_.@+=,-]{1,128}$")


def _time(name: str) -> datetime | None:
    text = (request.args.get(name) or "").strip()
    if not text:
        return None
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?", text):
        text += "Z"  # the form's datetime-local fields are UTC
    try:
        return parse_time(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a time such as 2026-11-24T21:00 (UTC).",
                              field=name) from None


def _query(admin: Admin) -> tuple[audit.EventQuery, dict[str, str]]:
    """The filters of this request as an EventQuery, and as typed (for the form); a
    malformed filter is the LookupEvents refusal (ValidationError, audited)."""
    admin.require("LookupEvents", filtered=True)
    try:
        return _parse()
    except BridgeError as exc:
        raise admin.refused("LookupEvents", None, exc) from None


def _parse() -> tuple[audit.EventQuery, dict[str, str]]:
    typed = {name: (request.args.get(name) or "").strip()[:128]
             for name in ("event_name", "principal", "account_id", "start", "end")}
    start, end = _time("start"), _time("end")
    if start and end and start > end:
        raise ValidationError("The start time is after the end time.", field="start")
    principal = typed["principal"] or None
    if principal and not principal.startswith("AIDA"):
        known = console_state().principals.find_id(principal)
        principal = known or principal  # an admin's name, else the principal id as typed
    if principal and not _PRINCIPAL_ID.match(principal):
        raise ValidationError("That principal is not a user name or principal id.",
                              field="principal")
    cursor = request.args.get("after") or None
    if cursor is not None and not re.fullmatch(r"[0-9]{1,18}", cursor):
        raise ValidationError("That page link is not one this console made.", field="after")
    return audit.EventQuery(
        event_name=typed["event_name"] or None, principal_id=principal,
        account_id=typed["account_id"] or None, start_time=start, end_time=end,
        after_seq=int(cursor) if cursor else None, limit=PAGE_SIZE, newest_first=True,
    ), typed


def _visibility(admin: Admin) -> Callable[[str], bool]:
    """The per-account check, never skipped: ``can`` also requires the admin's
    organisation to own or be delegated the account (other organisations' stay hidden)."""
    return lru_cache(maxsize=1024)(lambda account_id: admin.can("LookupEvents", account_id))


def _unfiled(admin: Admin) -> Callable[[str | None], bool]:
    return audit.unfiled_visible_to(admin.organisation,
                                    console_state().services.settings.admin_aws_account_id)


def _params(query: audit.EventQuery) -> dict[str, Any]:
    return {"eventName": query.event_name, "principal": query.principal_id,
            "accountId": query.account_id, "startTime": query.start_time,
            "endTime": query.end_time}


@bp.get("/events")
@signed_in
def events() -> Any:
    admin = current_admin()
    query, typed = _query(admin)
    uow = console_state().services.engine.uow
    visible, unfiled = _visibility(admin), _unfiled(admin)

    def page() -> tuple[list[dict[str, Any]], int | None]:
        return uow.read(lambda repo: audit.lookup(repo.session, query, visible=visible,
                                                       unfiled=unfiled),
                        write_lock=False)

    found, more = admin.read("LookupEvents", None, page, params=_params(query),
                             filtered=True)
    rows = [(event, json.dumps(event, indent=2, sort_keys=True)) for event in found]
    filters = {k: v for k, v in typed.items() if v}
    return render_template("console/events.html", rows=rows, more=more, typed=typed,
                           filters=filters, first_page=query.after_seq is None)


@bp.get("/events/download")
@signed_in
def download_events() -> Response:
    admin = current_admin()
    query, _ = _query(admin)
    query = replace(query, newest_first=False, after_seq=None, limit=DOWNLOAD_BATCH)
    uow = console_state().services.engine.uow
    visible, unfiled = _visibility(admin), _unfiled(admin)
    admin.read("LookupEvents", None, lambda: None,
               params={**_params(query), "download": "jsonl"}, filtered=True)

    def lines() -> Iterator[str]:
        cursor: int | None = None
        while True:
            batch = replace(query, after_seq=cursor)
            found, cursor = uow.read(lambda repo, q=batch: audit.lookup(  # type: ignore[misc]
                repo.session, q, visible=visible, unfiled=unfiled), write_lock=False)
            for event in found:
                yield json.dumps(event, sort_keys=True) + "\n"
            if cursor is None:
                return

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(stream_with_context(lines()), mimetype="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="events-{stamp}.jsonl"',
        "Cache-Control": "no-store"})
