"""Metrics and log context taken from the audit trail as it commits.

Every sign-in decision of every door is audited as one ``SignIn`` event (the engine's
decision, and the refusals a door makes before asking the engine), so counting committed
``SignIn`` events counts decisions once, in one place, without a hook in any door or in the
engine. Events are noted when flushed and counted when their transaction commits; a
rolled-back transaction's events are dropped. (A savepoint rolled back inside a committed
transaction is not tracked: the engine audits inside savepoints only after the work
succeeded, so none of its flushed events are rolled back that way.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from bridge.observability import context, metrics
from bridge.store.models import AuditEvent

_PENDING = "bridge.observability.sign_ins"


def _after_flush(session: Session, _flush_context: Any) -> None:
    for obj in session.new:
        if not isinstance(obj, AuditEvent):
            continue
        context.note_actor(obj.principal_id, obj.account_id)
        if obj.event_name == "SignIn":
            session.info.setdefault(_PENDING, []).append(_reason(obj.body))


def _reason(body: dict[str, Any]) -> str:
    response = body.get("responseElements") or {}
    return str(response.get("reason") or body.get("errorCode") or "ok")


def _after_commit(session: Session) -> None:
    reasons = session.info.pop(_PENDING, None)
    if not reasons:
        return
    ctx = context.current()
    door = ctx.door if ctx else "none"
    for reason in reasons:
        metrics.SIGN_IN_DECISIONS.labels(door, reason).inc()


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def install() -> None:
    """Listen on every ORM session (idempotent)."""
    for name, fn in (("after_flush", _after_flush), ("after_commit", _after_commit),
                     ("after_rollback", _after_rollback)):
        if not event.contains(Session, name, fn):
            event.listen(Session, name, fn)
