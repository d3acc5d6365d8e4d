"""How the admin API records what a call asked for, and how it audits refusals: one event
per refused call whatever the request held, at a bounded cost.

- A refusal of an authenticated principal is audited with the path and query parameters
  and the members of a small JSON body (nesting cut at :data:`MAX_DEPTH`; secrets
  redacted by :func:`bridge.audit.record`). It counts for the principal's rate, which is
  read from the audit trail.
- A refusal of an unauthenticated caller (unsigned, unknown key, wrong signature, date
  out of range, or a 413 before authentication) is counted per source address
  (:mod:`bridge.store.throttle`, scope ``admin-unauth``) and stores only the method, the path,
  the source address, the user agent (both truncated) and the reason: never the body, at
  most about 1 KB an event. Past ``admin_api_max_unauthenticated_per_minute`` calls in a
  minute the caller gets 429, and one summary event stands for the rest of that minute.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Request

from bridge import audit
from bridge.domain import Actor
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import BridgeError, RateLimited
from bridge.services import Services
from bridge.store import throttle
from bridge.store.repository import Repository

log = logging.getLogger("bridge.api")

AUDITED_BODY_LIMIT = 4096  # larger bodies are recorded as their size only
MAX_DEPTH = 4  # body members nested deeper are recorded as a placeholder
TOO_DEEP = "(nested too deep to record)"
UNAUTHENTICATED_SCOPE = "admin-unauth"
UNAUTHENTICATED_WINDOW = timedelta(minutes=1)
# What one unauthenticated refusal may store (characters).
PATH_CHARS, USER_AGENT_CHARS, MESSAGE_CHARS = 128, 100, 200


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _shallow(value: Any, depth: int = 0) -> Any:
    """``value`` with containers nested deeper than :data:`MAX_DEPTH` replaced."""
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(value, dict):
            return {k: _shallow(v, depth + 1) for k, v in value.items()}
        return [_shallow(v, depth + 1) for v in value]
    return value


def audit_account(path: Mapping[str, str]) -> str | None:
    """The account an event is filed under: the path's ``accountId`` when it can be one."""
    account_id = path.get("accountId")
    if account_id is None or len(account_id) > audit.ACCOUNT_ID_MAX:
        return None
    return account_id


def request_parameters(path: Mapping[str, str], req: Request) -> dict[str, Any]:
    """Path and query parameters, and the members of a small JSON body (bounded nesting;
    :func:`bridge.audit.record` redacts secret-named members). Never raises for a body:
    one that is too large, not JSON, or too deeply nested to parse is left out."""
    params: dict[str, Any] = dict(path)
    for key, value in req.args.items():
        if key != "operation":
            params[key] = value
    raw = req.get_data(cache=True)
    if raw and len(raw) <= AUDITED_BODY_LIMIT:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # ValueError: bad JSON or bad UTF-8
            body = None
        if isinstance(body, dict):
            params.update({k: _shallow(v, 1) for k, v in body.items() if k not in params})
    elif raw:
        params["bodyBytes"] = len(raw)
    return params


def audit_refusal(svc: Services, actor: Actor, event_name: str, account_id: str | None,
                  params: Callable[[], Mapping[str, Any]], error: BridgeError) -> None:
    """Audit an authenticated principal's refusal; if the full event cannot be written,
    a minimal one (no request parameters) still records and counts the refusal."""
    try:
        svc.engine.record_event(actor, event_name, account_id=account_id, params=params(),
                                error=error)
        return
    except Exception:
        log.exception("could not audit refused %s with its parameters (request %s)",
                      event_name, actor.request_id)
    try:
        svc.engine.record_event(actor, event_name, account_id=account_id,
                                params={"parametersOmitted": True}, error=error)
    except Exception:  # the answer must still go out; the failure is logged
        log.exception("could not audit refused %s (request %s)", event_name,
                      actor.request_id)


def refuse_unauthenticated(svc: Services, req: Request, actor: Actor, event_name: str,
                           account_id: str | None, error: BridgeError, *, limit: int,
                           now: datetime) -> BridgeError:
    """Count and audit the refusal of an unauthenticated call; returns the error to answer
    with: ``error`` itself, or 429 once the source address is over ``limit`` calls in
    the current minute (0: no limit). Within the limit each refusal leaves one bounded
    event; the first call over it leaves one summary event, the rest of the minute none.
    """
    bounded = dataclasses.replace(actor, user_agent=_cut(actor.user_agent, USER_AGENT_CHARS))
    params: dict[str, Any] = {"method": req.method, "path": _cut(req.path, PATH_CHARS)}
    answer: BridgeError = error

    def work(repo: Repository) -> BridgeError:
        session = repo.session
        hit = throttle.hit(session, UNAUTHENTICATED_SCOPE, req.remote_addr or "unknown",
                           window=UNAUTHENTICATED_WINDOW, now=now)
        found: BridgeError = error
        if hit.over(limit):
            found = RateLimited(
                f"Rate exceeded: more than {limit} unauthenticated calls a minute from "
                "this address; retry after Retry-After seconds.",
                retry_after=hit.retry_after(now))
        if not hit.over(limit) or hit.first_over(limit):
            message = found.message
            if found is not error:
                params.update(summary=True, limit=limit,
                              windowStart=_iso(hit.window_start),
                              windowEnd=_iso(hit.window_end))
                message += (" This event stands for every such refusal until "
                            f"{_iso(hit.window_end)}.")
            # The count and the event in the unit of work's one transaction.
            UnitOfWork.record_in(session, bounded, event_name, account_id=account_id,
                                 request_parameters=params, error_code=found.code,
                                 error_message=_cut(message, MESSAGE_CHARS))
        return found

    try:
        answer = svc.engine.uow.bookkeeping(work)
    except Exception:  # the answer must still go out; the failure is logged
        log.exception("could not count or audit refused %s (request %s)", event_name,
                      actor.request_id)
    return answer


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
