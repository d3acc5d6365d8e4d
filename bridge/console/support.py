"""Support: **Submit request** (SubmitSupportRequest). The ticket is stored (one event),
then mailed to ``BRIDGE_SUPPORT_EMAIL`` as the admin API does; the page says whether the
mail went out."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from bridge.browser import form_post
from bridge.console.access import current_admin, signed_in
from bridge.console.state import bp, console_state
from bridge.domain import Actor
from bridge.engine.results import SupportRequestView
from bridge.errors import AccessDenied, BridgeError
from bridge.mailer import mail_support_request


def _form(error: str | None = None, status: int = 200, **values: str) -> tuple[str, int]:
    return render_template("console/support.html", error=error, values=values), status


@bp.get("/support")
@signed_in
def support() -> Any:
    current_admin().require("SubmitSupportRequest")
    return _form()


@bp.post("/support")
@form_post
@signed_in
def submit_request() -> Any:
    admin = current_admin()
    svc = console_state().services
    values = {name: request.form.get(name, "").strip()
              for name in ("subject", "description", "account_id", "contact_email")}
    account_id = values["account_id"] or None

    def submit(actor: Actor) -> SupportRequestView:
        if account_id is not None and not admin.can("SubmitSupportRequest", account_id):
            raise AccessDenied("Not authorized to perform: chime:SubmitSupportRequest on "
                               f"account {account_id}")
        view: SupportRequestView = svc.engine.submit_support_request(
            actor, subject=values["subject"], description=values["description"],
            account_id=account_id, contact_email=values["contact_email"] or None)
        return view

    try:
        view = admin.perform("SubmitSupportRequest", None, submit,
                             params={"accountId": account_id, "subject": values["subject"]})
    except BridgeError as exc:
        if isinstance(exc, AccessDenied) and account_id is None:
            raise
        return _form(exc.message, 403 if isinstance(exc, AccessDenied) else 400, **values)
    status = mail_support_request(
        svc.settings, request_id=view.id, subject=view.subject,
        sender=f"{admin.name} ({admin.principal.id}), in the console",
        account_id=view.account_id, contact=view.contact_email,
        description=view.description)
    if status != "NotSent":
        svc.engine.set_support_request_mail_status(view.id, status)
    flash(f"Your request {view.id} was submitted. " + {
        "Sent": "It was mailed to the support team.",
        "Failed": "It is stored, but the mail to the support team failed; the operators "
                  "can read it in the event history.",
        "NotSent": "It is stored; no support mail address is configured, so tell the "
                   "bridge's operators about it."}[status], "success")
    return redirect(url_for("console.support"))
