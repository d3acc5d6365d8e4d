"""SubmitSupportRequest (extension path ``POST /support-requests``): the ticket is stored,
then mailed to ``BRIDGE_SUPPORT_EMAIL``; the answer says whether the mail went out."""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.api.shapes import string_member
from bridge.mailer import mail_support_request


@action("SubmitSupportRequest", "POST", "/support-requests", status=201, openapi=True,
        summary="Submit a support ticket (stored, and mailed to the support address)",
        request_schema={"type": "object", "required": ["Subject", "Description"],
                        "properties": {
                            "Subject": {"type": "string", "minLength": 1, "maxLength": 256},
                            "Description": {"type": "string", "minLength": 1,
                                            "maxLength": 20000},
                            "AccountId": {"type": "string"},
                            "ContactEmail": {"type": "string", "format": "email"}}},
        response_schema={"type": "object", "properties": {"SupportRequest": {
            "$ref": "#/components/schemas/SupportRequest"}}})
def submit_support_request(ctx: ActionContext) -> dict[str, Any]:
    body = ctx.body()
    subject = string_member(body, "Subject")
    description = string_member(body, "Description")
    account_id = string_member(body, "AccountId", required=False)
    if account_id is not None and ctx.access_to(account_id) is None:
        # Another organisation's account is as unknown as a missing one.
        from bridge.errors import NotFound

        raise NotFound(f"Account {account_id} was not found.")
    if account_id is not None and not ctx.allowed_on(account_id):
        from bridge.errors import AccessDenied

        raise AccessDenied(f"Not authorized to perform: chime:SubmitSupportRequest on "
                           f"account {account_id}")
    view = ctx.mutate(ctx.engine.submit_support_request, subject=subject or "",
                      description=description or "", account_id=account_id,
                      contact_email=string_member(body, "ContactEmail", required=False))
    status = mail_support_request(
        ctx.services.settings, request_id=view.id, subject=view.subject,
        sender=f"{ctx.principal.name} ({ctx.principal.id})", account_id=view.account_id,
        contact=view.contact_email, description=view.description)
    if status != "NotSent":
        ctx.engine.set_support_request_mail_status(view.id, status)
    return {"SupportRequest": {"SupportRequestId": view.id, "Subject": view.subject,
                               "AccountId": view.account_id, "Status": "Submitted",
                               "EmailStatus": status, "CreatedTimestamp": view.created_at}}
